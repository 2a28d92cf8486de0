"""Export a run to ONNX as a pipeline: validate, build metadata, export, check, compare, calibrate, then publish.

A file only appears at export/<run>.onnx after every check passed: the graph is written to a
temporary file beside it, checked and compared there, and renamed into place at the end.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import __version__
from ..core import registry
from ..core.data import CLASSES, Dataset, dataset_fingerprint, load_dataset
from ..core.errors import FmnistError, Interrupted, ref
from ..core.fsutil import atomic_path, check_writable, sha256_file, write_bytes, write_json
from ..core.runs import Run
from ..inference.session import ModelError, OnnxClassifier
from ..training.checkpoints import model_from_run, permute_seed

#: The dynamo exporter's own opset in torch 2.14 (no version conversion); onnxruntime ≥ 1.17 runs it.
OPSET = 20
PARITY_MIN_IMAGES = 1000
PARITY_ATOL = 1e-4
#: A run evaluated on a GPU may differ from the CPU by this many test images (see `verify`).
CROSS_DEVICE_IMAGES = 5
MANIFEST = "manifest.json"
#: 2: each entry gained `calibration` and `ood` (deploy/calibrate.summary), the manifest this field
MANIFEST_SCHEMA = 2
INPUT_POLARITY = "light-on-dark"


class ExportError(FmnistError):
    """The export or one of its checks failed; no file was left behind."""


def _first_line(exc: BaseException) -> str:
    """The first line of an exporter's message, without its terminal colour codes."""
    return _ANSI.sub("", str(exc)).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass(frozen=True)
class ExportReport:
    """What `export_run` did and measured."""

    run: str
    path: str
    sha256: str
    bytes: int
    opset: int
    parity_images: int
    max_abs_diff: float
    top1_agreement: float
    test_images: int
    onnx_accuracy: float
    torch_accuracy: float
    summary_accuracy: float
    summary_device: str
    seconds: float
    #: the calibration and OOD figures of deploy/calibrate.summary (validation fit, test measures)
    calibration: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_metadata(run: Run) -> dict[str, str]:
    """The ONNX metadata_props of shared/DESIGN.md, from the run's config and summary; each option of the
    architecture under its own name (`depth`, `pool`, `hidden` as `256,128`), `kernel` "none" without one."""
    cfg, summary = run.config(), run.summary()
    hashes = cfg.get("dataset_sha256") or {}
    spec, options = registry.REGISTRY.get(str(cfg["arch"])), registry.resolved_options(str(cfg["arch"]), cfg)
    tta = bool(cfg.get("tta"))  # baked into the graph (model_from_run wraps the model): nothing to apply at inference
    return {
        "classes": json.dumps(list(CLASSES)),
        "arch": str(cfg["arch"]),
        "kernel": str(cfg.get("kernel") or "none"),
        **{name: spec.text(name, value) for name, value in options.items() if spec and name != "kernel"},
        "params": str(summary.get("params", cfg.get("params"))),
        "test_accuracy": f"{summary['test_accuracy']:.6f}",
        "run": run.name,
        "fmnist_version": __version__,
        "dataset_sha256": dataset_fingerprint(hashes) if hashes else "unknown",
        "input_polarity": INPUT_POLARITY,
        **_data_metadata(cfg),
        "input": "input float32 [N,1,28,28] in [0,1], batch axis dynamic"
        + (" (natural images: the run's pixel permutation is the graph's first step)" if cfg.get("permute") else ""),
        "output": "logits float32 [N,10]"
        + (" (flip test-time augmentation in the graph: the mean of the image's and its mirror's)" if tta else ""),
        "tta": "flip" if tta else "none",
        "opset": str(OPSET),
        "exporter": f"torch.onnx.export(dynamo=True), torch {torch.__version__.split('+')[0]}",
    }


def _data_metadata(cfg: dict[str, Any]) -> dict[str, str]:
    """The run's data settings that are on (`permute_seed`, `train_size`), as metadata_props."""
    out = {"permute_seed": str(permute_seed(cfg))} if cfg.get("permute") else {}
    if cfg.get("train_size"):
        out["train_size"] = str(cfg["train_size"])
    return out


