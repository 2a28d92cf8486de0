"""Calibration of the exported models on the test set: ECE, NLL and Brier score before and after, and the report's
reliability diagram (`fmnist report`'s calibration section; bench/calibration.py prints the same measures).

Before = the softmax of the raw logits; temperature only = the calibrator's first step; after = the
probabilities the calibrated graph itself outputs. The test set only measures: every fit used the
validation split (deploy/calibrate.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.data import Dataset
from ..core.errors import RunError
from ..inference import calibration as cal
from ..inference.session import CALIBRATION_KEY, OnnxClassifier, list_models

if TYPE_CHECKING:
    from .sections import Section

TITLE = "Calibration: do the probabilities mean what they say?"


def measure_model(path: Path, ds: Dataset) -> dict[str, Any] | None:
    """Test-set measures of one calibrated model: before / temperature only / after, and the reliability tables;
    None for a model without calibration."""
    import onnx

    from ..deploy.calibrate import raw_outputs

    clf = OnnxClassifier(path)
    if clf.calibration is None:
        return None
    entry = json.loads(clf.metadata[CALIBRATION_KEY])
    raw, _ = raw_outputs(onnx.load(str(path)), ds.test_images)
    after = clf.predict_proba(ds.test_images.astype(np.float32) / 255)
    tempered = cal.softmax(raw / float(entry["temperature"]))
    labels = ds.test_labels
    return {
        "temperature": float(entry["temperature"]),
        "method": entry.get("method"),
        "images": len(labels),
        "accuracy_unchanged": bool(np.array_equal(after.argmax(1), raw.argmax(1))),
        **{
            name: {**cal.measure(p, labels).to_dict(), "reliability": cal.reliability(p, labels).__dict__}
            for name, p in (("before", cal.softmax(raw)), ("temperature_only", tempered), ("after", after))
        },
    }


def measure_models(folder: Path, ds: Dataset) -> dict[str, dict[str, Any]]:
    """measure_model for every calibrated .onnx file in `folder`, by file name."""
    out = {p.name: measure_model(p, ds) for p in list_models(folder)}
    return {name: m for name, m in out.items() if m is not None}


def reliability_figure(measured: dict[str, dict[str, Any]], png: Path) -> Path:
    """One panel per model: accuracy against confidence per bin, before and after, with the diagonal."""
    from .figures import plt, save

    fig, axes = plt.subplots(1, len(measured), figsize=(3.2 * len(measured), 3.4), squeeze=False)
    for ax, (name, m) in zip(axes[0], measured.items(), strict=True):
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":")
        for key, colour in (("before", "tab:red"), ("after", "tab:blue")):
            r = m[key]["reliability"]
            conf, acc = np.array(r["confidence"]), np.array(r["accuracy"])
            shown = np.array(r["counts"]) > 0
            ax.plot(conf[shown], acc[shown], "o-", ms=3, color=colour, label=f"{key}: ECE {100 * m[key]['ece']:.1f}%")
        ax.set_title(name.removesuffix(".onnx"), fontsize=9)
        ax.set_xlabel("confidence (top-1 probability)")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.legend(fontsize=7, loc="upper left")
    axes[0][0].set_ylabel("accuracy in the bin")
    fig.suptitle("Reliability on the test set (15 equal-width bins)")
    return save(fig, png)


def section(folder: Path, ds: Dataset, png: Path) -> Section:
    """The report's calibration section: the figure and one line per model with the measures before and after."""
    from .sections import Section  # here: measuring needs none of the study package (bench/calibration.py)

    measured = measure_models(folder, ds)
    if not measured:
        raise RunError(f"no calibrated model in {folder}; calibrate one with `fmnist export --calibrate FILE`")
    reliability_figure(measured, png)
    lines = [
        f"- {name}: test accuracy {100 * m['after']['accuracy']:.2f}% (unchanged by calibration: "
        f"{'yes' if m['accuracy_unchanged'] else 'NO'}), mean confidence {100 * m['before']['confidence']:.1f}% → "
        f"{100 * m['after']['confidence']:.1f}%; ECE {100 * m['before']['ece']:.2f}% → {100 * m['after']['ece']:.2f}% "
        f"(temperature T = {m['temperature']:.3f} alone: {100 * m['temperature_only']['ece']:.2f}%), NLL "
        f"{m['before']['nll']:.3f} → {m['after']['nll']:.3f}, "
        f"Brier {m['before']['brier']:.4f} → {m['after']['brier']:.4f}"
        for name, m in measured.items()
    ]
    text = (
        "Each model's probabilities before calibration (softmax of its raw logits) and after (what its ONNX "
        "graph outputs: a temperature, then a top-label isotonic map, both fitted on the validation split), on the "
        f"{next(iter(measured.values()))['images']:,} test images:\n" + "\n".join(lines)
    )
    return Section(TITLE, png, text, measured)
