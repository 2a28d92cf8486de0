"""Calibration of class probabilities (numpy only): temperature scaling, and the measures that judge it.

The calibrator has two steps, both fitted on the validation split (never the test set):
1. a temperature T divides the logits (fitted by minimising the negative log-likelihood);
2. a top-label map: an increasing piecewise-linear function of the top-1 probability (isotonic
   regression of "the top-1 class is right" on it), the other classes sharing what is left in the
   proportions the tempered softmax gives them.
Neither step can change the top-1 class: T > 0 keeps the order of the logits, and the mapped top-1
probability is held at least as high as the next class's (`top_label`). ECE, NLL and the Brier score
say how far the probabilities are from the frequencies they claim.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

#: equal-width confidence bins of the expected calibration error (the usual choice, Guo et al. 2017)
ECE_BINS = 15
#: the temperature is searched in [1/T_RANGE, T_RANGE]
T_RANGE = 100.0


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64, stable for any finite logits."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    out: np.ndarray = e / e.sum(axis=1, keepdims=True)
    return out


def _nll_slope(logits: np.ndarray, labels: np.ndarray, beta: float) -> float:
    """d NLL(beta · logits) / d beta: the mean over images of E_p[z] − z_label (increasing in beta)."""
    z = np.asarray(logits, dtype=np.float64)
    p = softmax(beta * z)
    return float(((p * z).sum(axis=1) - z[np.arange(len(z)), labels]).mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray, iterations: int = 80) -> float:
    """The temperature T > 0 that minimises the NLL of softmax(logits / T) on (logits, labels).

    The NLL is convex in beta = 1/T, so its slope is increasing: bisection on the slope, in log space."""
    labels = np.asarray(labels, dtype=np.int64)
    lo, hi = np.log(1 / T_RANGE), np.log(T_RANGE)
    if _nll_slope(logits, labels, float(np.exp(hi))) <= 0:
        return 1 / T_RANGE  # still falling at the sharpest end (separable data): as sharp as allowed
    if _nll_slope(logits, labels, float(np.exp(lo))) >= 0:
        return T_RANGE
    for _ in range(iterations):
        mid = (lo + hi) / 2
        if _nll_slope(logits, labels, float(np.exp(mid))) > 0:
            hi = mid
        else:
            lo = mid
    return float(1 / np.exp((lo + hi) / 2))


def isotonic(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pool-adjacent-violators: the increasing step fit of y on x, as (block centres, block means) in x order."""
    order = np.argsort(x, kind="mergesort")
    xs, ys = np.asarray(x, dtype=np.float64)[order], np.asarray(y, dtype=np.float64)[order]
    means: list[float] = []
    weights: list[float] = []
    spans: list[list[float]] = []
    for xi, yi in zip(xs.tolist(), ys.tolist(), strict=True):
        means.append(yi)
        weights.append(1.0)
        spans.append([xi, xi])
        # merge violators into one block, and blocks at the same x (a knot per x, for the interpolation)
        while len(means) > 1 and (means[-2] >= means[-1] or spans[-2][1] >= spans[-1][0]):
            w = weights[-2] + weights[-1]
            means[-2] = (means[-2] * weights[-2] + means[-1] * weights[-1]) / w
            weights[-2], spans[-2][1] = w, spans[-1][1]
            del means[-1], weights[-1], spans[-1]
    return np.array([(a + b) / 2 for a, b in spans]), np.array(means)


