"""ONNX export: the contract (input, output, dynamic batch, metadata), the checks, no file on failure,
the manifest, and the shipped models re-evaluated on the full test set."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from fmnist_tui.cli import app
from fmnist_tui.core.config import TrainConfig
from fmnist_tui.core.data import CLASSES, load_dataset
from fmnist_tui.core.fsutil import sha256_file
from fmnist_tui.core.runs import Run
from fmnist_tui.deploy.export import PARITY_MIN_IMAGES, ExportError, export_run
from fmnist_tui.inference.session import OnnxClassifier
from fmnist_tui.training.trainer import train
from tests.conftest import ROOT, make_tiny_dataset

pytestmark = pytest.mark.slow  # every test here trains (the module's runs) and exports

runner = CliRunner()


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """Two finished one-epoch runs (cnn k3, mlp) on the synthetic dataset: (runs folder, data folder)."""
    base = tmp_path_factory.mktemp("export")
    data = make_tiny_dataset(base / "data")
    with pytest.MonkeyPatch.context() as mp:  # only while training: tests set their own environment
        mp.setenv("FMNIST_VERIFY", "0")
        for arch, kernel in (("cnn", 3), ("mlp", None)):
            train(
                TrainConfig.create(
                    arch=arch,
                    kernel=kernel,
                    epochs=1,
                    subset=256,
                    threads=1,
                    out=str(base / "runs"),
                    data_dir=str(data),
                )
            )
    yield base / "runs", data


@pytest.fixture
def synthetic_env(tiny_runs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    monkeypatch.setenv("FMNIST_VERIFY", "0")
    monkeypatch.setenv("FMNIST_DATA", str(tiny_runs[1]))
    return tiny_runs


def copy_run(src: Path, dst: Path) -> Run:
    dst.mkdir(parents=True)
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return Run(dst)


def test_export_cli_writes_a_verified_self_describing_model(synthetic_env: tuple[Path, Path], tmp_path: Path) -> None:
    runs, _ = synthetic_env
    out = tmp_path / "export"
    result = runner.invoke(
        app, ["export", "cnn-k3-s0", "mlp-s0", "--runs", str(runs), "--out", str(out), "--threads", "1"]
    )
    assert result.exit_code == 0, result.output
    assert "onnx.checker (full check): passed" in result.output
    assert f"onnxruntime vs PyTorch on {PARITY_MIN_IMAGES:,} images" in result.output
    assert "top-1 agreement 100.00%" in result.output

    clf = OnnxClassifier(out / "cnn-k3-s0.onnx")
    meta = clf.metadata
    assert json.loads(meta["classes"]) == list(CLASSES) == clf.classes
    summary = Run(runs / "cnn-k3-s0").summary()
    assert (meta["arch"], meta["kernel"], meta["run"]) == ("cnn", "3", "cnn-k3-s0")
    assert int(meta["params"]) == 421_642 and float(meta["test_accuracy"]) == pytest.approx(summary["test_accuracy"])
    assert meta["input_polarity"] == "light-on-dark" and len(meta["dataset_sha256"]) == 64
    for key in ("fmnist_version", "opset"):
        assert meta[key]
    inp, outp = clf.session.get_inputs()[0], clf.session.get_outputs()[0]
    assert (inp.name, inp.shape[1:], outp.name, outp.shape[1:]) == ("input", [1, 28, 28], "logits", [10])
    assert isinstance(inp.shape[0], str)  # symbolic: the batch axis is dynamic
    for n in (1, 3, 300):
        probs = clf.predict_proba(np.random.default_rng(n).random((n, 1, 28, 28), dtype=np.float32))
        assert probs.shape == (n, 10) and np.allclose(probs.sum(1), 1, atol=1e-5)

    manifest = json.loads((out / "manifest.json").read_text())
    entries = {m["file"]: m for m in manifest["models"]}
    assert set(entries) == {"cnn-k3-s0.onnx", "mlp-s0.onnx"}
    for name, entry in entries.items():
        assert entry["sha256"] == sha256_file(out / name)
    assert entries["mlp-s0.onnx"]["kernel"] is None and entries["mlp-s0.onnx"]["params"] == 235_146
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_accuracy_mismatch_fails_and_leaves_no_file(synthetic_env: tuple[Path, Path], tmp_path: Path) -> None:
    runs, _ = synthetic_env
    run = copy_run(runs / "cnn-k3-s0", tmp_path / "runs" / "cnn-k3-s0")
    config, summary = run.config(), run.summary()
    config["device"] = "cpu"  # evaluated where export checks it (a GPU-evaluated summary has some slack)
    summary["test_accuracy"] = summary["test_accuracy"] - 0.05  # as if summary.json were from other weights
    run.file("config.json").write_text(json.dumps(config))
    run.file("summary.json").write_text(json.dumps(summary))
    out = tmp_path / "export"
    result = runner.invoke(app, ["export", str(run.path), "--out", str(out), "--threads", "1"])
    assert result.exit_code == 1
    assert "differs from the run's summary.json" in result.output
    assert list(out.iterdir()) == []  # neither the model, nor a temporary file, nor a manifest


@pytest.mark.parametrize("device, off, exported", [("cpu", 1, False), ("cuda", 1, True), ("cuda", 6, False)])
def test_a_gpu_evaluated_summary_may_differ_by_a_few_images(
    synthetic_env: tuple[Path, Path], tmp_path: Path, device: str, off: int, exported: bool
) -> None:
    """A run evaluated on a GPU: its summary may be a borderline image or two away from the CPU's count."""
    runs, _ = synthetic_env
    run = copy_run(runs / "cnn-k3-s0", tmp_path / "runs" / "cnn-k3-s0")
    config, summary = run.config(), run.summary()
    config["device"] = device
    n_test = len(load_dataset().test_labels)
    summary["test_accuracy"] = (round(summary["test_accuracy"] * n_test) + off) / n_test
    run.file("config.json").write_text(json.dumps(config))
    run.file("summary.json").write_text(json.dumps(summary))
    out = tmp_path / "export"
    result = runner.invoke(app, ["export", str(run.path), "--out", str(out), "--threads", "1"])
    assert (result.exit_code == 0) is exported, result.output
    if exported:
        assert f"was measured on {device}" in result.output and (out / "cnn-k3-s0.onnx").is_file()
    else:
        assert f"measured on {device}" in result.output and "differs from the run's summary.json" in result.output
        assert list(out.iterdir()) == []


