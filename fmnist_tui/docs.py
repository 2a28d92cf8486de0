"""The docs generator: README's generated tables and the docs site's generated pages, from files (no torch).

Every number in README.md and docs/ comes from a file through here: the lab's results (results/<study>/), the
export manifest (export/manifest.json), benchmark outputs (bench/results/*.json), the architecture registry, the
recipe's defaults, the contract limits in the code and the Typer app. Two kinds of output:

- blocks between `<!-- generated: NAME -->` and `<!-- end -->` in README.md and docs/*.md: committed, and
  tests/test_docs.py fails when one differs from what this makes now (`python -m fmnist_tui.docs` rewrites them);
- whole pages (the CLI reference, a page per study with its figure, the benchmarks): written at every build
  (`make docs`, `make test`) and kept out of git by docs/.gitignore.

`--screenshots` redraws the TUI pictures in docs/images/ from the app itself (committed; not part of a build).
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import shutil
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"(<!-- generated: ([a-z-]+) -->\n)(.*?)(<!-- end -->)", re.S)
#: the committed files whose blocks are generated
BLOCK_FILES = ("README.md", "docs/models.md", "docs/export-predict-serve.md")
#: where the benchmark outputs a page shows are kept (`python bench/NAME.py --json bench/results/NAME.json`)
BENCH_RESULTS = Path("bench") / "results"
FIX = "python -m fmnist_tui.docs"


# --- reading the files ------------------------------------------------------------------------------
def read_json(path: Path) -> Any:
    """The JSON in `path`, or None where there is none or it does not parse."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


@dataclass(frozen=True)
class Computed:
    """One study's folder of the lab's record, results/<study>/: its analysis, provenance and figure."""

    name: str
    folder: Path
    results: dict[str, Any]
    provenance: dict[str, Any] | None
    tables: str  # results.md
    section: str  # section.md
    figure: Path | None

    @staticmethod
    def find(root: Path, name: str) -> Computed | None:
        """results/<name>/ where it holds a results.json (the folder appears when the lab has computed it)."""
        folder = root / "results" / name
        results = read_json(folder / "results.json")
        if not isinstance(results, dict):
            return None
        provenance = read_json(folder / "provenance.json")
        figures = sorted(folder.glob("*_study.png")) or sorted(folder.glob("*.png")) + sorted(folder.glob("*.svg"))
        return Computed(
            name,
            folder,
            results,
            provenance if isinstance(provenance, dict) else None,
            _text(folder / "results.md"),
            _text(folder / "section.md"),
            figures[0] if figures else None,
        )


