"""Time to accuracy: how long each model takes to reach 91 / 93 / 94 / 95% test accuracy, the notebook's recipe first.

Each row is one training run with its recipe; after every epoch the weights that run would keep (what its
validation judges: the EMA with `--ema`, flip-TTA with `--tta`) are evaluated on the 10,000 test images,
outside the timed part. "Time to 93%" is the training time up to the end of the first epoch whose test
accuracy is ≥ 93%, counted as `fmnist train` counts an epoch (its steps plus the 10,000-image validation
pass); "not reached" when no epoch gets there (the table gives the final epoch's test accuracy and the best
epoch's: the best of 15 looks at the test set 15 times, so it flatters a little). The notebook's recipe (torchvision
`FashionMNIST` + `ToTensor`, `DataLoader(batch_size=64, shuffle=True)` over all 60,000 images, Adam 1e-3,
fp32, from `bench/train_speed.py`) is timed the same way, epoch by epoch, with no validation pass.

fmnist's recipe is a one-cycle schedule planned for the run's epochs, so a threshold is crossed later inside
a 15-epoch run than a run planned shorter would reach it (`bench/train_speed.py --sweep-default` measures
that); the times here are what a user of each recipe as shipped waits for.

Row sets (`--rows`): `registry` (default): every architecture of the registry at its defaults with fmnist's
default recipe (mlp, cnn k3/k5/k7, lcn, resnet), after the notebook's recipe; `ladder`: one ingredient at a time
from the MLP to the modern recipe (mlp → cnn-k3 → + batch norm → + depth → + GAP head
→ resnet → + augmentation → + EMA and flip-TTA); or row names, comma-separated (`--list` names them).

    python bench/time_to_accuracy.py                       # the registry table on this machine's CPU
    python bench/time_to_accuracy.py --rows ladder --device cuda --json ladder.json
    python bench/time_to_accuracy.py --quick               # checks the script on small subsets
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import train_speed  # noqa: E402 - the notebook's recipe and the CPU's description, shared with the speed benchmark

from fmnist_tui.core.config import TrainConfig  # noqa: E402
from fmnist_tui.core.data import Dataset, load_dataset  # noqa: E402
from fmnist_tui.core.events import EpochEnd  # noqa: E402
from fmnist_tui.training.evaluate import predict_logits, strict_fp32  # noqa: E402
from fmnist_tui.training.trainer import Trainer  # noqa: E402

TARGETS = (0.91, 0.93, 0.94, 0.95)

#: the modern recipe's settings on top of fmnist's default recipe (docs/models.md, The recipe)
AUGMENT = {"shift": 2, "erase": 0.25}
MODERN = {**AUGMENT, "ema": 0.999, "tta": True}
#: the default model's recipe now (Makefile's MODERN: the weight average left it at 40 epochs)
RECIPE = {**AUGMENT, "tta": True}

#: row name → (what it adds, TrainConfig values); "notebook" is the notebook's own recipe on its CNN k3
ROWS: dict[str, tuple[str, dict[str, Any]]] = {
    "notebook": ("the notebook's recipe on its CNN k3 (Adam 1e-3, batch 64, fp32)", {"arch": "cnn", "kernel": 3}),
    "mlp": ("MLP 784-256-128-10", {"arch": "mlp"}),
    "cnn-k3": ("the notebook's CNN k3", {"arch": "cnn", "kernel": 3}),
    "cnn-k5": ("the notebook's CNN k5", {"arch": "cnn", "kernel": 5}),
    "cnn-k7": ("the notebook's CNN k7", {"arch": "cnn", "kernel": 7}),
    "lcn-k3": ("locally connected k3", {"arch": "lcn", "kernel": 3}),
    "resnet": ("ResNet (BN, residual blocks, GAP)", {"arch": "resnet"}),
    "cnn-k3-bn": ("+ batch norm", {"arch": "cnn", "kernel": 3, "norm": "batch"}),
    "cnn-k3-d3-bn": ("+ depth (3 conv blocks)", {"arch": "cnn", "kernel": 3, "norm": "batch", "depth": 3}),
    "cnn-k3-d3-gap-bn": (
        "+ GAP head",
        {"arch": "cnn", "kernel": 3, "norm": "batch", "depth": 3, "head": "gap"},
    ),
    "resnet-aug": ("+ augmentation (--shift 2 --erase 0.25)", {"arch": "resnet", **AUGMENT}),
    "resnet-modern": ("+ EMA and flip-TTA (--ema 0.999 --tta)", {"arch": "resnet", **MODERN}),
    "resnet20": (
        "the ResNet-20 layout (--width 16 --blocks 3) with the default model's recipe (--shift 2 --erase 0.25 --tta)",
        {"arch": "resnet", "width": 16, "blocks": 3, **RECIPE},
    ),
}
SETS = {
    "registry": ["notebook", "mlp", "cnn-k3", "cnn-k5", "cnn-k7", "lcn-k3", "resnet"],
    "ladder": [
        "mlp",
        "cnn-k3",
        "cnn-k3-bn",
        "cnn-k3-d3-bn",
        "cnn-k3-d3-gap-bn",
        "resnet",
        "resnet-aug",
        "resnet-modern",
    ],
}


def notebook_row(epochs: int, max_batches: int | None) -> dict[str, Any]:
    """The notebook's recipe, epoch by epoch: (seconds so far, test accuracy) after each."""
    from fmnist_tui.training.models import count_macs, count_params

    tmp = Path(tempfile.mkdtemp(prefix="fmnist-tta-notebook-"))
    try:
        train_set, test_set = train_speed.notebook_loaders(tmp)
        model = train_speed.notebook_model("cnn", 3)
        opt = torch.optim.Adam(model.parameters(), 1e-3)
        curve, total = [], 0.0
        for epoch in range(1, epochs + 1):
            sec, _ = train_speed.notebook_epoch(model, train_set, opt, max_batches)
            total += sec
            acc = train_speed.notebook_test_accuracy(model, test_set)
            curve.append((round(total, 3), acc))
            print(f"  notebook recipe epoch {epoch}: test {acc:.2%} after {total:.1f}s", flush=True)
        counted = train_speed._notebook_model("cnn", 3)  # on the CPU: count_macs feeds it a CPU tensor
        return {"params": count_params(counted), "macs": count_macs(counted), "precision": "fp32", "curve": curve}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def our_row(
    values: dict[str, Any],
    epochs: int,
    dataset: Dataset,
    out: Path,
    subset: int | None,
    device: str,
    seed: int,
    precision: str = "auto",
) -> dict[str, Any]:
    """One `fmnist train` run of `values`, its evaluated model (`Trainer.evaluated_model`) tested after every epoch
    (untimed)."""
    cfg = TrainConfig.create(
        **values,
        epochs=epochs,
        subset=subset,
        out=str(out),
        device=device,
        seed=seed,
        precision=precision,
        name=f"r{time.monotonic_ns()}",
    )
    trainer = Trainer(cfg, dataset=dataset)
    test_x = torch.from_numpy(dataset.test_images).to(trainer.device)
    test_y = torch.from_numpy(dataset.test_labels.astype("int64")).to(trainer.device)
    curve: list[tuple[float, float]] = []
    total = 0.0
    emit: Callable[[Any], None] = trainer.emit

    def on_event(event: Any) -> None:
        nonlocal total
        emit(event)
        if isinstance(event, EpochEnd):
            total += event.row["seconds"]
            with strict_fp32():
                acc = (predict_logits(trainer.evaluated_model, test_x).argmax(1) == test_y).float().mean().item()
            curve.append((round(total, 3), acc))
            print(
                f"  epoch {event.epoch}/{event.epochs}: test {acc:.2%} (val {event.row['val_acc']:.2%}) after "
                f"{total:.1f}s",
                flush=True,
            )

    trainer.emit = on_event
    trainer.run()
    return {
        "params": trainer.params,
        "macs": trainer.macs,
        "precision": "bf16" if trainer.bf16 else "fp32",
        "curve": curve,
    }


