"""SageMaker's training contract: hyperparameters and data in from /opt/ml, the model out to the model dir.

SageMaker runs the image as `train` with /opt/ml mounted: hyperparameters in
input/config/hyperparameters.json (every value a string), channels in input/data/<channel>, the model
to be written to model/ (uploaded as model.tar.gz), and on error a message in output/failure. The
SageMaker training toolkit also exports these paths as SM_* variables; both are read here, the
variables first. SAGEMAKER_BASE_DIR relocates /opt/ml (as in the toolkit), for local runs and tests.
"""

from __future__ import annotations

import json
import shutil
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ..core import registry
from ..core.config import TrainConfig
from ..core.errors import FmnistError, UsageError
from ..core.fsutil import write_bytes, write_text

Env = Mapping[str, str]
DEFAULT_BASE = "/opt/ml"
#: Run-folder files copied into the model dir next to the exported <run>.onnx and its manifest.json.
MODEL_DIR_FILES = ("config.json", "summary.json", "metrics.csv", "best.safetensors")


def hyperparameter_types() -> dict[str, tuple[type, bool]]:
    """Each hyperparameter SageMaker may pass → (its type, whether null is allowed): TrainConfig's fields
    from their type hints and every architecture option from the registry. `out` and `data_dir` are
    not hyperparameters: SageMaker's own layout sets them."""
    hints = typing.get_type_hints(TrainConfig)
    types: dict[str, tuple[type, bool]] = {}
    for f in fields(TrainConfig):
        if f.name in ("options", "out", "data_dir"):
            continue
        args = [a for a in typing.get_args(hints[f.name]) if a is not type(None)]
        types[f.name] = (args[0] if args else hints[f.name], len(args) < len(typing.get_args(hints[f.name])))
    for name in registry.option_names():
        # null: the arch's default (none for mlp); a list-valued option (hidden "256,128", or a JSON list) is
        # handed on as given, and the registry parses and checks it
        option = registry.options_named(name)[0][1]
        types[name] = (list if option.many else option.type, True)
    return types


class HyperparameterError(FmnistError):
    """A hyperparameter SageMaker passed is unknown or has a bad value (exit 1: the job failed)."""


@dataclass(frozen=True)
class Job:
    """Where a SageMaker training job keeps its inputs and outputs, and its cluster."""

    model_dir: Path
    output_dir: Path
    output_data_dir: Path
    training: Path | None  # the `training` channel, if any (else the usual dataset search)
    checkpoints: Path  # where the run folder lives (SageMaker syncs /opt/ml/checkpoints)
    hyperparameters: dict[str, Any]
    hp_source: str
    num_gpus: int
    hosts: list[str]
    current_host: str


def base_dir(env: Env) -> Path:
    """/opt/ml, or $SAGEMAKER_BASE_DIR."""
    return Path(env.get("SAGEMAKER_BASE_DIR") or DEFAULT_BASE)


def detected(env: Env) -> bool:
    """True inside a SageMaker training job (its variables, or its hyperparameters file)."""
    if "SM_MODEL_DIR" in env or "SAGEMAKER_BASE_DIR" in env or "SM_HPS" in env:
        return True
    return (base_dir(env) / "input" / "config" / "hyperparameters.json").is_file()


def failure_path(env: Env) -> Path:
    """output/failure: SageMaker shows its first 1 KiB as the job's FailureReason."""
    if env.get("SM_OUTPUT_DIR"):
        return Path(env["SM_OUTPUT_DIR"]) / "failure"
    if env.get("SM_OUTPUT_DATA_DIR"):
        return Path(env["SM_OUTPUT_DATA_DIR"]).parent / "failure"
    return base_dir(env) / "output" / "failure"


def write_failure(env: Env, message: str) -> Path:
    """Record why the job failed where SageMaker looks for it."""
    path = failure_path(env)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, message.rstrip() + "\n")
    return path


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise HyperparameterError(f"{path}: cannot read the {what} ({exc})") from exc