def _text(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def studies() -> dict[str, Any]:
    """The studies' table (study/studies.py), name → StudySpec."""
    from .study.studies import STUDIES

    return dict(STUDIES)


# --- small formatting helpers -----------------------------------------------------------------------
def cell(text: object) -> str:
    """Text for a Markdown table cell or paragraph: no raw HTML, no stray emphasis, no column breaks."""
    s = str(text).replace("\\[", "[").replace("<", "&lt;").replace("*", "\\*").replace("|", "\\|")
    return " ".join(s.split())


def table(head: Sequence[str], rows: Iterable[Sequence[object]], align: str = "") -> str:
    """A Markdown table; `align` gives each column's alignment (`l`, `r`), left by default."""
    marks = [("---:" if a == "r" else "---") for a in align.ljust(len(head), "l")]
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join(marks) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def pct(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{100 * value:.{digits}f}%"


def mean_std(row: dict[str, Any]) -> str:
    """'93.09 ± 0.11% (3 seeds)' from a results.json table row."""
    mean, std, n = row.get("test_acc_mean"), row.get("test_acc_std"), row.get("n")
    if mean is None:
        return "—"
    spread = "" if std is None else f" ± {100 * std:.2f}"
    return f"{100 * mean:.2f}{spread}% ({n} seed{'' if n == 1 else 's'})"


def label_of(run: str) -> str:
    """A run's config label: its name without the seed (`cnn-k3-s0` → `cnn-k3`)."""
    return re.sub(r"-s\d+$", "", run)


# --- README and docs blocks ---------------------------------------------------------------------------
def computed_all(root: Path) -> dict[str, Computed]:
    return {name: c for name in studies() if (c := Computed.find(root, name))}


def claims_table(root: Path, link: Callable[[str, bool], str | None], detail: bool = False) -> str:
    """The notebook's claims, each with fmnist's verdict from results/<study>/results.json (the effect and its 95%
    interval, the raw and the family's Holm-adjusted p, the replication under other recipes), or 'not yet computed'
    with the command that computes it; `link(study, computed)` is where a study's name points (None: nowhere)."""
    done = computed_all(root)
    head = [
        "claim (the notebook's, as fmnist tests it)",
        "verdict",
        "effect, 95% CI (points)",
        "p → adjusted",
        "replication",
        *(["the numbers"] if detail else []),
        "study",
    ]
    blank = ["", "", "", *([""] if detail else [])]
    rows: list[list[str]] = []
    kernel = done.get("kernel")
    if kernel:  # the notebook's parameter counts are checked by arithmetic, from the study's own table
        params = {r["config"]: r.get("params") for r in kernel.results.get("table", [])}
        if params.get("cnn-k5") and params.get("cnn-k7"):
            counted = f"fmnist counts {params['cnn-k5']:,} and {params['cnn-k7']:,}"
            rows.append(
                [
                    "the 5×5 and 7×7 CNNs have ~620K and ~930K parameters",
                    f"**contradicted** ({counted})",
                    *blank,
                    _linked("kernel", link("kernel", True)),
                ]
            )
    for name, spec in studies().items():
        where = _linked(name, link(name, name in done))
        if name in done:
            for v in done[name].results.get("verdicts", []):
                rows.append(
                    [cell(v.get("claim", "")), f"**{cell(v.get('verdict', ''))}**", *_numbers(v)]
                    + ([cell(v.get("detail", ""))] if detail else [])
                    + [where]
                )
        else:
            for claim in spec.claims:
                rows.append([cell(claim.text), f"not yet computed: `fmnist study {name}`", *blank, where])
    rows.append(
        [
            "convolution does not suit tabular data, graphs or long-range text",
            "not tested (fmnist has images only)",
            *blank,
            "—",
        ]
    )
    return table(head, rows) + family_note(done)


def _numbers(v: dict[str, Any]) -> list[str]:
    """A verdict's effect and interval per difference, its raw and adjusted p (and the family's size), and its
    replication, as cells; '—' where the record has none (not tested, or written before these fields)."""
    diffs = v.get("differences") or []
    effect = "; ".join(
        (f"{d['name']}: " if len(diffs) > 1 else "")
        + f"{100 * d['estimate']:+.2f}"
        + ("" if d.get("ci_low") is None else f" [{100 * d['ci_low']:+.2f}, {100 * d['ci_high']:+.2f}]")
        for d in diffs
    )
    family = v.get("family") or {}
    p = (
        "—"
        if v.get("p_raw") is None
        else f"{_p(v['p_raw'])} → {_p(v.get('p_adjusted'))}" + (f" (of {family['size']})" if family.get("size") else "")
    )
    return [cell(effect) or "—", p, cell(v.get("replication_text") or "—")]


def _p(p: float | None) -> str:
    return "—" if p is None else "&lt; 0.001" if p < 0.001 else f"{p:.3f}"


def family_note(done: dict[str, Computed]) -> str:
    """A note where the computed studies' analyses hold different families (their adjusted p-values then belong to
    different sets of runs: one study re-analysed after another's runs changed); else nothing."""
    families = {
        name: json.dumps((c.results.get("family") or {}).get("members"), sort_keys=True) for name, c in done.items()
    }
    if len(set(families.values())) <= 1:
        return ""
    return (
        "\nThe studies' analyses were made over different sets of runs, so their adjusted p-values are not one "
        "family's: re-analyse every study (`make lab`) for one family.\n"
    )


def _linked(name: str, target: str | None) -> str:
    return f"[{name}]({target})" if target else f"`{name}`"


def models_table(root: Path) -> str:
    """The shipped models (export/manifest.json) with the registry's receptive field, and the mean over seeds of
    their config where a study in results/ has one."""
    from .core import registry
    from .inference.session import DEFAULT_MODEL

    manifest = read_json(root / "export" / "manifest.json") or {"models": []}
    seeds = {r["config"]: (r, c.name) for c in computed_all(root).values() for r in c.results.get("table", [])}
    rows = []
    for m in manifest["models"]:
        arch, label = m["arch"], label_of(m["run"])
        options = {
            k: v for k, v in {"kernel": m.get("kernel"), **m.get("options", {})}.items() if v not in (None, "none")
        }
        rf = registry.receptive_field(arch, options) if registry.has_convs(arch) else None
        over = seeds.get(label)
        name = f"`{m['file']}`" + (" (default)" if m["file"] == DEFAULT_MODEL else "")
        rows.append(
            [
                name,
                f"`{label}`",
                f"{m['params']:,}",
                "whole image" if rf is None else f"{rf} px",
                pct(m.get("test_accuracy")),
                f"{mean_std(over[0])}, {over[1]} study" if over else "—",
            ]
        )
    return table(
        ["model", "config", "parameters", "receptive field", "test accuracy (this file)", "over seeds (results/)"],
        rows,
        "llrrrl",
    )


def architectures_table() -> str:
    """Every architecture of the registry with its options, valid values and defaults."""
    from .core import registry

    rows = []
    for spec in registry.REGISTRY.values():
        options = "; ".join(
            f"`--{o.name.replace('_', '-')}` "
            + (
                ", ".join(f"**{o.text(v)}**" if v == o.default else o.text(v) for v in o.choices)
                if o.choices
                else f"{o.hint()} (default **{o.text(o.default)}**)"
            )
            for o in spec.options
        )
        rules = "; ".join(r.describe() for r in spec.rules)
        rf = registry.receptive_field(spec.name, {}) if spec.has_convs else None
        rows.append(
            [
                f"`{spec.name}`",
                cell(spec.description),
                options.replace("|", "\\|") + (f" ({cell(rules)})" if rules else ""),
                "whole image" if rf is None else f"{rf} px",
            ]
        )
    return table(["arch", "what it is", "options (default in bold)", "receptive field at the defaults"], rows)


RECIPE = (
    ("epochs", "epochs"),
    ("batch_size", "batch size"),
    ("lr_per_128", "peak AdamW learning rate per 128 images (`--lr` sets the peak itself)"),
    ("weight_decay", "AdamW weight decay"),
    ("warmup", "share of the steps spent warming up (linear, then cosine to zero)"),
    ("label_smoothing", "label smoothing"),
    ("hflip", "random horizontal flips"),
    ("shift", "random shifts, pixels each way (0: off)"),
    ("erase", "random-erasing probability (0: off)"),
    ("ema", "weight-average decay (0: off)"),
    ("tta", "flip test-time augmentation"),
    ("affine", "random re-framing strength (0: off)"),
)


def recipe_table() -> str:
    """The project's recipe: TrainConfig's defaults, the settings every study's default preset trains with."""
    from .core.config import TrainConfig

    defaults = {f.name: f.default for f in fields(TrainConfig)}
    rows = [[f"`{key}`", f"`{defaults[key]}`", what] for key, what in RECIPE]
    return table(["setting", "default", "meaning"], rows)


def limits_table() -> str:
    """The limits `predict`, `serve` and the TUI put on inputs, from the constants that enforce them."""
    from .deploy import serve
    from .inference import preprocess

    mib = 1024 * 1024
    rows = [
        ["an image file's size", f"{preprocess.MAX_BYTES // mib} MiB", "refused before decoding"],
        ["pixels an image may declare", f"{preprocess.MAX_PIXELS // mib} Mi", "refused from its header"],
        ["memory to decode one image", f"{preprocess.MAX_DECODE_BYTES // mib} MiB", "WebP and TIFF caps lower"],
        ["`serve`: a request body", f"{serve.MAX_BODY // mib} MiB", "413 (SageMaker's limit)"],
        ["`serve`: images in one request", f"{serve.MAX_IMAGES}", "413, counted before decoding"],
        ["`serve`: pixels in one request", f"{serve.MAX_REQUEST_PIXELS // mib} Mi", "413"],
    ]
    return table(["limit", "value", "beyond it"], rows)


def blocks(root: Path) -> dict[str, Callable[[], str]]:
    """Each block's name → the function that makes its text."""
    return {
        "claims": lambda: claims_table(root, lambda name, done: f"results/{name}/" if done else None),
        "models": lambda: models_table(root),
        "architectures": architectures_table,
        "recipe": recipe_table,
        "limits": limits_table,
    }


def fill(text: str, makers: dict[str, Callable[[], str]], where: str = "") -> str:
    """`text` with every generated block remade; an unknown block name is an error naming it."""

    def remade(m: re.Match[str]) -> str:
        if m.group(2) not in makers:
            raise SystemExit(f"error: {where}: unknown generated block {m.group(2)!r}; known: {', '.join(makers)}")
        return m.group(1) + makers[m.group(2)]() + m.group(4)

    return BLOCK.sub(remade, text)


def stale(root: Path) -> list[str]:
    """The committed files whose generated blocks differ from what the generator makes now."""
    makers = blocks(root)
    return [
        name
        for name in BLOCK_FILES
        if (root / name).exists() and fill(_text(root / name), makers, name) != _text(root / name)
    ]


# --- the CLI reference --------------------------------------------------------------------------------
def _type(param: Any) -> str:
    """A parameter's values in words: `auto` \\| `cpu`, `integer 0–8`, `path`, a flag (duck-typed: Typer brings
    its own copy of click)."""
    t = param.type
    if getattr(param, "is_flag", False):
        return "flag"
    if choices := getattr(t, "choices", None):
        return " \\| ".join(f"`{c}`" for c in choices)
    kind = {"int": "integer", "float": "number", "str": "text", "boolean": "true/false"}
    name = str(getattr(t, "name", "text"))
    if name.endswith(" range"):
        low, high, word = getattr(t, "min", None), getattr(t, "max", None), kind.get(name.split()[0], name)
        if low is not None and high is not None:
            return f"{word} {low}–{high}"
        return f"{word} ≥ {low}" if low is not None else f"{word} ≤ {high}"
    return kind.get(name, name)


def _default(param: Any) -> str:
    value = param.default
    if value is None or (getattr(param, "is_flag", False) and value is False and not param.secondary_opts):
        return ""
    if param.secondary_opts:
        return f"`{param.opts[0] if value else param.secondary_opts[0]}`"
    value = getattr(value, "value", value)
    return f"`{value}`"


def _usage(argument: Any) -> str:
    """`RUN`, `[NAME]`, `PATHS...` as a usage line writes an argument."""
    word = (argument.name or "").upper() + ("..." if argument.nargs != 1 else "")
    return word if argument.required else f"[{word}]"


def _help(text: str | None) -> str:
    """A command's help as Markdown paragraphs (click's `\\b` markers dropped)."""
    paragraphs = [" ".join(p.split()) for p in (text or "").replace("\b", "").split("\n\n")]
    return "\n\n".join(cell(p) for p in paragraphs if p)


def cli_reference() -> str:
    """Every command of `fmnist` (cli.build_app through Typer and click): its help, usage, arguments and options."""
    import typer.main

    from .cli import COMMANDS, build_app

    group: Any = typer.main.get_command(build_app())  # a group: it has get_command (Typer's own click)
    ctx = group.context_class(group, info_name="fmnist")
    out = [
        "# CLI reference\n",
        "Generated from the Typer app (`fmnist_tui.cli.build_app`) at every docs build: what `fmnist COMMAND --help` "
        "says, as reference. `python -m fmnist_tui` is the same program. Exit codes of every command: see "
        "[Reliability](../reliability.md#exit-codes).\n",
        table(
            ["command", "what it does"],
            [[f"[`{n}`](#fmnist-{n})", _help(group.get_command(ctx, n).help)] for n in COMMANDS],
        ),
        "`fmnist --version` prints the version; `fmnist --help` lists the commands.\n",
    ]
    for name in COMMANDS:
        command = group.get_command(ctx, name)
        params = [p for p in command.params if not getattr(p, "hidden", False)]
        arguments = [p for p in params if p.param_type_name == "argument"]
        options = [p for p in params if p.param_type_name == "option"]
        usage = [f"fmnist {name}", *(["[OPTIONS]"] if options else []), *map(_usage, arguments)]
        out.append(f"## fmnist {name}\n")
        out.append(_help(command.help) + "\n")
        out.append(f"```\n{' '.join(usage)}\n```\n")
        if arguments:
            rows = [
                [
                    f"`{(p.name or '').upper()}`",
                    _type(p),
                    "yes" if p.required else "no",
                    cell(getattr(p, "help", "") or ""),
                ]
                for p in arguments
            ]
            out.append(table(["argument", "values", "required", "meaning"], rows))
        if options:
            rows = [
                ["`" + " / ".join([*p.opts, *p.secondary_opts]) + "`", _type(p), _default(p), cell(p.help or "")]
                for p in options
            ]
            out.append(table(["option", "values", "default", "meaning"], rows))
        else:
            out.append("No options but `--help`.\n")
    return "\n".join(out)


# --- the study pages ------------------------------------------------------------------------------------
def _switched(arch: str, settings: dict[str, Any]) -> str:
    """How a config differs from the notebook's network of its kind, as the `fmnist train` options that make it."""
    from .core import registry

    spec = registry.get(arch)
    resolved = spec.resolve({k: v for k, v in settings.items() if spec.option(k)})
    flags = [(o.name, o.text(resolved[o.name])) for o in spec.options if resolved[o.name] != o.default]
    flags += [(k, "" if v is True else str(v)) for k, v in settings.items() if not spec.option(k) and v]
    base = {"mlp": "the notebook's MLP", "cnn": "the notebook's CNN"}.get(
        arch, f"{spec.description.split(':')[0]} (not in the notebook)"
    )
    options = " ".join(f"--{k.replace('_', '-')} {v}".strip() for k, v in flags)
    return f"{base}, with `{options}`" if options else base


def _configs(spec: Any) -> list[tuple[str, str, dict[str, Any]]]:
    """(label, arch, settings) of each config of a study, in plan order."""
    from .core import registry

    return [(registry.label(arch, options), arch, options) for arch, options in spec.configs()]


def _provenance(p: dict[str, Any]) -> str:
    from .study.lab import describe

    by = p.get("analysed_by") or {}
    preset = p.get("preset") or {}
    lines = [
        f"Computed from {describe(p)}; analysed {p.get('analysed_at', '?')} by fmnist {by.get('fmnist', '?')} "
        f"(commit `{str(by.get('commit') or '?')[:12]}`); preset: "
        + ", ".join(f"{k} {v}" for k, v in preset.items() if v not in (None, False))
        + ".\n",
    ]
    rows = []
    for r in p.get("runs", []):
        m = r.get("machine") or {}
        where = m.get("gpu") or f"{m.get('cpu', '?')}, {m.get('cores', '?')} cores, {m.get('isa', '?')}"
        secs = r.get("train_seconds")
        rows.append(
            [
                f"`{r.get('run')}`",
                r.get("source", ""),
                pct(r.get("test_accuracy")),
                "—" if secs is None else f"{secs:,.1f}",
                f"{r.get('numerics', '')} on {r.get('device', '')}",
                cell(where),
                r.get("torch", ""),
                str(r.get("finished_at") or "")[:10],
            ]
        )
    lines.append(
        table(["run", "source", "test accuracy", "train s", "numerics", "machine", "torch", "finished"], rows, "llrr")
    )
    return "\n".join(lines)


def _tables(markdown: str) -> str:
    """results.md's tables one heading level down, without its verdicts (the page shows them above)."""
    parts = re.split(r"(?m)^## ", markdown)
    kept = [p for p in parts[1:] if not p.lower().startswith("verdicts")]
    return "".join("### " + p for p in kept).strip() + "\n" if kept else ""


def _prose(section: str, question: str) -> str:
    """section.md's description: its text before the first table heading, without headings, images and the
    study's question (the page opens with it)."""
    head = re.split(r"(?m)^### ", section)[0]
    lines = [ln for ln in head.splitlines() if not ln.startswith(("#", "!["))]
    return "\n".join(lines).strip().removeprefix(question).strip()


def study_page(root: Path, name: str, figure_name: str | None = None) -> str:
    """One study's page: what it switches on and off, its claims, and (where results/<name>/ exists) its
    verdicts, figure, tables and provenance; else how to compute it."""
    spec = studies()[name]
    done = Computed.find(root, name)
    out = [f"# {spec.title}\n", f"> {cell(spec.question)}\n"]
    out.append(
        f"`fmnist study {name}` trains it ({cell(spec.default.describe(spec.labels()))}; "
        f"`--quick`: {cell(spec.quick.describe())}, "
        f"its runs in `RUNS/quick`) and writes its table, figure and verdicts to `reports/studies/{name}/`. "
        f"`fmnist study {name} --dry-run` lists the plan, what exists of it (yours or the shipped results) and "
        "measured training times.\n"
    )
    out.append("## What is switched on and off\n")
    out.append(
        table(
            ["config", "architecture", "what it is"],
            [[f"`{lb}`", f"`{a}`", _switched(a, s)] for lb, a, s in _configs(spec)],
        )
    )
    if spec.notes:
        out.append(cell(spec.notes) + "\n")
    out.append("## The claims\n")
    out.append(table(["claim", "from"], [[cell(c.text), cell(c.source)] for c in spec.claims]))
    if done is None:
        out.append(
            '!!! note "Not yet computed"\n'
            f"    `results/{name}/` does not exist in this checkout, so no verdict is shown. "
            f"`fmnist study {name}` computes it (reusing the shipped runs in `results/runs` where they exist); "
            f"the lab's record is `fmnist study {name} --runs results/runs --out results/{name}` (`make lab` computes "
            f"every study), after which `{FIX}` puts it here.\n"
        )
        return "\n".join(out)
    out.append("## Verdicts\n")
    verdicts = done.results.get("verdicts", [])
    out.append(
        table(
            ["claim", "verdict", "effect, 95% CI (points)", "p → adjusted", "replication", "the numbers"],
            [
                [cell(v.get("claim")), f"**{cell(v.get('verdict'))}**", *_numbers(v), cell(v.get("detail", ""))]
                for v in verdicts
            ],
        )
    )
    if family := done.results.get("family"):
        from .study.verdicts import family_sentence

        out.append(cell(family_sentence(family)) + "\n")
    if done.figure and figure_name:
        out.append(f"![{cell(spec.title)}]({figure_name})\n")
    if prose := _prose(done.section, spec.question):
        out.append(prose + "\n")
    if tables := _tables(done.tables):
        out.append("## Tables\n\n" + tables)
    if done.provenance:
        out.append("## Provenance\n\n" + _provenance(done.provenance))
    out.append(f"Source: `results/{name}/` in the repository.\n")
    return "\n".join(out)


def studies_index(root: Path) -> str:
    """The studies' overview: each study, computed or not, and every claim with its verdict and numbers."""
    done = computed_all(root)
    rows = [
        [f"[{name}]({name}.md)", cell(spec.question), "computed" if name in done else f"not yet: `fmnist study {name}`"]
        for name, spec in studies().items()
    ]
    return "\n".join(
        [
            "# Studies\n",
            "A study is a named plan of configs × seeds, each trained with the study's own recipe on any machine "
            "(finished runs reused, interrupted ones resumed), then an analysis: each claim of the notebook gets a "
            "verdict from paired statistics over seeds, with the numbers behind it. The verdicts here are the lab's "
            "record, `results/<study>/`, at the default presets; pages of studies not yet computed say how to "
            "compute them.\n",
            table(["study", "question", "in results/"], rows),
            "## The notebook's claims and fmnist's verdicts\n",
            claims_table(root, lambda name, _: f"{name}.md", detail=True),
            VERDICT_RULES,
            *_forest_section(done),
        ]
    )


#: how the verdicts are reached, for the studies' overview
VERDICT_RULES = (
    "Verdicts read one 95% interval per difference (paired by seed; its variance adds the test images' sampling "
    "variance, bounded from the stored confusion matrices, to the seeds'), against one margin per metric, the "
    "smallest effect of interest. A difference is *shown* when it is significantly ≠ 0 and its estimate lies beyond "
    "the margin; it is *bounded* when its interval lies below the margin (inside ±margin for a claim of no "
    "difference). `supported`: the claim's differences are shown (or bounded, for a claim that a setting is "
    "sufficient or changes nothing); `contradicted`: the opposite is (for a claimed win: an interval below the "
    "margin, so no win of interest); `not supported at this sample size`: neither, with the seeds it would take at "
    "80% power; `not tested`: a config has no runs; `fragile`: the verdict differs under another recipe the lab "
    "ran. Each claim's p is corrected by Holm's method over the family of every claim of every study.\n"
)
FOREST = "claims_forest.svg"


def _forest_verdicts(done: dict[str, Computed]) -> list[dict[str, Any]]:
    return [v for c in done.values() for v in c.results.get("verdicts", [])]


def _forest_section(done: dict[str, Computed]) -> list[str]:
    """The forest of every computed claim: the figure (where matplotlib can draw it) and its table."""
    from .study import forest

    verdicts = _forest_verdicts(done)
    drawn = forest.rows(verdicts)
    if not any(r.estimate == r.estimate for r in drawn):  # no claim with a difference (or results of old layout)
        return []
    figure = f"![Every claim: effect, 95% interval, margin, verdict]({FOREST})\n"
    return ["## Every claim as a forest\n", figure, forest.markdown(drawn)]


# --- the benchmarks page --------------------------------------------------------------------------------
def _bench_scripts(root: Path) -> list[tuple[str, str, bool]]:
    """(script, its docstring's first line, whether it takes --json FILE) of every bench/*.py."""
    out = []
    for path in sorted((root / "bench").glob("*.py")):
        source = _text(path)
        try:
            doc = ast.get_docstring(ast.parse(source)) or ""
        except SyntaxError:
            doc = ""
        json_file = re.search(r'add_argument\(\s*"--json",\s*type=Path', source) is not None
        out.append((path.name, doc.split("\n\n")[0].replace("\n", " "), json_file))
    return out


def _value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (dict, list)):
        return cell(json.dumps(v)[:120])
    return cell(v)


def _bench_file(path: Path, data: Any) -> str:
    """One benchmark output: the machine it ran on (or that the file does not say), its scalars, its rows."""
    out = [f"## {path.stem}\n", f"From `{BENCH_RESULTS / path.name}`.\n"]
    machine = data.get("machine") if isinstance(data, dict) else None
    out.append(f"Machine: {cell(json.dumps(machine))}.\n" if machine else "Machine: not recorded in the file.\n")
    items = data.items() if isinstance(data, dict) else [("rows", data)]
    for key, value in items:
        if key == "machine":
            continue
        if isinstance(value, list) and value and all(isinstance(r, dict) for r in value):
            keys = list(dict.fromkeys(k for r in value for k, v in r.items() if not isinstance(v, (dict, list))))
            out.append(f"\n**{cell(key)}**\n\n" + table(keys, [[_value(r.get(k, "")) for k in keys] for r in value]))
        else:
            out.append(f"- **{cell(key)}**: {_value(value)}")
    return "\n".join(out) + "\n"


def benchmarks_page(root: Path) -> str:
    """The benchmarks: every output file in bench/results/ with its machine; else how to produce them."""
    files = sorted((root / BENCH_RESULTS).glob("*.json"))
    out = [
        "# Benchmarks\n",
        "Each script in `bench/` measures one thing on the machine it runs on and prints its ratios. This page "
        f"shows the outputs kept in `{BENCH_RESULTS}/` (each script's `--json FILE`), with the machine each ran on; "
        "numbers measured before that convention are in the [lab notes](lab-notes.md), as history.\n",
    ]
    if not files:
        out.append(
            '!!! note "No benchmark outputs yet"\n'
            f"    `{BENCH_RESULTS}/` holds none. Run a script with `--json {BENCH_RESULTS}/NAME.json` (on an otherwise "
            f"idle machine), commit the file, and `{FIX}` shows it here.\n"
        )
    for path in files:
        out.append(_bench_file(path, read_json(path)))
    rows = [
        [
            f"`bench/{name}`",
            cell(doc),
            f"`python bench/{name} --json {BENCH_RESULTS}/{Path(name).stem}.json`"
            if takes
            else f"`python bench/{name}`",
        ]
        for name, doc, takes in _bench_scripts(root)
    ]
    out.append("## The scripts\n")
    out.append(table(["script", "what it measures", "to produce an output"], rows))
    out.append("`bash bench/cuda_check.sh` runs the GPU checks and benchmarks on a machine with CUDA.\n")
    return "\n".join(out)


# --- writing ----------------------------------------------------------------------------------------------
def pages(root: Path) -> dict[str, str]:
    """The generated pages, path under docs/ → text (figures are copied by `write_pages`)."""
    out = {
        "reference/cli.md": cli_reference(),
        "studies/index.md": studies_index(root),
        "benchmarks.md": benchmarks_page(root),
    }
    for name in studies():
        done = Computed.find(root, name)
        figure = done.figure.name if done and done.figure else None
        out[f"studies/{name}.md"] = study_page(root, name, figure)
    return out


def write_pages(root: Path, docs: Path) -> list[Path]:
    """Write the generated pages (and the study figures beside them) into `docs`; the paths written."""
    written = []
    for rel, text in pages(root).items():
        path = docs / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    for name in studies():
        done = Computed.find(root, name)
        if done and done.figure:
            shutil.copyfile(done.figure, docs / "studies" / done.figure.name)
            written.append(docs / "studies" / done.figure.name)
    if f"]({FOREST})" in (docs / "studies" / "index.md").read_text():
        from .study import forest

        drawn = forest.rows(_forest_verdicts(computed_all(root)))
        (docs / "studies" / FOREST).write_text(forest.svg(drawn, "The notebook's claims, every study"))
        written.append(docs / "studies" / FOREST)
    return written


def write_blocks(root: Path) -> list[str]:
    """Rewrite the generated blocks of the committed files; the names of those that changed."""
    makers, changed = blocks(root), []
    for name in BLOCK_FILES:
        path = root / name
        if path.exists() and (new := fill(_text(path), makers, name)) != _text(path):
            path.write_text(new)
            changed.append(name)
    return changed


# --- TUI screenshots ---------------------------------------------------------------------------------------
#: (picture, tab key, what is done on the tab first): the Classify tab with a photo of the test set, the Results
#: tab on the kernel study
SCREENS = (
    ("train", "1", ""),
    ("results", "2", "study:kernel"),
    ("classify", "3", "image:tests/photos/drawn-sneaker.jpg"),
    ("explore", "4", ""),
)


def screenshots(root: Path, size: tuple[int, int] = (100, 30)) -> list[Path]:
    """Draw each tab of the TUI as a person sees it on this checkout (the shipped models and results) into
    docs/images/tui-<tab>.svg: the app renders itself (App.run_test, save_screenshot)."""
    import asyncio
    import os

    from textual.widgets import Input

    from .tui.app import FmnistApp
    from .tui.services import Services, Settings

    os.chdir(root)  # relative folders: no path of this machine is drawn
    os.environ.setdefault("FMNIST_RESULTS", "results")
    images = Path("docs") / "images"
    images.mkdir(parents=True, exist_ok=True)
    settings = Settings(Path("checkpoints"), Path("export"), Path("tests") / "photos", None, timings=False)

    async def settle(app: FmnistApp, pilot: Any) -> None:
        for _ in range(40):  # workers read the runs, the models and the dataset
            await pilot.pause(0.1)
            if not any(w.is_running for w in app.workers):
                break
        await pilot.pause(0.5)

    async def draw() -> list[Path]:
        written = []
        app = FmnistApp(settings, Services())
        async with app.run_test(size=size) as pilot:
            for picture, key, first in SCREENS:
                await pilot.press(key)
                await settle(app, pilot)
                what, _, value = first.partition(":")
                if what == "study":
                    app.action_show_study(value)
                elif what == "image":
                    field = app.query_one("#image-path", Input)
                    field.value = value
                    await field.action_submit()
                await settle(app, pilot)
                written.append(root / app.save_screenshot(f"tui-{picture}.svg", str(images)))
        return written

    written = asyncio.run(draw())
    live = Path("tests") / "__snapshots__" / "test_tui_snapshots" / "test_train_live.svg"
    if live.exists():  # a training in progress, drawn by the snapshot test from fixed trainer events
        shutil.copyfile(live, images / "tui-train-live.svg")
        written.append(root / images / "tui-train-live.svg")
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fmnist_tui.docs", description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="the repository (default: this checkout)")
    parser.add_argument("--docs-dir", type=Path, help="write the generated pages here (default: ROOT/docs)")
    parser.add_argument("--pages", action="store_true", help="write the generated pages only, not the blocks")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a generated block is stale")
    parser.add_argument("--screenshots", action="store_true", help="redraw docs/images/tui-*.svg from the app")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    if args.check:
        if old := stale(root):
            print(
                f"error: generated blocks differ from the files they come from in {', '.join(old)}; run {FIX}",
                file=sys.stderr,
            )
            return 1
        return 0
    if args.screenshots:
        for path in screenshots(root):
            print(f"wrote {path.relative_to(root)}")
        return 0
    written = write_pages(root, args.docs_dir or root / "docs")
    print(f"wrote {len(written)} generated pages and figures")
    if not args.pages:
        for name in write_blocks(root):
            print(f"updated the generated blocks of {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