def crossing(curve: list[tuple[float, float]], target: float) -> tuple[float, int] | None:
    """(seconds, epoch) at the end of the first epoch at or above `target`."""
    return next(((sec, i + 1) for i, (sec, acc) in enumerate(curve) if acc >= target), None)


def cell(curve: list[tuple[float, float]], target: float) -> str:
    hit = crossing(curve, target)
    return f"{hit[0]:.1f} s (ep {hit[1]})" if hit else "not reached"


def table(results: list[dict[str, Any]]) -> str:
    """The Markdown table: one row per run, times to each target, the notebook's recipe as the reference."""
    head = "| row | what | params | MACs | epochs | train time | final test | best test | "
    lines = [head + " | ".join(f"to {t:.0%}" for t in TARGETS) + " |", "|" + "---|" * (8 + len(TARGETS))]
    for r in results:
        (seconds, final), best = r["curve"][-1], max(acc for _, acc in r["curve"])
        times = " | ".join(cell(r["curve"], t) for t in TARGETS)
        lines.append(
            f"| {r['row']} | {r['what']} | {r['params']:,} | {r['macs'] / 1e6:.2f} M | {len(r['curve'])} | "
            f"{seconds:.1f} s | {final:.2%} | {best:.2%} | {times} |"
        )
    notebook = next((r for r in results if r["row"] == "notebook"), None)
    if notebook:
        for t in TARGETS:
            base = crossing(notebook["curve"], t)
            if base is None:
                continue
            ratios = [
                f"{r['row']} {base[0] / hit[0]:.2f}×"
                for r in results
                if r["row"] != "notebook" and (hit := crossing(r["curve"], t))
            ]
            lines.append(f"\ntime to {t:.0%} vs the notebook's recipe ({base[0]:.1f} s): " + (", ".join(ratios) or "—"))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", default="registry", help="registry, ladder, or row names, comma-separated")
    ap.add_argument("--list", action="store_true", help="name the rows and the sets, then stop")
    ap.add_argument("--epochs", type=int, default=15, help="epochs of every row (fmnist's default: 15)")
    ap.add_argument(
        "--notebook-epochs", type=int, default=None, help="epochs of the notebook's recipe (default --epochs)"
    )
    ap.add_argument("--seed", type=int, default=0, help="the runs' seed")
    ap.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")
    ap.add_argument(
        "--precision", choices=("auto", "fp32", "bf16"), default="auto", help="fmnist's rows (the notebook's is fp32)"
    )
    ap.add_argument("--json", type=Path, help="write the rows (curves included) here, after each row")
    ap.add_argument("--quick", action="store_true", help="small subsets and 2 epochs: checks the script only")
    args = ap.parse_args()
    if args.list:
        for name, (what, values) in ROWS.items():
            print(f"{name:<18} {what}  {values}")
        print("sets: " + "; ".join(f"{k}: {', '.join(v)}" for k, v in SETS.items()))
        return
    names = [n for part in args.rows.split(",") for n in SETS.get(part.strip(), [part.strip()])]
    unknown = [n for n in names if n not in ROWS]
    if unknown:
        raise SystemExit(f"error: unknown row {unknown[0]!r}; valid: {', '.join([*SETS, *ROWS])} (see --list)")
    device = "cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()) else "cpu"
    train_speed.DEVICE = torch.device(device)
    epochs = 2 if args.quick else args.epochs
    subset, max_batches = (2048, 40) if args.quick else (None, None)
    dataset = load_dataset()
    kind, _ = train_speed.cpu_kind()
    where = torch.cuda.get_device_name() if device == "cuda" else f"{kind}, {torch.get_num_threads()} threads"
    print(
        f"torch {torch.__version__} on {where}; precision {args.precision}; {epochs} epochs per row; targets "
        + ", ".join(f"{t:.0%}" for t in TARGETS)
    )
    results: list[dict[str, Any]] = []
    tmp = Path(tempfile.mkdtemp(prefix="fmnist-tta-"))
    try:
        for name in names:
            what, values = ROWS[name]
            print(f"{name}: {what}", flush=True)
            if name == "notebook":
                row = notebook_row(args.notebook_epochs or epochs, max_batches)
            else:
                row = our_row(values, epochs, dataset, tmp, subset, device, args.seed, args.precision)
            results.append({"row": name, "what": what, "config": values, "device": where, **row})
            if args.json:
                args.json.write_text(json.dumps(results, indent=1))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print()
    print(table(results))


if __name__ == "__main__":
    main()
