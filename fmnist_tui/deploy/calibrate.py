"""Calibrate an ONNX classifier inside its graph and give it an out-of-distribution score (onnx + numpy, no torch).

The same path serves a fresh export and a file exported before (or by another tool): its raw logits
and penultimate features are read on Fashion-MNIST with onnxruntime, the calibrator is fitted on the
validation split, the class-conditional Gaussians on a stratified part of the training split and the
threshold on the validation split; then nodes are appended to the graph (under the name prefixes
`calibration/` and `ood/`; the raw logits keep flowing as `uncalibrated_logits`). The file's outputs become
- `logits` float32 [N,10]: the calibrated logits, the log of the calibrated probabilities (their
  softmax gives those probabilities back; the top-1 class is the raw logits' own);
- `ood_score` float32 [N]: higher = less like Fashion-MNIST; above metadata `ood.threshold` an input
  is "unsure".
metadata_props gain two JSON objects:
- `calibration`: `version` (1), `method` ("temperature+top-label-isotonic"), `temperature`, `knots`
  ([[tempered top-1 probability, calibrated], ...]), `fitted_on`, and `validation` / `test`: each
  {images, before, temperature_only, after}, each of those {accuracy, confidence, ece, nll, brier};
- `ood`: `version` (1), `method` ("gaussian", or "energy" for a graph without a Gemm head), `output`
  ("ood_score"), `threshold`, `val_pass` (the share of validation images at or below it), `fitted_on`,
  `test_flagged` (the share of test images above it).
A reader refuses a file whose entry is not such an object with a finite threshold and a positive temperature.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.data import CLASSES, Dataset, nested_order
from ..core.errors import FmnistError
from ..inference import calibration as cal
from ..inference import ood
from ..inference.preprocess import MIN_CONTRAST
from ..inference.session import CALIBRATION_KEY, OOD_KEY, OOD_OUTPUT

RAW = "uncalibrated_logits"
FEATURES = "penultimate_features"
#: images of the training split (a stratified prefix: the same number of each class) the class means
#: and the shared covariance are fitted on
GAUSSIAN_IMAGES = 10_000
VERSION = 1
BATCH = 500


class CalibrationError(FmnistError):
    """The model cannot be calibrated here (already calibrated, not a classifier of this shape)."""


def raw_logits_name(graph: Any) -> str:
    """The raw logits' tensor: RAW in a calibrated graph, else the first output."""
    return RAW if any(RAW in node.output for node in graph.node) else str(graph.output[0].name)


def head_features(graph: Any) -> list[str]:
    """The tensors fed to the classifier's last layer: the first inputs of the Gemm nodes that make the raw logits
    (through Add/Div/Mul, as a test-time augmentation averages its views), or [] where there are none."""
    producer = {out: node for node in graph.node for out in node.output}
    todo, found = [raw_logits_name(graph)], []
    while todo:
        node = producer.get(todo.pop())
        if node is None:
            continue
        if node.op_type == "Gemm":
            found.append(node)
        elif node.op_type in ("Add", "Div", "Mul", "Identity"):
            todo += [name for name in node.input if name in producer]
    weights = {node.input[1] for node in found}
    return [node.input[0] for node in found] if len(weights) == 1 else []


def _probe(model: Any) -> tuple[Any, int]:
    """An onnxruntime session of `model` whose outputs are the raw logits and the head's input(s): (session, how many
    of those)."""
    import onnx
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    features, raw = head_features(probe.graph), raw_logits_name(probe.graph)
    del probe.graph.output[:]
    for name in [raw, *features]:
        probe.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session, len(features)


