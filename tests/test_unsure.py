"""The calibrated model through the user's paths: predict's JSON/CSV/table fields (CliRunner), the blank image, a
NaN model, a malformed calibration entry, an uncalibrated model's note, and `export --calibrate FILE`."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from fmnist_tui.cli import app
from fmnist_tui.inference.session import CALIBRATION_KEY, OOD_KEY
from tests.calibrated_support import calibrated_onnx
from tests.test_predict import SHIPPED_DEFAULT, needs_shipped
from tests.test_preprocess import garment
from tests.tui_support import tiny_onnx

runner = CliRunner()


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return calibrated_onnx(tmp_path_factory.mktemp("unsure"))


@pytest.fixture
def images(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(garment()).save(folder / "garment.png")
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(folder / "blank.png")
    return folder


def with_props(src: Path, dst: Path, **props: str) -> Path:
    """A copy of an ONNX file with some metadata_props replaced."""
    import onnx

    model = onnx.load(str(src))
    merged = {p.key: p.value for p in model.metadata_props} | props
    onnx.helper.set_model_props(model, merged)
    onnx.save(model, str(dst))
    return dst


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_json_records_carry_the_ood_score_and_the_unsure_flag(calibrated: Path, images: Path) -> None:
    res = runner.invoke(app, ["predict", str(images), "--model", str(calibrated), "--format", "json"])
    assert res.exit_code == 0, res.output
    rows = {Path(r["path"]).name: r for r in json.loads(res.stdout)}
    for r in rows.values():
        assert isinstance(r["ood_score"], float) and isinstance(r["unsure"], bool) and r["schema_version"] == 2
    assert rows["blank.png"]["unsure"] is True  # nothing in it: unsure, never a confident Sandal
    assert res.stderr == ""  # a calibrated model: no note


def test_csv_and_table_show_the_flag(calibrated: Path, images: Path) -> None:
    res = runner.invoke(app, ["predict", str(images / "blank.png"), "--model", str(calibrated), "--format", "csv"])
    row = next(csv.DictReader(io.StringIO(res.stdout)))
    assert row["unsure"] == "true" and float(row["ood_score"]) > 0
    res = runner.invoke(app, ["predict", str(images / "blank.png"), "--model", str(calibrated)], env={"COLUMNS": "200"})
    assert res.exit_code == 0 and "UNSURE" in res.stdout


def test_an_uncalibrated_model_classifies_with_one_note(tmp_path: Path, images: Path) -> None:
    old = tiny_onnx(tmp_path / "old.onnx")  # fmnist metadata, but no calibration or OOD entries
    res = runner.invoke(app, ["predict", str(images), "--model", str(old), "--format", "json"])
    assert res.exit_code == 0, res.output
    assert all(r["ood_score"] is None and r["unsure"] is None for r in json.loads(res.stdout))
    note = lines(res.stderr)
    assert len(note) == 1 and note[0].startswith(f"note: {old}: its probabilities are uncalibrated")
    assert "no unsure flag is available" in note[0] and "fmnist export --calibrate" in note[0]


@pytest.mark.parametrize(
    "key, value",
    [
        (CALIBRATION_KEY, "T=0.7"),
        (CALIBRATION_KEY, json.dumps({"version": 1, "temperature": -1})),
        (CALIBRATION_KEY, json.dumps({"version": 1, "temperature": "0.7"})),
        (OOD_KEY, json.dumps({"version": 1, "threshold": None})),
        (OOD_KEY, "[1, 2]"),
    ],
)
def test_a_malformed_entry_is_refused_in_one_line(
    calibrated: Path, images: Path, tmp_path: Path, key: str, value: str
) -> None:
    bad = with_props(calibrated, tmp_path / "bad.onnx", **{key: value})
    res = runner.invoke(app, ["predict", str(images / "garment.png"), "--model", str(bad)])
    assert res.exit_code == 1 and res.stdout == ""
    assert lines(res.stderr) == [lines(res.stderr)[0]] and f"metadata {key!r} is malformed" in res.stderr


def test_a_model_whose_outputs_are_nan_is_refused_in_one_line(tmp_path: Path, images: Path) -> None:
    import onnx
    from onnx import numpy_helper

    path = tiny_onnx(tmp_path / "nan.onnx")
    model = onnx.load(str(path))
    weight = next(t for t in model.graph.initializer if t.name == "W")
    weight.CopyFrom(numpy_helper.from_array(np.full((784, 10), np.nan, np.float32), "W"))
    onnx.save(model, str(path))
    res = runner.invoke(app, ["predict", str(images / "garment.png"), "--model", str(path)])
    assert res.exit_code == 1 and "nan" not in res.stdout.lower()
    errors = [line for line in lines(res.stderr) if not line.startswith("note:")]
    assert len(errors) == 1 and "not finite numbers (NaN or infinity)" in errors[0]


def test_export_calibrate_calibrates_a_file_in_place_keeping_its_metadata(tiny_data: Path, tmp_path: Path) -> None:
    from fmnist_tui.inference.session import OnnxClassifier

    path = tiny_onnx(tmp_path / "export" / "tiny.onnx", metadata={"run": "tiny-run", "test_accuracy": "0.5"})
    manifest = tmp_path / "export" / "manifest.json"
    manifest.write_text(json.dumps({"models": [{"file": "tiny.onnx", "sha256": "old", "run": "tiny-run"}]}))
    res = runner.invoke(app, ["export", "--calibrate", str(path), "--data-dir", str(tiny_data)])
    assert res.exit_code == 0, res.output
    assert "calibrated" in res.stdout and "test ECE" in res.stdout
    clf = OnnxClassifier(path)
    assert clf.notice is None and clf.metadata["run"] == "tiny-run" and clf.metadata["test_accuracy"] == "0.5"
    entry = json.loads(manifest.read_text())["models"][0]
    assert entry["run"] == "tiny-run" and entry["sha256"] != "old" and entry["ood"]["method"] == "gaussian"
    first = clf.metadata
    again = runner.invoke(app, ["export", "--calibrate", str(path), "--data-dir", str(tiny_data)])
    assert again.exit_code == 0, again.output  # calibrating again replaces the calibration, from the raw logits
    assert OnnxClassifier(path).metadata == first
    assert runner.invoke(app, ["export", "run", "--calibrate", str(path)]).exit_code == 2


@needs_shipped
def test_the_shipped_default_model_is_calibrated_and_unsure_of_a_blank_image(images: Path) -> None:
    res = runner.invoke(
        app, ["predict", str(images / "blank.png"), "--model", str(SHIPPED_DEFAULT), "--format", "json"]
    )
    assert res.exit_code == 0, res.output
    row = json.loads(res.stdout)[0]
    assert row["unsure"] is True and res.stderr == ""  # calibrated: no note


def test_a_foreign_graph_without_a_gemm_head_is_calibrated_with_the_energy_score(
    tiny_data: Path, tmp_path: Path
) -> None:
    """MatMul + Add instead of Gemm: no penultimate features to read, so the OOD score is −logsumexp of the logits."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from fmnist_tui.core.data import load_dataset
    from fmnist_tui.deploy.calibrate import calibrate
    from fmnist_tui.inference.session import OnnxClassifier

    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.normal(0, 0.05, (784, 10)).astype(np.float32), "W"),
        numpy_helper.from_array(np.zeros(10, np.float32), "B"),
        numpy_helper.from_array(np.array([-1, 784], dtype=np.int64), "shape"),
    ]
    nodes = [
        helper.make_node("Reshape", ["x", "shape"], ["flat"]),
        helper.make_node("MatMul", ["flat", "W"], ["mm"]),
        helper.make_node("Add", ["mm", "B"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "foreign",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 28, 28])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    calibrated, fitted, checked = calibrate(model, load_dataset(tiny_data))
    assert fitted.method == "energy" and checked["max_abs_prob_diff"] < 1e-4
    onnx.save(calibrated, str(tmp_path / "foreign.onnx"))
    clf = OnnxClassifier(tmp_path / "foreign.onnx")
    scores = clf.scores(np.random.default_rng(1).random((4, 28, 28), dtype=np.float32))
    assert scores.ood is not None and scores.threshold is not None and len(scores.unsure()) == 4
    assert clf.notice is not None and "no fmnist metadata" in clf.notice and "uncalibrated" not in clf.notice
