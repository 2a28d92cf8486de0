"""Every figure of the study as a PNG (matplotlib, headless Agg backend); each function returns the data it drew."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import fields
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")  # headless: no display needed, and no GUI backend is ever imported
import matplotlib.pyplot as plt
import numpy as np

from ..core.config import TrainConfig
from ..core.data import CLASSES
from ..core.fsutil import write_bytes
from .stats import summarize

if TYPE_CHECKING:
    from .translation import Curves

SHORT = ("T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Boot")
SPLITS = ("train", "val", "test")


def save(fig: Any, path: Path, dpi: int = 110) -> Path:
    """Render `fig` to PNG and write it atomically; the figure is closed either way."""
    try:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(fig)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes(path, buf.getvalue())
    return path


def class_distribution(labels: dict[str, np.ndarray], path: Path) -> dict[str, list[int]]:
    """Grouped bars: images per class in each split. Returns {split: counts}."""
    counts = {s: np.bincount(labels[s], minlength=len(CLASSES)).tolist() for s in SPLITS if s in labels}
    fig, ax = plt.subplots(figsize=(10, 4))
    x, width = np.arange(len(CLASSES)), 0.8 / len(counts)
    for i, (split, c) in enumerate(counts.items()):
        bars = ax.bar(x + (i - (len(counts) - 1) / 2) * width, c, width, label=f"{split} ({sum(c):,})")
        ax.bar_label(bars, labels=[f"{v:,}" for v in c], fontsize=6, padding=2, rotation=90)
    ax.set_xticks(x, SHORT)
    ax.set_ylabel("images")
    ax.set_ylim(0, 1.18 * max(max(c) for c in counts.values()))
    ax.set_title("Images per class and split")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=len(counts), frameon=False)
    save(fig, path)
    return counts


def sample_grid(images: np.ndarray, labels: np.ndarray, path: Path, per_class: int = 8, seed: int = 0) -> np.ndarray:
    """A row of random examples per class. Returns the drawn indices [10, per_class]."""
    rng = np.random.default_rng(seed)
    picks = np.stack([rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in range(len(CLASSES))])
    fig, axes = plt.subplots(len(CLASSES), per_class, figsize=(per_class * 0.9, len(CLASSES) * 0.95))
    for c, row in enumerate(picks):
        for j, idx in enumerate(row):
            ax = axes[c, j]
            ax.imshow(images[idx], cmap="gray", vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[c, 0].set_ylabel(SHORT[c], rotation=0, ha="right", va="center", fontsize=9)
    fig.subplots_adjust(left=0.12, right=0.99, bottom=0.01, top=0.95, wspace=0.05, hspace=0.08)
    fig.suptitle("Sample images per class (training split)", y=0.985)
    save(fig, path)
    return picks


def mean_images(images: np.ndarray, labels: np.ndarray, path: Path) -> np.ndarray:
    """Per-class mean image (pixel values 0–255). Returns [10, 28, 28] float64."""
    means = np.stack([images[labels == c].mean(axis=0, dtype=np.float64) for c in range(len(CLASSES))])
    fig, axes = plt.subplots(2, 5, figsize=(10, 4.6))
    for c, ax in enumerate(axes.flat):
        ax.imshow(means[c], cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"{CLASSES[c]} (n={int((labels == c).sum()):,})", fontsize=9)
        ax.axis("off")
    fig.suptitle("Mean image per class")
    save(fig, path)
    return means


def training_curves(histories: dict[str, list[dict[str, float]]], path: Path) -> dict[str, list[dict[str, float]]]:
    """Loss and accuracy per epoch, train (solid) vs validation (dashed), one colour per run."""
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(12, 4.2))
    for i, (name, rows) in enumerate(histories.items()):
        colour = f"C{i % 10}"
        ep = [r["epoch"] for r in rows]
        ax_loss.plot(ep, [r["train_loss"] for r in rows], "-", color=colour, label=f"{name} train")
        ax_loss.plot(ep, [r["val_loss"] for r in rows], "--", color=colour, label=f"{name} val")
        ax_acc.plot(ep, [100 * r["train_acc"] for r in rows], "-", color=colour, label=f"{name} train")
        ax_acc.plot(ep, [100 * r["val_acc"] for r in rows], "--", color=colour, label=f"{name} val")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="Loss (train: augmented batches)")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="Accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    ax_acc.legend(fontsize=7, ncol=2, loc="lower right")
    save(fig, path)
    return histories


def confusion(cm: Sequence[Sequence[int]], path: Path, title: str) -> tuple[np.ndarray, np.ndarray]:
    """Counts and row-normalized confusion matrices side by side, numbers in the cells."""
    counts = np.asarray(cm, dtype=np.int64)
    norm = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    fig, axes = plt.subplots(1, 2, figsize=(15, 6.4))
    for ax, data, fmt, label in ((axes[0], counts, "d", "counts"), (axes[1], norm, ".2f", "fraction of true class")):
        im = ax.imshow(data, cmap="Blues")
        high = data.max() / 2
        for i in range(len(data)):
            for j in range(len(data)):
                ax.text(
                    j,
                    i,
                    format(data[i, j], fmt),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if data[i, j] > high else "black",
                )
        ax.set_xticks(range(len(SHORT)), SHORT, rotation=45, ha="right")
        ax.set_yticks(range(len(SHORT)), SHORT)
        ax.set(xlabel="predicted", title=label)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
    axes[0].set_ylabel("true")
    fig.suptitle(title)
    save(fig, path)
    return counts, norm


def _ci_err(rows: list[dict[str, Any]]) -> np.ndarray:
    """Error bars [2, n] (points) from each row's 95% interval of the mean; 0 where one seed has none."""
    return (
        np.array(
            [
                [100 * (r["test_acc_mean"] - r["test_acc_ci_low"]), 100 * (r["test_acc_ci_high"] - r["test_acc_mean"])]
                if r.get("test_acc_ci_low") is not None
                else [0.0, 0.0]
                for r in rows
            ]
        )
        .reshape(-1, 2)
        .T
    )


