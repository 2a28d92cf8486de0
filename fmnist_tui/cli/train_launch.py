"""`fmnist train` in other settings: several processes (`--nproc`, torchrun) or a SageMaker job."""

from __future__ import annotations

import os
from enum import Enum
from typing import Any

import typer

from ..core.errors import UsageError

#: Options that choose how `train` runs, never forwarded to the worker processes.
LAUNCH_OPTIONS = ("nproc", "sagemaker")


def given_options(ctx: typer.Context, skip: tuple[str, ...] = ()) -> list[Any]:
    """The command's options the user gave (on the command line, not left at their defaults), as click parameters;
    those named in `skip` left out."""
    found = []
    for param in ctx.command.params:  # duck-typed: Typer ships its own copy of click's classes
        if getattr(param, "param_type_name", "") != "option" or param.name in skip or param.name is None:
            continue
        source = ctx.get_parameter_source(param.name)
        if source is not None and source.name != "DEFAULT":
            found.append(param)
    return found


def forwarded_args(ctx: typer.Context, skip: tuple[str, ...] = LAUNCH_OPTIONS) -> list[str]:
    """The command-line options the user gave (defaults left out), to hand on to each worker."""
    args: list[str] = []
    for param in given_options(ctx, skip):
        value = ctx.params.get(param.name)
        if getattr(param, "is_flag", False):
            flag = param.opts[0] if value else next(iter(param.secondary_opts), None)
            args += [flag] if flag else []
        elif value is not None:
            args += [param.opts[0], str(value.value if isinstance(value, Enum) else value)]
    return args


def delegate(ctx: typer.Context, nproc: int, sagemaker: bool | None) -> int | None:
    """Run the SageMaker contract or the torchrun launch when asked; None: train here, as usual."""
    from ..deploy import sagemaker as sm

    if sagemaker or (sagemaker is None and sm.detected(os.environ)):
        given = forwarded_args(ctx)
        if given:
            raise UsageError(
                f"in SageMaker mode the hyperparameters come from hyperparameters.json, not options "
                f"({' '.join(given)}); drop them, or pass --no-sagemaker"
            )
        from .common import console
        from .progress import ProgressView

        code = sm.train_job(os.environ, on_event=ProgressView())  # epoch lines go to the job's log
        if code == 0 and os.environ.get("RANK", "0") == "0":
            console.print(f"SageMaker training job done: model in {sm.read_job(os.environ).model_dir}", highlight=False)
        return code
    if nproc > 1:
        from ..training.distributed import in_worker, launch

        if in_worker():
            raise UsageError("--nproc inside a torchrun worker: launch with either torchrun or --nproc, not both")
        return launch(forwarded_args(ctx), nproc)
    return None
