"""Results across runs: loading with warnings, grouping, the study's comparisons and verdicts, `fmnist results`."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from fmnist_tui.cli import app
from fmnist_tui.core.config import TrainConfig
from fmnist_tui.core.data import CLASSES
from fmnist_tui.study.results import group_records, load_records, to_csv, to_markdown
from fmnist_tui.study.studies import STUDIES


def analyse(groups: list) -> object:
    """The kernel study over `groups`, its verdicts corrected over the lab's family."""
    return STUDIES["kernel"].run(groups)


PARAMS = {"mlp": 235146, "cnn-k3": 421642, "cnn-k5": 454922, "cnn-k7": 504842}


def fake_run(
    root: Path,
    arch: str,
    kernel: int | None,
    seed: int,
    acc: float,
    recalls: list[float] | None = None,
    epochs: int = 15,
) -> Path:
    """A finished run folder with a hand-made config.json and summary.json (no training)."""
    cfg = TrainConfig.create(arch=arch, kernel=kernel, seed=seed, epochs=epochs, out=str(root))
    folder = cfg.run_dir
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(cfg.to_dict()))
    recalls = recalls if recalls is not None else [acc] * 10
    label = f"cnn-k{kernel}" if kernel else arch
    summary = {
        "test_accuracy": acc,
        "finished": True,
        "params": PARAMS[label],
        "macs": 1000,
        "train_seconds": 60.0,
        "per_class": [
            {"class": c, "recall": r, "precision": r, "f1": r, "support": 1000}
            for c, r in zip(CLASSES, recalls, strict=False)
        ],
    }
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


@pytest.fixture
def grid(tmp_path: Path) -> Path:
    """Three seeds of four configs: k3 reliably +0.5 over k5, k5 ≈ k7 (noise), every CNN ≫ mlp."""
    root = tmp_path / "checkpoints"
    seed_effect = [0.0, 0.004, -0.003]  # a spread between seeds larger than the k3−k5 gap
    noise = [0.002, -0.001, -0.0015]
    for s in range(3):
        base = 0.915 + seed_effect[s]
        mlp_recalls = [0.80] * 10
        cnn_recalls = [0.80] * 10
        for name in ("Shirt", "Coat", "Pullover", "T-shirt/top"):
            cnn_recalls[CLASSES.index(name)] = 0.85 + 0.001 * s  # convolution helps these
        fake_run(root, "mlp", None, s, base - 0.03, mlp_recalls)
        fake_run(root, "cnn", 3, s, base + 0.005 + 0.0002 * s, cnn_recalls)
        fake_run(root, "cnn", 5, s, base, cnn_recalls)
        fake_run(root, "cnn", 7, s, base + noise[s], cnn_recalls)
    return root


def test_groups_and_rows(grid: Path) -> None:
    records, warnings = load_records(grid)
    assert len(records) == 12 and warnings == []
    groups = group_records(records)
    assert [g.label for g in groups] == ["mlp", "cnn-k3", "cnn-k5", "cnn-k7"]
    row = groups[1].row()
    # the keys the TUI reads stay; the study adds its own
    for key in (
        "config",
        "arch",
        "kernel",
        "seeds",
        "n",
        "params",
        "macs",
        "test_acc_mean",
        "test_acc_std",
        "train_seconds_mean",
        "runs",
        "receptive_field",
        "test_acc_ci_low",
        "test_acc_ci_high",
    ):
        assert key in row
    accs = groups[1].accuracies
    assert row["test_acc_mean"] == pytest.approx(np.mean(accs)) and row["test_acc_std"] == pytest.approx(
        np.std(accs, ddof=1)
    )
    assert row["test_acc_ci_low"] < row["test_acc_mean"] < row["test_acc_ci_high"]


def test_bad_run_folders_are_skipped_with_a_warning(grid: Path) -> None:
    (grid / "cnn-k3-s0" / "summary.json").write_text("{not json")
    (grid / "cnn-k5-s0" / "summary.json").unlink()
    (grid / "cnn-k7-s0" / "summary.json").write_text(json.dumps({"finished": True}))
    records, warnings = load_records(grid)
    assert len(records) == 9
    text = "\n".join(warnings)
    for name in ("cnn-k3-s0", "cnn-k5-s0", "cnn-k7-s0"):
        assert f"skipped {name}:" in text
    assert "corrupted" in text and "unfinished" in text


