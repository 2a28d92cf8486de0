"""The study framework: verdicts on fixed numbers, each study's plan and analysis on hand-made runs, the
recipe a study picks, time estimates, `fmnist study` (list, unknown names, a quick study end to end)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from fmnist_tui.cli import app
from fmnist_tui.core import shifts
from fmnist_tui.core.config import TrainConfig
from fmnist_tui.core.fsutil import sha256_file, write_json
from fmnist_tui.core.runs import Run, write_metrics
from fmnist_tui.study import studies
from fmnist_tui.study.analysis import ACCURACY, GAP, Comparison, key, verdict
from fmnist_tui.study.estimate import Estimate, Fit, fit_epochs, makespan
from fmnist_tui.study.plan import train_command
from fmnist_tui.study.results import group_records, load_records
from fmnist_tui.study.sections import section
from fmnist_tui.study.stats import equivalence_test, paired_t_test

runner = CliRunner()
#: every registered study, in `fmnist study --list` order
STUDY_NAMES = "kernel, depth, pooling, regularizer, locality, data, translation"


def comparison(a: list[float], b: list[float], metric: str = ACCURACY) -> dict[str, Comparison]:
    """`x − y` paired over len(a) seeds, keyed as claims look it up."""
    return {key("x", "y", metric): Comparison("x", "y", list(range(len(a))), paired_t_test(a, b), metric)}


NEEDED = (("x", "y"),)


@pytest.mark.parametrize(
    "a,b,margin,word",
    [
        ([0.91, 0.92, 0.93], [0.90, 0.911, 0.919], None, "supported"),  # +1.0, +0.9, +1.1 points
        ([0.90, 0.911, 0.919], [0.91, 0.92, 0.93], None, "contradicted"),
        ([0.91, 0.90, 0.93], [0.90, 0.91, 0.92], None, "not supported at this sample size (3 seeds)"),
        ([0.91], [0.90], None, "not supported at this sample size (1 seed)"),  # one seed: no interval
        # "y is sufficient": x gains at most +0.5 points
        ([0.901, 0.912, 0.921], [0.90, 0.91, 0.92], 0.005, "supported"),  # +0.1..0.2, interval below +0.5
        ([0.92, 0.93, 0.94], [0.90, 0.911, 0.919], 0.005, "contradicted"),  # +2 points, interval above +0.5
        ([0.905, 0.92, 0.925], [0.90, 0.91, 0.92], 0.005, "not supported at this sample size (3 seeds)"),
        ([0.88, 0.89, 0.90], [0.90, 0.91, 0.92], 0.005, "supported"),  # worse is also "no gain"
    ],
)
def test_verdicts_on_fixed_numbers(a: list[float], b: list[float], margin: float | None, word: str) -> None:
    v = verdict("x beats y", NEEDED, comparison(a, b), margin=margin)
    assert v["verdict"] == word
    assert v["detail"].startswith("x − y = ") and ("margin +0.50 points" in v["detail"]) == (margin is not None)


@pytest.mark.parametrize(
    "diffs,word",
    [
        ([0.0005, -0.0005, 0.0], "supported"),  # 90% CI ±0.08 points, inside ±0.3
        ([0.001, 0.001, 0.001], "supported"),  # no spread, inside the margin
        ([0.010, 0.011, 0.009], "contradicted"),  # +1 point, significantly beyond +0.3
        ([0.002, -0.003, 0.004], "not supported at this sample size (3 seeds)"),  # too noisy to tell
        ([0.0005], "not supported at this sample size (1 seed)"),
    ],
)
def test_equivalence_verdicts_on_fixed_numbers(diffs: list[float], word: str) -> None:
    b = [0.90 + 0.001 * i for i in range(len(diffs))]
    found = comparison([x + d for x, d in zip(b, diffs, strict=True)], b)
    v = verdict("x is y", NEEDED, found, equivalence=0.003)
    assert v["verdict"] == word
    assert v["detail"].startswith("x − y = ") and v["detail"].endswith("equivalence margin ±0.30 points")


def test_equivalence_test_by_hand_and_not_different_is_not_equal() -> None:
    # d = +0.05, −0.05, 0 points: mean 0, sd 0.0005, se 0.0005/√3; Student t with 2 df has the closed form
    # cdf(t) = 1/2 + t / (2 √(t² + 2)), so each one-sided p is 1 − cdf(0.003 / se)
    e = equivalence_test(paired_t_test([0.9005, 0.9005, 0.9], [0.9, 0.901, 0.9]), 0.003)
    t = 0.003 / (0.0005 / math.sqrt(3))
    assert e.p_equivalent == pytest.approx(0.5 - t / (2 * math.sqrt(t * t + 2)), rel=1e-9)
    assert e.ci_high == pytest.approx(2.919986 * 0.0005 / math.sqrt(3), rel=1e-5) and e.equivalent
    # a noisy difference: the t-test finds nothing (a "beats" claim is not supported) and neither does TOST
    noisy = comparison([0.902, 0.897, 0.904], [0.9, 0.9, 0.9])
    assert verdict("x beats y", NEEDED, noisy)["verdict"].startswith("not supported")
    assert verdict("x is y", NEEDED, noisy, equivalence=0.003)["verdict"].startswith("not supported")


def test_locality_and_data_studies_on_hand_made_runs(tmp_path: Path) -> None:
    for s in range(3):
        e = 0.001 * s
        fake(tmp_path, "mlp", s, 0.890 + e)
        fake(tmp_path, "mlp", s, 0.890 + e + 0.0002 * (s - 1), permute=True)
        fake(tmp_path, "cnn", s, 0.920 + e)
        fake(tmp_path, "cnn", s, 0.880 + e + 0.0005 * s, permute=True)
        fake(tmp_path, "lcn", s, 0.910 + e - 0.0004 * s)
        fake(tmp_path, "mlp", s, 0.893 + e, hidden="422,211")
        for n, (cnn, mlp) in {500: (0.75, 0.70), 2000: (0.83, 0.80), 50000: (0.92, 0.90)}.items():
            fake(tmp_path, "cnn", s, cnn + e + 0.001 * s * (n == 500), train_size=n)
            fake(tmp_path, "mlp", s, mlp + e, train_size=n)
            fake(tmp_path, "lcn", s, cnn - 0.01 + e, train_size=n)
    groups = group_records(load_records(tmp_path)[0])
    locality = studies.get("locality").run(groups)
    assert [r["config"] for r in locality.rows] == [
        "mlp",
        "mlp-perm",
        "cnn-k3",
        "cnn-k3-perm",
        "lcn-k3",
        "mlp-h422x211",
    ]
    verdicts = {v["claim"]: v for v in locality.verdicts}
    assert verdicts["the MLP is unaffected by the permutation (equal within ±0.3 points)"]["verdict"] == "supported"
    lost = verdicts["the CNN loses its advantage over the MLP on permuted pixels"]
    assert lost["verdict"] == "supported" and lost["detail"].startswith(
        "(cnn-k3 − mlp) − (cnn-k3-perm − mlp-perm) = +3.95 points"
    )
    assert (
        verdicts["weight sharing helps beyond locality (the CNN beats the locally connected network)"]["verdict"]
        == "supported"
    )
    assert verdicts["the CNN beats an MLP with as many parameters"]["verdict"] == "supported"
    data = studies.get("data").run(groups)
    assert {r["config"] for r in data.rows} == {
        f"{a}-n{n}" for a in ("mlp", "cnn-k3", "lcn-k3") for n in (500, 2000, 50000)
    }
    (grows,) = data.verdicts
    assert (
        grows["verdict"] == "supported"
        and "(cnn-k3-n500 − mlp-n500) − (cnn-k3-n50000 − mlp-n50000) = +3.10" in grows["detail"]
    )


def test_verdict_on_another_metric_and_untested() -> None:
    gap = comparison([0.04, 0.05, 0.045], [0.02, 0.025, 0.02], GAP)
    assert verdict("y overfits less", NEEDED, gap, metric=GAP)["verdict"] == "supported"
    assert verdict("x beats y", NEEDED, gap)["verdict"] == "not tested"  # no test-accuracy difference
    untested = verdict("x beats y", (("x", "z"),), comparison([0.9], [0.8]))
    assert untested["verdict"] == "not tested" and "needs x − z" in untested["detail"]


def fake(root: Path, arch: str, seed: int, acc: float, gap: float = 0.02, epochs: int = 15, **options: Any) -> None:
    """A finished run with config, summary and metrics (its last epoch's train − val accuracy is `gap`)."""
    cfg = TrainConfig.create(arch=arch, seed=seed, epochs=epochs, out=str(root), **options)
    cfg.run_dir.mkdir(parents=True)
    write_json(cfg.run_dir / "config.json", {**cfg.to_dict(), "run": cfg.run_name})
    rows = [
        {
            "epoch": e,
            "train_loss": 1 / e,
            "train_acc": acc - 0.05 / e + gap,
            "val_loss": 1 / e,
            "val_acc": acc - 0.05 / e,
            "lr": 0.0,
            "seconds": 1.0,
            "images_per_s": 1.0,
        }
        for e in range(1, 4)
    ]
    write_metrics(cfg.run_dir / "metrics.csv", rows)
    summary = {"test_accuracy": acc, "finished": True, "params": 1, "macs": 1, "train_seconds": 1.0, "seed": seed}
    write_json(cfg.run_dir / "summary.json", summary)


def analysed(root: Path, name: str) -> dict[str, str]:
    study = studies.get(name).run(group_records(load_records(root)[0]))
    return {v["claim"]: v["verdict"] for v in study.verdicts}


def test_depth_study_claims(tmp_path: Path) -> None:
    for s, spread in enumerate((0.0, 0.003, -0.002)):
        fake(tmp_path, "cnn", s, 0.900 + spread, depth=1)
        fake(tmp_path, "cnn", s, 0.920 + spread + 0.0003 * s)
        fake(tmp_path, "cnn", s, 0.921 + spread, depth=3)
        fake(tmp_path, "cnn", s, 0.9205 + spread + 0.0002 * s, depth=4)
    fake(tmp_path, "cnn", 0, 0.95, kernel=7)  # not this study's: left out
    verdicts = analysed(tmp_path, "depth")
    assert verdicts["2 conv blocks beat 1 (features need a hierarchy)"] == "supported"
    assert verdicts["2 conv blocks are sufficient: 3 or 4 gain less than half a point"] == "supported"
    study = studies.get("depth").run(group_records(load_records(tmp_path)[0]))
    assert [r["config"] for r in study.rows] == ["cnn-k3-d1", "cnn-k3", "cnn-k3-d3", "cnn-k3-d4"]


def test_pooling_and_regularizer_studies(tmp_path: Path) -> None:
    for s in range(3):
        e = 0.001 * s
        fake(tmp_path, "cnn", s, 0.92 + e, gap=0.020 + e)
        fake(tmp_path, "cnn", s, 0.915 + e + 0.0005 * s, pool="avg")
        fake(tmp_path, "cnn", s, 0.925 + e, pool="stride")  # the stride-2 conv wins here
        fake(tmp_path, "cnn", s, 0.91 + e, head="gap")
        fake(tmp_path, "cnn", s, 0.90 + e, pool="avg", head="gap")
        fake(tmp_path, "cnn", s, 0.905 + e + 0.0003 * s, pool="stride", head="gap")
        fake(tmp_path, "mlp", s, 0.89 + e, gap=0.040 + 0.002 * s)
    pooling = analysed(tmp_path, "pooling")
    assert pooling["max-pooling beats average-pooling"] == "supported"
    assert pooling["max-pooling beats a stride-2 convolution"] == "contradicted"
    assert pooling["the seed's flatten head beats global average pooling"] == "supported"
    regularizer = studies.get("regularizer").run(group_records(load_records(tmp_path)[0]))
    (v,) = regularizer.verdicts
    assert v["verdict"] == "supported" and "mlp − cnn-k3 (generalization gap) = +2.10 points" in v["detail"]
    rows = {r["config"]: r for r in regularizer.rows}
    assert rows["mlp"]["gap_mean"] == pytest.approx(0.042) and rows["cnn-k3"]["gap_mean"] == pytest.approx(0.021)
    assert [c.name for c in regularizer.comparisons] == ["cnn-k3 − mlp", "mlp − cnn-k3 (generalization gap)"]


def test_a_study_compares_runs_of_one_recipe(tmp_path: Path) -> None:
    """Quick runs (3 epochs) beside default ones (15): the recipe with most of the study's runs wins."""
    for s in range(3):
        fake(tmp_path, "cnn", s, 0.92, depth=1)
        fake(tmp_path, "cnn", s, 0.93)
    fake(tmp_path / "q", "cnn", 0, 0.80, depth=3, epochs=3)
    for p in (tmp_path / "q").iterdir():
        p.rename(tmp_path / p.name)
    study = studies.get("depth").run(group_records(load_records(tmp_path)[0]))
    assert [r["config"] for r in study.rows] == ["cnn-k3-d1", "cnn-k3"] and {r["epochs"] for r in study.rows} == {15}


def test_plans_and_presets(tmp_path: Path) -> None:
    depth = studies.get("depth")
    names = [c.run_name for c in depth.plan(depth.default, tmp_path)]
    assert names[:3] == ["cnn-k3-d1-s0", "cnn-k3-d1-s1", "cnn-k3-d1-s2"] and len(names) == 12
    quick = depth.plan(depth.quick, tmp_path, precision="fp32")
    assert {(c.epochs, c.subset, c.lr, c.precision) for c in quick} == {(3, 6144, 6e-3, "fp32")} and len(quick) == 12
    pooling = studies.get("pooling")
    assert [c.label for c in pooling.plan(studies.QUICK, tmp_path)][:: studies.QUICK.seeds] == pooling.labels()
    # the seed's cnn-k3 is one run shared by six studies: same name, same recipe
    shared = {c.run_name: c.recipe() for s in studies.STUDIES.values() for c in s.plan(s.default, tmp_path)}
    assert "cnn-k3-s0" in shared and sum("cnn-k3" in s.labels() for s in studies.STUDIES.values()) == 6
    # every run name two studies plan is one recipe (the translation study trains only its shift-augmented runs
    # where the kernel and pooling studies ran)
    for s in studies.STUDIES.values():
        assert all(shared[c.run_name] == c.recipe() for c in s.plan(s.default, tmp_path))
    translation = {c.run_name for c in studies.get("translation").plan(studies.DEFAULT, tmp_path)}
    others = {
        c.run_name for s in studies.STUDIES.values() if s.name != "translation" for c in s.plan(s.default, tmp_path)
    }
    assert sorted(translation - others) == [f"{c}-shift2-s{i}" for c in ("cnn-k3", "mlp") for i in range(3)]
    with pytest.raises(Exception, match=f"study 'layers' is unknown; valid: {STUDY_NAMES}"):
        studies.get("layers")


def test_makespan_packs_longest_first() -> None:
    """As the scheduler starts runs: longest first, each on the first free slot (not the optimal packing)."""
    assert makespan([10, 10, 10, 10], 2) == 20 and makespan([30, 10, 10, 10], 2) == 30
    assert makespan([5, 4, 3, 3, 3], 2) == 10 and makespan([], 2) == 0 and makespan([7, 1], 1) == 8


#: made-up speeds: one epoch's steps of all 50,000 images (391 steps of 128) take 1, 2, 3 and 4 s, nothing else
EPOCH_S = {"mlp": 1.0, "cnn-k3": 2.0, "cnn-k5": 3.0, "cnn-k7": 4.0}


def fake_speed(cfg: TrainConfig, threads: int = 1) -> Any:
    """training.speed.Speed's numbers (this module does not import torch), printable as the estimate prints them."""
    numbers = {"step_s": EPOCH_S[cfg.spec.label(cfg.options)] / 391, "eval_s": 0.0, "test_s": 0.0}
    shown = {"step_s": numbers["step_s"], "eval_s_per_1000": 0.0, "test_s_per_1000": 0.0}
    return SimpleNamespace(**numbers, to_dict=lambda: {**shown, "batch_size": 128, "threads": threads, "bf16": False})


def test_the_most_epochs_that_fit_a_budget(tmp_path: Path) -> None:
    """The kernel study at e epochs: 3 seeds of runs of 1, 2, 3 and 4 s an epoch, packed on 2 jobs longest first,
    take 15·e s; a budget of 100 s fits 6 epochs (90 s) and not 7 (105 s), one under 15 s not even one."""
    spec = studies.get("kernel")

    def plan_for(e: int) -> list[TrainConfig]:
        return spec.plan(studies.Preset(3, e), tmp_path)

    assert makespan([EPOCH_S[c.spec.label(c.options)] * 7 for c in plan_for(7)], 2) == 105
    est = Estimate({}, {}, 0.0, 0.0, jobs=2, threads=1)
    est.measured = {c.spec.label(c.options): fake_speed(c) for c in plan_for(15)}
    assert fit_epochs(plan_for, 15, est, 100.0) == Fit(6, 90.0)
    assert fit_epochs(plan_for, 5, est, 100.0) == Fit(4, 60.0)  # only fewer epochs than the preset's
    assert fit_epochs(plan_for, 15, est, 10.0) == Fit(0, 15.0)
    # start-up and the data's load are paid by every run: 12 runs of 2 s on 2 jobs add 12 s to the 6 epochs
    est.start_s, est.load_s = 1.5, 0.5
    assert fit_epochs(plan_for, 15, est, 100.0) == Fit(5, 75.0 + 12.0)


@pytest.mark.slow  # the estimate imports torch
def test_a_study_over_its_budget_trains_the_epochs_that_fit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--dry-run` on a machine of the made-up speeds above (the dataset not found: its sizes are assumed). A plan
    fits when its estimate, plus the estimate's measured error (35%), is within the budget."""
    from fmnist_tui.training import speed

    monkeypatch.setattr(speed, "measure", fake_speed)
    monkeypatch.setattr(speed, "start_seconds", lambda: 0.0)
    monkeypatch.chdir(tmp_path)
    args = ["study", "kernel", "--dry-run", "--data-dir", "nowhere", "--precision", "fp32"]
    res = runner.invoke(app, [*args, "--budget", "2"], env={"COLUMNS": "400"})
    assert res.exit_code == 0, res.output
    lines = [line for line in res.output.splitlines() if not line.startswith("note: dataset not loaded")]
    assert "estimated time: 3.8 min wall for 12 trainings" in lines[1]  # 15 epochs: 225 s
    assert lines[2] == (
        "fit: 15 epochs a run: ~3.8 min estimated, up to ~5.1 min with the estimate's error (+35%), over the "
        "2-minute budget (--budget) on this machine; training 5 epochs a run instead, a shorter recipe that "
        "trains to lower accuracy (README: Studies, Time), in checkpoints/epochs5 and "
        "reports/studies/kernel-epochs5; --no-fit trains the preset's 15 epochs whatever they take"
    )  # 6 epochs (90 s) fit 120 s, but not with 35% to spare (90 · 1.35 = 121.5 s): 5 (75 s) do
    assert lines[3].startswith("study kernel (") and "3 seeds × 5 epochs" in lines[3]
    assert "12 runs in checkpoints/epochs5 (12 new)" in lines[3]
    assert "cnn-k7-s2: new, ~20 s" in res.output and "estimated time: 75 s wall for 12 trainings" in res.output
    assert not [line for line in lines if line.startswith("note: ~")]

    for asked in (["--no-fit"], ["--epochs", "15"]):  # the preset's recipe, or one given: trained as asked
        res = runner.invoke(app, [*args, "--budget", "2", *asked], env={"COLUMNS": "400"})
        assert res.exit_code == 0, res.output
        assert "fit:" not in res.output and "12 runs in checkpoints (12 new)" in res.output
        (note,) = [line for line in res.output.splitlines() if line.startswith("note: 15 epochs")]
        assert "over the 2-minute budget (--budget) on this machine; 5 epochs a run fit (~75 s" in note
        assert note.endswith(
            "fmnist study kernel --data-dir nowhere --precision fp32 --epochs 5 --runs checkpoints/epochs5 "
            "--out reports/studies/kernel-epochs5"
        )
    fits = runner.invoke(app, [*args, "--budget", "5.1"], env={"COLUMNS": "400"})
    assert fits.exit_code == 0 and "budget" not in fits.output  # 225 s and 35% more: 304 s, within 5.1 min: it fits
    assert "3 seeds × 15 epochs" in fits.output
    one = runner.invoke(app, [*args, "--budget", "0.5"], env={"COLUMNS": "400"})  # 30 s: 1 epoch (15 s) and 35%
    assert one.exit_code == 0, one.output
    assert "training 1 epoch a run instead" in one.output and "3 seeds × 1 epoch on" in one.output
    short = runner.invoke(app, [*args, "--budget", "0.25"], env={"COLUMNS": "400"})  # 15 s: 1 epoch takes 15
    assert short.exit_code == 0 and "fit:" not in short.output and "12 runs in checkpoints (12 new)" in short.output
    assert "even 1 epoch a run would take ~15 s: fewer --seeds or a smaller --subset" in short.output
    quick = runner.invoke(app, ["study", "kernel", "--dry-run", "--quick", "--data-dir", "nowhere"])
    assert quick.exit_code == 0 and "budget" not in quick.output  # 3 epochs of 6,144 images: ~6 s, under 5 min
    for bad in ("0", "-1", "nan"):
        res = runner.invoke(app, [*args, "--budget", bad])
        assert res.exit_code == 2 and "Traceback" not in res.output
        assert [line for line in res.output.splitlines() if line.startswith("error:")] == [
            f"error: --budget must be a positive number of minutes, got {float(bad):g}"
        ]
    assert not (tmp_path / "checkpoints").exists()


def slow_speed(cfg: TrainConfig, threads: int = 1) -> Any:
    """A machine on which every training step takes 10 s (the tiny dataset's epoch: 2 steps, 20 s)."""
    shown = {"step_s": 10.0, "eval_s_per_1000": 0.0, "test_s_per_1000": 0.0}
    numbers = {"step_s": 10.0, "eval_s": 0.0, "test_s": 0.0}
    return SimpleNamespace(**numbers, to_dict=lambda: {**shown, "batch_size": 128, "threads": threads, "bf16": False})


@pytest.mark.slow
def test_a_study_too_long_for_this_machine_trains_what_fits_and_resumes_it(
    tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The way a user on a slow machine meets it: the quick regularizer study (2 seeds × 3 epochs, 4 runs on 2
    jobs) takes 120 s there, over a 2-minute budget with the estimate's error (162 s); it trains 2 epochs (80 s)
    in folders of its own, really (the trainings are subprocesses on the tiny dataset); called again, with a
    budget that would fit only 1 epoch, it resumes that earlier start rather than training anew."""
    from fmnist_tui.training import speed

    monkeypatch.setattr(speed, "measure", slow_speed)
    monkeypatch.setattr(speed, "start_seconds", lambda: 0.0)
    monkeypatch.chdir(tmp_path)
    args = ["study", "regularizer", "--quick", "--seeds", "2", "--data-dir", str(tiny_data), "--precision", "fp32"]
    res = runner.invoke(app, [*args, "--budget", "2"], env={"COLUMNS": "400", "NO_COLOR": "1"})
    assert res.exit_code == 0, res.output
    runs, out = tmp_path / "checkpoints" / "quick", tmp_path / "reports" / "studies"
    assert "training 2 epochs a run instead" in res.output
    assert "in checkpoints/quick/epochs2 and reports/studies/regularizer-quick-epochs2;" in res.output
    doc = json.loads((out / "regularizer-quick-epochs2" / "results.json").read_text())
    assert doc["preset"]["epochs"] == 2 and sorted(doc["experiment"]["trained"]) == [
        "cnn-k3-s0",
        "cnn-k3-s1",
        "mlp-s0",
        "mlp-s1",
    ]
    assert doc["experiment"]["fit"] == {
        "epochs": 2,
        "estimated_wall_seconds": 80.0,
        "applied": True,
        "preset_epochs": 3,
    }
    assert doc["experiment"]["estimated_wall_seconds"] == 80.0 and doc["experiment"]["estimate_error"] == 0.35
    assert json.loads((runs / "epochs2" / "mlp-s0" / "config.json").read_text())["epochs"] == 2
    for md in ("results.md", "section.md"):
        text = (out / "regularizer-quick-epochs2" / md).read_text()
        assert "\n\n*Trained at 2 epochs a run, not the preset's 3: the preset's recipe was estimated at ~2.0" in text
    assert not (runs / "mlp-s0").exists() and not (out / "regularizer-quick").exists()

    again = runner.invoke(app, [*args, "--budget", "1.5"], env={"COLUMNS": "400", "NO_COLOR": "1"})
    assert again.exit_code == 0, again.output
    assert "training 2 epochs a run instead" in again.output
    assert "checkpoints/quick/epochs2 (started before: its runs are reused)" in again.output
    assert json.loads((out / "regularizer-quick-epochs2" / "results.json").read_text())["experiment"]["trained"] == []
    assert not (runs / "epochs1").exists()
    listed = runner.invoke(app, ["study", "--list"], env={"COLUMNS": "400"})
    assert listed.exit_code == 0, listed.output
    reg = listed.output.split("regularizer")[1]  # the quick preset trains 3 seeds: 4 of its 6 runs at 2 epochs
    assert "quick, fitted (3 seeds × 2 epochs on the first 6,144 images, peak lr 0.006): 4/6 runs done in " in reg


def test_unknown_study_and_list(tmp_path: Path) -> None:
    res = runner.invoke(app, ["study", "layers"])
    assert res.exit_code == 2 and "Traceback" not in res.output
    lines = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert lines == [f"error: study 'layers' is unknown; valid: {STUDY_NAMES}"]
    assert runner.invoke(app, ["study"]).exit_code == 2
    for s in range(2):
        fake(tmp_path, "mlp", s, 0.89)
    listed = runner.invoke(app, ["study", "--list", "--runs", str(tmp_path)], env={"COLUMNS": "200"})
    assert listed.exit_code == 0, listed.output
    assert "claim: the CNN overfits less than the MLP" in listed.output
    assert f"default (3 seeds × 15 epochs on all 50,000 training images): 2/6 runs done in {tmp_path}" in listed.output


def run_study(args: list[str], env: dict[str, str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fmnist_tui", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.slow
def test_quick_study_end_to_end(cli_env: dict[str, str], tmp_path: Path) -> None:
    """plan → dry run with an estimate → runs → verdicts → figure → report section; then every run reused."""
    args = ["study", "regularizer", "--quick", "--seeds", "2", "--subset", "64", "--epochs", "2", "--runs", "runs"]
    args += ["--out", "out"]
    dry = run_study([*args, "--dry-run"], cli_env, tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert "mlp-s0: new, ~" in dry.stdout and "cnn-k3-s1: new, ~" in dry.stdout
    assert "measured cnn-k3:" in dry.stdout and "estimated time:" in dry.stdout and not (tmp_path / "runs").exists()
    res = run_study(args, cli_env, tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert doc["study"] == "regularizer" and [r["config"] for r in doc["table"]] == ["mlp", "cnn-k3"]
    assert sorted(doc["experiment"]["trained"]) == ["cnn-k3-s0", "cnn-k3-s1", "mlp-s0", "mlp-s1"]
    (v,) = doc["verdicts"]
    assert v["claim"].startswith("the CNN overfits less")
    assert v["detail"].startswith("mlp − cnn-k3 (generalization gap) = ")
    assert v["verdict"] in ("supported", "contradicted", "not supported at this sample size (2 seeds)")
    assert doc["preset"] == {"seeds": 2, "epochs": 2, "subset": 64, "lr": 6e-3, "quick": True}
    assert (tmp_path / "out" / "regularizer_study.png").stat().st_size > 1000
    section = (tmp_path / "out" / "section.md").read_text()
    assert section.startswith("## Regularizer study") and "Generalization gap by config" in section
    assert "| mlp |" in (tmp_path / "out" / "results.md").read_text()
    assert (tmp_path / "out" / "results.csv").read_text().count("\n") == 3

    again = run_study(args, cli_env, tmp_path)
    assert again.returncode == 0, again.stderr
    assert json.loads((tmp_path / "out" / "results.json").read_text())["experiment"]["trained"] == []

    report = run_study(["report", "--runs", "runs", "--out", "rep", "--figure", "regularizer"], cli_env, tmp_path)
    assert report.returncode == 0, report.stderr
    assert (tmp_path / "rep" / "regularizer_study.png").is_file()
    full = run_study(["report", "--runs", "runs", "--out", "rep"], cli_env, tmp_path)
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "## Regularizer study" in md and "## Kernel-size study" in md  # mlp and cnn-k3 are kernel configs too
    assert "## Studies without runs" not in md or "regularizer:" not in md.split("## Studies without runs")[1]
    assert "## Depth study" in md  # cnn-k3 is depth 2 of the depth study
    assert full.returncode in (0, 1), full.stderr  # 1 only for a figure the tiny runs cannot draw


def fake_shifts(root: Path, name: str, unshifted: float, drop: float, changed: float) -> None:
    """A cached shifted evaluation for a fake run: `drop` at every distance, `changed` predictions at every shift
    (and, for a CNN, an equivariance measure), for weights written here."""
    run = Run(root / name)
    run.file("best.safetensors").write_bytes(name.encode())
    n = shifts.STUDY_IMAGES  # the fake runs train on all the images
    correct = np.full((9, 9), round(n * (unshifted - drop)))
    correct[4, 4] = round(n * unshifted)
    moved = np.full((9, 9), round(n * changed))
    moved[4, 4] = 0
    weights = sha256_file(run.file("best.safetensors"))
    shifts.store_grid(run, shifts.ShiftGrid(4, n, correct, moved), n, "data", weights)
    if name.startswith("cnn"):
        stage = {"stride": 1, "receptive_field": 3, "change": {"1": 0.5, "2": 0.6}}
        stages = [
            {"stage": "conv1", "shape": [32, 28, 28], **stage, "equivariance_error": {"1": 0.0, "2": 0.0}},
            {"stage": "logits", "shape": [10], **stage, "stride": 0, "equivariance_error": {"1": None, "2": None}},
        ]
        shifts.store_equivariance(run, stages, "data", weights)


def test_shift_is_named_among_the_data_settings(tmp_path: Path) -> None:
    """`--shift N` is a data setting (registry.DATA_TAGS) like `--train-size` and `--permute`: one naming path for
    labels, run names and a run folder's group, each part after the architecture's options, none when off."""
    cfg = TrainConfig.create(arch="cnn", train_size=500, permute=True, shift=2, out=str(tmp_path))
    assert cfg.label == "cnn-k3-n500-perm-shift2" and cfg.run_name == "cnn-k3-n500-perm-shift2-s0"
    assert TrainConfig.create(arch="mlp", shift=0).run_name == "mlp-s0"
    cmd = train_command(cfg, threads=1, resume=False)
    assert cmd[cmd.index("--shift") + 1] == "2" and cmd[cmd.index("--train-size") + 1] == "500" and "--permute" in cmd
    fake(tmp_path, "cnn", 0, 0.9, train_size=500, permute=True, shift=2)
    assert [g.label for g in group_records(load_records(tmp_path)[0])] == [cfg.label]


def test_translation_study(tmp_path: Path) -> None:
    """The claims on shifted-evaluation metrics, the tables, the figure; a config without one is 'not tested'."""
    for s in range(3):
        e = 0.002 * s * s
        for arch, options, acc, drop, changed in (
            ("mlp", {}, 0.89, 0.30 + e, 0.30),
            ("cnn", {}, 0.92, 0.10 + e, 0.12 + e),
            ("cnn", {"pool": "stride"}, 0.915, 0.15, 0.20 + e),
            ("cnn", {"head": "gap"}, 0.90, 0.05, 0.05 + 0.5 * e),
            ("mlp", {"shift": 2}, 0.88, 0.18 + 2 * e, 0.2),
            ("cnn", {"shift": 2}, 0.925, 0.04, 0.04),
        ):
            fake(tmp_path, arch, s, acc, **options)
            fake_shifts(tmp_path, TrainConfig.create(arch=arch, seed=s, **options).run_name, acc, drop, changed)
    assert (tmp_path / "mlp-shift2-s0").is_dir() and (tmp_path / "cnn-k3-shift2-s2").is_dir()
    spec = studies.get("translation")
    study = spec.run(group_records(load_records(tmp_path)[0]))
    assert [r["config"] for r in study.rows] == spec.labels()
    verdicts = {v["claim"].split(" (")[0]: v for v in study.verdicts}
    assert {k: v["verdict"] for k, v in verdicts.items()} == {
        "the CNN is more robust to translation than the MLP": "supported",
        "max-pooling adds invariance beyond a plain": "supported",
        "the global-average-pooling head adds invariance beyond the flatten head": "supported",
        "shift augmentation narrows the MLP's gap: trained with ±2 px shifts it drops less": "supported",
    }
    robust = verdicts["the CNN is more robust to translation than the MLP"]["detail"]
    assert robust.startswith("mlp − cnn-k3 (accuracy drop under shift) = +20.")
    rows = {r["config"]: r for r in study.rows}
    assert rows["mlp"]["shift_drop_mean"] == pytest.approx(0.30 + 0.002 * 5 / 3, abs=1e-3)
    text = "\n".join(study.notes)
    assert "| mlp-shift2 | 88.00 | +18." in text and "| cnn-k3-gap | conv1 | 32×28×28 | 0.500 | 0.600 | 0.0e+00" in text

    png = tmp_path / "translation_study.png"
    drawn = section(spec, study, png)
    assert png.stat().st_size > 10_000 and drawn.title == "Translation study"
    assert set(drawn.data.heatmap) == set(spec.labels()) and drawn.data.radius["mlp"].shape == (3, 5)
    assert "### Equivariance by stage" in drawn.text and "random shifts of up to ±2 px" in drawn.text

    for s in range(3):  # new weights for the gap head's runs: their cached evaluations no longer count
        (tmp_path / f"cnn-k3-gap-s{s}" / "best.safetensors").write_bytes(b"retrained")
    again = spec.run(group_records(load_records(tmp_path)[0]))
    gap = next(v for v in again.verdicts if v["claim"].startswith("the global-average-pooling head"))
    assert (
        gap["verdict"] == "not tested" and "needs cnn-k3 − cnn-k3-gap (predictions changed by shift)" in gap["detail"]
    )
    assert "| cnn-k3-gap | — |" in "\n".join(again.notes)


@pytest.mark.slow
def test_translation_quick_study_end_to_end(cli_env: dict[str, str], tmp_path: Path) -> None:
    """The translation study in --quick form on synthetic data: shift-augmented runs beside the others, every run
    evaluated on shifted test sets once (then cached), verdicts from the cached numbers, figure, report."""
    args = ["study", "translation", "--quick", "--seeds", "2", "--subset", "64", "--epochs", "1", "--runs", "runs"]
    args += ["--out", "out"]
    dry = run_study([*args, "--dry-run"], cli_env, tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert "mlp-shift2-s0: new, ~" in dry.stdout and "cnn-k3-gap-s1: new, ~" in dry.stdout
    assert ", then shifted evaluation ~" in dry.stdout and "then shifted evaluation of 12 runs one after" in dry.stdout
    res = run_study(args, cli_env, tmp_path, timeout=1800)  # 12 trainings: ~20 minutes on 2 busy cores
    assert res.returncode == 0, res.stdout + res.stderr
    assert "shifted evaluation of 12 runs…" in res.stdout
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    spec = studies.get("translation")
    assert doc["study"] == "translation" and [r["config"] for r in doc["table"]] == spec.labels()
    assert all(r["shift_drop_mean"] is not None and r["shift_changed_mean"] is not None for r in doc["table"])
    assert [v["claim"] for v in doc["verdicts"]] == [c.text for c in spec.claims]
    for v in doc["verdicts"]:
        assert v["verdict"] in ("supported", "contradicted", "not supported at this sample size (2 seeds)"), v
    runs = tmp_path / "runs"
    assert json.loads((runs / "mlp-shift2-s0" / "config.json").read_text())["shift"] == 2
    assert json.loads((runs / "mlp-s0" / "config.json").read_text())["shift"] == 0
    cache = json.loads((runs / "cnn-k3-s1" / "shift.json").read_text())
    assert cache["evaluations"][0]["n"] == 100 and cache["evaluations"][0]["images"] == shifts.QUICK_IMAGES
    conv1 = cache["equivariance"]["stages"][0]
    assert conv1["stage"] == "conv1" and conv1["equivariance_error"]["1"] < 1e-6  # trained weights: still exact
    assert (tmp_path / "out" / "translation_study.png").stat().st_size > 10_000
    section_md = (tmp_path / "out" / "section.md").read_text()
    assert section_md.startswith("## Translation study") and "Accuracy on shifted test images by config" in section_md

    again = run_study(args, cli_env, tmp_path)
    assert again.returncode == 0, again.stderr
    assert "shifted evaluation of" not in again.stdout  # every run's evaluation is cached
    assert json.loads((tmp_path / "out" / "results.json").read_text())["verdicts"] == doc["verdicts"]

    report = run_study(["report", "--runs", "runs", "--out", "rep", "--figure", "translation"], cli_env, tmp_path)
    assert report.returncode == 0, report.stderr
    assert (tmp_path / "rep" / "translation_study.png").is_file()
