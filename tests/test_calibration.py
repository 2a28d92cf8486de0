"""Calibration and the OOD score: the calibrator on toy problems with known answers, ECE/NLL/Brier by hand, top-1
unchanged, the threshold on validation, and the calibrated ONNX graph against its numpy reference."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fmnist_tui.inference import calibration as cal
from fmnist_tui.inference import ood
from tests.calibrated_support import calibrated_onnx


def test_the_temperature_of_a_known_problem_is_found() -> None:
    """Labels drawn from softmax(z / 2): the NLL-optimal temperature of the logits z is 2."""
    rng = np.random.default_rng(0)
    z = rng.normal(0, 4, (40_000, 10))
    p = cal.softmax(z / 2.0)
    labels = (p.cumsum(axis=1) > rng.random((len(z), 1))).argmax(axis=1)
    assert cal.fit_temperature(z, labels) == pytest.approx(2.0, rel=0.03)
    assert cal.fit_temperature(z / 2.0, labels) == pytest.approx(1.0, rel=0.03)


def test_separable_data_gets_the_sharpest_temperature() -> None:
    z = np.eye(10)[np.arange(50) % 10] * 5
    assert cal.fit_temperature(z, np.arange(50) % 10) == pytest.approx(1 / cal.T_RANGE)


def test_ece_nll_and_brier_by_hand() -> None:
    probs = np.array([[0.9, 0.1], [0.6, 0.4]])
    labels = np.array([0, 1])  # the first right at 0.9, the second wrong at 0.6
    assert cal.ece(probs, labels) == pytest.approx(0.5 * 0.1 + 0.5 * 0.6)
    assert cal.nll(probs, labels) == pytest.approx(-(np.log(0.9) + np.log(0.4)) / 2)
    assert cal.brier(probs, labels) == pytest.approx((0.01 + 0.01 + 0.36 + 0.36) / 2)
    table = cal.reliability(probs, labels)
    assert sum(table.counts) == 2 and table.ece == pytest.approx(0.35)
    perfect = cal.reliability(np.array([[1.0, 0.0]] * 4), np.zeros(4, int))
    assert perfect.ece == 0.0 and perfect.counts[-1] == 4  # a confidence of 1 is in the last bin


def test_isotonic_is_the_pooled_step_fit() -> None:
    x, y = cal.isotonic(np.array([0.1, 0.2, 0.3, 0.4]), np.array([0.0, 1.0, 0.0, 1.0]))
    assert x.tolist() == pytest.approx([0.1, 0.25, 0.4]) and y.tolist() == pytest.approx([0.0, 0.5, 1.0])
    x, _ = cal.isotonic(np.array([0.5, 0.5, 0.7]), np.array([0.0, 1.0, 1.0]))
    assert len(set(x.tolist())) == len(x)  # one knot per x


def test_the_calibrator_never_changes_the_top_class() -> None:
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 3, (5_000, 10))
    labels = np.where(rng.random(5_000) < 0.8, logits.argmax(1), rng.integers(0, 10, 5_000))
    calibrator = cal.fit_calibrator(logits[:2_500], labels[:2_500])
    test = logits[2_500:]
    probs = calibrator.probabilities(test)
    assert np.array_equal(probs.argmax(1), test.argmax(1))  # accuracy unchanged
    assert np.allclose(probs.sum(1), 1) and (probs > 0).all()
    measured = cal.before_after(test, labels[2_500:], calibrator)
    assert measured["before"]["accuracy"] == measured["after"]["accuracy"]
    assert measured["after"]["ece"] < measured["before"]["ece"]


def test_the_threshold_lets_the_validation_share_pass() -> None:
    scores = np.arange(1000, dtype=float)
    th = ood.threshold(scores)
    assert ood.VAL_PASS <= np.mean(scores <= th) <= ood.VAL_PASS + 1 / len(scores) and th in scores


def test_the_gaussian_score_is_the_distance_to_the_nearest_class_plus_its_log_determinant() -> None:
    unit = ood.Gaussians(np.array([[0.0, 0.0], [10.0, 0.0]]), np.stack([np.eye(2)] * 2), np.zeros(2))
    assert unit.score(np.array([[1.0, 1.0], [9.0, 0.0], [5.0, 0.0]])).tolist() == pytest.approx([2.0, 1.0, 25.0])
    wide = ood.Gaussians(unit.means, np.stack([np.eye(2), np.eye(2) / 4]), np.array([0.0, 2 * np.log(4.0)]))
    # the second class is twice as wide: 9 units from its mean cost (9/2)² + log 16, not 81
    assert wide.score(np.array([[1.0, 0.0]])).tolist() == pytest.approx([1.0])
    assert wide.score(np.array([[19.0, 0.0]])).tolist() == pytest.approx([81 / 4 + 2 * np.log(4.0)])
    rng = np.random.default_rng(2)
    labels = np.repeat([0, 1], 2000)
    features = rng.normal(0, 1, (4000, 2)) * np.where(labels[:, None] == 1, 2.0, 1.0) + np.where(
        labels[:, None] == 1, [10.0, 0.0], [0.0, 0.0]
    )
    fitted = ood.fit_gaussians(features, labels, 2)
    assert np.allclose(fitted.means, [[0, 0], [10, 0]], atol=0.2)
    assert np.allclose(fitted.precisions[0], np.eye(2), atol=0.15) and np.allclose(
        fitted.precisions[1], np.eye(2) / 4, atol=0.05
    )
    shared = ood.fit_gaussians(features, labels, 2, shared=True)
    assert np.array_equal(shared.precisions[0], shared.precisions[1]) and not shared.logdets.any()


def test_auroc_by_hand() -> None:
    assert ood.auroc(np.array([0.0, 1.0]), np.array([2.0, 3.0])) == 1.0
    assert ood.auroc(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == 0.0
    assert ood.auroc(np.array([1.0, 1.0]), np.array([1.0])) == 0.5  # ties count half
    assert ood.auroc(np.array([0.0, 2.0]), np.array([1.0, 3.0])) == 0.75


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return calibrated_onnx(tmp_path_factory.mktemp("calibrated"))


def test_the_calibrated_graph_matches_its_reference_and_keeps_the_top_class(calibrated: Path) -> None:
    import onnx

    from fmnist_tui.deploy.calibrate import RAW, raw_outputs
    from fmnist_tui.inference.session import CALIBRATION_KEY, OOD_KEY, OnnxClassifier

    clf = OnnxClassifier(calibrated)
    assert clf.notice is None and clf.ood_threshold is not None
    entry, detector = json.loads(clf.metadata[CALIBRATION_KEY]), json.loads(clf.metadata[OOD_KEY])
    assert entry["version"] == 1 and entry["temperature"] > 0 and "validation" in entry["fitted_on"]
    assert detector["method"] == "gaussian" and detector["threshold"] == clf.ood_threshold
    x = np.random.default_rng(3).random((64, 28, 28), dtype=np.float32)
    raw, _ = raw_outputs(onnx.load(str(calibrated)), x)  # the graph's own raw logits (RAW)
    assert any(RAW in n.output for n in onnx.load(str(calibrated)).graph.node)
    calibrator = cal.Calibrator(entry["temperature"], *map(tuple, zip(*entry["knots"], strict=True)))
    scores = clf.scores(x)
    assert np.allclose(scores.probs, calibrator.probabilities(raw), atol=1e-5)
    assert np.array_equal(scores.probs.argmax(1), raw.argmax(1))
    assert scores.ood is not None and scores.ood.shape == (64,)
    blank = clf.scores(np.zeros((1, 28, 28), np.float32))
    assert blank.unsure() == [True]  # nothing in it: unsure whatever its features say


def test_calibrating_again_replaces_the_calibration(calibrated: Path, tiny_data: Path) -> None:
    import onnx

    from fmnist_tui.core.data import load_dataset
    from fmnist_tui.deploy.calibrate import RAW, calibrate, is_calibrated, strip

    model = onnx.load(str(calibrated))
    raw = strip(model)
    assert not is_calibrated(raw) and [o.name for o in raw.graph.output] == ["logits"]
    assert not {"calibration", "ood"} & {p.key for p in raw.metadata_props} and RAW not in raw.graph.value_info
    again, _, _ = calibrate(model, load_dataset(tiny_data))
    assert again.graph.SerializeToString() == model.graph.SerializeToString()  # the same nodes and constants
    assert {p.key: p.value for p in again.metadata_props} == {p.key: p.value for p in model.metadata_props}


def test_the_report_section_draws_the_reliability_of_each_calibrated_model(
    calibrated: Path, tiny_data: Path, tmp_path: Path
) -> None:
    from fmnist_tui.core.data import load_dataset
    from fmnist_tui.study.reliability import section
    from tests.tui_support import tiny_onnx

    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "calibrated.onnx").write_bytes(calibrated.read_bytes())
    tiny_onnx(folder / "old.onnx")  # uncalibrated: left out of the section
    s = section(folder, load_dataset(tiny_data), tmp_path / "reliability.png")
    assert (tmp_path / "reliability.png").stat().st_size > 0 and set(s.data) == {"calibrated.onnx"}
    m = s.data["calibrated.onnx"]
    assert m["accuracy_unchanged"] and m["before"]["accuracy"] == m["after"]["accuracy"]
    assert "ECE" in s.text and "calibrated.onnx" in s.text