def read_hyperparameters(env: Env) -> tuple[dict[str, Any], str]:
    """The raw hyperparameters and where they came from ($SM_HPS, else hyperparameters.json, else none)."""
    if env.get("SM_HPS"):
        try:
            raw = json.loads(env["SM_HPS"])
        except ValueError as exc:
            raise HyperparameterError(f"SM_HPS is not valid JSON ({exc})") from exc
        source = "SM_HPS"
    else:
        path = Path(env.get("SM_INPUT_CONFIG_DIR") or base_dir(env) / "input" / "config") / "hyperparameters.json"
        raw, source = (_read_json(path, "hyperparameters"), str(path)) if path.is_file() else ({}, "defaults")
    if not isinstance(raw, dict):
        raise HyperparameterError(f"{source}: hyperparameters must be a JSON object, got {type(raw).__name__}")
    return raw, source


def _hosts(env: Env) -> tuple[list[str], str]:
    """The cluster's hosts and this one ($SM_HOSTS/$SM_CURRENT_HOST, else resourceconfig.json)."""
    if env.get("SM_HOSTS") and env.get("SM_CURRENT_HOST"):
        return sorted(json.loads(env["SM_HOSTS"])), env["SM_CURRENT_HOST"]
    path = Path(env.get("SM_INPUT_CONFIG_DIR") or base_dir(env) / "input" / "config") / "resourceconfig.json"
    if path.is_file():
        conf = _read_json(path, "resource config")
        return sorted(conf.get("hosts") or []) or [conf["current_host"]], conf["current_host"]
    return ["localhost"], "localhost"


def read_job(env: Env) -> Job:
    """Every path and setting of the job, from the SM_* variables or the /opt/ml layout."""
    base = base_dir(env)
    output_dir = Path(env.get("SM_OUTPUT_DIR") or base / "output")
    training = Path(env.get("SM_CHANNEL_TRAINING") or base / "input" / "data" / "training")
    hps, source = read_hyperparameters(env)
    hosts, current = _hosts(env)
    gpus = env.get("SM_NUM_GPUS", "")
    return Job(
        model_dir=Path(env.get("SM_MODEL_DIR") or base / "model"),
        output_dir=output_dir,
        output_data_dir=Path(env.get("SM_OUTPUT_DATA_DIR") or output_dir / "data"),
        training=training if training.is_dir() else None,
        checkpoints=base / "checkpoints",
        hyperparameters=hps,
        hp_source=source,
        num_gpus=int(gpus) if gpus.isdigit() else _count_gpus(),
        hosts=hosts,
        current_host=current,
    )


def _count_gpus() -> int:
    import torch

    return torch.cuda.device_count()


