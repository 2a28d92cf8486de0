"""The ladder: one ingredient at a time from the seed's MLP to the modern network (issue 14), from the runs present.

Each rung is a config (a registry label) and the `fmnist train` options that make it. A rung's runs are the
group of that label with the project's default recipe where one exists (so the rungs compare like with like),
else its group with the most runs; the last rung, the default model, has a recipe of its own (`MODERN`).
Each step is the paired difference to the nearest lower rung that has runs, over the seeds both have.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..core.config import TrainConfig
from .results import Group
from .stats import summarize
from .studies import recipe_key

#: the default model's recipe on top of the project's (README, The ResNet); `make models` trains it. Random
#: erasing and flip-TTA were each taken out at 40 epochs and kept; the weight average (--ema), measured neutral
#: there, was left out.
MODERN = "--arch resnet --epochs 40 --batch-size 128 --lr 2e-3 --shift 2 --erase 0.25 --label-smoothing 0.1 --tta"


@dataclass(frozen=True)
class Rung:
    step: str  # what this rung adds to the one below
    label: str  # the config's registry label: its runs are `<label>-s<seed>`
    options: str  # the `fmnist train` options that make it


RUNGS = (
    Rung("MLP", "mlp", "--arch mlp"),
    Rung("the seed's CNN", "cnn-k3", "--arch cnn"),
    Rung("+ batch norm", "cnn-k3-bn", "--arch cnn --norm batch"),
    Rung("+ depth (3 blocks)", "cnn-k3-d3-bn", "--arch cnn --norm batch --depth 3"),
    Rung("+ GAP head", "cnn-k3-d3-gap-bn", "--arch cnn --norm batch --depth 3 --head gap"),
    Rung("+ residual blocks, width (ResNet)", "resnet", "--arch resnet"),
    Rung("+ crops, erasing, flip-TTA, 40 epochs (the default model)", "resnet-shift2", MODERN),
)


def pick(groups: list[Group], label: str) -> Group | None:
    """The rung's group: of `label`, the project's default recipe's if present (its arch, options and data
    settings aside, as a study compares recipes), else the one with the most runs."""
    mine = [g for g in groups if g.label == label]
    if not mine:
        return None
    default = recipe_key(TrainConfig().to_dict())
    return max(mine, key=lambda g: (recipe_key(g.records[0].config) == default, len(g.records)))


def ladder(groups: list[Group]) -> list[dict[str, Any]]:
    """One row per rung: its runs' accuracy (mean, std, n), parameters, MACs, training time and epochs, and the
    paired step from the nearest lower rung with runs (None where it has none, or no seed in common)."""
    rows: list[dict[str, Any]] = []
    below: Group | None = None
    for rung in RUNGS:
        group = pick(groups, rung.label)
        row: dict[str, Any] = {"step": rung.step, "config": rung.label, "command": f"fmnist train {rung.options}"}
        if group is None:
            rows.append({**row, "n": 0})
            continue
        r = group.row()
        row |= {k: r[k] for k in ("n", "params", "macs", "test_acc_mean", "test_acc_std", "train_seconds_mean")}
        row |= {"epochs": r["epochs"], "devices": sorted({str(x.summary.get("device", "?")) for x in group.records})}
        if below is not None:
            mine, theirs = group.by_seed(), below.by_seed()
            common = sorted(set(mine) & set(theirs))
            diffs = [mine[s].summary["test_accuracy"] - theirs[s].summary["test_accuracy"] for s in common]
            if diffs:
                s = summarize(diffs)
                row["step_from"] = below.label
                row["step_mean"], row["step_n"] = s.mean, len(diffs)
                row["step_ci"] = None if len(diffs) < 2 else (s.ci_low, s.ci_high)
        rows.append(row)
        below = group
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    """The ladder as a Markdown table, then how to train the rungs that have no runs."""
    lines = [
        "| rung | config | seeds | test accuracy | step (paired, 95% CI) | parameters | MACs | epochs | "
        "training time |",
        "|---|---|---:|---:|---|---:|---:|---:|---:|",
    ]
    missing = []
    for r in rows:
        if not r["n"]:
            lines.append(f"| {r['step']} | {r['config']} | 0 | not trained | | | | | |")
            missing.append(f"- {r['config']}: `{r['command']} --seed 0` (and 1, 2)")
            continue
        acc = f"{100 * r['test_acc_mean']:.2f} ± {100 * r['test_acc_std']:.2f}%"
        step = ""
        if "step_mean" in r:
            ci = r["step_ci"]
            where = f" [{100 * ci[0]:+.2f}, {100 * ci[1]:+.2f}]" if ci else " (one seed)"
            step = f"{100 * r['step_mean']:+.2f}{where} vs {r['step_from']}"
        lines.append(
            f"| {r['step']} | {r['config']} | {r['n']} | {acc} | {step} | {r['params']:,} | "
            f"{r['macs'] / 1e6:.2f} M | {r['epochs']} | {r['train_seconds_mean']:.0f} s ({', '.join(r['devices'])}) |"
        )
    text = "\n".join(lines)
    if missing:
        text += "\n\nRungs without runs (train them, then `fmnist report`):\n" + "\n".join(missing)
    return text
