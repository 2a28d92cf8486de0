"""Accuracy of the shipped models on real image files: the emoji drawings, and Fashion-MNIST test images as files.

`python bench/drawings_accuracy.py` runs `fmnist predict --format json` (the user's path: files →
`preprocess` → onnxruntime) for each model in `export/` over
- `tests/drawings/` (see its README): an in-class drawing is right when the top class is one of its accepted
  classes; a drawing labelled `none` (no class covers it) counts only for "unsure": the share of those flagged
  (`unsure` in predict's JSON) is printed beside the share of in-class drawings flagged;
- the first N Fashion-MNIST test images written as files three ways, to see that the file path does
  not cost the dataset's own images anything: `raw` (the 28×28 PNG itself), `photo` (negated back to a
  dark garment on white, enlarged 4× bicubic with a margin: the general background/crop/fit path) and
  `cutout` (the same, its background transparent: the alpha path). The tensor accuracy (the same
  images fed to the model directly) is the reference;
- with `--reframe N`, the first N test images re-framed as drawings are framed: each garment cropped,
  made 1.3× wider or narrower, shrunk to 3/4 of the box, or tilted 20°, then fitted as `preprocess`
  fits (longest side 28, box centred): how much of the model's accuracy rests on Fashion-MNIST's
  proportions and framing, which drawings do not keep.
Options: `--images N` (default 1000), `--reframe N` (default 0: off), `--models GLOB` (in `--export-dir DIR`,
default the project's `export/`: e.g. a folder of `fmnist export RUN --out DIR` files), `--failures`
(list the misread drawings), `--json FILE`, `--aspect-views 0.85,0.7` (also classify every drawing, test image
as a photo file and re-framed test image by the mean of the class probabilities over its usual input and the
same object made narrower by each factor before it is fitted: test-time augmentation over the aspect ratio).
Needs the real dataset for the test-image parts (skipped with a note without it).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DRAWINGS = ROOT / "tests" / "drawings"
SCALE, MARGIN = 4, 20


def predict(paths: list[Path], model: Path) -> dict[str, dict]:
    """`fmnist predict --format json` over `paths`: file name → its JSON object."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, "-m", "fmnist_tui", "predict", *map(str, paths), "--model", str(model), "--format", "json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if out.returncode not in (0, 1):
        raise SystemExit(out.stderr)
    return {Path(r["path"]).name: r for r in json.loads(out.stdout)}