def validate_run(run: Run, dataset: Dataset) -> dict[str, Any]:
    """A finished run with a test accuracy, trained on this very dataset; returns its summary."""
    if not run.finished:
        raise ExportError(
            f"run {run.name!r} has not finished (no finished summary.json); "
            f"finish it with `fmnist train --resume --name {run.name}` first"
        )
    summary = run.summary()
    if "test_accuracy" not in summary:
        raise ExportError(f"{run.file('summary.json')}: no test_accuracy; run `fmnist evaluate {run.path}`")
    hashes = run.config().get("dataset_sha256")
    if hashes and dataset_fingerprint(hashes) != dataset_fingerprint(dataset.sha256):
        raise ExportError(
            f"run {run.name!r} was trained on another dataset than {dataset.source.folder}; "
            f"export it with the dataset it was trained on ({ref('data_dir')})"
        )
    return summary


def export_onnx(model: nn.Module, path: Path, metadata: dict[str, str], opset: int = OPSET) -> None:
    """Write `model` as ONNX (dynamo exporter, dynamic batch) with `metadata`, then run onnx's full check."""
    import onnx

    model = model.eval().to("cpu", torch.float32)
    example = (torch.rand(2, 1, 28, 28),)
    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    try:
        program = torch.onnx.export(
            model,
            example,
            dynamo=True,
            input_names=["input"],
            output_names=["logits"],
            dynamic_shapes=({0: batch},),
            opset_version=opset,
            verbose=False,
            external_data=False,
        )
    except Exception as exc:  # the exporter raises many types; all mean "this model did not export"
        raise ExportError(f"torch.onnx.export failed: {type(exc).__name__}: {_first_line(exc)}") from exc
    if program is None:  # only with dynamo=False, which this exporter never asks for
        raise ExportError("torch.onnx.export returned no program")
    proto = program.model_proto
    onnx.helper.set_model_props(proto, metadata)
    proto.doc_string = f"fmnist {metadata.get('run', '')}: Fashion-MNIST classifier, input [N,1,28,28] in [0,1]"
    onnx.save_model(proto, str(path))
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ExportError(f"onnx.checker rejected the graph: {_first_line(exc)}") from exc


@torch.no_grad()
def _torch_logits(model: nn.Module, x: np.ndarray, batch: int = 1000) -> np.ndarray:
    model.eval()
    return np.concatenate([model(torch.from_numpy(x[i : i + batch])).numpy() for i in range(0, len(x), batch)])


def _onnx_logits(clf: OnnxClassifier, x: np.ndarray, batch: int = 1000) -> np.ndarray:
    # batch 1 first, then large batches: proves the batch axis is really dynamic
    head = [clf.logits(x[:1])] if len(x) else []
    return np.concatenate(head + [clf.logits(x[i : i + batch]) for i in range(1, len(x), batch)])


def parity_inputs(dataset: Dataset) -> tuple[np.ndarray, int]:
    """Float inputs [N,1,28,28]: all test images, topped up with random images to PARITY_MIN_IMAGES.

    Returns the inputs and how many of them are test images (the rest only serve the logit comparison)."""
    x = dataset.test_images[:, None].astype(np.float32) / 255.0
    missing = PARITY_MIN_IMAGES - len(x)
    if missing > 0:  # a small (synthetic) dataset: never compare on fewer than PARITY_MIN_IMAGES inputs
        extra = np.random.default_rng(0).random((missing, 1, 28, 28), dtype=np.float32)
        x = np.concatenate([x, extra])
    return x, len(dataset.test_images)