def kernel_study(rows: list[dict[str, Any]], path: Path, baseline: str) -> list[dict[str, Any]]:
    """Test accuracy (mean, 95% CI error bars) against kernel size, parameters on each point; the `baseline`
    config (the MLP) as a band."""
    return accuracy_by_option(
        rows, "kernel", path, "Kernel-size study", "kernel size", baseline, tick=lambda k: f"{k}×{k}"
    )


def accuracy_by_option(
    rows: list[dict[str, Any]],
    option: str,
    path: Path,
    title: str,
    xlabel: str,
    baseline: str | None = None,
    tick: Any = str,
) -> list[dict[str, Any]]:
    """Test accuracy (mean, 95% CI error bars) against the value of `option` (kernel size, depth), parameters
    and MACs on each point; the `baseline` config (the MLP), if any, as a band."""
    cnn = sorted((r for r in rows if r.get(option) is not None and r["config"] != baseline), key=lambda r: r[option])
    mlp = next((r for r in rows if r["config"] == baseline), None) if baseline else None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    if cnn:
        k = [r[option] for r in cnn]
        mean = np.array([100 * r["test_acc_mean"] for r in cnn])
        ax.errorbar(k, mean, yerr=_ci_err(cnn), fmt="o-", capsize=5, color="C0", label="CNN (mean, 95% CI over seeds)")
        for r, m in zip(cnn, mean, strict=False):
            ax.annotate(
                f"{r['params'] / 1e3:.0f}k params\n{r['macs'] / 1e6:.1f} M MACs\nn={r['n']} seeds",
                (r[option], m),
                textcoords="offset points",
                xytext=(9, 4),
                fontsize=8,
                va="bottom",
            )
        ax.set_xticks(k, [tick(x) for x in k])
        step = min((b - a for a, b in pairwise(k)), default=1)
        ax.set_xlim(min(k) - 0.5 * step, max(k) + 0.8 * step)
    if mlp:
        m = 100 * mlp["test_acc_mean"]
        ax.axhline(m, color="C3", ls="--", label=f"MLP {m:.2f}% ({mlp['params'] / 1e3:.0f}k params, n={mlp['n']})")
        if mlp.get("test_acc_ci_low") is not None:
            ax.axhspan(100 * mlp["test_acc_ci_low"], 100 * mlp["test_acc_ci_high"], color="C3", alpha=0.12)
    ax.set(xlabel=xlabel, ylabel="test accuracy (%)", title=title)
    bottom, top = ax.get_ylim()
    ax.set_ylim(bottom, top + 0.18 * (top - bottom))  # headroom so the point labels clear the title
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    save(fig, path)
    return cnn + ([mlp] if mlp else [])


