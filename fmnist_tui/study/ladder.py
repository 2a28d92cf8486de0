"""The ladder: one ingredient at a time from the notebook's MLP to the default model (`fmnist study ladder`).

Each rung is a config (a registry label) with its settings; all but the last share the project's recipe, the last
(the default model) has its own (`MODERN`). Each step is the paired difference to the nearest lower rung that has
runs, over the seeds both have.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..core import registry
from ..core.config import TrainConfig, what_args
from .results import Group, recipe_key
from .stats import summarize

#: the default model's recipe on top of the project's, as settings of the ladder's last rung (the Makefile's
#: MODERN gives it as options, for `make models`)
MODERN: dict[str, Any] = {"shift": 2, "epochs": 40, "erase": 0.25, "tta": True, "lr": 2e-3}


@dataclass(frozen=True)
class Rung:
    step: str  # what this rung adds to the one below
    arch: str
    settings: dict[str, Any] = field(default_factory=dict)  # its architecture options and recipe settings

    @property
    def label(self) -> str:
        """The config's registry label: its runs are `<label>-s<seed>`."""
        return registry.label(self.arch, self.settings)

    @property
    def command(self) -> str:
        """The `fmnist train` command that trains seed 0 of this rung."""
        fields = {k: v for k, v in self.settings.items() if k in TrainConfig.__dataclass_fields__}
        options = {k: v for k, v in self.settings.items() if k not in fields}
        cfg = TrainConfig.create(arch=self.arch, **options, **fields)
        epochs = [] if cfg.epochs == TrainConfig.epochs else ["--epochs", str(cfg.epochs)]
        lr = [] if cfg.lr is None else ["--lr", f"{cfg.lr:g}"]
        return " ".join(["fmnist train --arch", self.arch, *what_args(cfg), *epochs, *lr])


RUNGS = (
    Rung("MLP", "mlp"),
    Rung("the notebook's CNN", "cnn", {"kernel": 3}),
    Rung("+ batch norm", "cnn", {"kernel": 3, "norm": "batch"}),
    Rung("+ depth (3 blocks)", "cnn", {"kernel": 3, "norm": "batch", "depth": 3}),
    Rung("+ GAP head", "cnn", {"kernel": 3, "norm": "batch", "depth": 3, "head": "gap"}),
    Rung("+ residual blocks, width (ResNet)", "resnet"),
    Rung("+ crops, erasing, flip-TTA, 40 epochs (the default model)", "resnet", MODERN),
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
        row: dict[str, Any] = {"step": rung.step, "config": rung.label, "command": rung.command}
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
        text += "\n\nRungs without runs (`fmnist study ladder` trains them all; one seed by hand):\n" + "\n".join(
            missing
        )
    return text
