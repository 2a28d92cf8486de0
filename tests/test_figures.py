"""Figures: the data behind each one (synthetic and real Fashion-MNIST), PNGs written, report and featuremaps CLIs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from fmnist_tui.cli import app
from fmnist_tui.core.config import TrainConfig
from fmnist_tui.core.data import SYSTEM_DIR, load_dataset
from fmnist_tui.study import figures
from fmnist_tui.study.report import FIGURES, ReportBuilder
from tests.conftest import cheapest_shipped_model

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path: Path, min_size: tuple[int, int] = (200, 150)) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 2000, path
    with Image.open(path) as img:
        assert img.size[0] >= min_size[0] and img.size[1] >= min_size[1]
        assert np.asarray(img.convert("L")).std() > 5  # not a blank canvas


@pytest.mark.slow
def test_dataset_figures_data(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 12)
    images = rng.integers(0, 256, (len(labels), 28, 28), dtype=np.uint8)
    counts = figures.class_distribution({"train": labels, "val": labels[:50], "test": labels[::2]}, tmp_path / "d.png")
    assert counts["train"] == [12] * 10 and counts["test"] == [6] * 10 and sum(counts["val"]) == 50
    means = figures.mean_images(images, labels, tmp_path / "m.png")
    assert np.allclose(means[3], images[labels == 3].mean(axis=0))
    picks = figures.sample_grid(images, labels, tmp_path / "s.png", per_class=4)
    assert picks.shape == (10, 4) and all((labels[row] == c).all() for c, row in enumerate(picks))
    for name in ("d", "m", "s"):
        assert_png(tmp_path / f"{name}.png")


def test_confusion_and_tile(tmp_path: Path) -> None:
    cm = np.diag([90] * 10) + 1
    counts, norm = figures.confusion(cm.tolist(), tmp_path / "c.png", "t")
    assert (counts == cm).all() and np.allclose(norm.sum(axis=1), 1) and norm[0, 0] == pytest.approx(91 / 100)
    assert_png(tmp_path / "c.png")
    mosaic = figures.tile(np.ones((64, 14, 14)), 16)
    assert mosaic.shape == (4 * 15 - 1, 16 * 15 - 1) and np.isnan(mosaic).sum() == mosaic.size - 64 * 14 * 14


def test_study_figures(tmp_path: Path) -> None:
    rows = [
        {
            "config": "mlp",
            "arch": "mlp",
            "kernel": None,
            "params": 235146,
            "macs": 234752,
            "n": 3,
            "test_acc_mean": 0.89,
            "test_acc_ci_low": 0.88,
            "test_acc_ci_high": 0.90,
        }
    ]
    rows += [
        {
            "config": f"cnn-k{k}",
            "arch": "cnn",
            "kernel": k,
            "params": p,
            "macs": 10**6 * k,
            "n": 3,
            "test_acc_mean": 0.92 - k / 1000,
            "test_acc_ci_low": 0.91 - k / 1000,
            "test_acc_ci_high": 0.93 - k / 1000,
        }
        for k, p in ((7, 504842), (3, 421642), (5, 454922))
    ]
    drawn = figures.kernel_study(rows, tmp_path / "k.png", baseline="mlp")
    assert [r["kernel"] for r in drawn] == [3, 5, 7, None]  # CNN points in kernel order, then the MLP band
    means = figures.per_class_accuracy(
        {"mlp": np.full((3, 10), 0.8), "cnn-k3": np.full((2, 10), 0.9)}, tmp_path / "p.png"
    )
    assert np.allclose(means["cnn-k3"], 0.9)
    hist = {
        "r": [
            {"epoch": e, "train_loss": 1 / e, "val_loss": 1.1 / e, "train_acc": 0.5 + e / 10, "val_acc": 0.5 + e / 11}
            for e in (1, 2, 3)
        ]
    }
    assert figures.training_curves(hist, tmp_path / "t.png") == hist
    for name in ("k", "p", "t"):
        assert_png(tmp_path / f"{name}.png")


# --- real Fashion-MNIST --------------------------------------------------------------------------
def test_forest_of_every_claim(tmp_path: Path) -> None:
    """The forest: a row per difference (a claim with two has two), a claim not tested named without an interval;
    and the report's section of it over hand-made runs, every study's claims in one family."""
    from tests.tui_support import fake_run

    verdicts = [
        {
            "claim": "every CNN beats the MLP",
            "study": "kernel",
            "verdict": "supported",
            "margin": 0.005,
            "p_adjusted": 0.002,
            "differences": [
                {"name": "cnn-k3 − mlp", "estimate": 0.033, "ci_low": 0.025, "ci_high": 0.041},
                {"name": "cnn-k5 − mlp", "estimate": 0.034, "ci_low": 0.026, "ci_high": 0.042},
            ],
        },
        {
            "claim": "3×3 beats 5×5",
            "study": "kernel",
            "verdict": "fragile",
            "margin": 0.005,
            "p_adjusted": 0.9,
            "differences": [{"name": "cnn-k3 − cnn-k5", "estimate": -0.001, "ci_low": -0.008, "ci_high": 0.006}],
        },
        {
            "claim": "the default model beats the notebook's CNN",
            "study": "ladder",
            "verdict": "not tested",
            "margin": 0.005,
            "differences": [],
        },
    ]
    drawn = figures.forest(verdicts, tmp_path / "forest.png", "claims")
    assert [(r.name, r.first) for r in drawn] == [
        ("cnn-k3 − mlp", True),
        ("cnn-k5 − mlp", False),
        ("cnn-k3 − cnn-k5", True),
        ("", True),
    ]
    assert drawn[0].estimate == pytest.approx(3.3) and drawn[0].margin == pytest.approx(0.5)
    assert_png(tmp_path / "forest.png")
    with pytest.raises(ValueError):
        figures.forest([], tmp_path / "none.png", "claims")

    runs = tmp_path / "runs"
    for seed in range(3):
        fake_run(runs, "mlp", None, seed, 0.80 + 0.002 * seed)
        fake_run(runs, "cnn", 3, seed, 0.90 + 0.001 * seed)
    section = ReportBuilder(tmp_path / "rep", runs, shipped=False).draw("claims")
    assert_png(section.png) and section.png.name == FIGURES["claims"]
    assert "Each p is corrected by Holm's method over the family of the lab's claims" in section.text
    assert "| claim | difference | estimate | 95% CI | margin | verdict | adjusted p |" in section.text
    assert "| the CNN overfits less than the MLP" in section.text


needs_data = pytest.mark.skipif(not SYSTEM_DIR.is_dir(), reason="real Fashion-MNIST not installed")


@pytest.fixture(scope="module")
def real_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An mlp and a cnn-k3, one epoch on 256 images each (the test set is always all 10,000)."""
    from fmnist_tui.training.trainer import train

    root = tmp_path_factory.mktemp("real") / "checkpoints"
    for arch, kernel in (("mlp", None), ("cnn", 3)):
        train(TrainConfig.create(arch=arch, kernel=kernel, epochs=1, subset=256, threads=1, out=str(root)))
    return root


