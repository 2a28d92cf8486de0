"""Calibration of the exported models on the test set: accuracy, confidence, ECE, NLL and Brier score before and after.

`python bench/calibration.py [--export-dir DIR] [--json bench/results/calibration.json]` measures every
calibrated model in the folder (fmnist_tui/study/reliability.py, the same measures as `fmnist report`'s
calibration section): before = softmax of the raw logits, temperature only = the calibrator's first step,
after = the graph's own probabilities. Needs the real dataset. The JSON records the machine and the commit.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fmnist_tui.core import machine  # noqa: E402 - after sys.path points at the repository
from fmnist_tui.core.data import load_dataset  # noqa: E402
from fmnist_tui.study.reliability import measure_models  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export-dir", type=Path, default=ROOT / "export")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    measured = measure_models(args.export_dir, load_dataset())
    if not measured:
        raise SystemExit(f"no calibrated model in {args.export_dir}")
    for name, m in measured.items():
        b, t, a = m["before"], m["temperature_only"], m["after"]
        print(
            f"{name:24s} T {m['temperature']:.3f}  accuracy {a['accuracy']:.2%} "
            f"(unchanged: {m['accuracy_unchanged']})  "
            f"confidence {b['confidence']:.1%} → {a['confidence']:.1%}  ECE {b['ece']:.2%} → {t['ece']:.2%} (T only) → "
            f"{a['ece']:.2%}  NLL {b['nll']:.3f} → {a['nll']:.3f}  Brier {b['brier']:.4f} → {a['brier']:.4f}"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        report = {"machine": machine.cpu(), "commit": machine.commit(), "date": machine.now(), "models": measured}
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
