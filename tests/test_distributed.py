"""Multi-process training: torchrun launch, DDP on gloo, sharding, rank-0-only writes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.main import get_command

from fmnist_tui.cli import app
from fmnist_tui.cli.train_launch import forwarded_args
from fmnist_tui.core.config import TrainConfig
from fmnist_tui.core.errors import UsageError
from fmnist_tui.core.runs import Run
from fmnist_tui.training.distributed import World, _worker_lines, in_worker, torchrun_command

TINY = [
    "--subset",
    "256",
    "--epochs",
    "2",
    "--batch-size",
    "64",
    "--threads",
    "1",
    "--device",
    "cpu",
    "--precision",
    "fp32",
]


def test_shards_partition_every_batch() -> None:
    idx = torch.arange(13)
    shards = [World(r, 3, r, torch.device("cpu"), "gloo").shard(idx) for r in range(3)]
    assert sorted(torch.cat(shards).tolist()) == list(range(13))
    assert [len(s) for s in shards] == [5, 4, 4]


def test_in_worker_needs_all_torchrun_variables() -> None:
    env = {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"}
    assert in_worker(env)
    assert not in_worker({k: v for k, v in env.items() if k != "MASTER_PORT"})


def test_torchrun_command_single_and_multi_node() -> None:
    one = torchrun_command(["--epochs", "3"], 2)
    assert one[1:] == [
        "-m",
        "torch.distributed.run",
        "--nproc-per-node=2",
        "--standalone",
        "-m",
        "fmnist_tui",
        "train",
        "--epochs",
        "3",
    ]
    multi = torchrun_command([], 4, nnodes=2, node_rank=1, master_addr="algo-1", master_port=29400)
    assert "--nnodes=2" in multi and "--node-rank=1" in multi and "--master-addr=algo-1" in multi
    assert "--standalone" not in multi
    with pytest.raises(UsageError):
        torchrun_command([], 2, nnodes=2)


def test_forwarded_args_keep_only_given_options() -> None:
    command = get_command(app).commands["train"]
    ctx = command.make_context(
        "train", ["--arch", "mlp", "--subset", "64", "--no-augment", "--nproc", "2", "--out", "my runs"]
    )
    assert forwarded_args(ctx) == ["--arch", "mlp", "--subset", "64", "--out", "my runs", "--no-augment"]


def test_worker_lines_drop_torchelastic_report() -> None:
    stderr = (
        "error: run 'x' already finished; choose another --name\n"
        "W1125 11:45:27.197000 7202 torch/distributed/elastic/multiprocessing/api.py:1028] Sending SIGTERM\n"
        "Traceback (most recent call last):\n  File ...\nChildFailedError:\n"
    )
    assert _worker_lines(stderr) == ["error: run 'x' already finished; choose another --name\n"]


@pytest.mark.slow
def test_two_processes_match_one_process(tmp_path: Path, cli_env: dict[str, str]) -> None:
    """2 gloo ranks on CPU take the same steps as 1 process: same metrics (to float error), one run folder."""
    from fmnist_tui.training.trainer import train

    out = tmp_path / "runs"
    proc = subprocess.run(
        [sys.executable, "-m", "fmnist_tui", "train", *TINY, "--out", str(out), "--name", "ddp", "--nproc", "2"],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("done: test accuracy") == 1  # rank 0 alone prints
    assert proc.stdout.count("epoch   2/2") == 1
    ddp = Run(out / "ddp")
    assert sorted(p.name for p in ddp.path.iterdir()) == [
        ".lock",
        "best.safetensors",
        "config.json",
        "last.safetensors",
        "metrics.csv",
        "predictions.json",
        "summary.json",
        "train_state.pt",
    ]
    cfg = TrainConfig.create(
        subset=256,
        epochs=2,
        batch_size=64,
        threads=1,
        device="cpu",
        precision="fp32",
        out=str(out),
        name="single",
        data_dir=cli_env["FMNIST_DATA"],
    )
    single = train(cfg).run
    rows_ddp, rows_one = ddp.metrics(), single.metrics()
    assert len(rows_ddp) == len(rows_one) == 2
    for a, b in zip(rows_ddp, rows_one, strict=False):
        assert a["train_acc"] == pytest.approx(b["train_acc"], abs=1 / 256 + 1e-9)
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-3)
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-3)
    s_ddp, s_one = ddp.summary(), single.summary()
    assert s_ddp["test_accuracy"] == pytest.approx(s_one["test_accuracy"], abs=0.02)
    assert ddp.config()["train_images"] == single.config()["train_images"]