@dataclass(frozen=True)
class Calibrator:
    """Temperature, then the top-label map through `knots` (x: tempered top-1 probability, y: calibrated)."""

    temperature: float
    knots_x: tuple[float, ...]
    knots_y: tuple[float, ...]

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated probabilities [N,10] of raw logits (what the ONNX graph computes, in float64)."""
        z = np.asarray(logits, dtype=np.float64) / self.temperature
        best = z.argmax(axis=1)
        rows = np.arange(len(z))
        top = softmax(z)[rows, best]
        mapped = np.interp(top, self.knots_x, self.knots_y)
        rest = z.copy()
        rest[rows, best] = -np.inf
        rest = softmax(rest)  # the other classes' shares among themselves
        new_top = top_label(mapped, rest.max(axis=1))
        out = rest * (1.0 - new_top)[:, None]
        out[rows, best] = new_top
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "temperature": self.temperature,
            "knots": [list(k) for k in zip(self.knots_x, self.knots_y, strict=True)],
        }


#: the mapped top-1 probability stays this far inside (0, 1), so every calibrated logit is finite
EDGE = 1e-6


def top_label(mapped: np.ndarray, next_share: np.ndarray) -> np.ndarray:
    """The mapped top-1 probability, held where the top class stays on top: with the others sharing 1 − p in
    their proportions, the next class gets (1 − p) · next_share, which p must exceed."""
    floor = next_share / (1.0 + next_share) + EDGE
    out: np.ndarray = np.clip(np.maximum(mapped, floor), EDGE, 1.0 - EDGE)
    return out


def fit_calibrator(logits: np.ndarray, labels: np.ndarray) -> Calibrator:
    """The temperature, then the top-label map, fitted on (validation) logits and labels."""
    temperature = fit_temperature(logits, labels)
    probs = softmax(np.asarray(logits, dtype=np.float64) / temperature)
    x, y = isotonic(probs.max(axis=1), probs.argmax(axis=1) == np.asarray(labels))
    return Calibrator(temperature, tuple(float(v) for v in x), tuple(float(v) for v in y))


def nll(probs: np.ndarray, labels: np.ndarray) -> float:
    """Negative log-likelihood of the true class, in nats per image (probabilities clipped at 1e-12)."""
    p = np.asarray(probs, dtype=np.float64)[np.arange(len(labels)), np.asarray(labels)]
    return float(-np.log(np.clip(p, 1e-12, 1.0)).mean())


def brier(probs: np.ndarray, labels: np.ndarray) -> float:
    """Multi-class Brier score: the mean over images of Σ_k (p_k − [k = label])², in [0, 2]."""
    p = np.asarray(probs, dtype=np.float64)
    onehot = np.zeros_like(p)
    onehot[np.arange(len(p)), np.asarray(labels)] = 1.0
    return float(((p - onehot) ** 2).sum(axis=1).mean())


@dataclass(frozen=True)
class Reliability:
    """Per confidence bin (equal width over [0, 1]; a bin holds confidences in (lo, hi], the first also 0):
    how many images, their mean confidence and their accuracy (NaN for an empty bin)."""

    edges: tuple[float, ...]
    counts: tuple[int, ...]
    confidence: tuple[float, ...]
    accuracy: tuple[float, ...]

    @property
    def ece(self) -> float:
        """Expected calibration error: Σ_bins (n_bin / n) · |accuracy − confidence|."""
        n = sum(self.counts)
        gaps = [c * abs(a - f) for c, a, f in zip(self.counts, self.accuracy, self.confidence, strict=True) if c]
        return float(sum(gaps) / n) if n else 0.0


def reliability(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> Reliability:
    """The reliability table of `probs` (top-1 confidence against top-1 correctness)."""
    p = np.asarray(probs, dtype=np.float64)
    confidence, correct = p.max(axis=1), (p.argmax(axis=1) == np.asarray(labels))
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    counts = np.bincount(which, minlength=bins)
    conf_sum = np.bincount(which, weights=confidence, minlength=bins)
    acc_sum = np.bincount(which, weights=correct.astype(np.float64), minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf, mean_acc = conf_sum / counts, acc_sum / counts
    return Reliability(
        tuple(float(e) for e in edges),
        tuple(int(c) for c in counts),
        tuple(float(c) for c in mean_conf),
        tuple(float(a) for a in mean_acc),
    )


def ece(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error over `bins` equal-width confidence bins."""
    return reliability(probs, labels, bins).ece


@dataclass(frozen=True)
class Measures:
    """How well one set of probabilities is calibrated, and the accuracy they give."""

    accuracy: float
    confidence: float
    ece: float
    nll: float
    brier: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def measure(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> Measures:
    """Accuracy, mean top-1 confidence, ECE, NLL and Brier score of `probs` against `labels`."""
    p = np.asarray(probs, dtype=np.float64)
    return Measures(
        accuracy=float((p.argmax(axis=1) == labels).mean()),
        confidence=float(p.max(axis=1).mean()),
        ece=ece(p, labels, bins),
        nll=nll(p, labels),
        brier=brier(p, labels),
    )


def before_after(raw_logits: np.ndarray, labels: np.ndarray, calibrator: Calibrator) -> dict[str, Any]:
    """The measures on the same images: uncalibrated, with the temperature alone, and calibrated (both steps)."""
    tempered = softmax(np.asarray(raw_logits, dtype=np.float64) / calibrator.temperature)
    return {
        "images": len(labels),
        "before": measure(softmax(raw_logits), labels).to_dict(),
        "temperature_only": measure(tempered, labels).to_dict(),
        "after": measure(calibrator.probabilities(raw_logits), labels).to_dict(),
    }
