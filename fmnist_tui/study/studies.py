"""The studies: each a named plan of configs × seeds trained with one recipe, the notebook's claims it
tests, and how its result is drawn (no torch).

`fmnist study NAME` trains one (reusing and resuming runs as `fmnist experiment` does) and writes its
table, figure and report section; `fmnist report` includes every study that has runs. A study's configs
are architecture options from the registry, so its labels (`cnn-k3-d3`) and run names are the registry's.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..core import registry
from ..core.config import TrainConfig, default
from ..core.errors import RunError, UsageError
from ..core.registry import PERMUTE_SEED
from ..core.runs import Run
from ..core.text import counted
from . import bias, kernel, ladder, translation
from .analysis import (
    ACCURACY,
    CLASS_CONTRAST,
    GAP,
    HARD_CLASSES,
    MARGINS,
    METRICS,
    SHIFT_CHANGED,
    SHIFT_DROP,
    Comparison,
    Term,
    compare,
    compare_terms,
)
from .plan import check_grid, option_grid, plan_configs
from .results import YOURS, Group, recipe_key, study_groups
from .stats import summarize
from .verdicts import AT_MOST, EQUIVALENT, Claim, Judged, Study, correct, judge, replicate

#: the project's recipe (TrainConfig's defaults): every study's default preset trains with it, so studies
#: share runs with each other, with `fmnist experiment` and with `make run` (cnn-k3-s0 is in four studies)
EPOCHS = default("epochs")


@dataclass(frozen=True)
class Preset:
    """How much of a study to train: seeds 0..seeds−1, epochs, the first `subset` images (None: all), and the
    peak learning rate (None: the recipe's, 2e-3 per 128 images)."""

    seeds: int
    epochs: int
    subset: int | None = None
    lr: float | None = None
    labels: tuple[str, ...] = ()  # the configs this preset trains (empty: all of the study's)
    #: (label, seeds) of configs trained with more seeds than `seeds`: cheap ones whose claim needs the power
    more_seeds: tuple[tuple[str, int], ...] = ()

    def seeds_of(self, label: str) -> int:
        """How many seeds the config `label` trains (`more_seeds` never lowers `seeds`)."""
        return max(self.seeds, dict(self.more_seeds).get(label, 0))

    def describe(self, labels: Sequence[str] | None = None) -> str:
        """'3 seeds (15 for mlp) × 15 epochs on all 50,000 training images': `more_seeds` of `labels` only."""
        data = f"the first {self.subset:,} images" if self.subset else "all 50,000 training images"
        lr = f", peak lr {self.lr:g}" if self.lr else ""
        counts: dict[int, list[str]] = {}
        for label, n in self.more_seeds:
            if n > self.seeds and (labels is None or label in labels):
                counts.setdefault(n, []).append(label)
        more = "; ".join(f"{n} for {', '.join(labels)}" for n, labels in counts.items())
        seeds = counted(self.seeds, "seed") + (f" ({more})" if more else "")
        return f"{seeds} × {counted(self.epochs, 'epoch')} on {data}{lr}"


#: the configs cheap enough to take more seeds, wherever a study has them: the MLP on natural and permuted pixels
#: trains in seconds, and the claim that the permutation leaves it unchanged needs a narrow interval (the other
#: claims pair over the seeds every config of theirs has)
CHEAP_SEEDS = ((bias.MLP, 15), (bias.MLP_PERM, 15))
#: the default preset: 3 seeds of the project's recipe (more for CHEAP_SEEDS). The classroom one (--quick) keeps
#: 3 seeds, so that a paired test has an interval worth reading (Student t with 2 degrees of freedom: 4.3; with 2
#: seeds, 12.7), and trains 3 epochs on 6,144 images at a higher peak rate (6e-3): a schedule that short trains the
#: networks further with it than with the recipe's 2e-3 (`bench/train_speed.py` races `--epochs 3 --lr 6e-3`)
DEFAULT = Preset(3, EPOCHS, more_seeds=CHEAP_SEEDS)
QUICK = Preset(3, 3, 6144, 6e-3)


@dataclass(frozen=True)
class PerRunEvaluation:
    """An evaluation a study makes of each finished run before the analysis, its result cached in the run folder
    (the translation study's shifted test sets): `function` is "module:function(runs, data_dir, device, on_run) ->
    warnings", imported on use (it may import torch; the runner calls it in the worker that trained the run);
    `needs` says, torch-free, whether a run still lacks it."""

    what: str
    function: str
    needs: Callable[[Run], bool]

    def do(
        self, runs: list[Run], data_dir: Path | None, device: str, on_run: Callable[[str], None] | None
    ) -> list[str]:
        module, _, function = self.function.partition(":")
        warnings: list[str] = getattr(importlib.import_module(module), function)(runs, data_dir, device, on_run)
        return warnings


@dataclass(frozen=True)
class StudySpec:
    """One study: its question, its grid (architectures × option values, `plan.option_grid`), the accuracy
    differences it reports, its claims and its figure."""

    name: str
    title: str
    question: str
    archs: tuple[str, ...]
    grid: Mapping[str, Sequence[Any]]
    pairs: tuple[tuple[str, str], ...]  # test-accuracy differences a − b, in report order
    claims: tuple[Claim, ...]
    figure: str  # how figures.study_figure draws it: kernel, option, bars, gap
    x: str = ""  # the option along the figure's x axis (option, bars); the series option (bars)
    series: str = ""
    default: Preset = DEFAULT
    quick: Preset = QUICK
    analyse: Callable[[list[Group], dict[str, float | None] | None], Study] | None = None  # None: `analyse`
    notes: str = ""  # what the study does not test, said in its report section
    # the configs as (arch, options and data settings), when a grid of options does not say them (a permuted
    # MLP beside a natural CNN, sizes of the training set, an MLP trained with random shifts): then `archs` and
    # `grid` are not used
    explicit: tuple[tuple[str, Mapping[str, Any]], ...] = ()
    work: PerRunEvaluation | None = None  # done on every finished run of the study before its analysis
    one_recipe: bool = True  # False: its configs differ in recipe on purpose (the ladder's default model)

    def configs(self) -> list[tuple[str, dict[str, Any]]]:
        """(arch, options) of each config, in plan order (data settings among the options)."""
        if self.explicit:
            return [(arch, dict(options)) for arch, options in self.explicit]
        return [(arch, options) for arch in self.archs for options in option_grid(arch, self.grid)]

    def labels(self) -> list[str]:
        """Each config's label (`cnn-k3-d3`, `mlp-perm`): run names are these plus `-s<seed>`."""
        return [registry.label(arch, options) for arch, options in self.configs()]

    def plan(
        self,
        preset: Preset,
        out: Path,
        data_dir: Path | None = None,
        device: str = "auto",
        precision: str = "auto",
        compile: str = "off",
    ) -> list[TrainConfig]:
        """The preset's training configs: every config (or the preset's `labels`) × its seeds, one recipe."""
        if not self.explicit:
            check_grid(list(self.archs), self.grid)
        labelled = [(registry.label(*c), c) for c in self.configs()]
        configs = [
            cfg
            for label, c in labelled
            if not preset.labels or label in preset.labels
            for cfg in plan_configs([c], preset.seeds_of(label), preset.epochs, out, preset.subset, data_dir, device)
        ]
        return [
            c.with_changes(precision=precision, compile=compile, lr=c.lr if preset.lr is None else preset.lr)
            for c in configs
        ]

    def metrics(self) -> list[str]:
        """The per-run values the claims are about, test accuracy first."""
        return list(dict.fromkeys([ACCURACY, *(c.metric for c in self.claims)]))

    def run(
        self, groups: list[Group], latency_ms: dict[str, float | None] | None = None, runs: set[str] | None = None
    ) -> Study:
        """The analysis over finished runs: this study's configs only, one recipe (`select`), its verdicts
        corrected over the family of every study's claims (`analyse_lab`: the same adjusted p whichever command
        asks). `runs`: the run names this study's own analysis may use (its plan's), the others' being any."""
        return analyse_lab(groups, latency_ms, {self.name: self}, {self.name: runs} if runs is not None else None)[
            self.name
        ]

    def analysed(self, chosen: dict[str, Group], latency_ms: dict[str, float | None] | None = None) -> Study:
        """The study over its chosen groups (one recipe), each claim judged but not yet corrected."""
        if not chosen:
            study = Study([], [], [], [], name=self.name)
            study.judged = [judge(c, {}, self.name) for c in self.claims]
        else:
            study = (self.analyse or (lambda g, lat: analyse(self, g, lat)))(list(chosen.values()), latency_ms)
        study.name = self.name
        if self.notes:
            study.notes.append(self.notes)
        return study


#: a set of runs trained alike: (the recipe without the architecture, numerics, source)
Bucket = tuple[str, str, str]


def buckets(
    groups: list[Group], labels: Sequence[str], one_recipe: bool = True
) -> list[tuple[Bucket, dict[str, Group]]]:
    """The study's groups by recipe, numerics (bf16, fp32) and source (yours, the shipped results), each by label in
    study order; the one that covers most of the study's runs first (yours on a tie)."""
    by_recipe: dict[Bucket, list[Group]] = {}
    for g in groups:
        if g.label in labels:
            recipe = recipe_key(g.records[0].config) if one_recipe else ""
            by_recipe.setdefault((recipe, g.numerics, g.source), []).append(g)
    ranked = sorted(
        by_recipe.items(), key=lambda kv: (sum(len(g.records) for g in kv[1]), kv[1][0].source == YOURS), reverse=True
    )
    out = []
    for bucket, gs in ranked:
        chosen = study_groups(gs)
        out.append((bucket, {label: chosen[label] for label in labels if label in chosen}))
    return out


def select(groups: list[Group], labels: Sequence[str], one_recipe: bool = True) -> dict[str, Group]:
    """The study's groups, by label in study order: where runs of several recipes, numerics (bf16, fp32) or
    sources (yours, the shipped results) exist, those of the one that covers most of the study's runs (yours on
    a tie), so every comparison is between runs trained alike."""
    found = buckets(groups, labels, one_recipe)
    return found[0][1] if found else {}


def networks(
    groups: list[Group], latency_ms: dict[str, float | None] | None = None, lab: dict[str, Study] | None = None
) -> Study:
    """The kernel study (the notebook's networks) where its configs have runs, else every config's table beside the
    kernel study's untested claims: what `fmnist results` and the report's per-class, curve and confusion figures
    show. `lab`: `analyse_lab`'s result, where the caller has it."""
    study = (lab or analyse_lab(groups, latency_ms))["kernel"]
    if study.rows:
        return study
    every = study_groups(groups)
    rows = [{**g.row(), "latency_ms": (latency_ms or {}).get(g.label)} for g in every.values()]
    return replace(study, rows=rows, groups=every)


def _only(groups: list[Group], names: set[str]) -> list[Group]:
    """The groups cut to the runs named `names` (groups left without one dropped)."""
    cut = [Group(g.arch, g.options, [r for r in g.records if r.run.name in names], g.data) for g in groups]
    return [g for g in cut if g.records]


def recipe_text(chosen: dict[str, Group]) -> str:
    """'fp32, 3 epochs on 6,144 images at peak lr 0.006, yours': how a set of runs was trained."""
    first = next(iter(chosen.values()))
    cfg = first.records[0].config
    epochs = f"{cfg.get('epochs')} epochs" + (f" on {int(cfg['subset']):,} images" if cfg.get("subset") else "")
    lr = f" at peak lr {cfg['lr']:g}" if cfg.get("lr") else ""
    return f"{first.numerics}, {epochs}{lr}, {first.source}"


def analyse_lab(
    groups: list[Group],
    latency_ms: dict[str, float | None] | None = None,
    specs: Mapping[str, StudySpec] | None = None,
    runs: Mapping[str, set[str] | None] | None = None,
) -> dict[str, Study]:
    """Every study (STUDIES, with `specs` in place of those of their names) over `groups`, then its verdicts:
    every claim of every study is one family, corrected together by Holm's method (a study's adjusted p depends
    on the others'), and each verdict replicated where the study's configs have runs of another recipe, numerics
    or source (each such set of runs its own family alike); a verdict that differs there is FRAGILE.

    `runs`: per study, the run names its own (first) analysis may use. The others' sets of runs still replicate."""
    specs = {**STUDIES, **(specs or {})}
    primary: dict[str, Study] = {}
    others: dict[tuple[Bucket, str], Study] = {}
    recipes: dict[Bucket, str] = {}
    for name, spec in specs.items():
        found = buckets(groups, spec.labels(), spec.one_recipe)
        only = (runs or {}).get(name)
        first = buckets(_only(groups, only), spec.labels(), spec.one_recipe)[:1] if only is not None else found[:1]
        primary[name] = spec.analysed(first[0][1] if first else {}, latency_ms)
        for bucket, chosen in found:
            if not first or bucket != first[0][0]:
                others[(bucket, name)] = spec.analysed(chosen)
                recipes[bucket] = recipe_text(chosen)
    judged = [j for s in primary.values() for j in s.judged]
    verdicts, family = correct(judged)
    again: dict[tuple[str, str], list[tuple[str, dict[str, Any]]]] = {}
    for bucket, recipe in recipes.items():
        alt = [j for name, s in primary.items() for j in _judged_in(others.get((bucket, name)), s)]
        for j, v in zip(alt, correct(alt)[0], strict=True):
            if j.tested:
                again.setdefault((j.study, j.claim.text), []).append((recipe, v))
    it = iter(verdicts)
    for s in primary.values():
        s.verdicts = [replicate(next(it), again.get((j.study, j.claim.text), [])) for j in s.judged]
        s.family = family
    return primary


def _judged_in(study: Study | None, primary: Study) -> list[Judged]:
    """The judged claims of a study's other set of runs, or, where it has none, the claims untested (p = 1)."""
    if study is not None:
        return study.judged
    return [Judged(j.claim, j.study) for j in primary.judged]


def prepare(
    spec: StudySpec,
    groups: list[Group],
    data_dir: Path | None,
    device: str,
    on_run: Callable[[str], None] | None = None,
) -> list[str]:
    """Do the study's work (`spec.work`) on each of its chosen runs of yours that lacks it (the shipped runs carry
    theirs, and are not written to); a warning per run it failed on."""
    runs = pending(spec, groups)
    return spec.work.do(runs, data_dir, device, on_run) if spec.work and runs else []


def pending(spec: StudySpec, groups: list[Group]) -> list[Run]:
    """The study's chosen runs of yours that still lack its work (none for a study without work)."""
    if spec.work is None:
        return []
    chosen = [r for g in select(groups, spec.labels()).values() for r in g.records if r.source == YOURS]
    return [r.run for r in chosen if spec.work.needs(r.run)]


def analyse(spec: StudySpec, groups: list[Group], latency_ms: dict[str, float | None] | None = None) -> Study:
    """Table rows, the reported paired differences and each claim's evidence (judged, not yet corrected)."""
    chosen = {g.label: g for g in groups}
    rows = [{**g.row(), "latency_ms": (latency_ms or {}).get(g.label), **_metric_columns(spec, g)} for g in groups]
    pairs: list[tuple[Term, Term, str]] = [(a, b, ACCURACY) for a, b in spec.pairs]
    pairs += [(a, b, c.metric) for c in spec.claims for a, b in c.needed]
    comps = [comp for a, b, metric in dict.fromkeys(pairs) for comp in [_compare(chosen, a, b, metric)] if comp]
    found = {c.name: c for c in comps}
    notes = [_metric_table(spec, rows, metric) for metric in spec.metrics() if metric != ACCURACY and rows]
    study = Study(rows, comps, [], [], groups=chosen, name=spec.name, notes=notes)
    study.judged = [judge(c, found, spec.name) for c in spec.claims]
    return study


def _compare(groups: dict[str, Group], a: Term, b: Term, metric: str) -> Comparison | None:
    """`compare_terms`, or None when a run lacks the metric (a translation metric before its shifted evaluation):
    the claims that need it say "not tested"."""
    try:
        return compare_terms(groups, a, b, metric)
    except RunError:
        return None


def _metric_columns(spec: StudySpec, g: Group) -> dict[str, Any]:
    """Mean and spread over seeds of each non-accuracy metric the claims use (`gap_mean`, `gap_std`)."""
    out: dict[str, Any] = {}
    for metric in spec.metrics():
        if metric == ACCURACY:
            continue
        try:
            s = summarize([METRICS[metric](r) for r in g.records])
        except Exception:  # noqa: BLE001 - a run without metrics.csv rows leaves the column empty
            continue
        short = COLUMN[metric]
        out[f"{short}_mean"], out[f"{short}_std"] = s.mean, (None if s.n < 2 else s.std)
    return out


#: row keys of a metric's columns
COLUMN = {GAP: "gap", SHIFT_DROP: "shift_drop", SHIFT_CHANGED: "shift_changed", CLASS_CONTRAST: "hard_recall"}


def _metric_table(spec: StudySpec, rows: list[dict[str, Any]], metric: str) -> str:
    short = COLUMN[metric]
    lines = [f"## {metric[0].upper() + metric[1:]} by config (points)\n", "| config | mean | std | seeds |"]
    lines.append("|---|---:|---:|---:|")
    for r in rows:
        mean, std = r.get(f"{short}_mean"), r.get(f"{short}_std")
        lines.append(
            f"| {r['config']} | {'—' if mean is None else f'{100 * mean:+.2f}'} | "
            f"{'—' if std is None else f'{100 * std:.2f}'} | {r['n']} |"
        )
    return "\n".join(lines) + "\n"


# --- the studies -----------------------------------------------------------------------------------
def _cnn(**options: Any) -> str:
    return registry.label("cnn", options)


MLP, CNN = registry.label("mlp", {}), _cnn()  # the notebook's two networks: `mlp`, `cnn-k3`
DEPTHS: tuple[int, ...] = registry.get("cnn").values("depth")
#: the test-accuracy margin (`analysis.MARGINS`) in points, as claims and notes word it
POINTS = f"{100 * MARGINS[ACCURACY]:.1f} points"

#: where in the notebook a claim comes from (its `source`)
NOTEBOOK_README, DESIGN_TABLE = "the notebook's README", "the notebook's design table"

STUDIES: dict[str, StudySpec] = {}

#: the data study trains 18 configs (6 sizes × mlp, cnn-k3 and the LCN, the slowest per step) at the same steps
#: each: its default takes 2 epochs' steps per run at the short-run peak rate (6e-3), to stay within about an
#: hour on two cores (`bench/lab_cost.py` measures a preset's trainings from its runs).
#: Its run names (`cnn-k3-n500-s0`) are its own, so its recipe can differ from the project's. The locality study
#: keeps the recipe: its mlp and cnn-k3 runs are the kernel and regularizer studies' (same names), which a recipe
#: of its own would refuse to share.
DATA_DEFAULT = Preset(3, 2, lr=6e-3)
#: its classroom preset: the sizes 500, 2,000 and 50,000 only, and 4,096 draws an epoch (validating on 4,096
#: images) instead of the other studies' 6,144, so that its 27 trainings take the few minutes a quick preset has
DATA_QUICK = replace(QUICK, subset=4096, labels=bias.data_labels((bias.SIZES[0], 2_000, bias.SIZES[-1])))


def register(spec: StudySpec) -> StudySpec:
    """Add a study; `fmnist study`, `fmnist report` and the TUI's study picker pick it up from here."""
    STUDIES[spec.name] = spec
    return spec


def get(name: str) -> StudySpec:
    """The study called `name`; a UsageError names the studies (exit 2)."""
    if name not in STUDIES:
        raise UsageError(f"study {name!r} is unknown; valid: {', '.join(STUDIES)}")
    return STUDIES[name]


register(
    StudySpec(
        "kernel",
        "Kernel-size study",
        "Do smaller kernels win, and does every CNN beat the MLP?",
        kernel.ARCHS,
        {"kernel": kernel.KERNELS},
        kernel.PAIRS,
        (
            *(Claim(text, needed, source=f"{NOTEBOOK_README}, results table") for text, needed in kernel.CLAIMS),
            Claim(
                f"convolution helps most on {' / '.join(HARD_CLASSES)} (the CNN's recall gain over the MLP there "
                "exceeds its gain on the other classes)",
                ((CNN, MLP),),
                metric=CLASS_CONTRAST,
                source=f"{NOTEBOOK_README}: the biggest gains are on Shirt, Coat and Pullover",
            ),
        ),
        "kernel",
        x="kernel",
        analyse=lambda groups, latency: _kernel(groups, latency),
    )
)

register(
    StudySpec(
        "depth",
        "Depth study",
        "How many conv blocks does a 28×28 image need?",
        ("cnn",),
        {"depth": DEPTHS},
        tuple((_cnn(depth=a), _cnn(depth=b)) for a, b in ((2, 1), (3, 2), (4, 2), (4, 3))),
        (
            Claim(
                "2 conv blocks beat 1 (features need a hierarchy)",
                ((_cnn(depth=2), _cnn(depth=1)),),
                source=f"{DESIGN_TABLE}: 2 conv layers, sufficient depth for hierarchical features on 28×28",
            ),
            Claim(
                f"2 conv blocks are sufficient: 3 or 4 gain less than {POINTS}",
                ((_cnn(depth=3), _cnn(depth=2)), (_cnn(depth=4), _cnn(depth=2))),
                kind=AT_MOST,
                source=f"{DESIGN_TABLE}: 2 conv layers, sufficient depth for hierarchical features on 28×28",
            ),
        ),
        "option",
        x="depth",
        notes=(
            "Each block halves the maps (28 → 14 → 7 → 4 → 2) with max-pooling and feeds the notebook's head "
            "(Flatten → FC 128 → FC 10), so a deeper CNN also has a smaller first FC layer: depth 1 has "
            "804,554 parameters, depth 4 307,210."
        ),
    )
)

#: the pooling study: every downsampling × the flatten and GAP heads, and the notebook's CNN with a GAP head as
#: large as its flatten head (`gapfc`)
POOLING: tuple[tuple[str, dict[str, Any]], ...] = (
    *(
        ("cnn", {"kernel": 3, "pool": p, "head": h})
        for p in ("max", "avg", "stride", "allconv")
        for h in ("flatten", "gap")
    ),
    ("cnn", {"kernel": 3, "head": "gapfc"}),
)

register(
    StudySpec(
        "pooling",
        "Pooling study",
        "Does max-pooling beat the other ways to downsample, and the flatten head a global average?",
        ("cnn",),
        {},
        (
            (CNN, _cnn(pool="avg")),
            (CNN, _cnn(pool="stride")),
            (CNN, _cnn(pool="allconv")),
            (_cnn(head="gap"), _cnn(pool="avg", head="gap")),
            (_cnn(head="gap"), _cnn(pool="stride", head="gap")),
            (_cnn(head="gap"), _cnn(pool="allconv", head="gap")),
            (CNN, _cnn(head="gap")),
            (_cnn(pool="avg"), _cnn(pool="avg", head="gap")),
            (_cnn(pool="stride"), _cnn(pool="stride", head="gap")),
            (_cnn(pool="allconv"), _cnn(pool="allconv", head="gap")),
            (CNN, _cnn(head="gapfc")),
            (_cnn(head="gapfc"), _cnn(head="gap")),
        ),
        (
            Claim(
                "max-pooling beats average-pooling",
                ((CNN, _cnn(pool="avg")), (_cnn(head="gap"), _cnn(pool="avg", head="gap"))),
                source=f"{DESIGN_TABLE}: MaxPool, translation invariance + dimensionality reduction",
            ),
            Claim(
                "max-pooling beats a stride-2 convolution",
                ((CNN, _cnn(pool="stride")), (_cnn(head="gap"), _cnn(pool="stride", head="gap"))),
                source=f"{DESIGN_TABLE}: MaxPool, translation invariance + dimensionality reduction",
            ),
            Claim(
                "max-pooling beats the all-convolutional net's learned downsampling (an extra 3×3 conv at stride 2 "
                "in place of each pool)",
                ((CNN, _cnn(pool="allconv")), (_cnn(head="gap"), _cnn(pool="allconv", head="gap"))),
                source=f"{DESIGN_TABLE}: MaxPool; tested against the variant Springenberg et al. 2015 found to match "
                "or beat max-pooling, beside the plain strided conv they found worst",
            ),
            Claim(
                "the notebook's flatten head beats global average pooling",
                ((CNN, _cnn(head="gap")),),
                source=f"{DESIGN_TABLE}: Flatten → FC128 → FC10 (its choice, not argued there)",
            ),
            Claim(
                "the flatten head beats a global-average-pooling head with as many parameters (GAP → FC "
                f"{registry.gapfc_hidden(64, 64 * 7 * 7):,} → FC 10)",
                ((CNN, _cnn(head="gapfc")),),
                source=f"{DESIGN_TABLE}: Flatten → FC128 → FC10; the plain GAP head is a small fraction of the "
                "flatten head's size, so size alone could explain its loss",
            ),
        ),
        "bars",
        x="pool",
        series="head",
        explicit=POOLING,
        notes=(
            "Translation invariance itself (a shifted image classified alike) is not measured here: these "
            "claims are about test accuracy; the translation study measures it (`fmnist study translation`)."
        ),
    )
)

register(
    StudySpec(
        "regularizer",
        "Regularizer study",
        "Does the CNN overfit less than the MLP?",
        ("mlp", "cnn"),
        {"kernel": (3,)},
        ((CNN, MLP),),
        (
            Claim(
                "the CNN overfits less than the MLP (a smaller train − validation gap)",
                ((MLP, CNN),),
                metric=GAP,
                source=f"{NOTEBOOK_README}: the CNN shows less overfitting divergence; its constraints act as a "
                "regularizer",
            ),
        ),
        "gap",
        notes=(
            "The generalization gap of a run is its last epoch's train accuracy minus its validation accuracy "
            "(metrics.csv; the train accuracy is the running accuracy over that epoch's augmented batches, "
            "with the learning rate near zero at the end of the one-cycle schedule). The claim holds when "
            "gap(mlp) − gap(cnn-k3) is significantly > 0, paired over seeds."
        ),
    )
)

register(
    StudySpec(
        "locality",
        "Locality study",
        "Does the CNN's advantage come from pixel neighbourhoods, from sharing its weights, or from its size?",
        ("mlp", "cnn", "lcn"),
        {},
        (
            (bias.CNN, bias.MLP),
            (bias.CNN_PERM, bias.MLP_PERM),
            (bias.MLP_PERM, bias.MLP),
            (bias.CNN_PERM, bias.CNN),
            (bias.CNN, bias.LCN),
            (bias.LCN, bias.MLP),
            (bias.CNN, bias.MLP_MATCHED),
            (bias.MLP_MATCHED, bias.MLP),
        ),
        (
            Claim(
                f"the MLP is unaffected by the permutation (no difference beyond ±{POINTS})",
                ((bias.MLP_PERM, bias.MLP),),
                kind=EQUIVALENT,
                source=f"implied by the account in {NOTEBOOK_README} of why the CNN wins (spatial structure the MLP "
                "ignores)",
            ),
            Claim(
                "the CNN loses its advantage over the MLP on permuted pixels",
                (((bias.CNN, bias.MLP), (bias.CNN_PERM, bias.MLP_PERM)),),
                source=f"{NOTEBOOK_README}: convolutions exploit the spatial structure (local pixel neighbourhoods)",
            ),
            Claim(
                "weight sharing helps beyond locality (the CNN beats the locally connected network)",
                ((bias.CNN, bias.LCN),),
                source=f"{DESIGN_TABLE}: shared k×k filters (parameter efficiency, translation equivariance)",
            ),
            Claim(
                "the CNN beats an MLP with as many parameters",
                ((bias.CNN, bias.MLP_MATCHED),),
                source=f"{NOTEBOOK_README}: the CNN beats the MLP (here without the excuse of size)",
            ),
        ),
        "configs",
        explicit=bias.LOCALITY,
        notes=(
            "Switched on or off: `-perm` permutes the 784 pixel positions by one fixed permutation (seed "
            f"{PERMUTE_SEED}) after augmentation, for training, validation and test alike: the MLP sees the same "
            "information either way, the CNN loses which pixels are neighbours. `lcn-k3` is the CNN with each "
            "convolution locally connected (the same 3×3 windows and channels, a filter of its own at every "
            f"position: locality kept, weight sharing removed; {bias.lcn_params():,} parameters). "
            f"`{bias.MLP_MATCHED}` is the notebook's MLP shape widened to {bias.mlp_params(bias.MATCHED):,} "
            f"parameters, within {bias.matched_gap():.2%} of the CNN k3's {bias.cnn_params(3):,}. The "
            "permutation claim is tested as a contrast, (cnn-k3 − mlp) − (cnn-k3-perm − mlp-perm) > 0 paired "
            f"over seeds; the MLP's claim by two one-sided tests at 2.5% each against ±{POINTS} (the 95% interval "
            "must lie inside the margin: a t-test that finds no difference would not be enough)."
        ),
    )
)

register(
    StudySpec(
        "data",
        "Data-efficiency study",
        "Does the CNN's advantage over the MLP grow as the training set shrinks?",
        ("mlp", "cnn", "lcn"),
        {},
        tuple((bias.cnn(train_size=n), bias.mlp(train_size=n)) for n in bias.SIZES)
        + tuple((bias.cnn(train_size=n), bias.lcn(train_size=n)) for n in bias.SIZES),
        (
            Claim(
                f"the CNN's advantage over the MLP grows as data shrinks (larger at {bias.SIZES[0]:,} images "
                f"than at {bias.SIZES[-1]:,})",
                (
                    (
                        (bias.cnn(train_size=bias.SIZES[0]), bias.mlp(train_size=bias.SIZES[0])),
                        (bias.cnn(train_size=bias.SIZES[-1]), bias.mlp(train_size=bias.SIZES[-1])),
                    ),
                ),
                source=f"{NOTEBOOK_README}: the CNN's constraints act as a regularizer (an inductive bias is worth "
                "data)",
            ),
        ),
        "size",
        explicit=bias.DATA,
        default=DATA_DEFAULT,
        quick=DATA_QUICK,
        notes=(
            "Switched on or off: the training set. Each size is a stratified subset of the 50,000 training images "
            "(a tenth of each class) and the sizes are nested (the 500 images are among the 1,000, ...); "
            "validation and test are unchanged. Protocol: every size trains the same number of optimisation "
            "steps, the recipe's (its epochs × the 50,000 images, or the preset's subset, per epoch): the small "
            "sets are repeated to fill an epoch, each copy flipped on its own. So no size is starved of "
            "updates or given more of them, and the learning-rate schedule is the same curve for all; what "
            "differs is only how many distinct images the steps see. (Epochs scaled with the size would give "
            "500 images 100 × 15 epochs of validation and checkpoints, for the same steps.) The claim is the "
            "contrast (cnn − mlp at the smallest size) − (cnn − mlp at the largest) > 0, paired over seeds. With "
            "--quick (or --subset N) an epoch is N draws from the size's images and validation takes the first N "
            "validation images; --quick trains the sizes 500, 2,000 and 50,000 only, with 4,096 draws an epoch."
        ),
    )
)


#: the label-noise study: the notebook's MLP and CNN with 0, 20, 40 and 60% of their training labels wrong
NOISE_LEVELS = (0, 20, 40, 60)
NOISE: tuple[tuple[str, dict[str, Any]], ...] = tuple(
    (arch, {**options, "label_noise": p})
    for arch, options in (("mlp", {}), ("cnn", {"kernel": 3}))
    for p in NOISE_LEVELS
)
MLP_NOISE40, CNN_NOISE40 = registry.label("mlp", {"label_noise": 40}), _cnn(label_noise=40)

register(
    StudySpec(
        "noise",
        "Label-noise study",
        "When some training labels are wrong, does the CNN keep more of its accuracy than the MLP, and memorise "
        "the wrong labels less?",
        ("mlp", "cnn"),
        {},
        (
            *((_cnn(label_noise=p), registry.label("mlp", {"label_noise": p})) for p in NOISE_LEVELS),
            (MLP, MLP_NOISE40),
            (CNN, CNN_NOISE40),
        ),
        (
            Claim(
                "label noise costs the CNN less than the MLP (with 40% of the training labels wrong, its test "
                "accuracy falls by less)",
                (((MLP, MLP_NOISE40), (CNN, CNN_NOISE40)),),
                source=f"{NOTEBOOK_README}: the CNN's constraints act as a regularizer; tested as Zhang et al. 2017 "
                "test what a network memorises",
            ),
            Claim(
                "the CNN memorises wrong labels less than the MLP (a smaller train − validation gap with 40% of the "
                "training labels wrong)",
                ((MLP_NOISE40, CNN_NOISE40),),
                metric=GAP,
                source=f"{NOTEBOOK_README}: the CNN shows less overfitting divergence; Zhang et al. 2017",
            ),
        ),
        "bars",
        x="label_noise",
        series="arch",
        explicit=NOISE,
        notes=(
            "Switched on or off: the training labels. `-noise40` replaces the label of exactly 40% of the training "
            "images by one of the other nine classes, drawn uniformly; which images, and their wrong classes, are "
            "fixed by the run's seed (each seed a draw of its own). Validation and test keep their true labels, so "
            "the test accuracy is that of the checkpoint best on clean validation: a form of early stopping, which "
            "Zhang et al. 2017 do not use, and which hides part of the memorisation from the test accuracy. The "
            "memorisation shows in the last epoch instead: its train accuracy (on the noisy labels) minus its "
            "validation accuracy. The first claim is the contrast (mlp − mlp-noise40) − (cnn-k3 − cnn-k3-noise40) "
            "> 0 paired over seeds; the second is gap(mlp-noise40) − gap(cnn-k3-noise40) > 0."
        ),
    )
)


def _kernel(groups: list[Group], latency_ms: dict[str, float | None] | None = None) -> Study:
    """The generic analysis, then the first CNN's per-class recall gains over the MLP (a table: the claim about
    the hard classes is one contrast, `analysis.CLASS_CONTRAST`, not a test per class)."""
    study = analyse(STUDIES["kernel"], groups, latency_ms)
    chosen = study.groups
    first = next((label for label in (kernel.cnn(k) for k in kernel.KERNELS) if label in chosen), None)
    if first and MLP in chosen:
        try:
            per_class = [compare(chosen[first], chosen[MLP], cls=i) for i in range(len(kernel.CLASSES))]
        except RunError:  # a run without per-class results: no table
            return study
        study.per_class = [c for c in per_class if c]
        study.per_class_pair, study.highlight = (first, MLP), HARD_CLASSES
    return study


#: the translation study: the notebook's MLP and CNN, the CNN with a stride-2 convolution for its pooling and with
#: the global-average-pooling head (shared with the kernel and pooling studies), the CNN with anti-aliased
#: max-pooling (MaxBlurPool), and the MLP and CNN trained with random shifts of up to ±2 px (`--shift 2`)
TRANSLATION: tuple[tuple[str, dict[str, Any]], ...] = (
    ("mlp", {}),
    ("cnn", {"kernel": 3}),
    ("cnn", {"kernel": 3, "pool": "stride"}),
    ("cnn", {"kernel": 3, "head": "gap"}),
    ("cnn", {"kernel": 3, "pool": "blur"}),
    ("mlp", {"shift": 2}),
    ("cnn", {"kernel": 3, "shift": 2}),
)
MLP_SHIFT, CNN_SHIFT = registry.label("mlp", {"shift": 2}), _cnn(shift=2)  # trained with ±2 px shifts


def _translation(groups: list[Group], latency_ms: dict[str, float | None] | None = None) -> Study:
    """The generic analysis, then the accuracy per shift radius and the equivariance by stage."""
    study = analyse(STUDIES["translation"], groups, latency_ms)
    study.notes += [translation.shift_table(groups)]
    if measured := translation.equivariance_of(groups):
        study.notes.append(translation.equivariance_table(measured))
    return study


register(
    StudySpec(
        "translation",
        "Translation study",
        "How much does shifting a test image by 1–4 px cost each network, and where does the CNN's robustness "
        "come from: its convolutions, its pooling, its head, or data?",
        ("mlp", "cnn"),
        {},
        (
            (CNN, MLP),
            (MLP_SHIFT, MLP),
            (CNN_SHIFT, CNN),
            (CNN, _cnn(pool="stride")),
            (CNN, _cnn(head="gap")),
            (_cnn(pool="blur"), CNN),
        ),
        (
            Claim(
                "the CNN is more robust to translation than the MLP (a smaller accuracy drop on shifted test images)",
                ((MLP, CNN),),
                metric=SHIFT_DROP,
                source=f"{DESIGN_TABLE}: convolution and MaxPool for translation invariance (issue 13)",
            ),
            Claim(
                "max-pooling adds invariance beyond a plain (stride-2) convolution (fewer predictions changed by "
                "shifts)",
                ((_cnn(pool="stride"), CNN),),
                metric=SHIFT_CHANGED,
                source=f"{DESIGN_TABLE}: MaxPool, translation invariance + dimensionality reduction",
            ),
            Claim(
                "the global-average-pooling head adds invariance beyond the flatten head (fewer predictions "
                "changed by shifts)",
                ((CNN, _cnn(head="gap")),),
                metric=SHIFT_CHANGED,
                source="issue 13: max pooling and the GAP head add invariance beyond plain convolution",
            ),
            Claim(
                "anti-aliased max-pooling (MaxBlurPool: a dense 2×2 max, then a 3×3 blur at stride 2) changes fewer "
                "predictions under shifts than max-pooling",
                ((CNN, _cnn(pool="blur")),),
                metric=SHIFT_CHANGED,
                source="Zhang 2019, Making convolutional networks shift-invariant again (not a claim of the notebook)",
            ),
            Claim(
                "shift augmentation narrows the MLP's gap: trained with ±2 px shifts it drops less (it learns "
                "from data what convolution builds in)",
                ((MLP, MLP_SHIFT),),
                metric=SHIFT_DROP,
                source="issue 13",
            ),
        ),
        "translation",
        explicit=TRANSLATION,
        analyse=_translation,
        work=PerRunEvaluation(
            "shifted evaluation",
            "fmnist_tui.training.shift:study_work",
            translation.needs_work,
        ),
        notes=(
            "Every run's best weights are evaluated, without retraining, on the first 100 test images of each "
            "class (20 for a run trained on a subset: the quick preset) shifted by every (dx, dy) in [−4, 4]² "
            "pixels with zero fill (81 shifted sets; shift.json in the run folder keeps the counts). A run's "
            "*accuracy drop under shift* is its unshifted accuracy on those images minus its mean accuracy over "
            "the shifts at each distance max(|dx|, |dy|) = 1, 2, 3, 4 px, averaged over the four distances; its "
            "*predictions changed by shift* is the share of images whose predicted class differs from the "
            "unshifted prediction, averaged alike (invariance itself, right or wrong: a network that always "
            "answers one class scores 0, so read it beside the accuracy). The stride-2 convolution "
            "(`cnn-k3-stride`) is the plain convolution that downsamples without pooling; `mlp-shift2` and "
            "`cnn-k3-shift2` train with random shifts of up to ±2 px (`--shift 2`). The augmentation claim "
            "compares the MLP's drop with and without it, so its gap to the (unaugmented) CNN narrows by exactly "
            "that difference."
        ),
    )
)


def _ladder(groups: list[Group], latency_ms: dict[str, float | None] | None = None) -> Study:
    """The generic analysis, then the ladder's table: each rung's step from the one below, paired over seeds."""
    study = analyse(STUDIES["ladder"], groups, latency_ms)
    study.notes.append("## The ladder, rung by rung\n\n" + ladder.markdown(ladder.ladder(groups)))
    return study


#: the ladder's quick preset leaves out the ResNet rungs: at minutes a run even on a subset, no classroom waits
LADDER_QUICK = replace(QUICK, labels=tuple(r.label for r in ladder.RUNGS if r.arch != "resnet"))

register(
    StudySpec(
        "ladder",
        "The ladder",
        "What does each ingredient of a modern network add, one at a time, from the notebook's MLP to the default "
        "model?",
        (),
        {},
        tuple((upper.label, lower.label) for lower, upper in zip(ladder.RUNGS, ladder.RUNGS[1:], strict=False)),
        (
            Claim(
                "the default model beats the notebook's CNN",
                ((ladder.RUNGS[-1].label, CNN),),
                source="fmnist's default model (`predict`'s), against the notebook's network",
            ),
        ),
        "ladder",
        explicit=tuple((r.arch, r.settings) for r in ladder.RUNGS),
        quick=LADDER_QUICK,
        analyse=_ladder,
        one_recipe=False,
        notes=(
            "Every rung but the last trains with the project's recipe (15 epochs); the last, the default model, "
            "with its own: random crops of ±2 px, random erasing, flip test-time augmentation and 40 epochs. Each "
            "step is the paired difference to the rung below over the seeds both have."
        ),
    )
)
