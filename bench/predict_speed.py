"""Inference speed: onnxruntime vs PyTorch eager per shipped model, and `fmnist predict` end to end.

Prints, in one run: onnxruntime latency at batch 1 (median, p99) and throughput at batch 256 for each
model in --models (export/), PyTorch eager on the same inputs (from the run in --runs of the same
name), and `fmnist predict` over a folder of PNGs (process start included) against a naive script
that loads the PyTorch checkpoint and classifies the files one by one; then each figure against the
issue's target. `--quick` runs fewer repetitions and 200 files (a smoke test; use the full run for
figures):

    python bench/predict_speed.py                      # full: 1,000 PNGs, 2,000 single-image calls
    python bench/predict_speed.py --quick --models /tmp/export --runs /tmp/runs
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fmnist_tui.inference.session import DEFAULT_MODEL, OnnxClassifier, list_models  # noqa: E402 - after sys.path points at the repository

NAIVE_SCRIPT = """
import sys, numpy as np, torch
from pathlib import Path
from PIL import Image
from fmnist_tui.training.checkpoints import model_from_run
from fmnist_tui.core.data import CLASSES
from fmnist_tui.core.runs import Run
torch.set_num_threads({threads})
model = model_from_run(Run(Path(sys.argv[1])))
for path in sorted(Path(sys.argv[2]).glob("*.png")):
    img = Image.open(path).convert("L").resize((28, 28))
    x = torch.from_numpy(np.asarray(img, dtype=np.float32)).reshape(1, 1, 28, 28) / 255
    with torch.no_grad():
        print(path, CLASSES[int(model(x).argmax())])
"""


def test_images(n: int) -> np.ndarray:
    """n real test images as uint8 [n,28,28] (random ones if the dataset is not installed)."""
    try:
        from fmnist_tui.core.data import load_dataset

        return load_dataset().test_images[:n]
    except Exception as exc:  # noqa: BLE001 - the benchmark still runs on random inputs, and says so
        print(f"(dataset unavailable: {exc}; using random images)")
        return np.random.default_rng(0).integers(0, 256, (n, 28, 28), dtype=np.uint8)


def latency_us(fn, x: np.ndarray, calls: int) -> tuple[float, float]:
    """Median and p99 of single-image calls, in µs."""
    for i in range(min(50, calls)):
        fn(x[i % len(x)][None])
    times = []
    for i in range(calls):
        one = x[i % len(x)][None]
        t0 = time.perf_counter_ns()
        fn(one)
        times.append((time.perf_counter_ns() - t0) / 1e3)
    return statistics.median(times), float(np.percentile(times, 99))


def throughput(fn, x: np.ndarray, batch: int, repeats: int) -> float:
    """Images per second at `batch` (best of `repeats` passes over x)."""
    fn(x[:batch])
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for i in range(0, len(x) - batch + 1, batch):
            fn(x[i : i + batch])
        best = min(best, time.perf_counter() - t0)
    return (len(x) // batch) * batch / best


def bench_model(path: Path, runs: Path, x: np.ndarray, threads: int, calls: int, repeats: int) -> dict:
    clf = OnnxClassifier(path, threads=threads)
    row = {"model": path.stem}
    row["ort_b1_median_us"], row["ort_b1_p99_us"] = latency_us(clf.logits, x, calls)
    row["ort_b256_img_s"] = throughput(clf.logits, x, 256, repeats)
    run = runs / path.stem
    if not (run / "best.safetensors").is_file():
        print(f"({path.stem}: no run at {run}; PyTorch eager skipped)")
        return row
    import torch

    from fmnist_tui.core.runs import Run
    from fmnist_tui.training.checkpoints import model_from_run

    torch.set_num_threads(threads)
    model = model_from_run(Run(run))
    ref = torch.from_numpy(x[:1000])
    with torch.inference_mode():
        row["parity_max_abs_logit_diff"] = float((model(ref) - torch.from_numpy(clf.logits(x[:1000]))).abs().max())

        def eager(batch: np.ndarray) -> object:
            return model(torch.from_numpy(batch))

        row["torch_b1_median_us"], row["torch_b1_p99_us"] = latency_us(eager, x, calls)
        row["torch_b256_img_s"] = throughput(eager, x, 256, repeats)
    row["ort_over_torch_b256"] = row["ort_b256_img_s"] / row["torch_b256_img_s"]
    return row


def wall(cmd: list[str], repeats: int, env: dict[str, str]) -> float:
    """Median wall time of a whole process, start included."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_end_to_end(model: Path, run: Path, images: np.ndarray, threads: int, repeats: int) -> dict:
    from PIL import Image

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "pngs"
        folder.mkdir()
        for i, im in enumerate(images):
            Image.fromarray(im).save(folder / f"{i:04d}.png")
        naive = Path(tmp) / "naive.py"
        naive.write_text(NAIVE_SCRIPT.format(threads=threads))
        predict = [
            sys.executable,
            "-m",
            "fmnist_tui",
            "predict",
            "--model",
            str(model),
            "--threads",
            str(threads),
            "--format",
            "csv",
        ]
        out = {"files": len(images)}
        out["predict_folder_s"] = wall([*predict, str(folder)], repeats, env)
        out["predict_one_s"] = wall([*predict, str(folder / "0000.png")], max(repeats, 5), env)
        if (run / "best.safetensors").is_file():
            out["naive_folder_s"] = wall([sys.executable, str(naive), str(run), str(folder)], repeats, env)
            out["speedup_vs_naive"] = out["naive_folder_s"] / out["predict_folder_s"]
    return out