def drawing_rows() -> list[dict[str, str]]:
    """tests/drawings/labels.csv: one row per drawing (file, accepted classes joined by |, source, style, ...)."""
    with open(DRAWINGS / "labels.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def dataset_or_none() -> Any:
    """The real Fashion-MNIST, or None where it is not found (the test-image parts are then skipped)."""
    from fmnist_tui.core.data import load_dataset
    from fmnist_tui.core.errors import DataError

    try:
        return load_dataset()
    except DataError:
        return None


NONE = "none"  # labels.csv: a drawing of none of the ten classes


def drawings_accuracy(model: Path) -> tuple[float, list[tuple[str, str, str]], dict[str, float], dict[str, Any]]:
    """(in-class accuracy, failures as (file, accepted, got), in-class accuracy per style, unsure figures) over
    tests/drawings/; the unsure figures are the shares flagged among the `none` and the in-class drawings (None
    for a model without an OOD threshold)."""
    rows = drawing_rows()
    got = predict([DRAWINGS / r["file"] for r in rows], model)
    in_class = [r for r in rows if r["accepted"] != NONE]
    right = {r["file"]: got[r["file"]]["label"] in r["accepted"].split("|") for r in in_class}
    failures = [(r["file"], r["accepted"], str(got[r["file"]]["label"])) for r in in_class if not right[r["file"]]]
    styles: dict[str, list[bool]] = {}
    for r in in_class:
        styles.setdefault(f"{r['source']} {r['style']}", []).append(right[r["file"]])

    def share_flagged(subset: list[dict[str, str]]) -> float | None:
        flags = [got[r["file"]].get("unsure") for r in subset]
        return None if not flags or None in flags else float(np.mean(flags))

    sure = [r for r in in_class if got[r["file"]].get("unsure") is False]
    unsure = {
        "none": len(rows) - len(in_class),
        "none_flagged": share_flagged([r for r in rows if r["accepted"] == NONE]),
        "in_class_flagged": share_flagged(in_class),
        "in_class_sure": len(sure),  # the in-class drawings it is sure of (not flagged), and its accuracy on them
        "accuracy_when_sure": float(np.mean([right[r["file"]] for r in sure])) if sure else None,
    }
    return float(np.mean(list(right.values()))), failures, {k: float(np.mean(v)) for k, v in styles.items()}, unsure


def as_photo(img28: np.ndarray, transparent: bool) -> Image.Image:
    """A test image back as a drawing: dark garment on white (or on transparency), 4× larger, with a margin."""
    side = 28 * SCALE + 2 * MARGIN
    garment = Image.fromarray(img28).resize((28 * SCALE, 28 * SCALE), Image.Resampling.BICUBIC)
    if transparent:
        out = Image.new("RGBA", (side, side), (0, 0, 0, 0))
        dark = Image.new("RGBA", garment.size, (40, 40, 60, 255))
        dark.putalpha(garment)  # opacity = the garment's brightness: the cut-out's soft edge
        out.paste(dark, (MARGIN, MARGIN))
        return out
    out = Image.new("L", (side, side), 255)
    out.paste(Image.fromarray(255 - np.asarray(garment)), (MARGIN, MARGIN))
    return out


def test_images_accuracy(models: list[Path], n: int) -> dict[str, dict[str, float]] | None:
    """Per model: accuracy on the first n test images as a tensor and through each kind of file."""
    from fmnist_tui.inference.session import OnnxClassifier

    data = dataset_or_none()
    if data is None:
        return None
    images, labels = data.test_images[:n], data.test_labels[:n]
    out: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        kinds = {"raw": [], "photo": [], "cutout": []}  # type: dict[str, list[Path]]
        for i, im in enumerate(images):
            for kind in kinds:
                path = Path(tmp) / kind / f"{i:05d}.png"
                path.parent.mkdir(exist_ok=True)
                (Image.fromarray(im) if kind == "raw" else as_photo(im, kind == "cutout")).save(path)
                kinds[kind].append(path)
        for model in models:
            probs = OnnxClassifier(model).predict_proba(images.astype(np.float32) / 255.0)
            result = {"tensor": float((probs.argmax(1) == labels).mean())}
            for kind, paths in kinds.items():
                got = predict(paths, model)
                result[kind] = float(np.mean([got[p.name]["index"] == y for p, y in zip(paths, labels, strict=True)]))
            out[model.name] = result
    return out


#: The re-framings of `--reframe`: name → (width factor, share of the box, degrees anticlockwise)
REFRAMES = {
    "as is": (1.0, 1.0, 0.0),
    "1.3x wider": (1.3, 1.0, 0.0),
    "1.3x narrower": (1 / 1.3, 1.0, 0.0),
    "3/4 of the box": (1.0, 0.75, 0.0),
    "tilted 20 deg": (1.0, 1.0, 20.0),
}


def _trim(x: np.ndarray, level: float = 0.0) -> np.ndarray:
    rows, cols = np.flatnonzero(x.max(1) > level), np.flatnonzero(x.max(0) > level)
    return x[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def reframe(img28: np.ndarray, widen: float, share: float, degrees: float) -> np.ndarray:
    """A test image's garment made `widen`× wider and turned, refitted to `share` of the 28-px box, centred."""
    img = Image.fromarray(_trim(img28.astype(np.float32) / 255), "F")
    img = img.resize((max(1, round(img.width * widen)), img.height), Image.Resampling.BILINEAR)
    if degrees:
        img = img.rotate(degrees, Image.Resampling.BILINEAR, expand=True)
    crop = _trim(np.clip(np.asarray(img, dtype=np.float32), 0, 1), 0.02)
    scale = round(28 * share) / max(crop.shape)
    size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
    crop = np.clip(np.asarray(Image.fromarray(crop, "F").resize(size, Image.Resampling.LANCZOS)), 0, 1)
    out = np.zeros((28, 28), np.float32)
    top, left = (28 - crop.shape[0] + 1) // 2, (28 - crop.shape[1] + 1) // 2
    out[top : top + crop.shape[0], left : left + crop.shape[1]] = crop
    return out


def reframed_accuracy(models: list[Path], n: int) -> dict[str, dict[str, float]] | None:
    """Per model: accuracy on the first n test images under each re-framing of REFRAMES."""
    from fmnist_tui.inference.session import OnnxClassifier

    data = dataset_or_none()
    if data is None:
        return None
    images, labels = data.test_images[:n], data.test_labels[:n]
    inputs = {name: np.stack([reframe(im, *how) for im in images]) for name, how in REFRAMES.items()}
    out = {}
    for model in models:
        clf = OnnxClassifier(model)
        out[model.name] = {k: float((clf.predict_proba(x).argmax(1) == labels).mean()) for k, x in inputs.items()}
    return out


def views(source: Path | bytes, factors: list[float]) -> np.ndarray:
    """[1 + len(factors), 28, 28]: the model's input as `preprocess` makes it, then the same object made
    narrower by each factor before it is fitted (an image already in Fashion-MNIST's format: itself each time)."""
    from fmnist_tui.inference.preprocess import fit, object_crop, open_image

    crop, to_fit = object_crop(open_image(source))
    if not to_fit:
        return np.stack([crop] * (1 + len(factors)))
    height, width = crop.shape
    narrower = [
        Image.fromarray(crop, "F").resize((max(1, round(width * f)), height), Image.Resampling.BOX) for f in factors
    ]
    return np.stack([fit(crop)] + [fit(np.clip(np.asarray(im, dtype=np.float32), 0, 1)) for im in narrower])


def aspect_views_accuracy(models: list[Path], factors: list[float], n: int, n_reframe: int) -> dict[str, dict]:
    """Per model: accuracy on the drawings, the first n test images as photo files and the first n_reframe
    re-framed (as photo files), classified as `preprocess` frames them and by the mean of the class
    probabilities over that view and its narrower ones (`views`): test-time augmentation over the aspect
    ratio, the class-blind way to meet drawn garments that are wider than Fashion-MNIST's."""
    from fmnist_tui.core.data import CLASSES
    from fmnist_tui.inference.session import OnnxClassifier

    rows = [r for r in drawing_rows() if r["accepted"] != NONE]
    sets: dict[str, tuple[np.ndarray, list[set[int]]]] = {
        "drawings": (
            np.stack([views(DRAWINGS / r["file"], factors) for r in rows]),
            [{CLASSES.index(c) for c in r["accepted"].split("|")} for r in rows],
        )
    }
    data = dataset_or_none()
    if data is not None:

        def as_file(img28: np.ndarray) -> bytes:
            buf = io.BytesIO()
            as_photo(img28, transparent=False).save(buf, "PNG")
            return buf.getvalue()

        images, labels = data.test_images, [{int(y)} for y in data.test_labels]
        sets["photo files"] = (np.stack([views(as_file(im), factors) for im in images[:n]]), labels[:n])
        for name, how in REFRAMES.items():
            framed = [(reframe(im, *how) * 255).astype(np.uint8) for im in images[:n_reframe]]
            sets[f"re-framed {name}"] = (np.stack([views(as_file(im), factors) for im in framed]), labels[:n_reframe])
    out: dict[str, dict] = {}
    for model in models:
        clf = OnnxClassifier(model)
        result: dict[str, tuple[float, float]] = {}
        for name, (x, accepted) in sets.items():
            probs = clf.predict_proba(x.reshape(-1, 28, 28)).reshape(len(x), x.shape[1], -1)
            as_is = [int(i) in ok for i, ok in zip(probs[:, 0].argmax(1), accepted, strict=True)]
            mean = [int(i) in ok for i, ok in zip(probs.mean(1).argmax(1), accepted, strict=True)]
            result[name] = (float(np.mean(as_is)), float(np.mean(mean)))
        out[model.name] = result
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--reframe", type=int, default=0)
    parser.add_argument("--models", default="*.onnx")
    parser.add_argument("--export-dir", type=Path, default=ROOT / "export")
    parser.add_argument("--failures", action="store_true")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--aspect-views", help="factors, e.g. 0.85,0.7: also classify by the mean over narrower views")
    args = parser.parse_args()
    models = sorted(args.export_dir.glob(args.models))
    if not models:
        raise SystemExit(f"no model matches {args.models} in {args.export_dir}")
    from fmnist_tui.core import machine

    report: dict[str, object] = {
        "machine": machine.cpu(),
        "commit": machine.commit(),
        "date": machine.now(),
        "drawings": {},
        "test_images": None,
    }
    for model in models:
        accuracy, failures, styles, unsure = drawings_accuracy(model)
        report["drawings"][model.name] = {  # type: ignore[index]
            "accuracy": accuracy,
            "styles": styles,
            "failures": failures,
            "unsure": unsure,
        }
        per_style = "  ".join(f"{k} {v:.0%}" for k, v in styles.items())
        flagged = (
            "no unsure flag (uncalibrated model)"
            if unsure["none_flagged"] is None
            else f"unsure: {unsure['none_flagged']:.0%} of the {unsure['none']} none-of-them flagged, "
            f"{unsure['in_class_flagged']:.0%} of the in-class; right on "
            f"{unsure['accuracy_when_sure'] or 0:.0%} of the {unsure['in_class_sure']} it is sure of"
        )
        print(f"{model.name:16s} in-class drawings {accuracy:6.1%} ({len(failures)} wrong)   {flagged}   {per_style}")
        if args.failures:
            for file, accepted, got in failures:
                print(f"    {file:42s} {accepted:20s} → {got}")
    if args.images:
        report["test_images"] = result = test_images_accuracy(models, args.images)
        if result is None:
            print("Fashion-MNIST not found: the test-image part is skipped")
        for name, accs in (result or {}).items():
            print(f"{name:16s} {args.images} test images: " + "  ".join(f"{k} {v:.2%}" for k, v in accs.items()))
    if args.reframe:
        report["reframed"] = reframed = reframed_accuracy(models, args.reframe)
        for name, accs in (reframed or {}).items():
            shown = "  ".join(f"{k} {v:.1%}" for k, v in accs.items())
            print(f"{name:16s} {args.reframe} test images re-framed: {shown}")
    if args.aspect_views:
        factors = [float(f) for f in args.aspect_views.split(",")]
        report["aspect_views"] = tta = aspect_views_accuracy(models, factors, args.images, args.reframe)
        for name, pairs in tta.items():
            shown = "  ".join(f"{k} {a:.1%} → {b:.1%}" for k, (a, b) in pairs.items())
            print(f"{name:16s} as preprocessed → mean over the views ×{', ×'.join(map(str, factors))} wide: {shown}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