@pytest.mark.realdata
@needs_data
def test_real_dataset_figures(tmp_path: Path) -> None:
    builder = ReportBuilder(tmp_path, tmp_path / "none")
    counts = builder.draw("distribution").data
    assert (np.add(counts["train"], counts["val"]) == 6000).all() and counts["test"] == [1000] * 10
    means = builder.draw("means").data
    ds = load_dataset()
    images = np.concatenate([ds.train_images, ds.val_images])
    labels = np.concatenate([ds.train_labels, ds.val_labels])
    for c in (0, 6, 9):
        assert np.allclose(means[c], images[labels == c].astype(np.float64).mean(axis=0))


@pytest.mark.realdata
@pytest.mark.slow
@needs_data
def test_real_report(real_runs: Path, tmp_path: Path) -> None:
    models = cheapest_shipped_model(tmp_path / "models")
    report = ReportBuilder(tmp_path / "rep", real_runs, onnx_dir=models).build()
    # every figure is drawn, but the data study's: it trains its own recipe, so these runs are not its runs
    assert report.skipped == {} and set(report.absent) == {"data"}
    assert set(report.sections) == set(FIGURES) - {"data"}
    counts, norm = report.sections["confusion"].data
    assert (counts.sum(axis=1) == 1000).all() and np.allclose(norm.sum(axis=1), 1)
    conv1, conv2 = report.sections["featuremaps"].data
    assert conv1.shape == (32, 28, 28) and conv2.shape == (64, 14, 14) and conv1.min() >= 0
    drawn = [name for key, name in FIGURES.items() if key != "data"]
    for name in drawn:
        assert_png(tmp_path / "rep" / name)
    md = (tmp_path / "rep" / "report.md").read_text()
    assert all(f"]({name})" in md for name in drawn) and "fmnist study data" in md  # how to train it
    summary = json.loads((real_runs / "cnn-k3-s0" / "summary.json").read_text())
    assert f"{100 * summary['test_accuracy']:.2f}" in md and "every class has exactly 6,000" in md


@pytest.mark.realdata
@pytest.mark.slow
@needs_data
def test_featuremaps_cli(real_runs: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    base = ["featuremaps", "--runs", str(real_runs)]
    res = runner.invoke(app, [*base, "--run", "cnn-k3-s0", "--test-index", "3", "--out", str(tmp_path / "f.png")])
    assert res.exit_code == 0, res.output
    assert_png(tmp_path / "f.png")
    Image.fromarray(255 - load_dataset().test_images[5]).resize((90, 90)).save(tmp_path / "shirt.png")  # dark on light
    res = runner.invoke(
        app, [*base, "--run", "cnn-k3-s0", str(tmp_path / "shirt.png"), "--out", str(tmp_path / "g.png")]
    )
    assert res.exit_code == 0 and "32×28×28" in res.stdout
    res = runner.invoke(app, [*base, "--run", "mlp-s0", "--test-index", "0"])
    assert res.exit_code == 2 and "no conv layers" in res.stderr
    res = runner.invoke(app, [*base, "--run", "nope", "--test-index", "0"])
    assert res.exit_code == 1 and "unknown run 'nope'" in res.stderr
    res = runner.invoke(app, [*base, "--run", "cnn-k3-s0"])
    assert res.exit_code == 2 and "exactly one of IMAGE or --test-index" in res.stderr
    res = runner.invoke(app, [*base, "--run", "cnn-k3-s0", "--test-index", "10000"])
    assert res.exit_code == 2 and "out of range" in res.stderr


@pytest.mark.slow
def test_report_cli_without_runs(cli_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FMNIST_DATA", cli_env["FMNIST_DATA"])
    runner = CliRunner()
    res = runner.invoke(app, ["report", "--out", str(tmp_path / "r"), "--runs", str(tmp_path / "empty")])
    assert res.exit_code == 1 and "skipped kernel_study.png" in res.stderr and "no finished runs" in res.stderr
    assert_png(tmp_path / "r" / "class_distribution.png")
    assert "## Not drawn" in (tmp_path / "r" / "report.md").read_text()
    res = runner.invoke(app, ["report", "--out", str(tmp_path / "r"), "--figure", "pie"])
    assert res.exit_code == 2 and "--figure pie is unknown" in res.stderr
