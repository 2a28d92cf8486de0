"""The CNN and MLP families through every command: usage errors, train, evaluate, export (the options in the
ONNX metadata), predict, results, feature maps, SageMaker hyperparameters."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fmnist_tui.cli import app
from fmnist_tui.cli.train_cmd import command_line
from fmnist_tui.core.config import TrainConfig
from fmnist_tui.deploy import sagemaker as sm
from tests.conftest import make_tiny_dataset
from tests.tui_support import garment_png

runner = CliRunner()


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--pool", "none", "--head", "flatten"], "--head flatten does not work with --pool none"),
        (["--pool", "none"], "valid with --pool none: gap"),
        (["--depth", "5"], "5 is not a valid depth; valid: 1, 2, 3, 4"),
        (["--pool", "min"], "valid: max, avg, stride, blur, allconv, none"),
        (["--head", "dense"], "valid: flatten, gap"),
        (["--arch", "mlp", "--kernel", "3"], "--kernel does not apply to arch mlp; mlp takes --hidden"),
        (["--arch", "mlp", "--depth", "3"], "--depth does not apply to arch mlp; mlp takes --hidden"),
        (["--arch", "mlp", "--hidden", "256,x"], "give 1 to 4 comma-separated integers 1–4096 (e.g. 256,128)"),
        (["--arch", "cnn", "--hidden", "64"], "--hidden does not apply to arch cnn; cnn takes --kernel, --depth"),
    ],
)
def test_bad_combinations_are_one_line_exit_2(args: list[str], needle: str, tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", *args, "--out", str(tmp_path / "runs")], env={"COLUMNS": "240"})
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if needle in line]
    assert len(lines) == 1, result.output  # the problem and the valid values on one line
    assert not (tmp_path / "runs").exists()


def test_list_option_through_config_plan_and_sagemaker() -> None:
    cfg = TrainConfig.create(arch="mlp", hidden="512, 256", epochs=2)
    assert cfg.options == {"hidden": (512, 256)} and cfg.run_name == "mlp-h512x256-s0"
    assert cfg.to_dict()["hidden"] == (512, 256) and json.loads(json.dumps(cfg.to_dict()))["hidden"] == [512, 256]
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg  # config.json round trip
    assert " --hidden 512,256 " in " ".join(command_line(cfg)) + " "
    for raw in ("512,256", "[512, 256]"):
        assert sm.parse_hyperparameters({"arch": "mlp", "hidden": raw})["hidden"] in ("512,256", [512, 256])
        assert TrainConfig.create(**sm.parse_hyperparameters({"arch": "mlp", "hidden": raw})).options == cfg.options
    cnn = TrainConfig.create(**sm.parse_hyperparameters({"arch": "cnn", "depth": "3", "pool": '"avg"', "head": "gap"}))
    assert cnn.run_name == "cnn-k3-d3-avg-gap-s0" and cnn.label == "cnn-k3-d3-avg-gap"


MEMBERS = (
    ("cnn", {"depth": "1", "pool": "stride"}, "cnn-k3-d1-stride-s0"),
    ("cnn", {"depth": "3", "pool": "avg", "head": "gap"}, "cnn-k3-d3-avg-gap-s0"),
    ("cnn", {"kernel": "5", "depth": "4"}, "cnn-k5-d4-s0"),  # max-pool rounding 7 → 4 up (ceil mode) in ONNX too
    ("mlp", {"hidden": "64"}, "mlp-h64-s0"),
    ("cnn", {"norm": "batch"}, "cnn-k3-bn-s0"),  # batch norm: in training mode in the loop, folded in the graph
)


@pytest.fixture(scope="module")
def family_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """One-epoch runs of new members, trained by `fmnist train` on the synthetic dataset."""
    base = tmp_path_factory.mktemp("family")
    data = make_tiny_dataset(base / "data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FMNIST_VERIFY", "0")
        for arch, options, name in MEMBERS:
            flags = [x for key, value in options.items() for x in (f"--{key}", value)]
            args = ["train", "--arch", arch, *flags, "--epochs", "1", "--subset", "128", "--threads", "1"]
            result = runner.invoke(app, [*args, "--out", str(base / "runs"), "--data-dir", str(data)])
            assert result.exit_code == 0, result.output
            assert (base / "runs" / name / "summary.json").is_file(), result.output
    yield base / "runs", data


@pytest.mark.slow
def test_every_command_takes_new_members(
    family_runs: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs, data = family_runs
    monkeypatch.setenv("FMNIST_VERIFY", "0")
    monkeypatch.setenv("FMNIST_DATA", str(data))
    config = json.loads((runs / "cnn-k3-d3-avg-gap-s0" / "config.json").read_text())
    assert (config["depth"], config["pool"], config["head"], config["hidden"]) == (3, "avg", "gap", None)
    assert config["params"] == 93_962  # conv 1→32, 32→64, 64→128 (k3) + FC 128→10
    evaluated = runner.invoke(app, ["evaluate", "cnn-k3-d3-avg-gap-s0", "--runs", str(runs), "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.output)["options"] == {
        "kernel": 3,
        "depth": 3,
        "pool": "avg",
        "head": "gap",
        "norm": "none",
    }

    out = tmp_path / "export"
    names = [name for _, _, name in MEMBERS]
    exported = runner.invoke(app, ["export", *names, "--runs", str(runs), "--out", str(out), "--threads", "1"])
    assert exported.exit_code == 0, exported.output  # onnx.checker and onnxruntime-vs-PyTorch parity passed
    from fmnist_tui.inference.session import OnnxClassifier

    meta = OnnxClassifier(out / "cnn-k3-d3-avg-gap-s0.onnx").metadata
    assert (meta["kernel"], meta["depth"], meta["pool"], meta["head"]) == ("3", "3", "avg", "gap")
    assert OnnxClassifier(out / "mlp-h64-s0.onnx").metadata["hidden"] == "64"
    assert OnnxClassifier(out / "cnn-k3-bn-s0.onnx").metadata["norm"] == "batch"
    manifest = {m["run"]: m for m in json.loads((out / "manifest.json").read_text())["models"]}
    options = {"kernel": "3", "depth": "1", "pool": "stride", "head": "flatten", "norm": "none"}
    assert manifest["cnn-k3-d1-stride-s0"]["options"] == options

    image = garment_png(tmp_path / "trouser.png")
    for name in names:
        model = str(out / f"{name}.onnx")
        predicted = runner.invoke(app, ["predict", str(image), "--model", model, "--format", "json"])
        assert predicted.exit_code == 0, predicted.output
        assert json.loads(predicted.output)[0]["error"] is None

    listed = runner.invoke(app, ["results", "--runs", str(runs), "--format", "json"])
    assert listed.exit_code == 0, listed.output
    rows = {r["config"]: r for r in json.loads(listed.output)["groups"]}
    assert set(rows) == {"mlp-h64", "cnn-k3-d1-stride", "cnn-k3-d3-avg-gap", "cnn-k5-d4", "cnn-k3-bn"}
    assert rows["cnn-k3-d1-stride"]["receptive_field"] == 3 and rows["mlp-h64"]["hidden"] == [64]

    png = tmp_path / "fm.png"
    args = ["featuremaps", "--run", "cnn-k3-d1-stride-s0", "--runs", str(runs), "--test-index", "0"]
    drawn = runner.invoke(app, [*args, "--out", str(png)])
    assert drawn.exit_code == 0 and png.stat().st_size > 0, drawn.output
    assert "conv1 32×14×14" in drawn.output and "conv2" not in drawn.output  # one block, strided
