"""Per-image predictions (core/predictions.py): the file round-trips, names its weights, refuses what it cannot
trust; the paired test-set term it gives (analysis.paired_sd) on hand-made runs with a known answer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fmnist_tui.core import predictions
from fmnist_tui.core.runs import Run
from fmnist_tui.study.analysis import compare
from fmnist_tui.study.results import group_records, load_records
from tests.test_results import fake_run

LABELS = np.repeat(np.arange(10), 10)  # 100 test images, 10 of each class


def test_the_file_round_trips_and_names_its_weights(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    predicted = LABELS.copy()
    predicted[:3] = 9
    path = predictions.write(folder, predicted, LABELS)
    doc = json.loads(path.read_text())
    assert doc["images"] == 100 and doc["weights_sha256"] is None and len(doc["predicted"]) == 100
    labels, back = predictions.read(Run(folder))
    assert (labels == LABELS).all() and (back == predicted).all()
    (folder / "best.safetensors").write_bytes(b"other weights")  # written after: no longer these weights' file
    assert predictions.read(Run(folder)) is None
    predictions.write(folder, predicted, LABELS)
    assert predictions.read(Run(folder)) is not None
    path.write_text('{"version": 1, "labels": "12", "predicted": "1x"}')
    assert predictions.read(Run(folder)) is None
    with pytest.raises(ValueError):
        predictions.write(folder, predicted[:5], LABELS)


def _runs(root: Path, wrong: dict[str, set[int]]) -> dict:
    """Two seeds of each config with predictions that are right except on the images `wrong` names."""
    for label, misses in wrong.items():
        kernel = int(label[-1]) if label.startswith("cnn") else None
        for seed in (0, 1):
            folder = fake_run(root, "cnn" if kernel else "mlp", kernel, seed, 1 - len(misses) / 100 + 0.001 * seed)
            predicted = LABELS.copy()
            for i in misses:
                predicted[i] = (LABELS[i] + 1) % 10
            predictions.write(folder, predicted, LABELS)
    return {g.label: g for g in group_records(load_records(root)[0])}


def test_the_paired_term_is_zero_for_identical_predictions_and_exact_for_one_image(tmp_path: Path) -> None:
    groups = _runs(tmp_path / "same", {"cnn-k3": {0, 1, 2}, "cnn-k5": {0, 1, 2}})
    same = compare(groups["cnn-k3"], groups["cnn-k5"])
    assert same.per_image and same.diff.test_sd == 0.0  # the same images wrong: the test set cannot move them apart
    # cnn-k5 wrong on one more image, of class 5: D = +1 there, 0 on its class's 9 others and everywhere else, so
    # var(D | class 5) = (0.9² + 9 · 0.1²) / 9 = 0.1, and the accuracy weighs class 5 by 10/100:
    # τ² = 0.1² · 0.1 / 10 = 1e-4
    groups = _runs(tmp_path / "one", {"cnn-k3": {0, 1, 2}, "cnn-k5": {0, 1, 2, 50}})
    one = compare(groups["cnn-k3"], groups["cnn-k5"])
    assert one.per_image and one.diff.test_sd == pytest.approx(0.01)
    assert "test images 1.00, paired per image; 2 seeds" in one.describe()
    assert one.to_dict()["with_test_set"]["test_term"] == "paired per image"


def test_without_predictions_on_every_run_the_bound_is_used(tmp_path: Path) -> None:
    groups = _runs(tmp_path, {"cnn-k3": {0, 1, 2}, "cnn-k5": {0, 1, 2, 50}})
    (groups["cnn-k5"].records[1].run.path / predictions.FILE).unlink()
    predictions._read.cache_clear()
    bounded = compare(groups["cnn-k3"], groups["cnn-k5"])
    assert not bounded.per_image and bounded.diff.test_sd == pytest.approx(
        np.sqrt((0.9705 * 0.0295 + 0.9605 * 0.0395) / 10_000)  # the aggregates' bound (summaries count 10,000 images)
    )


@pytest.mark.slow
def test_backfill_writes_the_summarys_own_evaluation(tmp_path: Path, tiny_data: Path) -> None:
    """A run trained on the synthetic data: backfill evaluates its best weights and writes predictions.json that
    give its summary's accuracy; a second backfill leaves it alone; a run without weights is skipped."""
    from fmnist_tui.core.config import TrainConfig
    from fmnist_tui.study.backfill import backfill
    from fmnist_tui.training.trainer import train

    cfg = TrainConfig.create(
        arch="mlp", epochs=1, subset=64, threads=1, out=str(tmp_path / "runs"), data_dir=str(tiny_data)
    )
    run = train(cfg).run
    (run.path / predictions.FILE).unlink()  # as a run of the earlier trainer, which wrote none
    (said,) = backfill([run], tiny_data)
    assert said.startswith(f"{run.name}: wrote {predictions.FILE}")
    labels, predicted = predictions.read(run)
    assert float((labels == predicted).mean()) == pytest.approx(run.summary()["test_accuracy"])
    assert backfill([run], tiny_data) == [f"{run.name}: already has {predictions.FILE}"]
    (run.path / predictions.FILE).unlink()
    run.file("best.safetensors").unlink()
    assert "skipped (no best weights" in backfill([run], tiny_data)[0]