def verify(
    path: Path, model: nn.Module, dataset: Dataset, summary_accuracy: float, summary_device: str = "cpu"
) -> dict[str, Any]:
    """Compare onnxruntime with PyTorch; raise ExportError unless every check of the issue holds.

    The ONNX test accuracy must equal PyTorch's on the same CPU exactly, and the run's summary.json
    too when the run was evaluated on the CPU. A run evaluated on a GPU may differ from the CPU by
    CROSS_DEVICE_IMAGES test images at most: GPU kernels sum in another order, which can tip a
    borderline image (figures report both)."""
    try:
        clf = OnnxClassifier(path)
    except ModelError as exc:
        raise ExportError(f"onnxruntime cannot load the exported graph: {exc}") from exc
    x, n_test = parity_inputs(dataset)
    ref, got = _torch_logits(model, x), _onnx_logits(clf, x)
    max_diff = float(np.abs(ref - got).max())
    agreement = float((ref.argmax(1) == got.argmax(1)).mean())
    labels = dataset.test_labels
    onnx_correct = int((got[:n_test].argmax(1) == labels).sum())
    torch_correct = int((ref[:n_test].argmax(1) == labels).sum())
    figures = {
        "parity_images": len(x),
        "max_abs_diff": max_diff,
        "top1_agreement": agreement,
        "test_images": n_test,
        "onnx_accuracy": onnx_correct / n_test,
        "torch_accuracy": torch_correct / n_test,
    }
    if not max_diff <= PARITY_ATOL:
        raise ExportError(
            f"onnxruntime and PyTorch disagree: max |Δlogit| {max_diff:.2e} > {PARITY_ATOL:.0e} over {len(x):,} images"
        )
    if agreement < 1.0:
        raise ExportError(f"top-1 agreement {agreement:.4%} < 100% over {len(x):,} images")
    if onnx_correct != torch_correct:
        raise ExportError(
            f"ONNX test accuracy {onnx_correct / n_test:.4%} differs from PyTorch's on the same "
            f"inputs ({torch_correct / n_test:.4%})"
        )
    off = abs(onnx_correct - round(summary_accuracy * n_test))
    if off and (summary_device == "cpu" or off > CROSS_DEVICE_IMAGES):
        raise ExportError(
            f"ONNX test accuracy {onnx_correct / n_test:.4%} ({onnx_correct:,}/{n_test:,}) differs from "
            f"the run's summary.json ({summary_accuracy:.4%}, measured on {summary_device}); "
            "re-evaluate the run with `fmnist evaluate` or retrain it"
        )
    return figures