def _decode(value: Any) -> Any:
    """SageMaker passes every value as a string, often JSON-encoded ('"cnn"', '15', 'true')."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _coerce(key: str, value: Any, kind: type, nullable: bool) -> Any:
    """The value as the field's type; a HyperparameterError names the key otherwise."""
    value = _decode(value)
    if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
        if nullable:
            return None
        raise HyperparameterError(f"hyperparameter {key!r} cannot be empty")
    bad = HyperparameterError(f"hyperparameter {key!r}: {value!r} is not {_KINDS.get(kind, kind.__name__)}")
    if kind is bool:
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "1", "yes", "false", "0", "no"):
            return str(value).lower() in ("true", "1", "yes")
        raise bad
    if kind is str:
        return str(value)
    if kind is list:
        return value if isinstance(value, (list, str)) else str(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise bad
    if kind is int:
        if float(value) != int(value):
            raise bad
        return int(value)
    return float(value)


_KINDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def parse_hyperparameters(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Typed TrainConfig fields from SageMaker's strings; SageMaker's own keys are skipped."""
    types = hyperparameter_types()
    parsed: dict[str, Any] = {}
    for name, value in raw.items():
        if name.startswith(("sagemaker_", "_")):  # the SDK's and tuning jobs' own entries
            continue
        key = name.replace("-", "_")
        if key not in types:
            raise HyperparameterError(f"unknown hyperparameter {name!r}; valid: {', '.join(sorted(types))}")
        parsed[key] = _coerce(key, value, *types[key])
    return parsed


def job_config(job: Job) -> TrainConfig:
    """The TrainConfig of a job: its hyperparameters, its data channel, its run folder."""
    hps = parse_hyperparameters(job.hyperparameters)
    if "device" not in hps:
        hps["device"] = "cuda" if job.num_gpus > 0 else "cpu"
    try:
        return TrainConfig.create(**hps, out=str(job.checkpoints), data_dir=str(job.training) if job.training else None)
    except UsageError as exc:  # the config names the setting; say it as SageMaker does, and where it came from
        raise HyperparameterError(
            f"bad hyperparameter in {job.hp_source}: {exc.render(lambda key: f'hyperparameter {key!r}')}"
        ) from exc


def nprocs(job: Job, cfg: TrainConfig) -> int:
    """Processes per host: one per GPU when training on CUDA, else one."""
    return max(1, job.num_gpus) if cfg.device in ("cuda", "auto") and job.num_gpus > 0 else 1


def train_job(
    env: Env, on_event: Callable[[Any], None] | None = None, should_stop: Callable[[], bool] | None = None
) -> int:
    """Run the whole training contract; returns the exit code. Errors also go to output/failure."""
    try:
        return _train_job(env, on_event, should_stop)
    except FmnistError as exc:
        write_failure(env, str(exc))
        raise
    except Exception as exc:  # anything else is still the job's failure reason: record it, then say it once
        write_failure(env, f"{type(exc).__name__}: {exc}")
        raise FmnistError(
            f"training failed ({type(exc).__name__}: {exc}); the reason is in {failure_path(env)}"
        ) from exc


def _train_job(env: Env, on_event: Callable[[Any], None] | None, should_stop: Callable[[], bool] | None) -> int:
    from ..core.runs import CONFIG, STATE, Run
    from ..training.distributed import in_worker, init_world, launch
    from ..training.trainer import train

    job = read_job(env)
    cfg = job_config(job)
    hosts, n = job.hosts, nprocs(job, cfg)
    if not in_worker() and (len(hosts) > 1 or n > 1):
        code = launch(
            ["--sagemaker"], n, nnodes=len(hosts), node_rank=hosts.index(job.current_host), master_addr=hosts[0]
        )
        if code and not failure_path(env).exists():
            write_failure(env, f"a training process failed (exit {code}); see the job's log")
        return code
    run = Run(cfg.run_dir)
    world = init_world(cfg.device)
    try:
        if not run.finished:  # a restarted (e.g. spot) job finds its run in /opt/ml/checkpoints and resumes
            resume = run.file(STATE).exists()
            if not resume and run.file(CONFIG).exists() and (world is None or world.is_main):
                shutil.rmtree(run.path)  # stopped inside its first epoch: nothing to resume, start afresh
            result = train(cfg, on_event, should_stop, resume=resume, world=world)
            if result.interrupted:
                return 130
    finally:
        if world:
            world.close()
    if world is None or world.is_main:
        write_model_dir(run, job.model_dir, cfg.data_dir)
    return 0


def write_model_dir(run: Any, model_dir: Path, data_dir: str | None) -> Path:
    """Copy the run's config, summary, metrics and best weights into the model dir, and export ONNX there."""
    from ..core.data import load_dataset
    from .export import export_run

    model_dir.mkdir(parents=True, exist_ok=True)
    for name in MODEL_DIR_FILES:
        if run.file(name).exists():
            write_bytes(model_dir / name, run.file(name).read_bytes())
    report = export_run(run, model_dir, load_dataset(Path(data_dir) if data_dir else None))
    return Path(report.path)