def report(rows: list[dict], e2es: list[dict]) -> None:
    print(
        f"\n{'model':<12}{'ORT b1 median':>15}{'ORT b1 p99':>12}{'ORT b256':>13}{'torch b1 med':>14}"
        f"{'torch b256':>13}{'ORT/torch':>11}{'parity':>10}"
    )
    for r in rows:
        print(
            f"{r['model']:<12}{r['ort_b1_median_us']:>12.1f} µs{r['ort_b1_p99_us']:>9.1f} µs"
            f"{r['ort_b256_img_s']:>9,.0f} i/s{r.get('torch_b1_median_us', float('nan')):>11.1f} µs"
            f"{r.get('torch_b256_img_s', float('nan')):>9,.0f} i/s{r.get('ort_over_torch_b256', float('nan')):>10.1f}×"
            f"{r.get('parity_max_abs_logit_diff', float('nan')):>10.1e}"
        )
    for e2e in e2es:
        print(
            f"\n{e2e['model']}: fmnist predict over {e2e['files']:,} PNGs (process start included): "
            f"{e2e['predict_folder_s']:.2f} s; naive PyTorch script: {e2e.get('naive_folder_s', float('nan')):.2f} s "
            f"→ {e2e.get('speedup_vs_naive', float('nan')):.1f}× faster"
        )
        print(f"{e2e['model']}: fmnist predict one.png: {e2e['predict_one_s']:.3f} s wall")
    print("\ntargets:")
    for r in rows:
        ratio = r.get("ort_over_torch_b256")
        if ratio is not None:
            print(f"  {r['model']}: ORT ≥ 5× PyTorch eager at batch 256: {ratio:.1f}× {'✓' if ratio >= 5 else '✗'}")
        print(
            f"  {r['model']}: batch-1 median ≤ 50 µs: {r['ort_b1_median_us']:.1f} µs "
            f"{'✓' if r['ort_b1_median_us'] <= 50 else '✗'}"
        )
    for e2e in e2es:
        if "speedup_vs_naive" in e2e:
            print(
                f"  {e2e['model']}: predict folder ≥ 5× faster than the naive script: {e2e['speedup_vs_naive']:.1f}× "
                f"{'✓' if e2e['speedup_vs_naive'] >= 5 else '✗'}"
            )
        one = e2e["predict_one_s"]
        print(f"  {e2e['model']}: predict one.png < 0.5 s: {one:.3f} s {'✓' if one < 0.5 else '✗'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=Path, default=ROOT / "export", help="folder of .onnx files (default export/)")
    ap.add_argument("--runs", type=Path, default=ROOT / "checkpoints", help="run folders for PyTorch eager")
    ap.add_argument("--threads", type=int, default=2, help="threads for onnxruntime and torch (default 2)")
    ap.add_argument("--quick", action="store_true", help="fewer repetitions and 200 files: a smoke test")
    ap.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = ap.parse_args()
    models = list_models(args.models)
    if not models:
        sys.exit(f"no .onnx files in {args.models}: build them with `make models` (or pass --models DIR)")
    calls, repeats, files, e2e_repeats = (300, 2, 200, 1) if args.quick else (2000, 5, 1000, 3)
    x = test_images(max(files, 2560 if not args.quick else 1024)).astype(np.float32)[:, None] / 255.0
    print(
        f"{len(models)} model(s) from {args.models}; {args.threads} thread(s); "
        f"{'quick' if args.quick else 'full'} mode; python {sys.version.split()[0]}, {os.cpu_count()} CPUs"
    )
    rows = [bench_model(m, args.runs, x, args.threads, calls, repeats) for m in models]
    # end to end: the default model of `fmnist predict`, and cnn-k3 (the default before it), where present
    ends = [m for m in models if m.name in (DEFAULT_MODEL, "cnn-k3-s0.onnx")] or models[:1]
    pngs = (x[:files, 0] * 255).round().astype(np.uint8)
    e2es = [{"model": m.stem, **bench_end_to_end(m, args.runs / m.stem, pngs, args.threads, e2e_repeats)} for m in ends]
    report(rows, e2es)
    if args.json:
        args.json.write_text(json.dumps({"models": rows, "end_to_end": e2es}, indent=2) + "\n")


if __name__ == "__main__":
    main()