def export_run(
    run: Run,
    out_dir: Path,
    dataset: Dataset | None = None,
    on_step: Callable[[str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> ExportReport:
    """Export `run` to out_dir/<run>.onnx after all checks pass, and record it in the manifest.

    `should_stop` is asked between the steps (export, checks, publication): when it says so, the export
    ends with Interrupted and leaves no file. (A signal is never raised inside torch's exporter,
    which would turn it into an export failure of its own.)"""

    def step(message: str) -> None:
        if should_stop and should_stop():
            raise Interrupted(f"interrupted while exporting {run.name}; no file was left for it")
        if on_step:
            on_step(message)

    t0 = time.perf_counter()
    dataset = dataset or load_dataset()
    summary = validate_run(run, dataset)
    out_dir = Path(out_dir)
    try:
        check_writable(out_dir)
    except OSError as exc:
        raise ExportError(
            f"{out_dir}: cannot write there ({exc.strerror or exc}); choose another {ref('out')}"
        ) from exc
    model = model_from_run(run, "best").to("cpu", torch.float32)
    target = out_dir / f"{run.name}.onnx"
    metadata = build_metadata(run)
    device = str(run.config().get("device", "cpu"))  # where summary.json's test accuracy was measured
    manifest = out_dir / MANIFEST
    before = manifest.read_bytes() if manifest.is_file() else None
    try:
        with atomic_path(target) as tmp:  # on any failure the temporary file is removed: nothing is left
            step(f"exporting {run.name} (dynamo exporter, opset {OPSET}, dynamic batch)")
            export_onnx(model, tmp, metadata)
            step("onnx.checker full check passed; comparing onnxruntime with PyTorch")
            figures = verify(tmp, model, dataset, float(summary["test_accuracy"]), device)
            step("checks passed; calibrating on the validation split (probabilities, OOD score and threshold)")
            calibration = calibrate_in_place(tmp, dataset, figures["onnx_accuracy"])
            step(f"calibrated, test accuracy unchanged; publishing {target}")
            report = ExportReport(
                run=run.name,
                path=str(target),
                sha256=sha256_file(tmp),
                bytes=tmp.stat().st_size,
                opset=OPSET,
                summary_accuracy=float(summary["test_accuracy"]),
                summary_device=device,
                seconds=round(time.perf_counter() - t0, 2),
                calibration=calibration,
                **figures,
            )
            # the manifest first, then the model renamed into place: both are published or neither
            update_manifest(out_dir, report, metadata)
    except BaseException:
        _restore(manifest, before)
        raise
    return report


def _restore(path: Path, content: bytes | None) -> None:
    """Put a file back as it was (absent if it was), after a failed publication."""
    try:
        if content is None:
            path.unlink(missing_ok=True)
        elif not path.is_file() or path.read_bytes() != content:
            write_bytes(path, content)
    except OSError:
        pass  # the export's own error is the one to report


def update_manifest(out_dir: Path, report: ExportReport, metadata: dict[str, str]) -> Path:
    """Add or replace this model's entry in out_dir/manifest.json; drop entries whose file is gone."""
    path = out_dir / MANIFEST
    entries: list[dict[str, Any]] = []
    if path.is_file():
        try:
            entries = list(json.loads(path.read_text()).get("models", []))
        except (OSError, ValueError, AttributeError, RecursionError):
            entries = []  # a damaged manifest is rebuilt from what is exported from now on
    name = Path(report.path).name
    entry = {
        "file": name,
        "sha256": report.sha256,
        "bytes": report.bytes,
        "run": report.run,
        "arch": metadata["arch"],
        "kernel": None if metadata["kernel"] == "none" else int(metadata["kernel"]),
        "options": {name: metadata[name] for name in registry.option_names() if name in metadata},
        "params": int(metadata["params"]),
        "test_accuracy": report.onnx_accuracy,
        "test_images": report.test_images,
        "opset": report.opset,
        "parity_images": report.parity_images,
        "max_abs_logit_diff": report.max_abs_diff,
        "dataset_sha256": metadata["dataset_sha256"],
        "fmnist_version": metadata["fmnist_version"],
        **(report.calibration or {}),
    }
    return _write_manifest(out_dir, entries, entry)


def _write_manifest(out_dir: Path, entries: list[dict[str, Any]], entry: dict[str, Any]) -> Path:
    """Write the manifest with `entry` added or replacing the one of its file; entries whose file is gone dropped."""
    path, name = out_dir / MANIFEST, str(entry["file"])
    kept = [
        e for e in entries if isinstance(e, dict) and e.get("file") != name and (out_dir / str(e.get("file"))).is_file()
    ]
    models = sorted([*kept, entry], key=lambda e: str(e["file"]))
    try:
        write_json(path, {"schema_version": MANIFEST_SCHEMA, "fmnist_version": __version__, "models": models})
    except OSError as exc:
        raise ExportError(
            f"{path}: cannot write the manifest ({exc.strerror or exc}); make it a writable file "
            f"or choose another {ref('out')} (no model was published)"
        ) from None
    return path


def calibrate_in_place(path: Path, dataset: Dataset, accuracy: float | None = None) -> dict[str, Any]:
    """Calibrate the ONNX file at `path` (deploy/calibrate.py) and write it back; its test accuracy must stay
    `accuracy` where given. Returns the manifest's calibration figures."""
    import onnx

    from .calibrate import CalibrationError, calibrate, summary

    try:
        calibrated, fitted, checked = calibrate(onnx.load(str(path)), dataset)
    except CalibrationError as exc:
        raise ExportError(f"{path.name}: {exc}") from exc
    if accuracy is not None and checked["test_accuracy"] != accuracy:
        raise ExportError(f"calibration changed the test accuracy ({accuracy:.4%} → {checked['test_accuracy']:.4%})")
    onnx.save_model(calibrated, str(path))
    return summary(fitted)


def calibrate_file(
    path: Path, dataset: Dataset | None = None, on_step: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """`fmnist export --calibrate FILE`: calibrate an exported (or foreign) ONNX file in place, atomically, keeping
    its other metadata (run, test accuracy, ...); its entry in the folder's manifest.json, if any, follows."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: no such file")
    dataset = dataset or load_dataset()
    OnnxClassifier(path)  # a file that is not a Fashion-MNIST classifier is refused here, in one line
    manifest = path.parent / MANIFEST
    before = manifest.read_bytes() if manifest.is_file() else None
    try:
        with atomic_path(path) as tmp:
            tmp.write_bytes(path.read_bytes())
            if on_step:
                on_step(f"calibrating {path.name} on the validation split (probabilities, OOD score and threshold)")
            figures = calibrate_in_place(tmp, dataset)
            _record_calibration(path, tmp, figures)
    except BaseException:
        _restore(manifest, before)
        raise
    return {"file": str(path), "sha256": sha256_file(path), "bytes": path.stat().st_size, **figures}


def _record_calibration(path: Path, tmp: Path, figures: dict[str, Any]) -> None:
    """Update the manifest entry of `path` (if the folder has a manifest listing it) to the calibrated file."""
    manifest = path.parent / MANIFEST
    if not manifest.is_file():
        return
    try:
        entries = list(json.loads(manifest.read_text()).get("models", []))
    except (OSError, ValueError, AttributeError, RecursionError):
        return  # a damaged manifest is rebuilt by the next export
    entry = next((e for e in entries if isinstance(e, dict) and e.get("file") == path.name), None)
    if entry is not None:
        _write_manifest(
            path.parent, entries, {**entry, "sha256": sha256_file(tmp), "bytes": tmp.stat().st_size, **figures}
        )
