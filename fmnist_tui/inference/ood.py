"""Out-of-distribution scores (numpy only): how unlike Fashion-MNIST an input is, and the threshold for "unsure".

Every score is higher for an input less like Fashion-MNIST. The methods, all from the model's own
outputs: `msp` (1 − the largest calibrated probability), `max_logit` (−the largest logit), `energy`
(−logsumexp of the logits), and two on the penultimate features, with Gaussians fitted on the training
split: `mahalanobis` (the squared Mahalanobis distance to the nearest class mean, one covariance shared
by the classes) and `gaussian` (each class its own covariance: the smallest over the classes of the
squared Mahalanobis distance plus the log-determinant, i.e. twice the class-conditional negative
log-likelihood up to a constant). The threshold is a quantile of the score on the validation split:
the share VAL_PASS of Fashion-MNIST's validation images scores at or below it and passes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .calibration import softmax

METHODS = ("msp", "max_logit", "energy", "mahalanobis", "gaussian")
#: the share of validation images that must pass (score ≤ threshold): 4% of Fashion-MNIST's own images are
#: flagged, which keeps the share flagged on unseen images under 5% with room for the quantile's sampling error
VAL_PASS = 0.96
#: added to the score per unit an input's brightest pixel falls short of preprocess.MIN_CONTRAST: an input with
#: no object in it (blank) scores far above any threshold
BLANK_SCORE = 1e6
#: a covariance is shrunk towards its mean eigenvalue by this share, so it stays invertible: the shared one
#: (pooled over all classes) a little, a class's own (a tenth of the images) more
SHRINKAGE = {"shared": 1e-3, "per_class": 1e-2}


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
    """Class means [C, D], the inverses of their covariances [C, D, D] and their log-determinants [C] (all zero,
    and one precision repeated, for a covariance shared by the classes)."""

    means: np.ndarray
    precisions: np.ndarray
    logdets: np.ndarray

    def per_class(self, features: np.ndarray) -> np.ndarray:
        """[N, C]: the squared Mahalanobis distance of each row to each class, plus the class's log-determinant."""
        f = np.asarray(features, dtype=np.float64)
        out = np.empty((len(f), len(self.means)))
        for c, (mean, precision) in enumerate(zip(self.means, self.precisions, strict=True)):
            d = f - mean
            out[:, c] = ((d @ precision) * d).sum(axis=1) + self.logdets[c]
        return out

    def score(self, features: np.ndarray) -> np.ndarray:
        """The smallest over the classes of `per_class` ([N])."""
        out: np.ndarray = self.per_class(features).min(axis=1)
        return out


def _shrunk(cov: np.ndarray, share: float) -> np.ndarray:
    scale = float(np.trace(cov)) / len(cov)
    out: np.ndarray = (1 - share) * cov + share * scale * np.eye(len(cov))
    return out


def fit_gaussians(features: np.ndarray, labels: np.ndarray, classes: int = 10, shared: bool = False) -> Gaussians:
    """Class means and covariances of `features`: one pooled within-class covariance (`shared`), or each class its
    own; each shrunk a little (SHRINKAGE) before it is inverted."""
    f = np.asarray(features, dtype=np.float64)
    means = np.stack([f[labels == c].mean(axis=0) for c in range(classes)])
    centred = f - means[labels]
    if shared:
        precision = np.linalg.inv(_shrunk(centred.T @ centred / len(f), SHRINKAGE["shared"]))
        return Gaussians(means, np.repeat(precision[None], classes, axis=0), np.zeros(classes))
    covs = [_shrunk(np.cov(centred[labels == c].T, bias=True), SHRINKAGE["per_class"]) for c in range(classes)]
    return Gaussians(
        means, np.stack([np.linalg.inv(c) for c in covs]), np.array([np.linalg.slogdet(c)[1] for c in covs])
    )


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
