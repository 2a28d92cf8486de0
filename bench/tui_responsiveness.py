"""Benchmark: does the TUI stay responsive while it trains, and does it slow the training down?

Runs the same training twice: once with `fmnist train` (a subprocess), once started from the TUI's
Train form (the real app, headless, driven by Textual's pilot). While the TUI trains, it presses a
tab key every `--interval` seconds and measures how long until the switched tab has been rendered.
Reports the median/p90/max key latency and images/s of both runs (from each run's summary.json).

    python bench/tui_responsiveness.py --quick          # 8k images, 2 epochs, 1 thread: a smoke run
    python bench/tui_responsiveness.py                  # full training set, 1 epoch, torch's threads
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fmnist_tui.core.runs import Run  # noqa: E402 - after sys.path points at the repository


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small smoke settings: --subset 2048 --threads 1")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--subset", type=int, default=None, help="train on the first N images (default: all 50,000)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads for both runs (default: torch's)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--interval", type=float, default=1.0, help="seconds between key presses (a brisk user)")
    p.add_argument("--no-keys", action="store_true", help="press no keys (to see the TUI's cost on its own)")
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    args = p.parse_args()
    if args.quick:
        args.subset, args.threads, args.epochs = args.subset or 8192, args.threads or 1, max(args.epochs, 2)
    return args


def train_args(args: argparse.Namespace) -> list[str]:
    """The `fmnist train` options both runs share."""
    out = ["--arch", "cnn", "--kernel", "3", "--epochs", str(args.epochs), "--batch-size", str(args.batch_size)]
    for flag, value in (("--subset", args.subset), ("--threads", args.threads), ("--data-dir", args.data_dir)):
        if value is not None:
            out += [flag, str(value)]
    return out


def run_cli(args: argparse.Namespace, runs: Path) -> dict[str, Any]:
    """The CLI training; its summary.json."""
    cmd = [sys.executable, "-m", "fmnist_tui", "train", *train_args(args), "--out", str(runs), "--name", "cli"]
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return Run(runs / "cli").summary()


async def run_tui(args: argparse.Namespace, runs: Path) -> tuple[dict[str, Any], list[float]]:
    """The same training started from the TUI form; its summary.json and the key latencies (seconds)."""
    from textual.widgets import Input

    from fmnist_tui.tui import create_app
    from fmnist_tui.tui.train_screen import TrainPane

    app = create_app(runs=runs, export=runs / "no-export", images=runs, data_dir=args.data_dir)
    rendered: list[float] = []
    show_tab = app.action_show_tab

    def timed_show_tab(tab: str) -> None:  # the key's action; the time is taken once the new tab is drawn
        show_tab(tab)
        app.call_after_refresh(lambda: rendered.append(time.perf_counter()))

    app.action_show_tab = timed_show_tab  # type: ignore[method-assign]  # times the real action, then calls it
    latencies: list[float] = []
    async with app.run_test(size=(100, 30)) as pilot:
        pane = app.query_one(TrainPane)
        values = {
            "epochs": args.epochs,
            "batch": args.batch_size,
            "subset": args.subset,
            "threads": args.threads,
            "name": "tui",
        }
        for key, value in values.items():
            app.query_one(f"#{key}", Input).value = "" if value is None else str(value)
        app.set_focus(None)
        await pilot.press("s")
        while pane.started is None and pane.running:  # torch import and data loading: not measured
            await pilot.pause(0.05)
        key = "2"
        while pane.running:
            await pilot.pause(args.interval)
            if args.no_keys:
                continue
            before, t0 = len(rendered), time.perf_counter()
            await pilot.press(key)
            while len(rendered) == before:
                await asyncio.sleep(0.001)
            if pane.running:
                latencies.append(rendered[-1] - t0)
            key = "1" if key == "2" else "2"
        await pilot.press("q")
    return Run(runs / "tui").summary(), latencies


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="fmnist-tui-bench-") as tmp:
        cli = run_cli(args, Path(tmp))
        tui, latencies = asyncio.run(run_tui(args, Path(tmp)))
    if not latencies and not args.no_keys:
        sys.exit("the training ended before any key could be measured; use more --epochs or a larger --subset")
    ms = sorted(1000 * x for x in latencies) or [float("nan")]
    result = {
        "settings": {
            "epochs": args.epochs,
            "subset": args.subset,
            "threads": args.threads,
            "batch_size": args.batch_size,
            "interval_s": args.interval,
            "device": tui.get("device"),
        },
        "key_latency_ms": {
            "median": round(statistics.median(ms), 1),
            "p90": round(ms[math.ceil(0.9 * len(ms)) - 1], 1),
            "max": round(ms[-1], 1),
            "presses": len(latencies),
        },
        "images_per_s": {
            "cli": cli["images_per_s"],
            "tui": tui["images_per_s"],
            "tui_vs_cli": round(tui["images_per_s"] / cli["images_per_s"], 3),
        },
    }
    result["pass"] = {
        "latency_under_100ms": result["key_latency_ms"]["median"] < 100,
        "throughput_within_15pct": result["images_per_s"]["tui_vs_cli"] >= 0.85,
    }
    lat, ips = result["key_latency_ms"], result["images_per_s"]
    print(
        f"key latency while training: median {lat['median']} ms · p90 {lat['p90']} ms · max {lat['max']} ms "
        f"({lat['presses']} presses)"
    )
    print(f"images/s: CLI {ips['cli']:,.0f} · TUI {ips['tui']:,.0f} · TUI/CLI {ips['tui_vs_cli']:.3f}")
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
