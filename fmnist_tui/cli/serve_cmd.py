"""`fmnist serve`: the SageMaker serving contract (GET /ping, POST /invocations) over HTTP."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import console, handle_errors

SAGEMAKER_MODEL = Path("/opt/ml/model/model.onnx")


def default_serve_model() -> Path:
    """$SM_MODEL_DIR/model.onnx, then /opt/ml/model/model.onnx (SageMaker's), then predict's default."""
    from ..inference import default_model_path

    candidates = [Path(os.environ["SM_MODEL_DIR"]) / "model.onnx"] if os.environ.get("SM_MODEL_DIR") else []
    candidates.append(SAGEMAKER_MODEL)
    return next((p for p in candidates if p.is_file()), None) or default_model_path()


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
    model: Annotated[Optional[Path], typer.Option(help="ONNX model from `fmnist export` (default: "
                                                      "/opt/ml/model/model.onnx if present, else predict's default).",
                                                 envvar="FMNIST_MODEL", dir_okay=False)] = None,
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0 in the container).",
                                      envvar="FMNIST_HOST")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port; 0 picks a free one.", callback=_port,
                                      envvar=["SAGEMAKER_BIND_TO_PORT", "FMNIST_PORT"])] = 8080,
    top_k: Annotated[int, typer.Option("--top-k", help="Classes listed per image under top_k.",
                                       callback=_k)] = 3,
    access_log: Annotated[bool, typer.Option("--access-log", help="Log every request (uvicorn's access log).")]
    = False,
) -> None:
    """Serve a model over HTTP as SageMaker expects: GET /ping, POST /invocations (PNG, JPEG, .npy, JSON)."""
    from ..inference import OnnxClassifier
    from ..serve import bind, create_app, run

    path = model or default_serve_model()
    classifier = OnnxClassifier(path)  # a file that is not an fmnist model stops us here, before binding
    sock = bind(host, port)
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    console.print(f"serving {path} ({classifier.metadata.get('run', '?')}) on http://{shown}:{bound_port} · "
                  f"GET /ping · POST /invocations · SIGTERM or Ctrl-C stops", highlight=False, soft_wrap=True)
    code = run(create_app(lambda: classifier, k=top_k), sock, access_log=access_log)
    console.print("server stopped", highlight=False)
    raise typer.Exit(code)
