"""The ResNet and its recipe: sizes counted against their formulas, random erasing, the weight average (EMA),
flip test-time augmentation, their validation, and the ResNet through train, resume, evaluate, export, predict."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from fmnist_tui.cli import app
from fmnist_tui.cli.train_cmd import command_line
from fmnist_tui.core import registry
from fmnist_tui.core.config import TrainConfig, resume_config
from fmnist_tui.training.ema import WeightEma
from fmnist_tui.training.models import FlipTTA, count_macs, count_params, create_model
from fmnist_tui.training.recipe import ERASE_AREA, epoch_plan, erase, erase_boxes
from fmnist_tui.training.state import load_state
from fmnist_tui.training.trainer import train
from tests.tui_support import garment_png

runner = CliRunner()


def resnet_sizes(width: int, blocks: int) -> tuple[int, int]:
    """Parameters and MACs of the ResNet from its definition: convs without bias, BN (2 per channel), 1×1 conv
    shortcuts where a block changes width, FC 4w → 10; maps 28, 14, 7."""
    params, macs = 9 * width + 2 * width, 28 * 28 * 9 * width  # the stem
    cin = width
    for cout, side in zip(registry.resnet_widths(width), (28, 14, 7), strict=True):
        for block in range(blocks):
            c = cin if block == 0 else cout
            params += 9 * c * cout + 9 * cout * cout + 4 * cout
            macs += side * side * 9 * (c * cout + cout * cout)
            if c != cout:
                params += c * cout + 2 * cout
                macs += side * side * c * cout
        cin = cout
    return params + cin * 10 + 10, macs + cin * 10


@pytest.mark.parametrize("width,blocks", [(32, 2), (16, 3), (8, 1)])
def test_params_and_macs_are_counted_and_match_the_formula(width: int, blocks: int) -> None:
    model = create_model("resnet", width=width, blocks=blocks)
    assert (count_params(model), count_macs(model)) == resnet_sizes(width, blocks)


def test_default_resnet_is_under_a_million_parameters_and_named_like_the_others() -> None:
    params, macs = resnet_sizes(32, 2)
    assert count_params(create_model("resnet")) == params == 696_042 < 1_000_000
    assert macs == 80_508_672
    assert TrainConfig.create(arch="resnet").run_name == "resnet-s0"
    assert TrainConfig.create(arch="resnet", width=16, blocks=3).run_name == "resnet-w16-b3-s0"
    assert registry.receptive_field("resnet", {"width": 32, "blocks": 1}) == 25


def test_counting_macs_leaves_batch_norm_statistics_alone() -> None:
    model = create_model("resnet", width=8, blocks=1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    count_macs(model)
    assert model.training and all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_random_erasing_blacks_out_its_rectangle_only() -> None:
    boxes = erase_boxes(1.0, 2000, torch.Generator().manual_seed(0))
    top, left, h, w = boxes.T
    assert bool((h >= 1).all() and (top + h <= 28).all() and (left + w <= 28).all())
    area = (h * w).float() / 784
    assert ERASE_AREA[0] / 2 < area.median() < ERASE_AREA[1]
    images = torch.full((2, 28, 28), 200, dtype=torch.uint8)
    out = erase(images, torch.tensor([[3, 5, 4, 6], [0, 0, 0, 10]]))
    assert int((out[0] == 0).sum()) == 24 and bool((out[0, 3:7, 5:11] == 0).all())
    assert torch.equal(out[1], images[1])  # height 0: not erased
    assert int((erase_boxes(0.3, 4000, torch.Generator().manual_seed(1))[:, 2] > 0).sum()) in range(1000, 1400)


def test_erasing_is_drawn_after_everything_else() -> None:
    """A run without erasing draws the order, flips and shifts it drew before erasing existed."""
    plain, erased = TrainConfig.create(arch="resnet", shift=2), TrainConfig.create(arch="resnet", shift=2, erase=0.5)
    a, b = epoch_plan(plain, 3, 500), epoch_plan(erased, 3, 500)
    assert a.erase is None and b.erase is not None and b.erase.shape == (500, 4)
    assert torch.equal(a.perm, b.perm) and torch.equal(a.flip, b.flip) and torch.equal(a.shift, b.shift)


def test_the_weight_average_follows_its_formula() -> None:
    torch.manual_seed(0)
    model = create_model("resnet", width=4, blocks=1)
    ema = WeightEma(model, 0.99)
    assert [ema.decay_at(t) for t in (0, 10, 10_000)] == [0.1, 11 / 20, 0.99]
    start = {k: v.clone() for k, v in ema.model.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
        model.train()(torch.rand(4, 1, 28, 28))  # moves the BN statistics and their step counter
    ema.update(10)
    now = model.state_dict()
    for k, v in ema.model.state_dict().items():
        expected = now[k] if not v.is_floating_point() else start[k] + (now[k] - start[k]) * (1 - 11 / 20)
        torch.testing.assert_close(v, expected)
    assert not any(p.requires_grad for p in ema.model.parameters())


def test_flip_tta_averages_the_image_and_its_mirror() -> None:
    torch.manual_seed(0)
    model = create_model("resnet", width=4, blocks=1).eval()
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        tta = FlipTTA(model)(x)
        torch.testing.assert_close(tta, (model(x) + model(x.flip(-1))) / 2)
        torch.testing.assert_close(FlipTTA(model)(x.flip(-1)), tta)  # mirror images get the same answer


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--erase", "1.5"], "--erase is a probability and must lie in [0, 1], got 1.5"),
        (["--erase", "-0.1"], "--erase is a probability and must lie in [0, 1], got -0.1"),
        (["--label-smoothing", "1"], "--label-smoothing must lie in [0, 1), got 1.0"),
        (["--ema", "1"], "--ema must lie in [0, 1), got 1.0"),
        (["--ema", "-0.5"], "--ema must lie in [0, 1), got -0.5"),
        (["--ema", "nan"], "--ema must lie in [0, 1), got nan"),
    ],
)
def test_bad_recipe_values_are_one_line_exit_2(args: list[str], needle: str, tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", "--arch", "resnet", *args, "--out", str(tmp_path / "runs")])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert len([line for line in result.output.splitlines() if needle in line]) == 1, result.output
    assert not (tmp_path / "runs").exists()


def test_recipe_options_are_in_help_config_and_command_lines() -> None:
    shown = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "200"})
    assert all(f in shown.output for f in ("--erase", "--label-smoothing", "--ema", "--tta", "--width", "--blocks"))
    cfg = TrainConfig.create(arch="resnet", erase=0.25, label_smoothing=0.05, ema=0.999, tta=True, shift=2)
    record = json.loads(json.dumps(cfg.to_dict()))
    assert (record["erase"], record["label_smoothing"], record["ema"], record["tta"]) == (0.25, 0.05, 0.999, True)
    assert TrainConfig.from_dict(record) == cfg  # config.json round trip
    assert cfg.recipe() != TrainConfig.create(arch="resnet", shift=2).recipe()  # a study reuses neither for the other
    for line in (" ".join(command_line(cfg)),):
        assert all(p in line for p in ("--erase 0.25", "--label-smoothing 0.05", "--ema 0.999", "--tta", "--shift 2"))
    assert "--ema" not in " ".join(command_line(TrainConfig.create(arch="resnet")))


RECIPE = ["--erase", "0.5", "--ema", "0.9", "--tta", "--label-smoothing", "0.05", "--shift", "2"]


@pytest.mark.slow
def test_resnet_trains_evaluates_exports_and_predicts(tiny_data: Path, tmp_path: Path) -> None:
    runs, out = tmp_path / "runs", tmp_path / "export"
    args = ["train", "--arch", "resnet", "--width", "8", "--blocks", "1", "--epochs", "1", "--subset", "128"]
    trained = runner.invoke(app, [*args, *RECIPE, "--threads", "1", "--out", str(runs), "--data-dir", str(tiny_data)])
    assert trained.exit_code == 0, trained.output
    name = "resnet-w8-b1-shift2-s0"  # --shift is named (a data setting), the other recipe options are not
    config = json.loads((runs / name / "config.json").read_text())
    assert (config["erase"], config["ema"], config["tta"], config["label_smoothing"]) == (0.5, 0.9, True, 0.05)
    assert config["params"] == resnet_sizes(8, 1)[0] and config["macs"] == resnet_sizes(8, 1)[1]
    evaluated = runner.invoke(app, ["evaluate", name, "--runs", str(runs), "--json", "--data-dir", str(tiny_data)])
    assert evaluated.exit_code == 0, evaluated.output
    summary = json.loads((runs / name / "summary.json").read_text())
    assert json.loads(evaluated.output)["test_accuracy"] == summary["test_accuracy"]  # TTA both times

    env = {"FMNIST_DATA": str(tiny_data)}
    exported = runner.invoke(app, ["export", name, "--runs", str(runs), "--out", str(out), "--threads", "1"], env=env)
    assert exported.exit_code == 0, exported.output  # onnx.checker and onnxruntime-vs-PyTorch parity passed
    assert "top-1 agreement 100.00%" in exported.output
    from fmnist_tui.inference.session import OnnxClassifier

    clf = OnnxClassifier(out / f"{name}.onnx")
    assert (clf.metadata["arch"], clf.metadata["width"], clf.metadata["blocks"]) == ("resnet", "8", "1")
    assert clf.metadata["tta"] == "flip"
    x = np.random.default_rng(0).random((5, 1, 28, 28), dtype=np.float32)
    np.testing.assert_allclose(clf.logits(x), clf.logits(x[..., ::-1].copy()), atol=1e-5)  # TTA in the graph

    image = garment_png(tmp_path / "trouser.png")
    predicted = runner.invoke(app, ["predict", str(image), "--model", str(out / f"{name}.onnx"), "--format", "json"])
    assert predicted.exit_code == 0 and json.loads(predicted.output)[0]["error"] is None, predicted.output
    png = tmp_path / "fm.png"
    args = ["featuremaps", "--run", name, "--runs", str(runs), "--test-index", "0", "--out", str(png)]
    drawn = runner.invoke(app, args, env=env)
    assert drawn.exit_code == 0 and png.stat().st_size > 0, drawn.output  # the stem's and stage 1's maps


@pytest.mark.slow
def test_a_run_with_a_weight_average_resumes_to_the_straight_runs_weights(tmp_path: Path, tiny_data: Path) -> None:
    def cfg(name: str) -> TrainConfig:
        return TrainConfig.create(
            arch="resnet", width=4, blocks=1, epochs=2, batch_size=32, subset=96, erase=0.5, ema=0.9, tta=True,
            name=name, out=str(tmp_path / "runs"), data_dir=str(tiny_data), threads=1,
        )  # fmt: skip

    straight = train(cfg("straight")).run
    calls = {"n": 0}

    def stop() -> bool:
        calls["n"] += 1
        return calls["n"] > 4  # in the second epoch (3 batches per epoch)

    cut = train(cfg("cut"), should_stop=stop)
    assert cut.interrupted
    saved = load_state(cut.run)
    assert saved.ema is not None and saved.model is not None
    assert any(not torch.equal(saved.ema[k], saved.model[k].to(saved.ema[k].dtype)) for k in saved.ema)
    resumed = train(resume_config(cut.run.path), resume=True)
    assert resumed.summary is not None
    for file in ("last.safetensors", "best.safetensors"):
        a, b = load_file(str(straight.file(file))), load_file(str(resumed.run.file(file)))
        assert all(torch.equal(a[k], b[k]) for k in a), file
    assert [r["val_acc"] for r in straight.metrics()] == [r["val_acc"] for r in resumed.run.metrics()]
    # the saved (best, last) weights are the average's, not the trained model's
    final = load_state(resumed.run)
    assert final.ema is not None and final.model is not None
    last = load_file(str(resumed.run.file("last.safetensors")))
    assert all(torch.equal(last[k], final.ema[k].float()) for k in last)
    assert any(not torch.equal(last[k], final.model[k]) for k in last)
