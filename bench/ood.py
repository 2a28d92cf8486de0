"""Out-of-distribution scores of the exported models: AUROC per method and the share flagged at the stored threshold.

`python bench/ood.py [--export-dir DIR] [--models GLOB] [--json bench/results/ood.json]` reads, for each
model, its raw logits, penultimate features and stored `ood_score` on
- Fashion-MNIST's validation split (each method's threshold: the share VAL_PASS passes) and test set (the
  in-distribution side of every AUROC, and the share wrongly flagged);
- tests/ood/ (animals, food, vehicles, objects from the emoji sets; scikit-image's photographs; scikit-learn's
  digits), through `preprocess` as `fmnist predict` reads files: a file preprocess refuses ("no object
  found") is counted apart, as refused, and left out of the AUROC;
- tests/drawings/: the drawings labelled `none` (garments of no class: each should be flagged) and the others;
- a blank 28×28 image.
Methods: `msp`, `max_logit`, `energy`, `mahalanobis` (shared covariance) and `gaussian` (a covariance per
class; inference/ood.py), the feature-based two refitted here the way the export fits them, beside `stored`
(the graph's own `ood_score` against its metadata threshold). Needs the real dataset.
The JSON records the machine and the commit, so docs can be generated from it.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fmnist_tui.core import machine  # noqa: E402 - after sys.path points at the repository
from fmnist_tui.core.data import CLASSES, load_dataset, nested_order  # noqa: E402
from fmnist_tui.deploy.calibrate import GAUSSIAN_IMAGES, raw_outputs  # noqa: E402
from fmnist_tui.inference import ood  # noqa: E402
from fmnist_tui.inference.preprocess import ImageError, preprocess  # noqa: E402
from fmnist_tui.inference.session import OnnxClassifier  # noqa: E402

OOD_DIR, DRAWINGS = ROOT / "tests" / "ood", ROOT / "tests" / "drawings"


def read_folder(folder: Path) -> tuple[list[dict[str, str]], np.ndarray, list[str]]:
    """labels.csv's rows whose file preprocess reads, their inputs [N,28,28], and the files it refused."""
    with open(folder / "labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    kept, inputs, refused = [], [], []
    for row in rows:
        try:
            inputs.append(preprocess(folder / row["file"]))
            kept.append(row)
        except ImageError:
            refused.append(row["file"])
    return kept, np.stack(inputs), refused


def method_scores(model: Any, sets: dict[str, np.ndarray], train: tuple[np.ndarray, np.ndarray]) -> dict[str, dict]:
    """method → set name → scores [N], for every method on every set."""
    import onnx

    proto = onnx.load(str(model))
    outputs = {name: raw_outputs(proto, x) for name, x in sets.items()}
    _, train_features = raw_outputs(proto, train[0])
    scores: dict[str, dict[str, np.ndarray]] = {}
    clf = OnnxClassifier(model)
    for method in ("msp", "max_logit", "energy"):
        # msp reads the graph's own (calibrated) probabilities; the others the raw logits
        scores[method] = {
            name: 1.0 - clf.predict_proba(sets[name]).max(axis=1)
            if method == "msp"
            else ood.logit_score(method, logits)
            for name, (logits, _) in outputs.items()
        }
    if train_features is not None:
        for method, shared in (("mahalanobis", True), ("gaussian", False)):
            gaussians = ood.fit_gaussians(train_features, train[1], len(CLASSES), shared=shared)
            scores[method] = {name: gaussians.score(f) for name, (_, f) in outputs.items()}
    if clf.ood_threshold is not None:
        scores["stored"] = {name: clf.scores(x).ood for name, x in sets.items()}  # type: ignore[misc]
    return scores


def flagged(scores: dict[str, np.ndarray], threshold: float, groups: dict[str, np.ndarray]) -> dict[str, float]:
    """The share of each group (a boolean mask over the OOD set) above the threshold."""
    return {name: float(np.mean(scores["ood"][mask] > threshold)) for name, mask in groups.items() if mask.any()}


def evaluate(model: Path, sets: dict[str, np.ndarray], train: tuple, groups: dict, refused: int) -> dict[str, Any]:
    """Per method: AUROC (test vs tests/ood), its threshold, and the shares flagged."""
    clf = OnnxClassifier(model)
    out: dict[str, Any] = {}
    for method, s in method_scores(model, sets, train).items():
        th = (
            float(clf.ood_threshold)
            if method == "stored" and clf.ood_threshold is not None
            else ood.threshold(s["val"])
        )
        n_ood = len(s["ood"]) + refused
        out[method] = {
            "auroc": ood.auroc(s["test"], s["ood"]),
            "threshold": th,
            "test_flagged": float(np.mean(s["test"] > th)),
            "ood_flagged": float(np.mean(s["ood"] > th)),
            "ood_flagged_or_refused": float((np.sum(s["ood"] > th) + refused) / n_ood),
            "by_source": flagged(s, th, groups),
            "drawings_none_flagged": float(np.mean(s["none"] > th)),
            "drawings_in_class_flagged": float(np.mean(s["in_class"] > th)),
            "blank_flagged": bool(s["blank"][0] > th),
        }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export-dir", type=Path, default=ROOT / "export")
    parser.add_argument("--models", default="*.onnx")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    models = sorted(args.export_dir.glob(args.models))
    if not models:
        raise SystemExit(f"no model matches {args.models} in {args.export_dir}")
    ds = load_dataset()
    pick = nested_order(ds.train_labels)[:GAUSSIAN_IMAGES]
    ood_rows, ood_x, refused = read_folder(OOD_DIR)
    drawing_rows, drawing_x, _ = read_folder(DRAWINGS)
    none = np.array([r["accepted"] == "none" for r in drawing_rows])
    sets = {
        "val": ds.val_images.astype(np.float32) / 255,
        "test": ds.test_images.astype(np.float32) / 255,
        "ood": ood_x,
        "none": drawing_x[none],
        "in_class": drawing_x[~none],
        "blank": np.zeros((1, 28, 28), np.float32),
    }
    sources = np.array([f"{r['source']} {r['kind']}" for r in ood_rows])
    groups = {name: sources == name for name in sorted(set(sources))}
    report: dict[str, Any] = {
        "machine": machine.cpu(),
        "commit": machine.commit(),
        "date": machine.now(),
        "val_pass": ood.VAL_PASS,
        "ood_images": len(ood_rows) + len(refused),
        "ood_refused_by_preprocess": refused,
        "drawings_none": int(none.sum()),
        "drawings_in_class": int((~none).sum()),
        "models": {},
    }
    for model in models:
        result = evaluate(
            model, sets, (ds.train_images[pick].astype(np.float32) / 255, ds.train_labels[pick]), groups, len(refused)
        )
        report["models"][model.name] = result
        for method, r in result.items():
            print(
                f"{model.name:24s} {method:12s} AUROC {r['auroc']:.4f}  flagged: tests/ood {r['ood_flagged']:6.1%} "
                f"(with the {len(refused)} refused {r['ood_flagged_or_refused']:6.1%})  test {r['test_flagged']:5.2%}  "
                f"drawings none {r['drawings_none_flagged']:5.1%} in-class {r['drawings_in_class_flagged']:5.1%}  "
                f"blank {'yes' if r['blank_flagged'] else 'no'}"
            )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