def test_study_verdicts_follow_the_numbers(grid: Path) -> None:
    study = analyse(group_records(load_records(grid)[0]))
    by_claim = {v["claim"]: v for v in study.verdicts}
    # +0.52 points paired over seeds (the seed spread cancels), but the 10,000 test images every seed shares do not
    # average out: their sampling term (bounded from the aggregates) leaves the interval holding 0
    k3k5 = by_claim["3×3 beats 5×5"]
    assert k3k5["verdict"] == "not supported at this sample size (3 seeds)" and "still hold 0" in k3k5["detail"]
    assert by_claim["5×5 beats 7×7"]["verdict"].startswith("not supported at this sample size")
    assert by_claim["every CNN beats the MLP"]["verdict"] == "supported"
    hard = next(v for k, v in by_claim.items() if k.startswith("convolution helps most"))
    assert hard["verdict"] == "supported"  # one contrast: the three classes' mean gain minus the other seven's
    # each of Shirt, Coat, Pullover gains 5.1 points (mean over seeds); of the other seven T-shirt/top alone does
    assert hard["differences"][0]["estimate"] == pytest.approx(0.051 - 0.051 / 7, abs=1e-9)
    k3k5 = next(c for c in study.comparisons if c.name == "cnn-k3 − cnn-k5")
    assert k3k5.test.mean_diff == pytest.approx(0.0052, abs=1e-9) and k3k5.seeds == [0, 1, 2]
    gains = [c.test.mean_diff for c in study.per_class]
    assert gains[CLASSES.index("Shirt")] == pytest.approx(0.051) and gains[CLASSES.index("Trouser")] == 0


def test_contradicted_and_untested(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    for s, (a, b) in enumerate([(0.90, 0.91), (0.89, 0.905), (0.91, 0.921)]):
        fake_run(root, "cnn", 3, s, a)
        fake_run(root, "cnn", 5, s, b)
    by_claim = {v["claim"]: v for v in analyse(group_records(load_records(root)[0])).verdicts}
    assert by_claim["3×3 beats 5×5"]["verdict"] == "contradicted"
    assert by_claim["every CNN beats the MLP"]["verdict"] == "not tested"


def test_markdown_and_csv(grid: Path) -> None:
    rows = [g.row() for g in group_records(load_records(grid)[0])]
    md = to_markdown(rows)
    assert md.count("\n") == 6 and "| cnn-k3 | 421,642 |" in md and "—" in md  # latency unmeasured: a dash
    parsed = list(csv.DictReader(io.StringIO(to_csv(rows))))
    assert [r["config"] for r in parsed] == ["mlp", "cnn-k3", "cnn-k5", "cnn-k7"]
    assert (
        float(parsed[1]["test_acc_mean"]) == pytest.approx(rows[1]["test_acc_mean"]) and parsed[1]["latency_ms"] == ""
    )


@pytest.mark.slow
def test_results_cli_formats(grid: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["results", "--runs", str(grid), "--format", "json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert [r["config"] for r in doc["table"]] == ["mlp", "cnn-k3", "cnn-k5", "cnn-k7"]
    assert {v["claim"] for v in doc["verdicts"]} >= {"3×3 beats 5×5", "every CNN beats the MLP"}
    res = runner.invoke(app, ["results", "--runs", str(grid), "--format", "csv"])
    assert res.exit_code == 0 and res.stdout.splitlines()[0].startswith("config,params")
    res = runner.invoke(app, ["results", "--runs", str(grid), "--format", "markdown"])
    assert res.exit_code == 0 and "## Verdicts" in res.stdout
    res = runner.invoke(app, ["results", "--runs", str(grid)])
    assert res.exit_code == 0 and "cnn-k3 − cnn-k5" in res.stdout


def test_results_cli_empty_and_bad_format(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["results", "--runs", str(tmp_path / "nothing")])
    assert res.exit_code == 1 and "does not exist" in res.stderr
    (tmp_path / "empty").mkdir()
    res = runner.invoke(app, ["results", "--runs", str(tmp_path / "empty")])
    assert res.exit_code == 1 and "no finished runs" in res.stderr
    assert runner.invoke(app, ["results", "--format", "xml"]).exit_code == 2
