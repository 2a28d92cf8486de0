"""Training speed: the notebook's recipe vs `fmnist train`'s default recipe, measured side by side in one run.

The notebook's recipe (as the notebook trains): torchvision FashionMNIST + ToTensor, DataLoader(batch_size=64,
shuffle=True) over all 60,000 training images, Adam(lr=1e-3), fp32. Ours: the default TrainConfig
(in-memory uint8 tensor, index batches, bf16 autocast where supported) over the 50,000-image train split,
validation included in our epoch time.

    python bench/train_speed.py            # per-epoch ratios for mlp, k3, k5, k7 + time to 91% on k3
    python bench/train_speed.py --quick    # a smoke run on small subsets (numbers not meaningful)
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fmnist_tui.core.config import TrainConfig
from fmnist_tui.core.data import find_dataset, load_dataset
from fmnist_tui.training.trainer import train

CONFIGS = [("mlp", None), ("cnn", 3), ("cnn", 5), ("cnn", 7)]
#: `--precision` of our runs (auto: bf16 autocast where the CPU has AVX-512 BF16)
PRECISION = "auto"


def cpu_kind() -> tuple[str, float | None]:
    """'AMD EPYC, AVX-512 BF16' (the ISA oneDNN may use: ONEDNN_MAX_CPU_ISA=AVX2 makes an AVX2-only
    machine of an AVX-512 one, for its kernels), and the fp32 peak in GFLOP/s of the threads torch uses:
    threads × 2 FMA pipes × lanes (8 for AVX2's 256 bits, 16 for AVX-512) × 2 flops × the top clock."""
    import os
    import re

    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    name = (re.search(r"model name\s*:\s*(.+)", info) or [None, "unknown CPU"])[1].strip()
    flags = set((re.search(r"flags\s*:\s*(.+)", info) or [None, ""])[1].split())
    limit = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
    if limit.startswith("AVX2") and "avx512f" in flags:
        isa, lanes = "AVX2 only (oneDNN limited by ONEDNN_MAX_CPU_ISA on an AVX-512 CPU: emulated)", 8
    elif "avx512_bf16" in flags:
        isa, lanes = "AVX-512 BF16", 16
    elif "avx512f" in flags:
        isa, lanes = "AVX-512 (no BF16)", 16
    elif "avx2" in flags:
        isa, lanes = "AVX2 only", 8
    else:
        return f"{name}, no AVX2", None
    freq = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    mhz = (
        int(freq.read_text()) / 1000
        if freq.exists()
        else max(map(float, re.findall(r"cpu MHz\s*:\s*([\d.]+)", info)), default=0)
    )
    peak = torch.get_num_threads() * 2 * lanes * 2 * mhz / 1000 if mhz else None
    return f"{name}, {isa}", peak


def train_gflop(arch: str, kernel: int | None, images: int, val_images: int = 0) -> float:
    """fp32 work of an epoch: forward + backward ≈ 3 × 2 × MACs per training image, 2 × MACs per validation one."""
    from fmnist_tui.training.models import count_macs, create_model

    macs = count_macs(create_model(arch, kernel=kernel) if kernel else create_model(arch))
    return (6 * macs * images + 2 * macs * val_images) / 1e9


def notebook_loaders(workdir: Path) -> tuple:
    """The notebook's torchvision datasets, fed from the local IDX files (torchvision cannot download here)."""
    from torchvision import datasets, transforms

    raw = workdir / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name, path in find_dataset().files.items():
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as src, open(raw / name, "wb") as dst:
            shutil.copyfileobj(src, dst)
    tf = transforms.ToTensor()
    return (
        datasets.FashionMNIST(str(workdir), train=True, download=False, transform=tf),
        datasets.FashionMNIST(str(workdir), train=False, download=False, transform=tf),
    )


#: where both recipes run (--device); the notebook's loop moves each batch there, as its user on a GPU would
DEVICE = torch.device("cpu")


def notebook_model(arch: str, kernel: int | None) -> nn.Module:
    """The notebook's own models (no normalisation layer), same shapes as our registry."""
    torch.manual_seed(0)
    return _notebook_model(arch, kernel).to(DEVICE)


def _notebook_model(arch: str, kernel: int | None) -> nn.Module:
    if arch == "mlp":
        return nn.Sequential(
            nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10)
        )
    k = kernel or 3
    return nn.Sequential(
        nn.Conv2d(1, 32, k, padding=k // 2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, k, padding=k // 2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(3136, 128),
        nn.ReLU(),
        nn.Linear(128, 10),
    )


def notebook_epoch(model: nn.Module, train_set, opt, max_batches: int | None) -> tuple[float, int]:
    """One epoch of the notebook's loop; returns (seconds, images)."""
    from torch.utils.data import DataLoader

    loader = DataLoader(train_set, batch_size=64, shuffle=True)
    crit, seen = nn.CrossEntropyLoss(), 0
    model.train()
    t0 = time.perf_counter()
    for i, (x, y) in enumerate(loader):
        if max_batches and i >= max_batches:
            break
        x, y = x.to(DEVICE), y.to(DEVICE)
        opt.zero_grad()
        crit(model(x), y).backward()
        opt.step()
        seen += len(x)
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0, seen


@torch.no_grad()
def notebook_test_accuracy(model: nn.Module, test_set) -> float:
    from torch.utils.data import DataLoader

    model.eval()
    correct = sum(
        int((model(x.to(DEVICE)).argmax(1).cpu() == y).sum()) for x, y in DataLoader(test_set, batch_size=1000)
    )
    return correct / len(test_set)


def ours(
    arch: str, kernel: int | None, epochs: int, out: Path, subset: int | None, dataset, lr: float | None = None
) -> dict:
    cfg = TrainConfig.create(
        arch=arch,
        kernel=kernel,
        epochs=epochs,
        subset=subset,
        out=str(out),
        lr=lr,
        device=DEVICE.type,
        precision=PRECISION,
        name=f"{arch}-{kernel}-{epochs}-{time.monotonic_ns()}",
    )
    result = train(cfg, dataset=dataset)
    rows = result.run.metrics()
    return {
        "epoch_seconds": rows[0]["seconds"],
        "images": subset if subset else len(dataset.train_labels),
        "train_seconds": result.summary["train_seconds"],
        "test_accuracy": result.summary["test_accuracy"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small subsets: checks the script, not the speed")
    ap.add_argument("--target", type=float, default=0.91, help="test accuracy for the time-to-accuracy race")
    ap.add_argument("--no-race", action="store_true", help="skip the time-to-accuracy comparison")
    ap.add_argument("--no-table", action="store_true", help="skip the per-epoch table")
    ap.add_argument(
        "--sweep-default",
        action="store_true",
        help="race the default recipe too, with 2, 3, 4 … epoch budgets (slower)",
    )
    ap.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        default="auto",
        help="our runs' precision (auto: bf16 autocast where the CPU has AVX-512 BF16)",
    )
    ap.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="cpu",
        help="where both recipes train (default cpu; auto: CUDA when present)",
    )
    args = ap.parse_args()
    global DEVICE, PRECISION
    PRECISION = args.precision
    DEVICE = torch.device(
        "cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()) else "cpu"
    )
    max_batches, subset = (40, 2560) if args.quick else (None, None)
    dataset = load_dataset()
    tmp = Path(tempfile.mkdtemp(prefix="fmnist-bench-"))
    try:
        train_set, test_set = notebook_loaders(tmp / "notebook")
        if args.no_table:
            CONFIGS.clear()
        kind, peak = cpu_kind()
        where = torch.cuda.get_device_name() if DEVICE.type == "cuda" else f"{kind}, {torch.get_num_threads()} threads"
        print(
            f"torch {torch.__version__} on {where}; ours at --precision {PRECISION}; notebook epoch = 60,000 images "
            f"at batch 64; ours = {len(dataset.train_labels):,} train images + 10,000 validation"
        )
        if peak and DEVICE.type == "cpu":
            print(
                f"fp32 peak of these threads ≈ {peak:,.0f} GFLOP/s (2 FMA pipes × lanes × 2 × the clock the OS "
                "reports; a boost clock can exceed it)"
            )
        print(
            f"{'config':<8} {'notebook s/epoch':>16} {'ours s/epoch':>12} {'epoch ratio':>11} "
            f"{'notebook img/s':>14} {'ours img/s':>10} {'img/s ratio':>11} {'notebook GFLOP/s':>16} "
            f"{'ours GFLOP/s':>12}"
        )
        for arch, kernel in CONFIGS:
            model = notebook_model(arch, kernel)
            s_sec, s_n = notebook_epoch(model, train_set, torch.optim.Adam(model.parameters(), 1e-3), max_batches)
            o = ours(arch, kernel, 1, tmp / "runs", subset, dataset)
            label = f"{arch}-k{kernel}" if kernel else arch
            s_flops = train_gflop(arch, kernel, s_n) / s_sec
            o_flops = train_gflop(arch, kernel, o["images"], min(o["images"], 10_000)) / o["epoch_seconds"]
            share = lambda f: f" ({100 * f / peak:.0f}%)" if peak and DEVICE.type == "cpu" else ""  # noqa: E731 - a format helper
            print(
                f"{label:<8} {s_sec:16.2f} {o['epoch_seconds']:12.2f} {s_sec / o['epoch_seconds']:10.2f}× "
                f"{s_n / s_sec:14,.0f} {o['images'] / o['train_seconds']:10,.0f} "
                f"{(o['images'] / o['train_seconds']) / (s_n / s_sec):10.2f}× "
                f"{s_flops:11.1f}{share(s_flops):>5} {o_flops:7.1f}{share(o_flops):>5}",
                flush=True,
            )
        if not args.no_race:
            race(
                args.target,
                train_set,
                test_set,
                dataset,
                tmp / "runs",
                max_batches,
                subset,
                2 if args.quick else 15,
                args.sweep_default,
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


#: our short-budget setting for the race: the same recipe (AdamW, one-cycle, flips, label smoothing)
#: over 3 epochs with a higher peak rate, i.e. `fmnist train --epochs 3 --lr 6e-3`
FAST = (3, 6e-3)


def race(
    target: float, train_set, test_set, dataset, out: Path, max_batches, subset, max_epochs: int, sweep_default: bool
) -> None:
    """Training time until test accuracy ≥ target on cnn k=3: the notebook's recipe epoch by epoch; ours as
    `--epochs 3 --lr 6e-3` (and, with --sweep-default, the default recipe with growing epoch budgets)."""
    model = notebook_model("cnn", 3)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    notebook_total, notebook_acc, epoch = 0.0, 0.0, 0
    while notebook_acc < target and epoch < max_epochs:
        epoch += 1
        sec, _ = notebook_epoch(model, train_set, opt, max_batches)
        notebook_total += sec
        notebook_acc = notebook_test_accuracy(model, test_set)
        print(
            f"  notebook recipe epoch {epoch}: test {notebook_acc:.4f} after {notebook_total:.1f}s of training",
            flush=True,
        )
    budgets = [(e, None) for e in range(2, 2 + max(1, max_epochs // 2))] if sweep_default else []
    for label, plan in (("default recipe", budgets), ("--epochs 3 --lr 6e-3", [FAST])):
        our_total, our_acc = 0.0, 0.0
        for epochs, lr in plan:
            o = ours("cnn", 3, epochs, out, subset, dataset, lr)
            our_total, our_acc = o["train_seconds"], o["test_accuracy"]
            print(
                f"  ours --epochs {epochs}{f' --lr {lr:g}' if lr else ''}: test {our_acc:.4f} "
                f"after {our_total:.1f}s of training",
                flush=True,
            )
            if our_acc >= target:
                break
        if plan:
            ok = notebook_acc >= target and our_acc >= target
            print(
                f"time to {target:.0%} on cnn-k3, ours ({label}): notebook {notebook_total:.1f}s, ours "
                f"{our_total:.1f}s → {notebook_total / our_total:.2f}× faster"
                + ("" if ok else " (target not reached by both)"),
                flush=True,
            )


if __name__ == "__main__":
    main()
