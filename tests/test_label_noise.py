"""Label noise (`--label-noise P`): exactly P% of the training labels become another class, fixed by the seed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from fmnist_tui.cli import app
from fmnist_tui.core.config import TrainConfig
from fmnist_tui.core.data import noisy_labels
from fmnist_tui.core.errors import ConfigError

runner = CliRunner()


@pytest.mark.parametrize("n,percent", [(1000, 20), (1000, 40), (997, 60), (60000, 40), (7, 50)])
def test_exactly_the_asked_share_changes_and_every_change_is_wrong(n: int, percent: int) -> None:
    labels = np.random.default_rng(1).integers(0, 10, size=n)
    noisy = noisy_labels(labels, percent, seed=0)
    changed = noisy != labels
    assert changed.sum() == round(percent * n / 100)
    assert noisy.dtype == labels.dtype and set(np.unique(noisy)) <= set(range(10))
    assert np.array_equal(labels, np.random.default_rng(1).integers(0, 10, size=n))  # the input is untouched


def test_the_seed_fixes_which_labels_and_which_wrong_classes() -> None:
    labels = np.random.default_rng(2).integers(0, 10, size=5000)
    a, again, other = (noisy_labels(labels, 40, seed) for seed in (0, 0, 1))
    assert np.array_equal(a, again)
    assert not np.array_equal(a != labels, other != labels)
    wrong = a[a != labels]
    assert len(np.unique(wrong)) == 10  # the wrong classes are spread over all ten, not shifted by one
    assert np.array_equal(noisy_labels(labels, 0, 3), labels)
    assert (noisy_labels(labels, 100, 3) != labels).all()


@pytest.mark.parametrize("bad", [101, -1, 0.5, True])
def test_a_label_noise_that_is_not_a_whole_percent_is_refused(bad: object) -> None:
    with pytest.raises(ConfigError, match="label_noise"):
        TrainConfig(arch="mlp", label_noise=bad)  # type: ignore[arg-type]


def test_train_with_label_noise_names_and_records_the_run(tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "runs"
    args = ["train", "--arch", "mlp", "--epochs", "1", "--threads", "1", "--data-dir", str(tiny_data)]
    args += ["--out", str(out)]
    result = runner.invoke(app, [*args, "--label-noise", "40"])
    assert result.exit_code == 0, result.output
    config = json.loads((out / "mlp-noise40-s0" / "config.json").read_text())
    assert config["label_noise"] == 40
    refused = runner.invoke(app, [*args, "--label-noise", "101"])
    assert refused.exit_code == 2 and "label-noise" in refused.output and "Traceback" not in refused.output
    assert sorted(p.name for p in out.iterdir()) == ["mlp-noise40-s0"]
