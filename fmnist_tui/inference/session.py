"""Classify with an exported ONNX model through onnxruntime (numpy only, no torch)."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..core.data import CLASSES
from ..core.errors import FmnistError, ref

#: the default model of predict, serve and the TUI: the best shipped one (README, "The default model"): the
#: ResNet's modern recipe, seed 0, at least as good as cnn-k3-s0.onnx on the test set and on tests/drawings
DEFAULT_MODEL = "resnet-shift2-s0.onnx"
#: Where an installed package keeps the shipped models: a wheel carries the repository's export/ as
#: fmnist_tui/shipped/ (pyproject.toml's package-dir).
SHIPPED = "shipped"


def _shipped_models() -> Path:
    """The shipped models, whatever the working directory: inside the installed package, else the
    repository's export/ next to the package (a checkout, or an editable install of one)."""
    package = Path(__file__).resolve().parents[1]
    installed = package / SHIPPED
    return installed if installed.is_dir() else package.parent / "export"


#: The folder of the shipped models (the .onnx files and their manifest.json).
PACKAGE_EXPORT = _shipped_models()
#: metadata_props keys of a calibrated model (deploy/calibrate.py writes them) and its second output
CALIBRATION_KEY, OOD_KEY, OOD_OUTPUT = "calibration", "ood", "ood_score"


class ModelError(FmnistError):
    """A model file that is missing, not ONNX, or not a Fashion-MNIST classifier."""


