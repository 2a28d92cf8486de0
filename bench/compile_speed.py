"""What `--compile` buys: the training step eager, compiled (inductor) and compiled with CUDA graphs, per model.

`python bench/compile_speed.py` times the trainer's own step (training/step.py, through `speed.measure`: the same
model, batch, precision, layout, optimizer, augmentation, weight average as `fmnist train`) with each `--compile`
mode, on random images, and prints images per second and the ratio to eager, with the set-up time the mode costs
first (the compile; eager's is the baseline). Rows (`bench/time_to_accuracy.py`'s): the ResNet with crops,
erasing, the weight average and flip-TTA (`resnet-modern`, batch 128; the EMA's update is outside the compiled
step) and the notebook's CNN (`cnn-k3`). Options: `--device cpu|cuda|auto`, `--rows`, `--modes off,default,graphs`,
`--steps`, `--warmup`, `--json FILE`, `--quick` (cnn-k3, few steps: a smoke run). The ratio is the answer;
absolute times are this machine's.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import torch  # noqa: E402
from step_time import measure  # noqa: E402
from time_to_accuracy import ROWS  # noqa: E402 - the recipes of the time-to-accuracy rows, by name
from train_speed import cpu_kind  # noqa: E402

from fmnist_tui.core.config import COMPILES, TrainConfig  # noqa: E402
from fmnist_tui.training.device import resolve_device  # noqa: E402


def row(name: str, modes: list[str], device: str, steps: int, warmup: int) -> dict[str, Any]:
    """One model's step time under each mode: {mode: {step_s, images_per_s, setup_s, ratio}}."""
    _, values = ROWS[name]
    out: dict[str, Any] = {}
    for mode in modes:
        cfg = TrainConfig.create(**values, device=device, compile=mode)
        torch._dynamo.reset()  # each mode compiles from scratch, as a fresh `fmnist train` does
        t0 = time.perf_counter()
        speed = measure(cfg, torch.get_num_threads(), steps=steps, warmup=warmup)
        wall = time.perf_counter() - t0
        out[mode] = {"step_s": speed.step_s, "images_per_s": cfg.batch_size / speed.step_s, "wall_s": wall}
    base = out.get("off")
    for result in out.values():
        result["ratio"] = base["step_s"] / result["step_s"] if base else None
        # what the mode costs before its first timed step, beyond eager's set-up: the compile
        result["setup_s"] = result["wall_s"] - base["wall_s"] if base else None
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--rows", default="resnet-modern,cnn-k3")
    parser.add_argument("--modes", default=",".join(COMPILES))
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.quick:
        args.rows, args.steps, args.warmup = "cnn-k3", 4, 3
    names, modes = args.rows.split(","), args.modes.split(",")
    bad = [n for n in names if n not in ROWS] + [m for m in modes if m not in COMPILES]
    if bad:
        valid = f"rows: {', '.join(ROWS)}; modes: {', '.join(COMPILES)}"
        raise SystemExit(f"error: unknown row or mode {bad[0]!r}; {valid}")
    if "off" in modes:
        modes = ["off", *[m for m in modes if m != "off"]]  # eager first: the baseline of every ratio
    device = resolve_device(args.device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_kind()[0]
    print(f"training step under --compile, {where}, torch {torch.__version__}, {args.steps} timed steps")
    report: dict[str, Any] = {"device": where, "torch": torch.__version__, "rows": {}}
    for name in names:
        result = report["rows"][name] = row(name, modes, device.type, args.steps, args.warmup)
        for mode, r in result.items():
            ratio = f"{r['ratio']:.2f}×" if r["ratio"] else "—"
            setup = f"+{r['setup_s']:.0f} s set-up" if r["setup_s"] is not None and mode != "off" else ""
            step = f"{r['step_s'] * 1e3:8.2f} ms/step {r['images_per_s']:9.0f} img/s"
            print(f"{name:14s} --compile {mode:8s} {step}  {ratio:>6s}  {setup}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
