"""Out-of-distribution scores (numpy only): how unlike Fashion-MNIST an input is, and the threshold for "unsure".

Every score is higher for an input less like Fashion-MNIST. The methods, all from the model's own
outputs: `msp` (1 − the largest calibrated probability), `max_logit` (−the largest logit), `energy`
(−logsumexp of the logits), and `mahalanobis` (the squared Mahalanobis distance of the penultimate
features to the nearest class mean, with one covariance shared by the classes, fitted on the training
split). The threshold is a quantile of the score on the validation split: the share VAL_PASS of
Fashion-MNIST's validation images scores at or below it and passes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .calibration import softmax

METHODS = ("msp", "max_logit", "energy", "mahalanobis")
#: the share of validation images that must pass (score ≤ threshold): 4% of Fashion-MNIST's own images are
#: flagged, which keeps the share flagged on unseen images under 5% with room for the quantile's sampling error
VAL_PASS = 0.96
#: added to the score per unit an input's brightest pixel falls short of preprocess.MIN_CONTRAST: an input with
#: no object in it (blank) scores far above any threshold
BLANK_SCORE = 1e6
#: the covariance is shrunk towards its mean eigenvalue by this share, so it stays invertible
SHRINKAGE = 1e-3


def logsumexp(z: np.ndarray) -> np.ndarray:
    """Row-wise log Σ exp, stable for any finite values."""
    x = np.asarray(z, dtype=np.float64)
    top = x.max(axis=1)
    out: np.ndarray = top + np.log(np.exp(x - top[:, None]).sum(axis=1))
    return out


def logit_score(method: str, logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """A logit-based score ([N]) of the raw logits: msp uses the calibrated probabilities (logits / T)."""
    z = np.asarray(logits, dtype=np.float64)
    if method == "msp":
        out: np.ndarray = 1.0 - softmax(z / temperature).max(axis=1)
        return out
    if method == "max_logit":
        top: np.ndarray = -z.max(axis=1)
        return top
    if method == "energy":
        return -logsumexp(z)
    raise ValueError(f"{method!r} is not a logit-based score; choose one of msp, max_logit, energy")


@dataclass(frozen=True)
class Gaussians:
    """Class means [10, D] and the inverse of their shared covariance [D, D] (the Mahalanobis score's model)."""

    means: np.ndarray
    precision: np.ndarray

    def score(self, features: np.ndarray) -> np.ndarray:
        """The squared Mahalanobis distance of each row of `features` to its nearest class mean ([N])."""
        f = np.asarray(features, dtype=np.float64)
        projected = f @ self.precision  # [N, D]
        # (f − μ)ᵀ P (f − μ) = fᵀPf − 2 μᵀPf + μᵀPμ, for every class at once
        own = (projected * f).sum(axis=1)[:, None]
        cross = projected @ self.means.T
        centre = ((self.means @ self.precision) * self.means).sum(axis=1)[None, :]
        out: np.ndarray = (own - 2 * cross + centre).min(axis=1)
        return out


def fit_gaussians(features: np.ndarray, labels: np.ndarray, classes: int = 10) -> Gaussians:
    """Class means and the shared covariance (pooled within-class) of `features`, its inverse shrunk a little."""
    f = np.asarray(features, dtype=np.float64)
    means = np.stack([f[labels == c].mean(axis=0) for c in range(classes)])
    centred = f - means[labels]
    cov = centred.T @ centred / len(f)
    scale = float(np.trace(cov)) / len(cov)
    cov = (1 - SHRINKAGE) * cov + SHRINKAGE * scale * np.eye(len(cov))
    return Gaussians(means, np.linalg.inv(cov))


def threshold(val_scores: np.ndarray, val_pass: float = VAL_PASS) -> float:
    """The score at or below which the share `val_pass` of the validation scores lies."""
    return float(np.quantile(np.asarray(val_scores, dtype=np.float64), val_pass, method="higher"))


def auroc(inliers: np.ndarray, outliers: np.ndarray) -> float:
    """Area under the ROC curve of telling `outliers` (higher scores) from `inliers`: the chance that a random
    outlier scores above a random inlier, ties counted half (the Mann–Whitney U statistic)."""
    a, b = np.asarray(inliers, dtype=np.float64), np.asarray(outliers, dtype=np.float64)
    both = np.concatenate([a, b])
    order = np.argsort(both, kind="mergesort")
    ranks = np.empty(len(both), dtype=np.float64)
    ranks[order] = np.arange(1, len(both) + 1)
    # ties: the mean rank of their group
    values, first, counts = np.unique(both[order], return_index=True, return_counts=True)
    mean_rank = first + (counts + 1) / 2
    ranks[order] = np.repeat(mean_rank, counts)
    del values
    u = ranks[len(a) :].sum() - len(b) * (len(b) + 1) / 2
    return float(u / (len(a) * len(b)))
