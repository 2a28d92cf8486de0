"""`fmnist predict`: schemas, batching, bad inputs, model errors, no torch, real photos, PNG round trip."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fmnist_tui.core.data import CLASSES
from tests.conftest import ROOT
from tests.test_preprocess import garment, png_header_only

PHOTOS = ROOT / "tests" / "photos"
SHIPPED_DEFAULT = ROOT / "export" / "resnet-shift2-s0.onnx"  # the default model (session.DEFAULT_MODEL)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised CNN exported by the project's exporter (the predictions are arbitrary)."""
    import torch

    from fmnist_tui.deploy.export import export_onnx
    from fmnist_tui.training.models import create_model

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "random-cnn.onnx"
    export_onnx(create_model("cnn", kernel=3), path, {"classes": json.dumps(list(CLASSES)), "run": "random"})
    return path


def run_predict(
    args: list[str],
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    python_flags: tuple[str, ...] = (),
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="200", NO_COLOR="1", **(env or {}))
    return subprocess.run(
        [sys.executable, *python_flags, "-m", "fmnist_tui", "predict", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=full_env,
        timeout=timeout,  # a regression that hangs (a FIFO opened for reading) fails here
    )


def save_png(path: Path, array: np.ndarray) -> None:
    Image.fromarray(array).save(path)


@pytest.fixture
def folder_of_100(tmp_path: Path) -> Path:
    """96 good images (in a sub-folder too) and the issue's four bad ones."""
    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(96):
        x0, y0 = int(rng.integers(5, 60)), int(rng.integers(5, 40))
        save_png(folder / ("sub" if i % 2 else "") / f"good{i:02d}.png", garment(box=(x0, y0, x0 + 70, y0 + 90)))
    cut = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (120, 120), dtype=np.uint8)).save(cut, "PNG")
    (folder / "bad-truncated.png").write_bytes(cut.getvalue()[: len(cut.getvalue()) // 2])
    (folder / "bad-text.png").write_text("hello, I am not a picture\n")
    (folder / "bad-empty.png").write_bytes(b"")
    (folder / "bad-huge.png").write_bytes(png_header_only(20000, 20000))
    return folder


@pytest.mark.slow
def test_folder_of_100_with_4_bad_files(folder_of_100: Path, model_file: Path) -> None:
    res = run_predict([str(folder_of_100), "--model", str(model_file), "--format", "json", "--batch-size", "32"])
    assert res.returncode == 1
    rows = json.loads(res.stdout)
    assert len(rows) == 100
    good = [r for r in rows if r["error"] is None]
    bad = {Path(r["path"]).name: r["error"] for r in rows if r["error"] is not None}
    assert len(good) == 96
    assert set(bad) == {"bad-truncated.png", "bad-text.png", "bad-empty.png", "bad-huge.png"}
    assert "truncated" in bad["bad-truncated.png"] and "not an image" in bad["bad-text.png"]
    assert "empty" in bad["bad-empty.png"] and "refused before decoding" in bad["bad-huge.png"]
    for r in good:
        fields = {"path", "label", "index", "probability", "top_k", "ood_score", "unsure", "error", "schema_version"}
        assert set(r) == fields and r["schema_version"] == 2
        assert r["label"] == CLASSES[r["index"]] == r["top_k"][0]["label"] and len(r["top_k"]) == 3
        assert r["probability"] == pytest.approx(r["top_k"][0]["probability"])
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    for name, reason in bad.items():
        assert f"{folder_of_100 / name}: {reason}" in lines  # one `path: reason` line each
    assert "4 of 100 inputs failed" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.slow
def test_fail_fast_stops_at_the_first_bad_file(folder_of_100: Path, model_file: Path) -> None:
    res = run_predict(
        [
            str(folder_of_100 / "good00.png"),
            str(folder_of_100 / "bad-empty.png"),
            str(folder_of_100 / "good02.png"),
            "--model",
            str(model_file),
            "--format",
            "json",
            "--fail-fast",
        ]
    )
    assert res.returncode == 1
    rows = json.loads(res.stdout)
    assert [Path(r["path"]).name for r in rows] == ["good00.png", "bad-empty.png"]
    assert "--fail-fast" in res.stderr


@pytest.mark.slow
def test_helper_processes_give_the_same_rows_in_the_same_order(folder_of_100: Path, model_file: Path) -> None:
    """Past FilePreprocessor.MIN_FILES the files are split over forked helpers: same output, same order."""
    from fmnist_tui.inference.files import FilePreprocessor

    rng = np.random.default_rng(1)
    for i in range(FilePreprocessor.MIN_FILES + 44):
        save_png(folder_of_100 / f"thumb{i:03d}.png", rng.integers(0, 256, (28, 28), dtype=np.uint8))
    args = [str(folder_of_100), "--model", str(model_file), "--format", "csv", "--batch-size", "64"]
    one, two = run_predict([*args, "--workers", "1"]), run_predict([*args, "--workers", "2"])
    assert one.returncode == two.returncode == 1
    assert two.stdout == one.stdout and two.stderr == one.stderr
    rows = list(csv.DictReader(io.StringIO(two.stdout)))
    assert len(rows) == 100 + FilePreprocessor.MIN_FILES + 44 and sum(bool(r["error"]) for r in rows) == 4
    assert [r["path"] for r in rows] == sorted((r["path"] for r in rows), key=lambda p: p.split(os.sep))


@pytest.mark.slow
def test_a_helper_that_dies_has_its_share_done_by_the_parent(tmp_path: Path) -> None:
    import signal

    from fmnist_tui.inference.files import FilePreprocessor
    from fmnist_tui.inference.preprocess import preprocess

    paths = []
    for i in range(FilePreprocessor.MIN_FILES):
        paths.append(str(tmp_path / f"{i:03d}.png"))
        save_png(Path(paths[-1]), garment(box=(10 + i % 20, 10, 60 + i % 20, 80)))
    with FilePreprocessor(paths, workers=2) as prepared:
        assert len(prepared.helpers) == 1
        for _, _, process in prepared.helpers.values():
            os.kill(process.pid, signal.SIGKILL)
            process.join()
        done = dict(prepared)
    assert sorted(done) == list(range(len(paths)))
    for n in (0, len(paths) // 2, len(paths) - 1):  # the parent's share, the dead helper's first and last
        path, x, reason = done[n]
        assert path == paths[n] and reason is None and np.array_equal(x, preprocess(paths[n]))


@pytest.mark.slow
def test_csv_table_globs_and_show_input(tmp_path: Path, model_file: Path) -> None:
    for i in range(3):
        save_png(tmp_path / f"shoe{i}.png", garment())
    res = run_predict([str(tmp_path / "shoe*.png"), "--model", str(model_file), "--format", "csv", "--top-k", "2"])
    assert res.returncode == 0, res.stderr
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    assert list(rows[0]) == ["path", "label", "index", "probability", "top_k", "ood_score", "unsure", "error"]
    assert [Path(r["path"]).name for r in rows] == ["shoe0.png", "shoe1.png", "shoe2.png"]
    assert all(r["top_k"].count(";") == 1 and r["error"] == "" for r in rows)

    res = run_predict([str(tmp_path / "shoe0.png"), "--model", str(model_file), "--show-input"])
    assert res.returncode == 0 and "shoe0.png" in res.stdout
    art = res.stdout.split("the 28×28 input the model saw):\n", 1)[1].splitlines()[:28]
    assert len(art) == 28 and all(len(line) == 56 for line in art) and "@" in "".join(art)

    res = run_predict([str(tmp_path / "nothing*.png"), str(tmp_path / "missing.png"), "--model", str(model_file)])
    assert res.returncode == 1
    assert f"{tmp_path / 'nothing*.png'}: no file matches this pattern" in res.stderr
    assert f"{tmp_path / 'missing.png'}: no such file" in res.stderr


@pytest.mark.slow
def test_fifo_and_dev_zero_are_refused_not_waited_for(tmp_path: Path, model_file: Path) -> None:
    """Named explicitly or found in a folder, a FIFO is one `path: reason` line (it used to hang predict,
    or be skipped without a word in a folder); so is a character device such as /dev/zero."""
    folder = tmp_path / "in"
    folder.mkdir()
    save_png(folder / "good.png", garment())
    os.mkfifo(folder / "pipe.png")
    os.mkfifo(tmp_path / "x.png")
    args = [str(tmp_path / "x.png"), "/dev/zero", str(folder), "--model", str(model_file), "--workers", "1"]
    res = run_predict([*args, "--format", "json"], timeout=60)
    assert res.returncode == 1
    rows = {Path(r["path"]).name: r["error"] for r in json.loads(res.stdout)}
    fifo = "is a named pipe (FIFO), not a regular file; refused without reading it"
    assert rows == {"x.png": fifo, "zero": rows["zero"], "good.png": None, "pipe.png": fifo}
    assert rows["zero"].startswith("is a character device, not a regular file")
    lines = res.stderr.splitlines()
    assert f"{tmp_path / 'x.png'}: {fifo}" in lines and f"{folder / 'pipe.png'}: {fifo}" in lines
    assert f"/dev/zero: {rows['zero']}" in lines and "3 of 4 inputs failed" in res.stderr


#: file names that could forge lines or drive a terminal: a newline, an escape sequence (colour, title),
#: a C1 control (CSI), a Unicode line separator, a right-to-left override, and rich markup
HOSTILE_NAMES = {
    "bad\nother.png: fine\nthird.png": "bad\\nother.png: fine\\nthird.png",
    "e\x1b[31mred.png": "e\\x1b[31mred.png",
    "c1\x9b2J.png": "c1\\x9b2J.png",
    "sep\u2028x.png": "sep\\u2028x.png",
    "gnp.\u202eevil.png": "gnp.\\u202eevil.png",
    "mark[bold]up.png": "mark[bold]up.png",
}


@pytest.mark.slow
def test_names_with_control_characters_are_spelled_out_for_humans_and_exact_for_scripts(
    tmp_path: Path, model_file: Path
) -> None:
    for name in HOSTILE_NAMES:
        save_png(tmp_path / name, garment())
    (tmp_path / "broken\x1b]0;pwned\x07.png").write_text("not an image")
    res = run_predict([str(tmp_path), "--model", str(model_file)])
    assert res.returncode == 1
    for output in (res.stdout, res.stderr):
        assert not [c for c in output if (ord(c) < 32 and c != "\n") or 0x7F <= ord(c) <= 0x9F or c in "\u2028\u202e"]
    for shown in HOSTILE_NAMES.values():
        assert shown in res.stdout  # the table: one row each, the name spelled out, markup printed as written
    table_rows = [line for line in res.stdout.splitlines() if str(tmp_path) in line]
    assert len(table_rows) == len(HOSTILE_NAMES)
    # the random model is uncalibrated: its one `note:` line comes first
    errors = [line for line in res.stderr.splitlines() if line.strip() and not line.startswith("note: ")]
    assert errors[0] == f"{tmp_path}/broken\\x1b]0;pwned\\x07.png: not an image, or not one of the allowed formats " + (
        "(PNG, JPEG, GIF, BMP, WEBP, TIFF, MPO)"
    )
    assert len(errors) == 2 and "1 of 7 inputs failed" in errors[1]

    res = run_predict([str(tmp_path), "--model", str(model_file), "--format", "json"])
    assert {Path(r["path"]).name for r in json.loads(res.stdout)} == {*HOSTILE_NAMES, "broken\x1b]0;pwned\x07.png"}
    res = run_predict([str(tmp_path), "--model", str(model_file), "--format", "csv"])
    assert {Path(r["path"]).name for r in csv.DictReader(io.StringIO(res.stdout))} == {
        *HOSTILE_NAMES,
        "broken\x1b]0;pwned\x07.png",
    }


@pytest.mark.slow
def test_a_model_without_fmnist_metadata_says_which_class_names_it_gets(tmp_path: Path, model_file: Path) -> None:
    import onnx

    save_png(tmp_path / "a.png", garment())
    model = onnx.load(model_file)
    del model.metadata_props[:]
    onnx.save(model, tmp_path / "foreign.onnx")
    res = run_predict([str(tmp_path / "a.png"), "--model", str(tmp_path / "foreign.onnx"), "--format", "json"])
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)[0]["label"] in CLASSES
    note = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(note) == 1 and note[0].startswith(f"note: {tmp_path / 'foreign.onnx'} has no fmnist metadata")
    assert ", ".join(CLASSES) in note[0]
    assert "uncalibrated and no unsure flag is available" in note[0]  # the same one line says both

    onnx.helper.set_model_props(model, {"classes": "T-shirt, Trouser, ..."})  # there, but not a JSON list
    onnx.save(model, tmp_path / "garbled.onnx")
    res = run_predict([str(tmp_path / "a.png"), "--model", str(tmp_path / "garbled.onnx")])
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.returncode == 1 and len(lines) == 1 and "metadata 'classes' is not a JSON list of 10 names" in lines[0]


@pytest.mark.slow
def test_json_show_input_is_the_28x28_input(tmp_path: Path, model_file: Path) -> None:
    from fmnist_tui.inference.preprocess import preprocess

    save_png(tmp_path / "a.png", garment())
    res = run_predict([str(tmp_path / "a.png"), "--model", str(model_file), "--format", "json", "--show-input"])
    row = json.loads(res.stdout)[0]
    assert np.allclose(np.array(row["input"]), preprocess(tmp_path / "a.png"), atol=1e-4)


@pytest.mark.slow
def test_batched_and_single_predictions_agree(tmp_path: Path, model_file: Path) -> None:
    from fmnist_tui.inference.preprocess import preprocess
    from fmnist_tui.inference.session import OnnxClassifier

    for i in range(10):
        save_png(tmp_path / f"g{i}.png", garment(box=(10 + 5 * i, 10, 80 + 5 * i, 100 + 3 * i)))
    res = run_predict([str(tmp_path), "--model", str(model_file), "--format", "json", "--batch-size", "4"])
    clf = OnnxClassifier(model_file)
    for row in json.loads(res.stdout):
        probs = clf.predict_proba(preprocess(row["path"])[None])[0]
        assert row["probability"] == pytest.approx(float(probs.max()), abs=1e-6)


@pytest.mark.slow
def test_model_errors_are_one_clear_line(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    save_png(tmp_path / "a.png", garment())
    not_onnx = tmp_path / "notes.onnx"
    not_onnx.write_text("not a model")
    wrong = tmp_path / "rgb32.onnx"
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 32, 32])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, 32, 32])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), wrong)
    cases = {
        tmp_path / "absent.onnx": "model file not found",
        not_onnx: "not a valid ONNX model",
        wrong: "expected float [N,1,28,28]",
    }
    for model, message in cases.items():
        res = run_predict([str(tmp_path / "a.png"), "--model", str(model)])
        assert res.returncode == 1, model
        lines = [line for line in res.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and message in lines[0] and str(model) in lines[0]


@pytest.mark.slow
def test_predict_imports_no_torch(tmp_path: Path, model_file: Path) -> None:
    save_png(tmp_path / "a.png", garment())
    res = run_predict([str(tmp_path / "a.png"), "--model", str(model_file)], python_flags=("-X", "importtime"))
    assert res.returncode == 0, res.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in res.stderr.splitlines() if line.startswith("import time:")}
    assert "onnxruntime" in imported and "PIL.Image" in imported  # the check sees real imports
    assert not [m for m in imported if m == "torch" or m.startswith("torch.")]