def accuracy_bars(rows: list[dict[str, Any]], x: str, series: str, path: Path, title: str) -> dict[str, list[Any]]:
    """Grouped bars of test accuracy (mean, 95% CI error bars): one group per value of option `x` (pooling),
    one bar per value of option `series` (head). Returns {series value: [row or None per x value]}."""
    xs = list(dict.fromkeys(r[x] for r in rows))
    ss = list(dict.fromkeys(r[series] for r in rows))
    drawn: dict[str, list[Any]] = {}
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    width = 0.8 / max(1, len(ss))
    low = min((100 * (r.get("test_acc_ci_low") or r["test_acc_mean"]) for r in rows), default=0.0)
    for i, sv in enumerate(ss):
        picked = [next((r for r in rows if r[x] == xv and r[series] == sv), None) for xv in xs]
        drawn[str(sv)] = picked
        where = [j for j, r in enumerate(picked) if r is not None]
        here = [r for r in picked if r is not None]
        pos = np.array(where, dtype=float) + (i - (len(ss) - 1) / 2) * width
        bars = ax.bar(pos, [100 * r["test_acc_mean"] - (low - 1) for r in here], width, bottom=low - 1)
        ax.errorbar(pos, [100 * r["test_acc_mean"] for r in here], yerr=_ci_err(here), fmt="none", capsize=4, color="k")
        bars.set_label(f"{series} {sv}")
        for p, r in zip(pos, here, strict=True):
            ax.annotate(
                f"{100 * r['test_acc_mean']:.2f}",
                (p, 100 * r["test_acc_mean"]),
                xytext=(0, 6),
                textcoords="offset points",
                ha="center",
                fontsize=7,
            )
    off = {f.name: f.default for f in fields(TrainConfig)}.get(x)  # a data setting left out of a label is off
    ax.set_xticks(range(len(xs)), [f"{x} {off if v is None else v}" for v in xs])
    ax.set(ylabel="test accuracy (%)", title=title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    save(fig, path)
    return drawn


def accuracy_by_config(rows: list[dict[str, Any]], path: Path, title: str) -> list[dict[str, Any]]:
    """One bar per config (test accuracy, mean with 95% CI error bars), in table order; a permuted config
    hatched; parameters under each label. Returns the rows drawn."""
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(rows) + 1.5), 4.5))
    archs = list(dict.fromkeys(r["arch"] for r in rows))
    means = [100 * r["test_acc_mean"] for r in rows]
    low = min((100 * (r.get("test_acc_ci_low") or r["test_acc_mean"]) for r in rows), default=0.0)
    for i, (r, m) in enumerate(zip(rows, means, strict=True)):
        ax.bar(
            i,
            m - (low - 1),
            0.7,
            bottom=low - 1,
            color=f"C{archs.index(r['arch']) % 10}",
            hatch="//" if r.get("permute") else None,
            edgecolor="white",
        )
        ax.annotate(f"{m:.2f}", (i, m), xytext=(0, 8), textcoords="offset points", ha="center", fontsize=8)
    ax.errorbar(range(len(rows)), means, yerr=_ci_err(rows), fmt="none", capsize=4, color="k")
    ticks = [
        f"{r['config']}\n{r['params'] / 1e3:,.0f}k params\nn={r['n']}" if r.get("params") else r["config"] for r in rows
    ]
    ax.set_xticks(range(len(rows)), ticks, fontsize=8)
    ax.set(ylabel="test accuracy (%)", title=f"{title} (hatched: pixels permuted; 95% CI over seeds)")
    ax.grid(axis="y", alpha=0.3)
    save(fig, path)
    return rows


