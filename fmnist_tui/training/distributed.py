"""Multi-process training with PyTorch's own engine: torchrun launches, DistributedDataParallel syncs.

Every rank holds the whole (small) dataset in memory and the same epoch plan; each takes its
strided share of every global batch, so N processes take the same optimisation steps as one
process with the same batch size (gradients are averaged by DDP, losses scaled to the global
batch). Only rank 0 writes the run folder and prints. torch is imported only by the functions that
use it, so that the launching process stays light.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..core.errors import RunError, UsageError

if TYPE_CHECKING:
    import torch
    from torch import nn

#: Environment variables torchrun sets in every worker it starts.
WORKER_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class World:
    """This process's place in the job: global rank, number of ranks, and its device."""

    rank: int
    size: int
    local_rank: int
    device: torch.device
    backend: str

    @property
    def is_main(self) -> bool:
        """Rank 0: the only rank that writes files and reports progress."""
        return self.rank == 0

    def shard(self, index: torch.Tensor) -> torch.Tensor:
        """This rank's strided share of a global batch's indices (shares differ in size by ≤ 1)."""
        return index[self.rank :: self.size]

    def sum(self, values: Sequence[float]) -> list[float]:
        """Element-wise sum of `values` over all ranks (float64, so counts stay exact)."""
        import torch
        import torch.distributed as dist

        t = torch.tensor(list(values), dtype=torch.float64, device=self._comm_device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t.tolist()

    def reduce_sum(self, values: torch.Tensor) -> torch.Tensor:
        """Element-wise sum of a tensor over all ranks, as a new tensor (`values` is left as it is)."""
        import torch.distributed as dist

        total = values.detach().to(self._comm_device, copy=True)
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total

    def any(self, flag: bool) -> bool:
        """True on every rank if any rank says True (so all ranks stop at the same batch)."""
        return self.sum([1.0 if flag else 0.0])[0] > 0

    def wrap(self, model: nn.Module) -> nn.Module:
        """The model wrapped for gradient all-reduce (parameters stay shared with `model`)."""
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def barrier(self) -> None:
        """Wait until every rank is here."""
        import torch.distributed as dist

        dist.barrier()

    def close(self) -> None:
        """Leave the process group (idempotent)."""
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()

    @property
    def _comm_device(self) -> torch.device:
        import torch

        return self.device if self.backend == "nccl" else torch.device("cpu")


def in_worker(env: Mapping[str, str] | None = None) -> bool:
    """True when this process was started by torchrun (or another launcher setting its variables)."""
    found = os.environ if env is None else env
    return all(k in found for k in WORKER_ENV)


def init_world(device: str) -> World | None:
    """Join the process group torchrun set up; None when not launched by torchrun (single process).

    The backend follows the device: nccl for CUDA (one GPU per local rank), gloo for CPU.
    """
    if not in_worker():
        return None
    import torch
    import torch.distributed as dist

    rank, size, local = (int(os.environ[k]) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if cuda:
        if not torch.cuda.is_available():
            raise RunError("--device cuda: no CUDA device is available here; use --device cpu or auto")
        if local >= torch.cuda.device_count():
            raise RunError(
                f"local rank {local} has no GPU ({torch.cuda.device_count()} here); "
                f"use --nproc-per-node ≤ the number of GPUs, or --device cpu"
            )
        torch.cuda.set_device(local)
        world_device = torch.device("cuda", local)
    else:
        world_device = torch.device("cpu")
    backend = "nccl" if cuda else "gloo"
    if not dist.is_initialized():
        # device_id binds the process group to this rank's GPU (nccl); gloo takes none
        dist.init_process_group(backend, rank=rank, world_size=size, device_id=world_device if cuda else None)
    return World(rank, size, local, world_device, backend)


def torchrun_command(
    train_args: Sequence[str],
    nproc: int,
    nnodes: int = 1,
    node_rank: int = 0,
    master_addr: str | None = None,
    master_port: int = 29500,
) -> list[str]:
    """The `python -m torch.distributed.run ... -m fmnist_tui train ARGS` command line.

    One node: a standalone rendezvous on a free local port. Several nodes: a static rendezvous at
    `master_addr:master_port` (the same on every node), each node passing its own `node_rank`.
    """
    if nproc < 1 or nnodes < 1:
        raise UsageError(f"--nproc must be at least 1, got {nproc}")
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}"]
    if nnodes == 1:
        cmd.append("--standalone")
    else:
        if not master_addr:
            raise UsageError("a multi-node launch needs the master node's address")
        cmd += [
            f"--nnodes={nnodes}",
            f"--node-rank={node_rank}",
            f"--master-addr={master_addr}",
            f"--master-port={master_port}",
        ]
    return [*cmd, "-m", "fmnist_tui", "train", *train_args]


def launch(
    train_args: Sequence[str], nproc: int, nnodes: int = 1, node_rank: int = 0, master_addr: str | None = None
) -> int:
    """Run `fmnist train ARGS` in `nproc` processes under torchrun; returns its exit code.

    Each worker prints its own errors as one line; torchrun's own report of a failed worker (a
    Python traceback of the launcher) is dropped from the output, since the worker already said why.
    """
    cmd = torchrun_command(train_args, nproc, nnodes, node_rank, master_addr)
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")  # torchrun's own default, set here to silence its warning
    env.setdefault("LOGLEVEL", "ERROR")  # torchelastic's agent logs at WARNING otherwise
    interrupted: list[int] = []
    # Ctrl-C reaches every process of the terminal's group: the workers stop at the same batch and save;
    # this process only waits for them (a Python handler, not SIG_IGN, so the children keep the default)
    previous = signal.signal(signal.SIGINT, lambda signum, frame: interrupted.append(signum))
    try:
        proc = subprocess.run(cmd, env=env, stderr=subprocess.PIPE, text=True)
    finally:
        signal.signal(signal.SIGINT, previous)
    for line in _worker_lines(proc.stderr):
        sys.stderr.write(line)
    if proc.returncode == 0:
        return 0
    return 130 if interrupted or proc.returncode in (-2, 130) else 1


_ELASTIC_LOG = re.compile(r"^[DIWEF]\d{4} [\d:.]+ +\d+ \S*torch/distributed/")


def _worker_lines(stderr: str) -> list[str]:
    """The workers' own stderr lines, without torchelastic's log lines and its failure report."""
    kept: list[str] = []
    for line in stderr.splitlines(keepends=True):
        if line.startswith("Traceback (most recent call last)"):
            break  # the launcher's ChildFailedError report; the workers never print tracebacks
        if not _ELASTIC_LOG.match(line):
            kept.append(line)
    return kept