def test_default_model_search(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fmnist_tui.inference.session import PACKAGE_EXPORT, default_model_path, list_models

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FMNIST_MODEL", raising=False)
    assert default_model_path() == PACKAGE_EXPORT / SHIPPED_DEFAULT.name  # from any working directory
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "cnn-k3-s0.onnx").write_bytes(b"x")  # another model there: not the default
    assert default_model_path() == PACKAGE_EXPORT / SHIPPED_DEFAULT.name
    (tmp_path / "export" / SHIPPED_DEFAULT.name).write_bytes(b"x")
    assert default_model_path() == Path("export") / SHIPPED_DEFAULT.name
    monkeypatch.setenv("FMNIST_MODEL", "/some/where.onnx")
    assert default_model_path() == Path("/some/where.onnx")
    names = ("cnn-k3-s0.onnx", SHIPPED_DEFAULT.name)
    assert list_models(tmp_path / "export") == [tmp_path / "export" / n for n in names]
    assert list_models(tmp_path / "absent") == []


needs_shipped = pytest.mark.skipif(
    not SHIPPED_DEFAULT.is_file(), reason=f"{SHIPPED_DEFAULT} does not exist yet: build it with `make models`"
)


@pytest.mark.slow
@needs_shipped
def test_shipped_model_gets_the_photos_right(tmp_path: Path) -> None:
    with open(PHOTOS / "labels.csv", newline="") as fh:
        expected = {row["file"]: row["label"] for row in csv.DictReader(fh)}
    res = run_predict([str(PHOTOS), "--format", "json"], cwd=tmp_path)  # default model, from another folder
    assert res.returncode == 0, res.stderr
    got = {Path(r["path"]).name: r["label"] for r in json.loads(res.stdout)}
    assert set(got) == set(expected)
    wrong = {f: (expected[f], got[f]) for f in expected if got[f] != expected[f]}
    assert not wrong, f"misclassified (expected, got): {wrong}"


@pytest.mark.slow
@needs_shipped
@pytest.mark.realdata
def test_test_set_pngs_round_trip_to_the_tensor_prediction(tmp_path: Path) -> None:
    from fmnist_tui.core.data import load_dataset
    from fmnist_tui.inference.session import OnnxClassifier

    images = load_dataset().test_images[:1000]
    for i, im in enumerate(images):
        save_png(tmp_path / f"{i:04d}.png", im)
    res = run_predict([str(tmp_path), "--format", "json"])
    assert res.returncode == 0, res.stderr
    by_png = np.array([r["index"] for r in json.loads(res.stdout)])
    by_tensor = OnnxClassifier(SHIPPED_DEFAULT).predict_proba(images.astype(np.float32) / 255.0).argmax(1)
    assert np.array_equal(by_png, by_tensor)