def accuracy_by_size(rows: list[dict[str, Any]], path: Path, title: str) -> dict[str, list[dict[str, Any]]]:
    """Test accuracy against the training-set size (log scale), one line per architecture with its 95% CI band
    over seeds. Returns {arch label: rows by size}."""
    by_arch: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r.get("train_size"):
            name = r["config"].rsplit(f"-n{r['train_size']}", 1)[0]
            by_arch.setdefault(name, []).append(r)
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for i, (name, rs) in enumerate(by_arch.items()):
        rs.sort(key=lambda r: r["train_size"])
        x = np.array([r["train_size"] for r in rs])
        mean = np.array([100 * r["test_acc_mean"] for r in rs])
        ax.plot(x, mean, "o-", color=f"C{i}", label=f"{name} (n={min(r['n'] for r in rs)} seeds)")
        lo = np.array(
            [100 * (r["test_acc_ci_low"] if r.get("test_acc_ci_low") is not None else r["test_acc_mean"]) for r in rs]
        )
        hi = np.array(
            [100 * (r["test_acc_ci_high"] if r.get("test_acc_ci_high") is not None else r["test_acc_mean"]) for r in rs]
        )
        ax.fill_between(x, lo, hi, color=f"C{i}", alpha=0.18)
    sizes = sorted({r["train_size"] for rs in by_arch.values() for r in rs})
    ax.set_xscale("log")
    ax.set_xticks(sizes, [f"{n:,}" for n in sizes])
    ax.minorticks_off()
    ax.set(xlabel="training images (log scale; the same optimisation steps at every size)", ylabel="test accuracy (%)")
    ax.set_title(f"{title}: mean and 95% CI over seeds")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    save(fig, path)
    return by_arch


def gap_curves(histories: dict[str, list[list[dict[str, float]]]], path: Path, title: str) -> dict[str, np.ndarray]:
    """Train − validation accuracy per epoch (points), mean over seeds with the min–max band, per config;
    histories: label → one metrics.csv row list per seed. Returns label → mean gap per epoch."""
    means: dict[str, np.ndarray] = {}
    fig, (ax_acc, ax_gap) = plt.subplots(1, 2, figsize=(12, 4.2))
    for i, (label, runs) in enumerate(histories.items()):
        epochs = min(len(r) for r in runs)
        if not epochs:
            continue
        colour = f"C{i % 10}"
        ep = np.arange(1, epochs + 1)
        train = np.array([[100 * row["train_acc"] for row in r[:epochs]] for r in runs])
        val = np.array([[100 * row["val_acc"] for row in r[:epochs]] for r in runs])
        gap = train - val
        means[label] = gap.mean(axis=0)
        ax_acc.plot(ep, train.mean(axis=0), "-", color=colour, label=f"{label} train")
        ax_acc.plot(ep, val.mean(axis=0), "--", color=colour, label=f"{label} validation")
        ax_gap.plot(ep, means[label], "o-", color=colour, label=f"{label} (n={len(runs)} seeds)")
        ax_gap.fill_between(ep, gap.min(axis=0), gap.max(axis=0), color=colour, alpha=0.15)
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="Accuracy (mean over seeds)")
    ax_gap.set(xlabel="epoch", ylabel="train − validation accuracy (points)", title=title)
    ax_gap.axhline(0, color="k", lw=0.6)
    for ax in (ax_acc, ax_gap):
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.legend(fontsize=8, loc="best")
    save(fig, path)
    return means


