"""Backfill per-image predictions (`predictions.json`) for finished runs that still have their weights (torch loads
on first use): `python -m fmnist_tui.study.backfill RUNS_DIR [RUN ...] [--data-dir DIR]`.

Each run's best weights are evaluated on the test set in full fp32, as the trainer evaluates them; the file is
written only where that evaluation gives the run's own summary.json accuracy to the image (a run whose test-time
augmentation or numerics would make it another evaluation is named and left alone), so the predictions are the
summary's. A run that already has a current file, or no weights (the shipped record on a fresh clone), is skipped.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ..core import predictions
from ..core.runs import BEST, Run, list_runs


def backfill(runs: Sequence[Run], data_dir: Path | None = None) -> list[str]:
    """Write predictions.json for each of `runs` that lacks a current one; a line per run (written or why not)."""
    import numpy as np
    import torch

    from ..core.data import load_dataset
    from ..training.checkpoints import model_from_run
    from ..training.evaluate import predict_logits, strict_fp32

    ds = load_dataset(data_dir)
    images = torch.from_numpy(np.ascontiguousarray(ds.test_images))
    said = []
    for run in runs:
        if predictions.read(run) is not None:
            said.append(f"{run.name}: already has {predictions.FILE}")
            continue
        if not run.file(BEST).is_file() or not run.finished:
            said.append(f"{run.name}: skipped (no best weights, or not finished)")
            continue
        with strict_fp32():
            predicted = predict_logits(model_from_run(run, "best"), images).argmax(1).numpy()
        accuracy = float((predicted == ds.test_labels).mean())
        stored = float(run.summary()["test_accuracy"])
        if round(accuracy * len(predicted)) != round(stored * len(predicted)):
            said.append(f"{run.name}: skipped (this evaluation gives {accuracy:.4f}, its summary {stored:.4f})")
            continue
        predictions.write(run.path, predicted, ds.test_labels)
        said.append(f"{run.name}: wrote {predictions.FILE} (test accuracy {accuracy:.4f}, as its summary)")
    return said


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fmnist_tui.study.backfill", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", type=Path, help="the folder of run folders (results/runs, checkpoints)")
    parser.add_argument("names", nargs="*", help="only these runs (default: every run in the folder)")
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    found = [r for r in list_runs(args.runs) if not args.names or r.name in args.names]
    for line in backfill(found, args.data_dir):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
