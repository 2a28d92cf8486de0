"""`fmnist serve`: the SageMaker serving contract (GET /ping, POST /invocations) over HTTP."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from ..core.errors import UsageError
from ..core.text import printable
from .common import console, err_console, handle_errors

SAGEMAKER_MODEL_DIR = Path("/opt/ml/model")


def default_serve_model() -> Path:
    """The one .onnx in $SM_MODEL_DIR or /opt/ml/model (SageMaker's), else predict's default ($FMNIST_MODEL…)."""
    from ..inference.session import default_model_path

    for folder in (Path(os.environ.get("SM_MODEL_DIR") or SAGEMAKER_MODEL_DIR), SAGEMAKER_MODEL_DIR):
        found = sorted(folder.glob("*.onnx")) if folder.is_dir() else []
        if len(found) > 1:
            raise UsageError(f"{folder} holds {len(found)} ONNX models; choose one with --model")
        if found:
            return found[0]
    return default_model_path()


def _port(value: int) -> int:
    if not 0 <= value <= 65535:
        raise typer.BadParameter(f"{value} is not a TCP port (0–65535; 0 picks a free one)")
    return value


def _k(value: int) -> int:
    if not 1 <= value <= 10:
        raise typer.BadParameter(f"must be between 1 and 10, got {value}")
    return value


@handle_errors
def serve(
    model: Annotated[
        Path | None,
        typer.Option(
            help="ONNX model from `fmnist export` (default: the one in "
            "/opt/ml/model if any, else $FMNIST_MODEL, else predict's "
            "default).",
            dir_okay=False,
        ),
    ] = None,
    host: Annotated[
        str, typer.Option(help="Address to listen on (0.0.0.0 in the container).", envvar="FMNIST_HOST")
    ] = "127.0.0.1",
    port: Annotated[
        int,
        typer.Option(
            help="TCP port; 0 picks a free one.", callback=_port, envvar=["SAGEMAKER_BIND_TO_PORT", "FMNIST_PORT"]
        ),
    ] = 8080,
    top_k: Annotated[int, typer.Option("--top-k", help="Classes listed per image under top_k.", callback=_k)] = 3,
    access_log: Annotated[bool, typer.Option("--access-log", help="Log every request (uvicorn's access log).")] = False,
) -> None:
    """Serve a model over HTTP as SageMaker expects: GET /ping, POST /invocations (PNG, JPEG, .npy, JSON)."""
    from ..deploy.serve import bind, create_app, run
    from ..inference.session import OnnxClassifier

    path = model or default_serve_model()
    classifier = OnnxClassifier(path)  # a file that is not an fmnist model stops us here, before binding
    if classifier.notice:  # a model from another tool: say which class names the answers will carry
        err_console.print(printable(f"note: {classifier.notice}"), markup=False, highlight=False)
    sock = bind(host, port)
    bound_host, bound_port = sock.getsockname()[:2]
    address = f"[{bound_host}]" if ":" in bound_host else bound_host
    console.print(
        printable(f"serving {path} ({classifier.metadata.get('run', '?')}) on http://{address}:{bound_port} · ")
        + "GET /ping · POST /invocations · SIGTERM or Ctrl-C stops",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    code = run(create_app(lambda: classifier, k=top_k), sock, access_log=access_log)
    console.print("server stopped", highlight=False)
    raise typer.Exit(code)