def raw_outputs(model: Any, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Raw logits [N,10] and penultimate features [N,D] (the views' mean; None without a Gemm head) of uint8
    or [0,1] images [N,28,28]."""
    session, n = _probe(model)
    name, rank = session.get_inputs()[0].name, len(session.get_inputs()[0].shape)
    logits, features = [], []
    for i in range(0, len(x), BATCH):
        batch = np.asarray(x[i : i + BATCH], dtype=np.float32)
        batch = batch / 255.0 if x.dtype == np.uint8 else batch
        outs = session.run(None, {name: batch[:, None] if rank == 4 else batch})
        logits.append(outs[0])
        if n:
            features.append(np.mean(outs[1 : 1 + n], axis=0))
    return np.concatenate(logits), (np.concatenate(features) if n else None)


@dataclass(frozen=True)
class Fitted:
    """What `fit` found: the calibrator, the OOD model and threshold, and the measures behind them."""

    calibrator: cal.Calibrator
    method: str
    gaussians: ood.Gaussians | None
    threshold: float
    metadata: dict[str, str]
    #: the raw test logits and OOD scores, to check the calibrated graph against
    test_logits: np.ndarray
    test_scores: np.ndarray


def fit(model: Any, dataset: Dataset) -> Fitted:
    """Fit the calibrator (validation split), the Mahalanobis model (GAUSSIAN_IMAGES of the training split) and
    the OOD threshold (validation split); measure both on the test set for the record."""
    val_logits, val_features = raw_outputs(model, dataset.val_images)
    calibrator = cal.fit_calibrator(val_logits, dataset.val_labels)
    test_logits, test_features = raw_outputs(model, dataset.test_images)
    gaussians = None
    if val_features is not None and test_features is not None:
        pick = nested_order(dataset.train_labels)[:GAUSSIAN_IMAGES]
        _, train_features = raw_outputs(model, dataset.train_images[pick])
        assert train_features is not None
        gaussians = ood.fit_gaussians(train_features, dataset.train_labels[pick], len(CLASSES))
        val_scores, test_scores = gaussians.score(val_features), gaussians.score(test_features)
        method = "gaussian"
    else:  # no Gemm head to read features from (a foreign graph): the energy of the logits
        method = "energy"
        val_scores, test_scores = (ood.logit_score("energy", z) for z in (val_logits, test_logits))
    threshold = ood.threshold(val_scores)
    metadata = {
        CALIBRATION_KEY: json.dumps(
            {
                "version": VERSION,
                "method": "temperature+top-label-isotonic",
                **calibrator.to_dict(),
                "fitted_on": f"validation split ({len(dataset.val_labels):,} images)",
                "validation": cal.before_after(val_logits, dataset.val_labels, calibrator),
                "test": cal.before_after(test_logits, dataset.test_labels, calibrator),
            }
        ),
        OOD_KEY: json.dumps(
            {
                "version": VERSION,
                "method": method,
                "output": OOD_OUTPUT,
                "threshold": threshold,
                "val_pass": ood.VAL_PASS,
                "fitted_on": (
                    f"class means and covariances: {GAUSSIAN_IMAGES:,} training images "
                    f"({GAUSSIAN_IMAGES // len(CLASSES):,} per class); threshold: validation split"
                    if gaussians is not None
                    else "threshold: validation split"
                ),
                "test_flagged": float(np.mean(test_scores > threshold)),
            }
        ),
    }
    return Fitted(calibrator, method, gaussians, threshold, metadata, test_logits, test_scores)


class _Graph:
    """Nodes and initializers appended to a graph, each name under one prefix."""

    def __init__(self, graph: Any, prefix: str) -> None:
        self.graph, self.prefix, self.count = graph, prefix, 0
        self.consts: set[str] = set()

    def const(self, name: str, value: np.ndarray) -> str:
        """An initializer under the prefix; a name asked for again is the same constant."""
        from onnx import numpy_helper

        full = f"{self.prefix}/{name}"
        if full not in self.consts:
            self.consts.add(full)
            self.graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(value), full))
        return full

    def op(self, op_type: str, inputs: list[str], outputs: int = 1, out: str | None = None, **attrs: Any) -> list[str]:
        from onnx import helper

        self.count += 1
        names = [out] if out else [f"{self.prefix}/{op_type.lower()}_{self.count}_{i}" for i in range(outputs)]
        node = helper.make_node(op_type, inputs, names, name=f"{self.prefix}/{op_type}_{self.count}", **attrs)
        self.graph.node.append(node)
        return names

    def one(self, op_type: str, inputs: list[str], out: str | None = None, **attrs: Any) -> str:
        return self.op(op_type, inputs, 1, out, **attrs)[0]


def _f32(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float32)


def _piecewise(g: _Graph, x: str, knots_x: tuple[float, ...], knots_y: tuple[float, ...]) -> str:
    """np.interp(x, knots) for x [N,1]: y0 + Σ_i Δy_i · clip((x − x_i) / (x_i+1 − x_i), 0, 1). Every term lies in
    [0, Δy_i], so float32 loses nothing to cancellation however close two knots are."""
    kx, ky = np.array(knots_x, dtype=np.float64), np.array(knots_y, dtype=np.float64)
    y0 = g.const("y0", _f32(ky[0]))
    if len(kx) == 1:
        return g.one("Add", [g.one("Mul", [x, g.const("times_zero", _f32(0))]), y0])
    starts = g.const("knots", kx[None, :-1].astype(np.float32))
    inverse_widths = g.const("inverse_widths", (1.0 / np.diff(kx))[None, :].astype(np.float32))
    share = g.one("Mul", [g.one("Sub", [x, starts]), inverse_widths])  # [N, m-1]
    clipped = g.one("Clip", [share, g.const("clip_min", _f32(0)[0]), g.const("clip_max", _f32(1)[0])])
    return g.one("Add", [g.one("MatMul", [clipped, g.const("rises", np.diff(ky)[:, None].astype(np.float32))]), y0])


def _calibration_nodes(g: _Graph, raw: str, c: cal.Calibrator, out: str) -> None:
    """Calibrated logits `out` [N,10] from raw logits: what cal.Calibrator.probabilities computes, as logs."""
    k1 = g.const("k1", np.array([1], dtype=np.int64))
    z = g.one("Div", [raw, g.const("temperature", _f32(c.temperature))])
    best = g.one("ArgMax", [z], axis=1, keepdims=1)
    mask = g.one("Equal", [best, g.const("classes", np.arange(len(CLASSES), dtype=np.int64)[None, :])])
    top = g.op("TopK", [g.one("Softmax", [z], axis=1), k1], 2, axis=1)[0]
    others = g.one("Where", [mask, g.const("excluded", _f32(-1e9)), z])  # the top class left out
    rest = g.one("Softmax", [others], axis=1)
    next_share = g.op("TopK", [rest, k1], 2, axis=1)[0]
    one = g.const("one", _f32(1))
    share = g.one("Div", [next_share, g.one("Add", [one, next_share])])
    floor = g.one("Add", [share, g.const("edge", _f32(cal.EDGE))])
    mapped = g.one("Max", [_piecewise(g, top, c.knots_x, c.knots_y), floor])
    new_top = g.one("Clip", [mapped, g.const("lo", _f32(cal.EDGE)[0]), g.const("hi", _f32(1 - cal.EDGE)[0])])
    spread = g.one("Add", [g.one("Log", [g.one("Sub", [one, new_top])]), g.one("LogSoftmax", [others], axis=1)])
    g.one("Where", [mask, g.one("Log", [new_top]), spread], out=out)


def _blank_penalty(g: _Graph, image: str) -> str:
    """[N,1]: BLANK_SCORE per unit the image's brightest pixel falls short of MIN_CONTRAST (0 for any image with an
    object): an input with nothing in it is never like Fashion-MNIST, whatever the features say."""
    pixels = g.one("Reshape", [image, g.const("pixels", np.array([0, -1], dtype=np.int64))])
    peak = g.op("TopK", [pixels, g.const("k1", np.array([1], dtype=np.int64))], 2, axis=1)[0]
    short = g.one("Relu", [g.one("Sub", [g.const("min_contrast", _f32(MIN_CONTRAST)), peak])])
    return g.one("Mul", [short, g.const("blank_score", _f32(ood.BLANK_SCORE))])


def _ood_nodes(g: _Graph, image: str, raw: str, features: list[str], gaussians: ood.Gaussians | None, out: str) -> None:
    """`out` [N]: ood.Gaussians.score of the penultimate features, or (without features) −logsumexp of the logits;
    plus the blank penalty."""
    k1 = g.const("k1", np.array([1], dtype=np.int64))
    flat = g.const("flat", np.array([-1], dtype=np.int64))
    if gaussians is None:
        top = g.op("TopK", [raw, k1], 2, axis=1)[0]
        exp = g.one("Exp", [g.one("Sub", [raw, top])])
        total = g.one("MatMul", [exp, g.const("ones", np.ones((len(CLASSES), 1), np.float32))])
        energy = g.one("Neg", [g.one("Add", [top, g.one("Log", [total])])])
        g.one("Reshape", [g.one("Add", [energy, _blank_penalty(g, image)]), flat], out=out)
        return
    f = features[0]
    if len(features) > 1:  # the views of a test-time augmentation: their mean, as the head averages their logits
        f = g.one("Div", [g.one("Sum", features), g.const("views", _f32(len(features)))])
    means = gaussians.means
    chol = np.stack([np.linalg.cholesky(p) for p in gaussians.precisions])  # precision = L Lᵀ, per class
    classes, dim = means.shape
    column = g.one("Reshape", [f, g.const("column", np.array([0, 1, -1], dtype=np.int64))])  # [N,1,D]
    diff = g.one("Sub", [column, g.const("means", means[None].astype(np.float32))])  # [N,C,D]
    rows = g.one("Reshape", [diff, g.const("row_per_class", np.array([0, classes, 1, dim], dtype=np.int64))])
    whitened = g.one("MatMul", [rows, g.const("cholesky", chol.astype(np.float32))])  # [N,C,1,D]
    ones = g.const("ones", np.ones((dim, 1), np.float32))
    squared = g.one("MatMul", [g.one("Mul", [whitened, whitened]), ones])  # [N,C,1,1]
    flat_classes = g.one("Reshape", [squared, g.const("rows", np.array([0, classes], dtype=np.int64))])
    per_class = g.one("Add", [flat_classes, g.const("logdets", gaussians.logdets[None].astype(np.float32))])
    nearest = g.op("TopK", [per_class, k1], 2, axis=1, largest=0)[0]
    g.one("Reshape", [g.one("Add", [nearest, _blank_penalty(g, image)]), flat], out=out)


PREFIXES = ("calibration/", "ood/")
UNCALIBRATED = "; uncalibrated: "


def is_calibrated(model: Any) -> bool:
    """Whether `model` went through `apply` (its raw logits are RAW inside the graph)."""
    return any(RAW in node.output for node in model.graph.node)


def strip(model: Any) -> Any:
    """A copy of a model `apply` made, as it was before: the appended nodes, constants, output and metadata gone."""
    import onnx

    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    name = graph.output[0].name
    kept = [n for n in graph.node if not n.name.startswith(PREFIXES)]
    del graph.node[:]
    graph.node.extend(kept)
    for node in graph.node:
        node.output[:] = [name if o == RAW else o for o in node.output]
        node.input[:] = [name if i == RAW else i for i in node.input]
    inits = [t for t in graph.initializer if not t.name.startswith(PREFIXES)]
    del graph.initializer[:]
    graph.initializer.extend(inits)
    outputs = [o for o in graph.output if o.name != OOD_OUTPUT]
    del graph.output[:]
    graph.output.extend(outputs)
    props = {p.key: p.value for p in out.metadata_props if p.key not in (CALIBRATION_KEY, OOD_KEY)}
    if UNCALIBRATED in props.get("output", ""):
        props["output"] = props["output"].split(UNCALIBRATED, 1)[1]
    elif "output" in props:  # only `apply`'s own words: the model had no description of its output
        del props["output"]
    del out.metadata_props[:]
    onnx.helper.set_model_props(out, props)
    return out


def apply(model: Any, fitted: Fitted) -> Any:
    """A copy of `model` whose `logits` are calibrated and which also outputs `ood_score`, with the metadata (a model
    calibrated before is stripped of that first: calibrating again replaces it)."""
    import onnx

    out = strip(model) if is_calibrated(model) else onnx.ModelProto()
    if not is_calibrated(model):
        out.CopyFrom(model)
    graph = out.graph
    if any(o.name == OOD_OUTPUT for o in graph.output) or CALIBRATION_KEY in {p.key for p in out.metadata_props}:
        raise CalibrationError("the model has an ood_score output or a 'calibration' entry that fmnist did not add")
    logits = graph.output[0]
    name, features = logits.name, head_features(graph)
    for node in graph.node:  # the raw logits get their own name; `logits` becomes the calibrated ones
        node.output[:] = [RAW if o == name else o for o in node.output]
        node.input[:] = [RAW if i == name else i for i in node.input]
    _calibration_nodes(_Graph(graph, "calibration"), RAW, fitted.calibrator, name)
    detector = _Graph(graph, "ood")
    _ood_nodes(detector, graph.input[0].name, RAW, features, fitted.gaussians, OOD_OUTPUT)
    batch = logits.type.tensor_type.shape.dim[0]
    score = onnx.helper.make_tensor_value_info(OOD_OUTPUT, onnx.TensorProto.FLOAT, [batch.dim_param or None])
    graph.output.append(score)
    props = {p.key: p.value for p in out.metadata_props}
    props.update(fitted.metadata)
    props["output"] = (
        f"{name} float32 [N,10]: calibrated logits (the log of the calibrated probabilities; the raw ones are "
        f"{RAW} inside the graph); {OOD_OUTPUT} float32 [N]: higher = less like Fashion-MNIST"
        + (f"{UNCALIBRATED}{props['output']}" if props.get("output") else "")
    )
    onnx.helper.set_model_props(out, props)
    try:
        onnx.checker.check_model(out, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise CalibrationError(f"onnx.checker rejected the calibrated graph: {str(exc).splitlines()[0][:200]}") from exc
    return out


#: the calibrated probabilities may differ from the float64 reference by this much, plus the map's steepest slope
#: times PROB_RESOLUTION (float32's resolution of the tempered top-1 probability the map reads)
PROB_ATOL, PROB_RESOLUTION, SCORE_RTOL = 1e-4, 1e-6, 1e-3


def steepest(c: cal.Calibrator) -> float:
    """The top-label map's steepest slope (0 for a constant map)."""
    if len(c.knots_x) < 2:
        return 0.0
    return float((np.diff(c.knots_y) / np.diff(c.knots_x)).max())


def check(model: Any, fitted: Fitted, dataset: Dataset) -> dict[str, float]:
    """Run the calibrated graph on the test set: the same top-1 class as the raw logits on every image, and the
    probabilities and scores of the numpy reference (computed from the graph's own raw logits, so only the appended
    nodes are compared); CalibrationError otherwise."""
    import onnx
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.output.append(onnx.helper.make_tensor_value_info(RAW, onnx.TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    x = dataset.test_images.astype(np.float32) / 255.0
    runs = [session.run(None, {name: x[i : i + BATCH, None]}) for i in range(0, len(x), BATCH)]
    logits, scores, raw = (np.concatenate([r[i] for r in runs]) for i in range(3))
    if not np.array_equal(logits.argmax(1), fitted.test_logits.argmax(1)):
        raise CalibrationError("the calibrated graph changed a top-1 class; nothing was written")
    prob_diff = float(np.abs(cal.softmax(logits) - fitted.calibrator.probabilities(raw)).max())
    score_diff = float(np.max(np.abs(scores - fitted.test_scores) / np.maximum(1.0, np.abs(fitted.test_scores))))
    allowed = PROB_ATOL + steepest(fitted.calibrator) * PROB_RESOLUTION
    if prob_diff > allowed or score_diff > SCORE_RTOL:
        raise CalibrationError(
            f"the calibrated graph disagrees with its reference (probabilities {prob_diff:.1e} > {allowed:.1e}, "
            f"or OOD scores {score_diff:.1e} > {SCORE_RTOL:.0e}); nothing was written"
        )
    accuracy = float((logits.argmax(1) == dataset.test_labels).mean())
    return {"test_accuracy": accuracy, "max_abs_prob_diff": prob_diff, "max_rel_score_diff": score_diff}


def calibrate(model: Any, dataset: Dataset) -> tuple[Any, Fitted, dict[str, float]]:
    """Fit, append the nodes, and check: (calibrated model, what was fitted, the check's figures). A model calibrated
    before is fitted again from its raw logits."""
    fitted = fit(strip(model) if is_calibrated(model) else model, dataset)
    calibrated = apply(model, fitted)
    return calibrated, fitted, check(calibrated, fitted, dataset)


def summary(fitted: Fitted) -> dict[str, Any]:
    """The calibration and OOD figures a manifest entry records (validation fit, test measures)."""
    calibration, detector = json.loads(fitted.metadata[CALIBRATION_KEY]), json.loads(fitted.metadata[OOD_KEY])
    return {
        "calibration": {
            "method": calibration["method"],
            "temperature": calibration["temperature"],
            "test_ece_before": calibration["test"]["before"]["ece"],
            "test_ece_after": calibration["test"]["after"]["ece"],
        },
        "ood": {k: detector[k] for k in ("method", "threshold", "val_pass", "test_flagged")},
    }
