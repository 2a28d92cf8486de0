"""A study's plan: the grid of training configs (architecture × option values × seed) and each run's status.

Each training is an ordinary run in the runs folder, so a finished run is reused, an interrupted one
resumed, and any other command (evaluate, export, report) can read it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..core import registry
from ..core.config import TrainConfig, recipe_differences
from ..core.errors import ConfigError, RunError, ref
from ..core.runs import CONFIG, STATE, Run

#: statuses of a planned run: reuse it, resume it, start it over (nothing resumable), or train it
DONE, RESUME, RESTART, NEW = "done", "resume", "restart", "new"
STATUSES = (DONE, RESUME, RESTART, NEW)


def option_grid(arch: str, grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of `arch`'s options over the values `grid` lists for them (its default for an option
    the grid leaves out); values another architecture takes but this one does not are skipped."""
    combos: list[dict[str, Any]] = [{}]
    for option in registry.get(arch).options:
        values = [v for v in dict.fromkeys(grid.get(option.name, [option.default])) if _valid(option, v, arch)]
        combos = [{**c, option.name: v} for c in combos for v in values]
    return combos


def _valid(option: registry.Option, value: Any, arch: str) -> bool:
    try:
        option.check(value, arch)
        return True
    except ConfigError:
        return False


def check_grid(archs: Sequence[str], grid: Mapping[str, Sequence[Any]]) -> None:
    """A ConfigError for an unknown arch, or a grid value that no planned architecture takes."""
    if not archs:
        raise ConfigError("archs", "is empty", f"valid: {', '.join(registry.REGISTRY)}")
    for arch in archs:
        if arch not in registry.REGISTRY:
            raise ConfigError("archs", f"names unknown arch {arch!r}", f"valid: {', '.join(registry.REGISTRY)}")
    for name, values in grid.items():
        takers = [(spec, o) for spec, o in registry.options_named(name) if spec.name in archs]
        bad = [v for v in values if not any(_valid(o, v, spec.name) for spec, o in takers)] if takers else []
        if bad or not values:
            valid = sorted({v for _, o in takers for v in o.choices})
            raise ConfigError(
                f"{name}s", f"{','.join(map(str, bad)) or '(none)'} not valid", f"valid: {','.join(map(str, valid))}"
            )


def plan(
    archs: Sequence[str],
    grid: Mapping[str, Sequence[Any]],
    seeds: int,
    epochs: int,
    out: Path,
    subset: int | None = None,
    data_dir: Path | None = None,
    device: str = "auto",
) -> list[TrainConfig]:
    """The grid's training configs: every arch × its option values in `grid` × seeds 0..seeds−1, one recipe."""
    check_grid(archs, grid)
    configs = [(arch, options) for arch in dict.fromkeys(archs) for options in option_grid(arch, grid)]
    return plan_configs(configs, seeds, epochs, out, subset, data_dir, device)


def plan_configs(
    configs: Sequence[tuple[str, Mapping[str, Any]]],
    seeds: int,
    epochs: int,
    out: Path,
    subset: int | None = None,
    data_dir: Path | None = None,
    device: str = "auto",
) -> list[TrainConfig]:
    """The training configs of (arch, settings) pairs × seeds 0..seeds−1: the settings are the arch's options,
    data settings and, for a config whose recipe is its own (the ladder's default model), recipe settings, which
    win over `epochs`."""
    if seeds < 1:
        raise ConfigError("seeds", f"must be at least 1 (the number of seeds per config), got {seeds}")
    fields = set(TrainConfig.__dataclass_fields__) - {"arch", "options"}
    return [
        TrainConfig(
            arch=arch,
            options={k: v for k, v in settings.items() if k not in fields},
            seed=seed,
            out=str(out),
            data_dir=str(data_dir) if data_dir else None,
            device=device,
            **{"epochs": epochs, "subset": subset, **{k: v for k, v in settings.items() if k in fields}},
        )
        for arch, settings in configs
        for seed in range(seeds)
    ]


def status(cfg: TrainConfig) -> str:
    """DONE, RESUME, RESTART or NEW for a planned run; RunError if the folder holds a different recipe."""
    run = Run(cfg.run_dir)
    if not run.file(CONFIG).exists():
        return NEW
    diffs = recipe_differences(run, cfg)
    if diffs:
        raise RunError(
            f"run {run.name!r} in {run.path.parent} has another recipe ({diffs}); pass another "
            f"{ref('runs')} folder for this study, or move that run away"
        )
    return run_state(run)


def run_state(run: Run) -> str:
    """DONE, RESUME or RESTART for a run folder that holds a run (its recipe already checked)."""
    if run.finished:
        return DONE
    return RESUME if run.file(STATE).exists() else RESTART
