"""The locality study's parts: the locally connected network (a convolution when its weights are tied), the
fixed pixel permutation (inside the model, so an exported permuted run takes natural images), and the MLP
whose parameter count matches the CNN's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from typer.testing import CliRunner

from fmnist_tui.cli import app
from fmnist_tui.core import registry
from fmnist_tui.core.config import TrainConfig
from fmnist_tui.core.data import PERMUTE_SEED, load_dataset, nested_order, permute_pixels, pixel_permutation
from fmnist_tui.core.runs import Run
from fmnist_tui.inference.preprocess import preprocess
from fmnist_tui.inference.session import OnnxClassifier
from fmnist_tui.study import bias
from fmnist_tui.training import models
from fmnist_tui.training.checkpoints import load_weights
from fmnist_tui.training.models import CNN, LocallyConnected2d, count_macs, count_params, create_model

runner = CliRunner()


@pytest.mark.parametrize("kernel", [3, 5])
@pytest.mark.parametrize("channels", [(1, 4), (3, 5)])
def test_a_locally_connected_layer_with_tied_weights_is_a_convolution(kernel: int, channels: tuple[int, int]) -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(*channels, kernel, padding=kernel // 2)
    local = LocallyConnected2d(*channels, kernel, size=9)
    x = torch.randn(2, channels[0], 9, 9)
    assert not torch.allclose(local(x), conv(x), atol=1e-3)  # untied: its own filter at every position
    torch.testing.assert_close(local.tie_to(conv)(x), conv(x), atol=1e-5, rtol=1e-5)


def test_a_batch_larger_than_a_part_gives_what_each_image_alone_gives() -> None:
    """A large batch runs in parts of LOCAL_CHUNK images (the validation's 1,000, for speed): the parts'
    edges must not show. Channels_last input, as in training, and a convolution's weights as the reference."""
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 5, 3, padding=1)
    local = LocallyConnected2d(3, 5, 3, size=9).tie_to(conv)
    x = torch.randn(2 * models.LOCAL_CHUNK + 3, 3, 9, 9).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        out = local(x)
        torch.testing.assert_close(out, conv(x), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(out[-3:], local(x[-3:]), atol=0, rtol=0)


def test_the_lcn_with_tied_weights_is_the_seeds_cnn() -> None:
    torch.manual_seed(0)
    cnn, lcn = create_model("cnn", kernel=3), create_model("lcn", kernel=3)
    assert isinstance(cnn, CNN) and isinstance(lcn, CNN)
    for conv, local in zip(cnn.convs(), lcn.convs(), strict=True):
        assert isinstance(conv, nn.Conv2d) and isinstance(local, LocallyConnected2d)
        local.tie_to(conv)
    lcn.head.load_state_dict(cnn.head.state_dict())
    x = torch.rand(4, 1, 28, 28)
    torch.testing.assert_close(lcn(x), cnn(x), atol=1e-4, rtol=1e-4)
    assert [tuple(m.shape) for m in lcn.features(x)] == [(4, 32, 28, 28), (4, 64, 14, 14)]


def test_lcn_parameters_and_macs_hand_computed() -> None:
    # each layer: positions × out × in × k² weights + positions × out biases; the head is the notebook's
    layer1 = 28 * 28 * 32 * 1 * 9 + 28 * 28 * 32  # 250,880
    layer2 = 14 * 14 * 64 * 32 * 9 + 14 * 14 * 64  # 3,625,216
    head = 3136 * 128 + 128 + 128 * 10 + 10  # 402,826
    lcn, cnn = create_model("lcn"), create_model("cnn")
    assert count_params(lcn) == layer1 + layer2 + head == 4_278_922
    # the same multiplies as the convolution: locality is kept, only the sharing goes
    assert count_macs(lcn) == count_macs(cnn) == 28 * 28 * 32 * 9 + 14 * 14 * 64 * 32 * 9 + 3136 * 128 + 1280
    assert registry.run_name("lcn", {"kernel": 3}, 0) == "lcn-k3-s0"
    assert registry.receptive_field("lcn", {"kernel": 5}) == registry.receptive_field("cnn", {"kernel": 5}) == 14


def test_the_permutation_is_fixed_and_the_models_first_step() -> None:
    perm = pixel_permutation()
    assert sorted(perm.tolist()) == list(range(784)) and np.array_equal(perm, pixel_permutation(PERMUTE_SEED))
    assert not np.array_equal(perm, np.arange(784))
    images = np.random.default_rng(0).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    moved = permute_pixels(images, perm)
    assert moved.reshape(3, -1)[:, 5].tolist() == images.reshape(3, -1)[:, perm[5]].tolist()
    torch.manual_seed(0)
    natural = create_model("mlp")
    torch.manual_seed(0)
    permuted = create_model("mlp", permute_seed=PERMUTE_SEED)
    assert permuted.state_dict().keys() == natural.state_dict().keys()  # same weights files, same counts
    x = torch.from_numpy(images[:, None].astype(np.float32) / 255)
    x_moved = torch.from_numpy(moved[:, None].astype(np.float32) / 255)
    torch.testing.assert_close(permuted(x), natural(x_moved))
    cfg = TrainConfig.create(arch="mlp", permute=True, train_size=500)
    assert cfg.run_name == "mlp-n500-perm-s0" and TrainConfig.create(arch="mlp").run_name == "mlp-s0"
    assert cfg.to_dict()["permute_seed"] == PERMUTE_SEED and TrainConfig.from_dict(cfg.to_dict()) == cfg


def test_nested_subsets_are_stratified_and_nested() -> None:
    labels = np.repeat(np.arange(10), 500)
    np.random.default_rng(1).shuffle(labels)
    order = nested_order(labels)
    assert sorted(order.tolist()) == list(range(len(labels)))
    for n in (500, 1000, 2000):
        assert np.bincount(labels[order[:n]], minlength=10).tolist() == [n // 10] * 10
    assert np.array_equal(nested_order(labels), order)  # a fixed seed: the family never moves


@pytest.mark.slow
def test_a_permuted_runs_onnx_classifies_natural_pngs_as_pytorch_does_permuted_tensors(
    tiny_data: Path, tmp_path: Path
) -> None:
    runs, out = tmp_path / "runs", tmp_path / "export"
    trained = runner.invoke(
        app,
        [
            "train",
            "--arch",
            "cnn",
            "--permute",
            "--epochs",
            "1",
            "--subset",
            "512",
            "--threads",
            "1",
            "--out",
            str(runs),
        ],
    )
    assert trained.exit_code == 0, trained.output
    run = Run(runs / "cnn-k3-perm-s0")
    assert run.config()["permute"] is True and run.config()["permute_seed"] == PERMUTE_SEED
    exported = runner.invoke(app, ["export", "cnn-k3-perm-s0", "--runs", str(runs), "--out", str(out)])
    assert exported.exit_code == 0, exported.output
    onnx_file = out / "cnn-k3-perm-s0.onnx"
    assert OnnxClassifier(onnx_file).metadata["permute_seed"] == str(PERMUTE_SEED)

    # the PyTorch network without its permutation step, fed tensors permuted on the data side
    net = load_weights(create_model("cnn", {"kernel": 3}), run.file("best.safetensors")).eval()
    ds = load_dataset()
    natural = ds.test_images[:40]
    pngs = tmp_path / "pngs"
    pngs.mkdir()
    for i, im in enumerate(natural):
        Image.fromarray(im).save(pngs / f"{i:03d}.png")
    shown = runner.invoke(app, ["predict", str(pngs), "--model", str(onnx_file), "--format", "json"])
    assert shown.exit_code == 0, shown.output
    rows = sorted(json.loads(shown.output), key=lambda r: r["path"])
    seen = np.stack([preprocess(Path(r["path"])) for r in rows])  # what predict fed the graph: natural images
    with torch.no_grad():
        logits = net(torch.from_numpy(permute_pixels(seen, pixel_permutation())[:, None]))
        unpermuted = net(torch.from_numpy(seen[:, None]))
    assert [r["index"] for r in rows] == logits.argmax(1).tolist()
    # its probabilities are the graph's (calibrated where export fitted a temperature, which keeps the argmax)
    by_graph = OnnxClassifier(onnx_file).predict_proba(seen[:, None]).max(1)
    np.testing.assert_allclose([r["probability"] for r in rows], by_graph, atol=1e-5)
    assert not torch.allclose(logits, unpermuted, atol=1e-3)  # the permutation is really in the graph
    # and on the whole test set: ONNX on natural tensors = PyTorch on permuted ones
    x = ds.test_images.astype(np.float32)[:, None] / 255
    with torch.no_grad():
        by_torch = net(torch.from_numpy(permute_pixels(x, pixel_permutation()))).argmax(1).numpy()
    assert np.array_equal(OnnxClassifier(onnx_file).predict_proba(x).argmax(1), by_torch)


def test_the_parameter_matched_mlp_is_within_one_percent_of_the_cnn() -> None:
    cnn = count_params(create_model("cnn", kernel=3))
    matched = count_params(create_model("mlp", hidden=bias.MATCHED))
    assert bias.cnn_params(3) == cnn == 421_642 and bias.mlp_params(bias.MATCHED) == matched
    assert bias.MATCHED == (422, 211) and matched == 422_643 and abs(matched - cnn) / cnn < 0.01
    assert bias.lcn_params(3) == count_params(create_model("lcn", kernel=3))
    assert bias.MLP_MATCHED == "mlp-h422x211" and bias.mlp_params((256, 128)) == 235_146


def run_cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fmnist_tui", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=1200
    )


@pytest.mark.slow
def test_locality_study_quick_end_to_end(cli_env: dict[str, str], tmp_path: Path) -> None:
    """`fmnist study locality --quick` on the synthetic data: six configs, four verdicts, the figure, the
    section; then `study --list` and `report` find it."""
    args = ["study", "locality", "--quick", "--seeds", "2", "--epochs", "1", "--subset", "64"]
    res = run_cli([*args, "--runs", "runs", "--out", "out"], cli_env, tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [r["config"] for r in doc["table"]] == ["mlp", "mlp-perm", "cnn-k3", "cnn-k3-perm", "lcn-k3", "mlp-h422x211"]
    assert (tmp_path / "runs" / "quick" / "cnn-k3-perm-s1" / "config.json").is_file()
    words = ("supported", "contradicted", "not supported at this sample size (2 seeds)")
    assert len(doc["verdicts"]) == 4 and all(v["verdict"] in words for v in doc["verdicts"])
    assert "Holm-adjusted" in doc["verdicts"][0]["detail"] and doc["verdicts"][0]["kind"] == "equivalent"
    assert doc["claims"][0]["claim"].startswith("the MLP is unaffected")
    section = (tmp_path / "out" / "section.md").read_text()
    assert section.startswith("## Locality study") and "Switched on or off" in section
    assert (tmp_path / "out" / "locality_study.png").stat().st_size > 1000
    listed = run_cli(["study", "--list", "--runs", "runs"], {**cli_env, "COLUMNS": "250"}, tmp_path)
    assert "locality: Locality study" in listed.stdout and "configs: mlp, mlp-perm, cnn-k3" in listed.stdout
    report = run_cli(["report", "--runs", "runs/quick", "--out", "rep", "--figure", "locality"], cli_env, tmp_path)
    assert report.returncode == 0, report.stdout + report.stderr
    assert (tmp_path / "rep" / "locality_study.png").is_file()


@pytest.mark.slow
def test_the_lcn_exports_to_onnx_with_a_dynamic_batch(tmp_path: Path) -> None:
    from fmnist_tui.deploy.export import export_onnx

    torch.manual_seed(0)
    model = create_model("lcn", kernel=3, permute_seed=PERMUTE_SEED).eval()
    export_onnx(model, tmp_path / "lcn.onnx", {"run": "lcn-k3-perm-s0"})  # onnx.checker's full check included
    x = np.random.default_rng(0).random((5, 1, 28, 28), dtype=np.float32)
    clf = OnnxClassifier(tmp_path / "lcn.onnx")
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(clf.logits(x), expected, atol=1e-4)
    np.testing.assert_allclose(clf.logits(x[:1]), expected[:1], atol=1e-4)
