"""`fmnist train`: train (or resume) one run, with a rich progress bar (in a terminal) and a line per epoch."""

from __future__ import annotations

import inspect
import math
import shlex
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..core import registry
from ..core.config import PRECISIONS, TrainConfig, default, resume_config, what_args
from ..core.errors import EXIT_INTERRUPTED, EXIT_USAGE, RunError, UsageError, ref
from ..core.registry import PERMUTE_SEED
from ..core.runs import CONFIG, Run
from .common import Compile, DataDirOpt, Device, StopFlag, console, err_console, fail, flag, handle_errors, shown
from .progress import ProgressView
from .train_launch import LAUNCH_OPTIONS, delegate, given_options

if TYPE_CHECKING:
    from ..training.trainer import TrainResult

# (mypy wants an Enum's members spelled out; these come from the config's PRECISIONS, their one home)
Precision = Enum("Precision", {name: name for name in PRECISIONS}, type=str)  # type: ignore[misc]


def _positive(value: int | None) -> int | None:
    if value is not None and value < 1:
        raise typer.BadParameter(f"must be a positive integer, got {value}")
    return value


@handle_errors
def train(
    ctx: typer.Context,
    arch: Any = default("arch"),  # Annotated with the registry's names when the command is built
    epochs: Annotated[
        int | None,
        typer.Option(
            help=f"Epochs (default {default('epochs')}); with --resume, a larger value extends a run.",
            callback=_positive,
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Batch size.", callback=_positive)] = default("batch_size"),
    lr: Annotated[
        float | None, typer.Option(help=f"Peak learning rate (default {default('lr_per_128'):g} × batch/128).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for initialisation, order and augmentation.")] = default("seed"),
    device: Annotated[Device, typer.Option(help="auto: CUDA when present, else CPU.")] = default("device"),
    precision: Annotated[Precision, typer.Option(help="auto: bf16 autocast where the hardware has it.")] = default(
        "precision"
    ),
    compile: Annotated[
        Compile,
        typer.Option(
            help="torch.compile the training step: default (fused kernels) or graphs (also CUDA graphs, for a GPU); "
            "it pays a compile first. Validation, test and export stay eager. bench/compile_speed.py measures it."
        ),
    ] = default("compile"),
    subset: Annotated[
        int | None,
        typer.Option(help="Train on the first N images (and validate on N) for smoke runs.", callback=_positive),
    ] = None,
    train_size: Annotated[
        int | None,
        typer.Option(
            help="Train on N images of a stratified, nested family (a smaller N's images are in every larger N's), "
            "repeated to the epoch's usual length so every N takes the same steps; validation and test unchanged.",
            callback=_positive,
        ),
    ] = None,
    label_noise: Annotated[
        int,
        typer.Option(
            help="Replace the labels of this percent of the training images by another class (drawn per seed; "
            "validation and test keep their true labels), as in Zhang et al. 2017's memorisation tests.",
            min=0,
            max=100,
        ),
    ] = 0,
    permute: Annotated[
        bool,
        typer.Option(
            "--permute",
            help=f"Permute the 784 pixel positions by one fixed permutation (seed {PERMUTE_SEED}, in config.json), "
            "after augmentation, for training, validation and test alike; inside the model, so its ONNX export "
            "still takes natural images.",
        ),
    ] = False,
    threads: Annotated[int | None, typer.Option(help="CPU threads for torch.", callback=_positive)] = None,
    out: Annotated[Path, typer.Option(help="Folder that receives the run folder.")] = Path(default("out")),
    name: Annotated[
        str | None, typer.Option(help="Run folder name (default <arch>[-<options>]-s<seed>, e.g. cnn-k3-s0).")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue an interrupted run, or extend a finished one with --epochs N.")
    ] = False,
    reuse: Annotated[
        bool,
        typer.Option(
            "--reuse",
            help="Where the run folder already holds this recipe, keep it: a finished run is reported, not retrained "
            "(exit 0), an interrupted one resumed. Another recipe there is refused. For scripts and Makefiles.",
        ),
    ] = False,
    shift: Annotated[
        int, typer.Option(help="Random shift augmentation, pixels each way (0: off).", min=0, max=8)
    ] = default("shift"),
    erase: Annotated[
        float,
        typer.Option(
            help="Random erasing: the probability that a training image gets one random rectangle (2–40% of its "
            "area) blacked out (0: off).",
        ),
    ] = default("erase"),
    label_smoothing: Annotated[float, typer.Option(help="Label smoothing of the training loss, in [0, 1).")] = default(
        "label_smoothing"
    ),
    ema: Annotated[
        float,
        typer.Option(
            help="Decay per step of an exponential moving average of the weights, in [0, 1) (e.g. 0.999; 0: off); "
            "the average is what is validated, saved and exported.",
        ),
    ] = default("ema"),
    tta: Annotated[
        bool,
        typer.Option(
            "--tta",
            help="Flip test-time augmentation: logits are the mean of the image's and its mirror image's, in "
            "validation, test and the exported ONNX graph alike.",
        ),
    ] = False,
    affine: Annotated[
        float,
        typer.Option(
            help="Random re-framing strength, 0 (off) to 2: half the garments made wider or narrower (×/÷ 1.5 at 1), "
            "tilted (±15° at 1) and shrunk (to 0.85 of the box at 1), then fitted and centred as drawings are.",
            min=0,
            max=2,
        ),
    ] = default("affine"),
    no_augment: Annotated[
        bool, typer.Option("--no-augment", help="Turn off all augmentation (flips, shifts, erasing, re-framing).")
    ] = False,
    data_dir: DataDirOpt = None,
    nproc: Annotated[
        int,
        typer.Option(
            help="Train in N processes with DistributedDataParallel (torchrun, this node).", callback=_positive
        ),
    ] = 1,
    sagemaker: Annotated[
        bool | None,
        typer.Option(
            "--sagemaker/--no-sagemaker",
            help="Follow SageMaker's training contract (default: when its environment is detected).",
        ),
    ] = None,
    **options: Any,
) -> None:
    """Train a model on Fashion-MNIST into checkpoints/<run>/ (config, metrics, weights, summary)."""
    code = delegate(ctx, nproc, sagemaker)  # SageMaker job or torchrun launch, when asked
    if code is not None:
        raise typer.Exit(code)
    cfg = TrainConfig.create(
        arch=getattr(arch, "value", arch),
        epochs=epochs or default("epochs"),
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        subset=subset,
        train_size=train_size,
        label_noise=label_noise,
        permute=permute,
        device=Device(device).value,
        precision=Precision(precision).value,
        compile=Compile(compile).value,
        threads=threads,
        name=name,
        out=str(out),
        data_dir=str(data_dir) if data_dir else None,
        hflip=not no_augment,
        shift=0 if no_augment else shift,
        erase=0.0 if no_augment else erase,
        label_smoothing=label_smoothing,
        ema=ema,
        tta=tta,
        affine=0.0 if no_augment else affine,
        **options,
    )
    if reuse:
        if resume:
            raise fail("--reuse resumes the run when it needs to; drop --resume", EXIT_USAGE)
        reused = _reuse(cfg)
        if reused is None:
            return
        resume = reused
    if resume:
        saved = resume_config(
            cfg.run_dir, epochs=epochs, device=cfg.device, threads=threads, compile=cfg.compile, data_dir=cfg.data_dir
        )
        if not reuse:  # (--reuse has checked the recipe already, and gives every option anyway)
            refuse_changes(ctx, cfg, saved)
        cfg = saved
    # from here one Ctrl-C, whenever it comes (while torch or the dataset loads too), stops at the next batch
    # with the state saved; a second one aborts at once, keeping the last saved state
    with StopFlag("stopping after this batch and saving the state… (Ctrl-C again to abort at once)") as stop:
        try:
            result = _train(cfg, resume, stop)
        except KeyboardInterrupt:
            raise fail(f"aborted; {continue_with(cfg)}", EXIT_INTERRUPTED) from None
    if result is None:  # a DDP rank other than 0: rank 0 reports
        raise typer.Exit(0)
    if result.interrupted:
        err_console.print(f"interrupted; state saved in {shown(result.run.path)}. {shown(continue_with(cfg))}")
        raise typer.Exit(EXIT_INTERRUPTED)
    s = result.summary or {}
    console.print(
        f"[bold green]done[/]: test accuracy {s['test_accuracy']:.2%} (best epoch {s['best_epoch']}, "
        f"val {s['best_val_accuracy']:.2%}) in {s['train_seconds']:.1f}s of training → {shown(result.run.path)}",
        highlight=False,
    )
    console.print(
        f"next: fmnist evaluate {shown(result.run.path)} · fmnist export {shown(result.run.path)}", highlight=False
    )


#: what `--resume` takes from the command line (resume_config's changes: `--epochs N` extends a run), and the
#: options that find the run or choose how `train` runs; every other option is the saved run's to keep
ON_RESUME = tuple(name for name in inspect.signature(resume_config).parameters if name != "run_dir")
NOT_SAVED = ("out", "name", "resume", "reuse", *LAUNCH_OPTIONS)


def refuse_changes(ctx: typer.Context, wanted: TrainConfig, saved: TrainConfig) -> None:
    """--resume goes on with the saved config: a UsageError for the first option the user gave that differs from
    it (`wanted` is the command line's config), which would otherwise be ignored."""
    for param in given_options(ctx, skip=(*ON_RESUME, *NOT_SAVED)):
        given, had = _value(wanted, param.name), _value(saved, param.name)
        if _same(given, had):
            continue
        written = "" if getattr(param, "is_flag", False) else f" {_text(given)}"
        raise UsageError(
            f"{ref(param.name)}{written} differs from the run's {_setting(param.name)} {_text(had)}; drop it to "
            f"resume, or choose another {ref('name')}"
        )


def _setting(option: str) -> str:
    """The config.json field a command-line option sets (`--no-augment` sets hflip)."""
    return "hflip" if option == "no_augment" else option


def _value(cfg: TrainConfig, option: str) -> Any:
    """What a config holds for an option: the peak learning rate for `--lr` (the default one when not set), the
    architecture's option (None where it has none), else the config.json field."""
    if option == "lr":
        return cfg.peak_lr
    if option in registry.option_names():
        return cfg.options.get(option)
    return cfg.to_dict().get(_setting(option))


def _same(a: Any, b: Any) -> bool:
    """Equal values, numbers compared as numbers (a learning rate computed two ways is still one)."""
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool) and not isinstance(b, bool):
        return math.isclose(a, b, rel_tol=1e-9)
    return bool(a == b)


def _text(value: Any) -> str:
    """A value as a command line writes it (`256,128` for a list; `(none)` for an unset one)."""
    if value is None:
        return "(none)"
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def _reuse(cfg: TrainConfig) -> bool | None:
    """--reuse: None when the run folder holds this recipe finished (said, nothing to do), True when it holds it
    interrupted (resume it), False when there is nothing to reuse (train). RunError for another recipe."""
    from ..study.plan import DONE, RESUME, recipe_differences, run_state

    run = Run(cfg.run_dir)
    if not run.file(CONFIG).exists():
        return False
    diffs = recipe_differences(run, cfg)
    if diffs:
        raise RunError(
            f"run {run.name!r} in {shown(run.path.parent)} holds another recipe ({diffs}); choose another "
            f"{ref('name')}, or move that run away"
        )
    state = run_state(run)
    if state == DONE:
        accuracy = run.summary().get("test_accuracy")
        said = f"test accuracy {accuracy:.2%}" if isinstance(accuracy, float) else "finished"
        console.print(f"reusing {shown(run.path)}: already trained with this recipe ({said})", highlight=False)
        return None
    return state == RESUME


def _train(cfg: TrainConfig, resume: bool, stop: StopFlag) -> TrainResult | None:
    """Train in this process (one rank of a torchrun job, or alone); None on DDP ranks other than 0."""
    from ..training.distributed import init_world
    from ..training.trainer import train as run_training  # torch loads here, not at CLI start-up

    world = init_world(cfg.device)  # None unless started by torchrun
    view = ProgressView() if world is None or world.is_main else None  # only rank 0 prints
    stop.quiet = view is None
    try:
        result = run_training(cfg, view, stop, resume=resume, world=world)
    finally:
        if world:
            world.close()
    if view is None:
        if result.interrupted:
            raise typer.Exit(EXIT_INTERRUPTED)
        return None
    return result


def continue_with(cfg: TrainConfig) -> str:
    """The command that continues this run after an interruption: --resume once its folder holds a run (any
    state of it resumes, or starts over when nothing was saved yet), else the same command again."""
    if Run(cfg.run_dir).file(CONFIG).exists():
        again = ["fmnist", "train", "--resume", "--out", cfg.out, "--name", cfg.run_name]
        return f"Resume with: {shlex.join(again)}"
    return f"nothing was saved; run the same command again: {shlex.join(command_line(cfg))}"


def command_line(cfg: TrainConfig) -> list[str]:
    """`fmnist train` with the options that give `cfg` (those at their defaults left out)."""
    args = ["fmnist", "train", "--arch", cfg.arch, *what_args(cfg)]
    for setting in ("epochs", "batch_size", "lr", "seed", "device", "precision", "compile", "threads"):
        value = getattr(cfg, setting)
        if value != default(setting):
            args += [flag(setting), str(value)]
    args += [] if cfg.hflip else ["--no-augment"]
    args += ["--out", cfg.out, "--name", cfg.run_name] + (["--data-dir", cfg.data_dir] if cfg.data_dir else [])
    return args


# --- the command as the CLI shows it: one option per registry option -------------------------------
def _option_help(name: str) -> str:
    """The help of an architecture option, with each architecture's valid values and default."""
    takers = registry.options_named(name)
    per_arch = "; ".join(
        f"{spec.name}: {', '.join(map(str, o.choices)) or o.hint().removeprefix('give ')} (default {o.text(o.default)})"
        for spec, o in takers
    )
    rules = [r.describe() for spec, _ in takers for r in spec.rules if name in (r.name, r.when)]
    return f"{takers[0][1].help} {per_arch}." + (f" ({'; '.join(rules)}.)" if rules else "")


def _option_callback(name: str) -> Callable[[Any], Any]:
    """Refuse (exit 2) a value that no architecture's version of the option takes."""
    choices = [c for _, o in registry.options_named(name) for c in o.choices]

    def check(value: Any) -> Any:
        if value is not None and choices and value not in choices:
            valid = ", ".join(map(str, dict.fromkeys(choices)))
            raise typer.BadParameter(f"{value} is not a valid {name}; valid: {valid}")
        return value

    return check


def command() -> Callable[..., None]:
    """`fmnist train` as the CLI registers it: `--arch` lists the registry's architectures and every
    architecture option becomes a flag (`--kernel`). Built when the CLI is, so a newly registered
    architecture or option shows up in `--help` without a change here."""
    # (mypy wants an Enum's members spelled out; these are the registry's, read when the CLI is built)
    arch_enum = Enum("Arch", {n: n for n in registry.REGISTRY}, type=str)  # type: ignore[misc]
    params = []
    for param in inspect.signature(train, eval_str=True).parameters.values():
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            continue
        if param.name != "arch":
            params.append(param)
            continue
        params.append(
            param.replace(
                annotation=Annotated[arch_enum, typer.Option(help="Architecture, from the model registry.")],
                default=arch_enum(default("arch")),
            )
        )
        for name in registry.option_names():  # the architectures' options, right after --arch
            kind = registry.options_named(name)[0][1].value_type
            option = typer.Option(
                f"--{name.replace('_', '-')}", help=_option_help(name), callback=_option_callback(name)
            )
            params.append(
                inspect.Parameter(
                    name,
                    inspect.Parameter.POSITIONAL_OR_KEYWORD,
                    default=None,
                    annotation=Annotated[kind | None, option],
                )
            )

    def run(**values: Any) -> None:
        train(**values)

    run.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]  # Typer reads it as inspect does
    run.__doc__, run.__name__ = train.__doc__, "train"
    return run


command.is_factory = True  # type: ignore[attr-defined]  # a mark build_app looks for on a command function