def test_parity_failure_leaves_no_file(
    synthetic_env: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fmnist_tui.deploy.export as exporter

    runs, data = synthetic_env
    real = exporter._torch_logits
    # PyTorch's side drifts by 1e-3: the graph no longer matches and the export must refuse
    monkeypatch.setattr(exporter, "_torch_logits", lambda model, x: real(model, x) + 1e-3)
    out = tmp_path / "export"
    with pytest.raises(ExportError, match=r"max \|Δlogit\| 1\.00e-03 > 1e-04"):
        export_run(Run(runs / "cnn-k3-s0"), out, load_dataset(data))
    assert list(out.iterdir()) == []


def test_a_manifest_that_cannot_be_replaced_publishes_neither(synthetic_env: tuple[Path, Path], tmp_path: Path) -> None:
    runs, _ = synthetic_env
    out = tmp_path / "export"
    (out / "manifest.json").mkdir(parents=True)  # a folder where the manifest should be: it cannot be replaced
    result = runner.invoke(app, ["export", "mlp-s0", "--runs", str(runs), "--out", str(out), "--threads", "1"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "manifest.json: cannot write the manifest" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json"]  # no model, no temporary file
    (out / "manifest.json").rmdir()
    (out / "manifest.json").write_text('{"models": [[[[' + "[" * 100_000 + "]" * 100_000 + "]]]]}")  # nested deep
    result = runner.invoke(app, ["export", "mlp-s0", "--runs", str(runs), "--out", str(out), "--threads", "1"])
    assert result.exit_code == 0, result.output  # a damaged manifest is rebuilt
    assert [m["file"] for m in json.loads((out / "manifest.json").read_text())["models"]] == ["mlp-s0.onnx"]


def test_unfinished_run_and_usage_errors(synthetic_env: tuple[Path, Path], tmp_path: Path) -> None:
    runs, _ = synthetic_env
    run = copy_run(runs / "mlp-s0", tmp_path / "runs" / "mlp-s0")
    run.file("summary.json").unlink()
    result = runner.invoke(app, ["export", str(run.path), "--out", str(tmp_path / "export")])
    assert result.exit_code == 1 and "has not finished" in result.output
    assert runner.invoke(app, ["export", "--runs", str(runs)]).exit_code == 2
    assert runner.invoke(app, ["export", "mlp-s0", "--all", "--runs", str(runs)]).exit_code == 2


def test_export_all_skips_unfinished_runs(synthetic_env: tuple[Path, Path], tmp_path: Path) -> None:
    runs, _ = synthetic_env
    root = tmp_path / "runs"
    copy_run(runs / "mlp-s0", root / "mlp-s0")
    copy_run(runs / "cnn-k3-s0", root / "half-done").file("summary.json").unlink()
    out = tmp_path / "export"
    result = runner.invoke(app, ["export", "--all", "--runs", str(root), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert "skipping half-done: not finished" in result.output
    assert sorted(p.name for p in out.glob("*.onnx")) == ["mlp-s0.onnx"]


@pytest.mark.realdata
def test_tiny_real_run_exports_with_equal_test_accuracy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FMNIST_DATA", raising=False)
    monkeypatch.delenv("FMNIST_VERIFY", raising=False)
    ds = load_dataset()
    result = train(
        TrainConfig.create(arch="cnn", kernel=3, epochs=1, subset=256, threads=1, out=str(tmp_path / "runs")),
        dataset=ds,
    )
    report = export_run(result.run, tmp_path / "export", ds)
    assert report.test_images == report.parity_images == 10_000
    assert report.max_abs_diff <= 1e-4 and report.top1_agreement == 1.0
    assert report.onnx_accuracy == report.torch_accuracy == pytest.approx(result.summary["test_accuracy"], abs=1e-9)


SHIPPED = ROOT / "export"


@pytest.mark.realdata
def test_shipped_models_match_their_manifest_on_the_full_test_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FMNIST_DATA", raising=False)  # the real dataset, whatever the caller's environment
    manifest_path = SHIPPED / "manifest.json"
    if not manifest_path.is_file():
        pytest.skip(f"{manifest_path} does not exist yet: build the shipped models with `make models`")
    manifest = json.loads(manifest_path.read_text())
    expected = {"mlp-s0.onnx", "cnn-k3-s0.onnx", "cnn-k5-s0.onnx", "cnn-k7-s0.onnx", "resnet-shift2-s0.onnx"}
    assert expected <= {m["file"] for m in manifest["models"]}
    ds = load_dataset(verify=True)
    x = ds.test_images[:, None].astype(np.float32) / 255.0
    for entry in manifest["models"]:
        path = SHIPPED / entry["file"]
        assert sha256_file(path) == entry["sha256"], f"{path}: sha256 differs from the manifest"
        clf = OnnxClassifier(path)
        accuracy = float((clf.predict_proba(x).argmax(1) == ds.test_labels).mean())
        assert accuracy == pytest.approx(entry["test_accuracy"], abs=1e-9), entry["file"]
        assert float(clf.metadata["test_accuracy"]) == pytest.approx(accuracy, abs=1e-6)
        assert clf.metadata["run"] == entry["run"] and clf.metadata["arch"] == entry["arch"]
        assert os.path.getsize(path) == entry["bytes"]


@pytest.mark.parametrize(
    "after,signals", [("exporting cnn-k3-s0", 1), ("onnx.checker full check passed", 1), ("exporting cnn-k3-s0", 2)]
)
def test_ctrl_c_during_export_is_exit_130_one_line_and_no_file(
    synthetic_env: tuple[Path, Path], tmp_path: Path, cli_env: dict[str, str], after: str, signals: int
) -> None:
    """Ctrl-C while torch's exporter or the parity check runs: never torch's message, never a published model."""
    import signal
    import subprocess
    import sys

    runs, data = synthetic_env
    out = tmp_path / "export"
    env = {**cli_env, "FMNIST_DATA": str(data)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fmnist_tui",
            "export",
            "cnn-k3-s0",
            "--runs",
            str(runs),
            "--out",
            str(out),
            "--threads",
            "1",
        ],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if after in line:
            break
    for _ in range(signals):
        proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.strip().splitlines() in (
        ["error: interrupted while exporting cnn-k3-s0; no file was left for it"],
        ["error: aborted; no file was left for the model in hand"],
    ), err
    assert "\x1b" not in err and not [p for p in out.iterdir() if p.name != "manifest.json"]


@pytest.mark.slow
@pytest.mark.parametrize("pool", ["blur", "allconv"])
def test_the_anti_aliased_and_all_convolutional_nets_export_with_their_logits(tmp_path: Path, pool: str) -> None:
    """MaxBlurPool (a fixed depthwise filter, replicate and reflect padding) and the learned stride-2 convs go
    through the exporter: the graph's logits are the model's."""
    import onnxruntime as ort
    import torch

    from fmnist_tui.deploy.export import export_onnx
    from fmnist_tui.training.models import create_model

    torch.manual_seed(0)
    model = create_model("cnn", {"kernel": 3, "pool": pool, "depth": 3}).eval()  # 28 → 14 → 7 → 4: an odd map too
    export_onnx(model, tmp_path / f"{pool}.onnx", {"run": pool})
    x = np.random.default_rng(0).random((5, 1, 28, 28), dtype=np.float32)
    (logits,) = ort.InferenceSession(str(tmp_path / f"{pool}.onnx")).run(None, {"input": x})
    with torch.no_grad():
        np.testing.assert_allclose(logits, model(torch.from_numpy(x)).numpy(), atol=1e-4)