class Classifier(Protocol):
    """What `predict`, `serve` and the TUI need of a model: OnnxClassifier, or a fake in tests. A classifier may
    also have `scores(batch)` (probabilities and OOD scores) and `ood_threshold` (see `predict_scores`)."""

    classes: list[str]
    metadata: dict[str, str]

    def predict_proba(self, batch: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class Scores:
    """One batch's class probabilities [N,10] and, where the model has them, OOD scores [N] and their threshold."""

    probs: np.ndarray
    ood: np.ndarray | None = None
    threshold: float | None = None

    def unsure(self) -> list[bool | None]:
        """Per image: above the threshold (less like Fashion-MNIST than it allows), or None without one."""
        if self.ood is None or self.threshold is None:
            return [None] * len(self.probs)
        return [bool(v > self.threshold) for v in self.ood.tolist()]


def predict_scores(clf: Classifier, batch: np.ndarray) -> Scores:
    """The classifier's Scores: its own `scores` where it has them, else its probabilities alone."""
    scores = getattr(clf, "scores", None)
    if callable(scores):
        result: Scores = scores(batch)
        return result
    return Scores(np.asarray(clf.predict_proba(batch)))


def default_model_path() -> Path:
    """$FMNIST_MODEL, else ./export/<DEFAULT_MODEL>, else the shipped one (PACKAGE_EXPORT)."""
    if os.environ.get("FMNIST_MODEL"):
        return Path(os.environ["FMNIST_MODEL"])
    for candidate in (Path("export") / DEFAULT_MODEL, PACKAGE_EXPORT / DEFAULT_MODEL):
        if candidate.is_file():
            return candidate
    return PACKAGE_EXPORT / DEFAULT_MODEL  # absent: OnnxClassifier says how to make it


def models_folder() -> Path:
    """The folder of models a view lists by default: ./export where it holds models, else the shipped ones."""
    return Path("export") if list_models(Path("export")) else PACKAGE_EXPORT


def list_models(folder: Path) -> list[Path]:
    """The .onnx files in `folder`, sorted by name (empty if the folder does not exist)."""
    folder = Path(folder)
    return sorted(p for p in folder.glob("*.onnx") if p.is_file()) if folder.is_dir() else []


def _check_signature(session: Any, path: Path) -> None:
    """One float input [N,1,28,28] (or [N,28,28]) and one output [N,10], as DESIGN.md's contract says."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or len(outputs) < 1:
        raise ModelError(
            f"{path}: expected one input and one output, found {len(inputs)} and {len(outputs)}; "
            "export the model with `fmnist export`"
        )
    shape = list(inputs[0].shape)
    if inputs[0].type != "tensor(float)" or shape[1:] not in ([1, 28, 28], [28, 28]):
        raise ModelError(
            f"{path}: input {inputs[0].name!r} is {inputs[0].type} {shape}, expected float "
            "[N,1,28,28]; this is not a Fashion-MNIST classifier (export one with `fmnist export`)"
        )
    out_shape = list(outputs[0].shape)
    if len(out_shape) != 2 or out_shape[1] != len(CLASSES):
        raise ModelError(f"{path}: output {outputs[0].name!r} has shape {out_shape}, expected [N,10]")


class OnnxClassifier:
    """An onnxruntime session over an exported model, with its metadata and class names."""

    def __init__(self, path: Path, threads: int | None = None, spin: bool = True) -> None:
        """`spin`: onnxruntime's threads busy-wait between calls (lowest latency for back-to-back calls);
        off where the calls interleave with other work on the same cores (`fmnist predict`'s pipeline)."""
        import onnxruntime as ort  # here, not at import: `fmnist --help` should not pay for it

        self.path = Path(path)
        if not self.path.is_file():
            raise ModelError(
                f"{self.path}: model file not found; choose another {ref('model')}, set $FMNIST_MODEL, "
                "or rebuild the shipped models with `make models`"
            )
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only: warnings would break the one-line-per-problem rule
        if threads:
            options.intra_op_num_threads = threads
        if not spin:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own Fail/InvalidProtobuf/... types
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{self.path}: not a valid ONNX model ({first})") from None
        _check_signature(self.session, self.path)
        self.input_name = self.session.get_inputs()[0].name
        self.input_rank = len(self.session.get_inputs()[0].shape)
        self.metadata: dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)
        #: what a user should know about how the file is read (None for a calibrated file from `fmnist export`)
        self.notice: str | None = None
        self.classes: list[str] = self._classes()
        #: the calibration entry (None: the probabilities are the raw softmax), the OOD threshold and output index
        self.calibration: dict[str, Any] | None = self._entry(CALIBRATION_KEY, ("temperature",))
        detector = self._entry(OOD_KEY, ("threshold",))
        self.ood_threshold: float | None = None if detector is None else float(detector["threshold"])
        self.ood_index: int | None = self._ood_index() if detector is not None else None
        if self.calibration is None or self.ood_threshold is None:
            self._note_uncalibrated()

    def _entry(self, key: str, numbers: tuple[str, ...]) -> dict[str, Any] | None:
        """A calibration or OOD metadata entry: absent → None; a JSON object whose `numbers` are finite (a
        temperature also positive) → it; anything else is refused (ModelError, one line)."""
        if key not in self.metadata:
            return None
        try:
            entry = json.loads(self.metadata[key])
        except (ValueError, RecursionError):
            entry = None
        bad = not isinstance(entry, dict) or any(
            isinstance(entry.get(n), bool)
            or not isinstance(entry.get(n), (int, float))
            or not math.isfinite(entry[n])
            or (n == "temperature" and entry[n] <= 0)
            for n in numbers
        )
        if bad:
            raise ModelError(
                f"{self.path}: metadata {key!r} is malformed (expected a JSON object with a finite "
                f"{' and '.join(numbers)}{', above 0' if 'temperature' in numbers else ''}); calibrate the "
                "model again with `fmnist export --calibrate FILE`"
            )
        assert isinstance(entry, dict)
        return entry

    def _ood_index(self) -> int:
        """Which output holds the OOD scores that metadata 'ood' describes (ModelError if there is none)."""
        names = [o.name for o in self.session.get_outputs()]
        if OOD_OUTPUT not in names:
            raise ModelError(
                f"{self.path}: metadata 'ood' describes an output {OOD_OUTPUT!r} the graph does not have; "
                "calibrate the model again with `fmnist export --calibrate FILE`"
            )
        return names.index(OOD_OUTPUT)

    def _note_uncalibrated(self) -> None:
        """Say, in the one notice, that the probabilities are uncalibrated and no unsure flag is available."""
        lacks = "uncalibrated" if self.calibration is None else "calibrated"
        what = (
            f"its probabilities are {lacks} and no unsure flag is available (no OOD threshold)"
            if self.ood_threshold is None
            else "its probabilities are uncalibrated"
        )
        fix = f"calibrate it with `fmnist export --calibrate {self.path}`"
        self.notice = f"{self.notice}; {what}; {fix}" if self.notice else f"{self.path}: {what}; {fix}"

    def _classes(self) -> list[str]:
        """Class names from the file's metadata. A file without them (exported by another tool, with
        the right input and output) is read as a Fashion-MNIST classifier, and `notice` says so."""
        if "classes" not in self.metadata:
            self.notice = (
                f"{self.path} has no fmnist metadata (no class names): its {len(CLASSES)} outputs are read "
                f"as Fashion-MNIST's classes in index order ({', '.join(CLASSES)})"
            )
            return list(CLASSES)
        try:
            names = json.loads(self.metadata["classes"])
        except (ValueError, RecursionError):  # not JSON, or nested past the parser's depth
            names = None
        if not isinstance(names, list) or len(names) != len(CLASSES):
            raise ModelError(
                f"{self.path}: metadata 'classes' is not a JSON list of {len(CLASSES)} names; "
                "export the model again with `fmnist export`"
            )
        return [str(n) for n in names]

    def _run(self, batch: np.ndarray) -> list[np.ndarray]:
        """The graph's outputs for float32 images [N,1,28,28] or [N,28,28] in [0,1]; a model whose logits or
        scores are not finite (NaN, ±inf) is refused (ModelError): its answers would mean nothing."""
        x = np.asarray(batch, dtype=np.float32)
        if x.ndim == 3:
            x = x[:, None]
        if x.ndim != 4 or x.shape[1:] != (1, 28, 28):
            raise ModelError(f"input batch has shape {list(x.shape)}, expected [N,1,28,28] or [N,28,28]")
        if self.input_rank == 3:
            x = x[:, 0]
        outputs: list[np.ndarray] = self.session.run(None, {self.input_name: np.ascontiguousarray(x)})
        wanted = [outputs[0]] + ([outputs[self.ood_index]] if self.ood_index is not None else [])
        if not all(np.isfinite(o).all() for o in wanted):
            raise ModelError(
                f"{self.path}: the model's outputs are not finite numbers (NaN or infinity); the file is broken, "
                "export it again"
            )
        return outputs

    def logits(self, batch: np.ndarray) -> np.ndarray:
        """The graph's logits [N,10] (calibrated in a calibrated file) for images [N,1,28,28] or [N,28,28]."""
        logits: np.ndarray = self._run(batch)[0]
        return logits

    def scores(self, batch: np.ndarray) -> Scores:
        """Class probabilities [N,10] and, in a model that has them, OOD scores [N] with their threshold."""
        outputs = self._run(batch)
        ood = None if self.ood_index is None else np.asarray(outputs[self.ood_index], dtype=np.float32).reshape(-1)
        return Scores(_softmax(outputs[0]), ood, self.ood_threshold)

    def predict_proba(self, batch: np.ndarray) -> np.ndarray:
        """Class probabilities [N,10] (softmax of the logits)."""
        return _softmax(self.logits(batch))


def _softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64, returned as float32."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    probs: np.ndarray = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
    return probs