def per_class_accuracy(recalls: dict[str, np.ndarray], path: Path) -> dict[str, np.ndarray]:
    """Grouped bars of per-class test accuracy (mean over seeds) for each config. recalls: label → [seeds, 10]."""
    means = {label: np.asarray(r, dtype=np.float64).mean(axis=0) for label, r in recalls.items()}
    fig, ax = plt.subplots(figsize=(12, 4.5))
    x, width = np.arange(len(CLASSES)), 0.8 / max(1, len(means))
    for i, (label, m) in enumerate(means.items()):
        ax.bar(x + (i - (len(means) - 1) / 2) * width, 100 * m, width, label=label)
    low = min((100 * m.min() for m in means.values()), default=0.0)
    ax.set_ylim(max(0.0, low - 5), 100)
    ax.set_xticks(x, SHORT)
    ax.set(ylabel="test accuracy (%)", title="Per-class test accuracy by architecture (mean over seeds)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncol=len(means), loc="upper center", bbox_to_anchor=(0.5, -0.07), frameon=False)
    save(fig, path)
    return means


def tile(maps: np.ndarray, cols: int) -> np.ndarray:
    """Channels [C,H,W] → one mosaic with a 1-pixel NaN gutter (drawn as the background colour)."""
    c, h, w = maps.shape
    rows = -(-c // cols)
    out = np.full((rows * (h + 1) - 1, cols * (w + 1) - 1), np.nan)
    for i in range(c):
        r, q = divmod(i, cols)
        out[r * (h + 1) : r * (h + 1) + h, q * (w + 1) : q * (w + 1) + w] = maps[i]
    return out


def mosaic_columns(maps: np.ndarray) -> int:
    """Maps per row: 8 of 28×28, 16 of 14×14, 32 of 7×7, so every layer's mosaic has about the same width."""
    return max(1, min(len(maps), 8 * 28 // maps.shape[-1]))


def feature_maps(image: np.ndarray, layers: Sequence[np.ndarray], path: Path, title: str) -> list[np.ndarray]:
    """The input and every channel of each given conv layer (the notebook's conv1 32×28×28 and conv2 64×14×14),
    one colour scale per layer.

    conv1 is tiled 8 wide and conv2 16 wide (`mosaic_columns`), so both mosaics have the same width and every
    map is drawn at the same size per pixel: a conv2 map covers the same image area at half the resolution.
    """
    tiles = [tile(maps, mosaic_columns(maps)) for maps in layers]
    ratios = [max(0.6, t.shape[0] / t.shape[1] * 3.2 * 1.15) for t in tiles]  # rows as tall as their mosaic
    fig = plt.figure(figsize=(12, 1.2 + 3.2 * sum(ratios)))
    grid = fig.add_gridspec(len(layers), 2, width_ratios=[1, 3.2], height_ratios=ratios, wspace=0.05, hspace=0.25)
    ax_in = fig.add_subplot(grid[0, 0])
    ax_in.imshow(image, cmap="gray")
    ax_in.set_title("input (28×28)")
    cmap = plt.get_cmap("magma").with_extremes(bad="white")  # NaN gutters between maps
    for row, (maps, mosaic) in enumerate(zip(layers, tiles, strict=True)):
        name = f"conv{row + 1}"
        ax = fig.add_subplot(grid[row, 1])
        im = ax.imshow(mosaic, cmap=cmap, vmin=0, vmax=max(float(maps.max()), 1e-6))
        dead = int((maps.reshape(len(maps), -1).max(axis=1) <= 0).sum())
        ax.set_title(
            f"{name}: {maps.shape[0]} channels × {maps.shape[1]}×{maps.shape[2]} (after ReLU; {dead} silent)",
            fontsize=10,
        )
        fig.colorbar(im, ax=ax, fraction=0.03, pad=0.01)
        ax.axis("off")
    ax_in.axis("off")
    fig.suptitle(title)
    save(fig, path)
    return list(layers)


def translation_study(data: Curves, path: Path, title: str) -> Curves:
    """Top left: accuracy against shift distance per config (mean over seeds, Student-t 95% band); top right: how
    far each stage of the CNNs moves under a 1-px shift against how far it is from its own shifted output
    (2 px); below: the accuracy over every (dx, dy) per config, mean over seeds."""
    labels = list(data.heatmap)
    cols = max(1, len(labels))
    fig = plt.figure(figsize=(max(12.0, 2.3 * cols), 8.2))
    rows = fig.add_gridspec(2, 1, height_ratios=[1.5, 1], hspace=0.35)
    top = rows[0].subgridspec(1, 2, wspace=0.22)
    bottom = rows[1].subgridspec(1, cols, wspace=0.35)
    colours = {label: f"C{i % 10}" for i, label in enumerate(dict.fromkeys([*labels, *data.equivariance]))}
    _shift_curves(fig.add_subplot(top[0, 0]), data.radius, colours)
    _equivariance_panel(fig.add_subplot(top[0, 1]), data.equivariance, colours)
    low = 100 * min((float(h.min()) for h in data.heatmap.values()), default=0.0)
    high = 100 * max((float(h.max()) for h in data.heatmap.values()), default=1.0)
    for i, label in enumerate(labels):
        ax = fig.add_subplot(bottom[0, i])
        h = data.heatmap[label]
        m = h.shape[0] // 2
        extent = (-m - 0.5, m + 0.5, m + 0.5, -m - 0.5)
        im = ax.imshow(100 * h, cmap="viridis", vmin=low, vmax=high, extent=extent)
        ax.set_title(f"{label}\n(n={len(data.radius[label])} seeds)", fontsize=9)
        ax.set_xticks([-m, 0, m])
        ax.set_yticks([-m, 0, m])
        ax.set_xlabel("dx (px, → right)", fontsize=8)
        if i == 0:
            ax.set_ylabel("dy (px, ↓ down)", fontsize=8)
        ax.tick_params(labelsize=7)
    if labels:
        fig.colorbar(im, ax=fig.axes[2:], fraction=0.02, pad=0.01, label="accuracy (%)")
    fig.suptitle(title)
    save(fig, path)
    return data


def _shift_curves(ax: Any, radius: dict[str, np.ndarray], colours: dict[str, str]) -> None:
    for label, acc in radius.items():
        r = np.arange(acc.shape[1])
        mean = 100 * acc.mean(axis=0)
        colour = colours[label]
        ls = "--" if "shift" in label else "-"
        ax.plot(r, mean, "o" + ls, color=colour, label=f"{label} (n={len(acc)})")
        if len(acc) > 1:  # clipped to 0–100%: two seeds' t-interval (t = 12.7) can reach far past both
            bands = [summarize(list(100 * acc[:, j])) for j in range(acc.shape[1])]
            low, high = (np.clip([getattr(b, k) for b in bands], 0, 100) for k in ("ci_low", "ci_high"))
            ax.fill_between(r, low, high, color=colour, alpha=0.15)
    ax.set(
        xlabel="shift distance max(|dx|, |dy|) (px)",
        ylabel="test accuracy (%)",
        title="Accuracy on shifted test images (mean, 95% CI over seeds)",
    )
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")


def _equivariance_panel(ax: Any, measured: dict[str, list[dict[str, Any]]], colours: dict[str, str]) -> None:
    names = {st["stage"] for stages in measured.values() for st in stages}
    order = sorted(
        names, key=lambda n: (n in ("gap", "logits"), n == "logits", n[-1:], n)
    )  # conv1 pool1 conv2 … gap logits
    for label, stages in measured.items():
        colour = colours[label]
        at = {st["stage"]: st for st in stages}
        xs = [order.index(name) for name in at]
        ax.plot(xs, [at[n]["change"]["1"] for n in at], "o-", color=colour, label=label)
        off = [(order.index(n), e) for n in at if (e := at[n]["equivariance_error"]["2"]) is not None]
        if off:
            ax.plot(*zip(*off, strict=True), "x", color=colour, ms=9, mew=2)
    ax.set_xticks(range(len(order)), order)
    ax.set_ylim(bottom=-0.03)
    ax.set(
        ylabel="‖difference‖ / ‖unshifted output‖",
        title="Equivariance by stage (lowest seed's run)\n● how far it moves (1 px shift) · × how far from its "
        "own shifted output (2 px)",
    )
    ax.title.set_fontsize(10)
    ax.grid(alpha=0.3)
    if measured:
        ax.legend(fontsize=7, loc="upper right")
    else:
        ax.text(0.5, 0.5, "no CNN run measured", ha="center", va="center", transform=ax.transAxes)


def ladder(rows: list[dict[str, Any]], path: Path) -> list[dict[str, Any]]:
    """The ladder (study.ladder): one horizontal bar per rung, bottom to top, test accuracy mean ± std over
    seeds, MACs and seeds beside each; a rung without runs says so. Returns the rows drawn."""
    fig, ax = plt.subplots(figsize=(8.5, 0.55 * len(rows) + 1.5))
    trained = [r for r in rows if r["n"]]
    low = min((100 * r["test_acc_mean"] for r in trained), default=90.0) - 1.5
    for i, r in enumerate(rows):
        if not r["n"]:
            ax.text(low + 0.1, i, "not trained", va="center", fontsize=8, color="0.45")
            continue
        m = 100 * r["test_acc_mean"]
        ax.barh(i, m - low, 0.65, left=low, color="C0" if r["config"].startswith(("mlp", "cnn")) else "C1")
        ax.errorbar(m, i, xerr=100 * r["test_acc_std"], fmt="none", capsize=3, color="k")
        end = m + 100 * r["test_acc_std"]
        ax.text(end + 0.1, i, f" {m:.2f}%  ·  {r['macs'] / 1e6:.1f} M MACs  ·  n={r['n']}", va="center", fontsize=8)
    ax.set_yticks(range(len(rows)), [f"{r['step']}\n{r['config']}" for r in rows], fontsize=8)
    right = max((100 * (r["test_acc_mean"] + r["test_acc_std"]) for r in trained), default=low + 5)
    ax.set_xlim(low, right + 2.2)
    ax.set(xlabel="test accuracy (%), mean ± std over seeds", title="The ladder: one ingredient at a time")
    ax.grid(axis="x", alpha=0.3)
    save(fig, path)
    return rows


def forest(verdicts: Sequence[dict[str, Any]], path: Path, title: str) -> list[Any]:
    """Every claim's differences as a forest (`study.forest.rows`): each difference's estimate and 95% interval in
    points (symmetric-log beyond ±1), the grey band its metric's margin, the verdict and adjusted p on the right;
    a claim not tested is named without an interval. Returns the rows drawn."""
    from .forest import colour, rows

    drawn = rows(verdicts)
    if not drawn:
        raise ValueError("no claims to draw")
    fig, ax = plt.subplots(figsize=(11, 1.2 + 0.34 * len(drawn)))
    ys = np.arange(len(drawn))[::-1]
    for y, r in zip(ys, drawn, strict=True):
        c = colour(r.verdict)
        ax.barh(y, 2 * r.margin, left=-r.margin, height=0.7, color="0.88", zorder=0)
        if not np.isnan(r.low):
            ax.hlines(y, r.low, r.high, color=c, lw=2, zorder=2)
        if not np.isnan(r.estimate):
            ax.plot(r.estimate, y, "o", color=c, ms=5, zorder=3)
        else:
            ax.text(0, y, "not tested", ha="center", va="center", fontsize=7, color=c)
        if r.first:
            p = "" if r.p_adjusted is None else f"  p_adj {r.p_adjusted:.3g}"
            ax.annotate(
                f"{r.verdict}{p}", (1.01, y), xycoords=("axes fraction", "data"), va="center", fontsize=7, color=c
            )
    labels = [(_short(r.claim) + "\n" if r.first else "") + r.name for r in drawn]
    ax.set_yticks(ys, labels, fontsize=6.5)
    ax.axvline(0, color="0.3", lw=0.8)
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlabel("difference a − b (points; symmetric log beyond ±1); grey: the margin ±m")
    ax.set_ylim(-0.7, len(drawn) - 0.3)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    save(fig, path)
    return drawn


def _short(text: str, width: int = 70) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
