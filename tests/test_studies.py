"""The study framework: verdicts on fixed numbers, each study's plan and analysis on hand-made runs, the
recipe a study picks, `fmnist study` (list, unknown names, a quick study end to end)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from fmnist_tui.cli import app
from fmnist_tui.cli.train_cmd import command_line
from fmnist_tui.core import shifts
from fmnist_tui.core.config import TrainConfig
from fmnist_tui.core.fsutil import sha256_file, write_json
from fmnist_tui.core.runs import Run, write_metrics
from fmnist_tui.study import studies
from fmnist_tui.study.results import group_records, load_records
from fmnist_tui.study.sections import section

runner = CliRunner()
#: every registered study, in `fmnist study --list` order
STUDY_NAMES = "kernel, depth, pooling, regularizer, locality, data, noise, translation, ladder"


def test_locality_and_data_studies_on_hand_made_runs(tmp_path: Path) -> None:
    for s in range(3):
        e = 0.001 * s
        fake(tmp_path, "mlp", s, 0.890 + e)
        fake(tmp_path, "mlp", s, 0.890 + e + 0.0002 * (s - 1), permute=True)
        fake(tmp_path, "cnn", s, 0.920 + e)
        fake(tmp_path, "cnn", s, 0.880 + e + 0.0005 * s, permute=True)
        fake(tmp_path, "lcn", s, 0.900 + e - 0.0004 * s)
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
    # a tie within ±0.5 points cannot be shown on 10,000 test images from the stored aggregates alone: the test-set
    # term (its conservative bound) is ±0.87 points at 95% by itself, and more seeds do not shrink it
    unaffected = verdicts["the MLP is unaffected by the permutation (no difference beyond ±0.5 points)"]
    assert unaffected["verdict"] == "not supported at this sample size (3 seeds)"
    assert "no number of seeds decides it" in unaffected["detail"]
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
    # +0.1 and +0.05 points: an interval below +0.5 points needs a test-set term narrower than the aggregates give
    assert verdicts["2 conv blocks are sufficient: 3 or 4 gain less than 0.5 points"] == (
        "not supported at this sample size (3 seeds)"
    )
    study = studies.get("depth").run(group_records(load_records(tmp_path)[0]))
    assert [r["config"] for r in study.rows] == ["cnn-k3-d1", "cnn-k3", "cnn-k3-d3", "cnn-k3-d4"]


def test_pooling_and_regularizer_studies(tmp_path: Path) -> None:
    for s in range(3):
        e = 0.001 * s
        fake(tmp_path, "cnn", s, 0.92 + e, gap=0.020 + e)
        fake(tmp_path, "cnn", s, 0.905 + e + 0.0005 * s, pool="avg")
        fake(tmp_path, "cnn", s, 0.935 + e, pool="stride")  # the stride-2 conv wins here
        fake(tmp_path, "cnn", s, 0.89 + e, head="gap")
        fake(tmp_path, "cnn", s, 0.875 + e, pool="avg", head="gap")
        fake(tmp_path, "cnn", s, 0.905 + e + 0.0003 * s, pool="stride", head="gap")
        fake(tmp_path, "mlp", s, 0.89 + e, gap=0.040 + 0.002 * s)
    pooling = analysed(tmp_path, "pooling")
    assert pooling["max-pooling beats average-pooling"] == "supported"
    assert pooling["max-pooling beats a stride-2 convolution"] == "contradicted"
    assert pooling["the notebook's flatten head beats global average pooling"] == "supported"
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
    # the notebook's cnn-k3 is one run shared by eight studies: same name, same recipe
    shared = {c.run_name: c.recipe() for s in studies.STUDIES.values() for c in s.plan(s.default, tmp_path)}
    assert "cnn-k3-s0" in shared and sum("cnn-k3" in s.labels() for s in studies.STUDIES.values()) == 8
    # every run name two studies plan is one recipe (the translation study trains only its shift-augmented and
    # anti-aliased runs where the kernel and pooling studies ran)
    for s in studies.STUDIES.values():
        assert all(shared[c.run_name] == c.recipe() for c in s.plan(s.default, tmp_path))
    translation = {c.run_name for c in studies.get("translation").plan(studies.DEFAULT, tmp_path)}
    others = {
        c.run_name for s in studies.STUDIES.values() if s.name != "translation" for c in s.plan(s.default, tmp_path)
    }
    assert sorted(translation - others) == [
        f"{c}-s{i}" for c in ("cnn-k3-blur", "cnn-k3-shift2", "mlp-shift2") for i in range(3)
    ]
    with pytest.raises(Exception, match=f"study 'layers' is unknown; valid: {STUDY_NAMES}"):
        studies.get("layers")


def test_the_cheap_configs_of_a_claim_take_more_seeds(tmp_path: Path) -> None:
    """The locality study trains its two MLPs at 15 seeds, the rest at 3; `--seeds` raises every config to at least
    its number; a dry run says so and counts the runs."""
    locality = studies.get("locality")
    counts = Counter(c.label for c in locality.plan(locality.default, tmp_path))
    assert counts == {"mlp": 15, "mlp-perm": 15, "cnn-k3": 3, "cnn-k3-perm": 3, "lcn-k3": 3, "mlp-h422x211": 3}
    assert [c.seed for c in locality.plan(locality.default, tmp_path) if c.label == "mlp"] == list(range(15))
    assert set(Counter(c.label for c in locality.plan(studies.QUICK, tmp_path)).values()) == {3}
    dry = runner.invoke(app, ["study", "locality", "--runs", str(tmp_path), "--dry-run"], env={"COLUMNS": "200"})
    assert dry.exit_code == 0, dry.output
    assert "3 seeds (15 for mlp, mlp-perm) × 15 epochs on all 50,000 training images): 42 runs" in dry.output
    more = runner.invoke(app, ["study", "locality", "--runs", str(tmp_path), "--dry-run", "--seeds", "20"])
    assert more.exit_code == 0 and "20 seeds × 15 epochs on all 50,000 training images): 120 runs" in more.output


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
    recipe = "default (3 seeds (15 for mlp) × 15 epochs on all 50,000 training images)"
    assert f"{recipe}: 2/18 runs yours in {tmp_path}" in listed.output


def run_study(args: list[str], env: dict[str, str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fmnist_tui", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.slow
def test_quick_study_end_to_end(cli_env: dict[str, str], tmp_path: Path) -> None:
    """plan → dry run → runs → verdicts → figure → report section; then every run reused, and the dry run
    gives each config's measured training time."""
    args = ["study", "regularizer", "--quick", "--seeds", "2", "--subset", "64", "--epochs", "2", "--runs", "runs"]
    args += ["--out", "out"]
    dry = run_study([*args, "--dry-run"], cli_env, tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert "mlp-s0: new" in dry.stdout and "cnn-k3-s1: new" in dry.stdout and "measured" not in dry.stdout
    assert not (tmp_path / "runs").exists()
    res = run_study(args, cli_env, tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert doc["study"] == "regularizer" and [r["config"] for r in doc["table"]] == ["mlp", "cnn-k3"]
    assert res.stdout.count(": trained in") == 4 and "analysed 4 runs: 4 yours (runs/quick)" in res.stdout
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
    assert "trained in" not in again.stdout and "(4 done)" in again.stdout
    dry = run_study([*args, "--dry-run"], cli_env, tmp_path)
    assert (
        "mlp-s0: done (yours)" in dry.stdout and "measured cnn-k3: " in dry.stdout and " a run (2 runs; " in dry.stdout
    )

    report = run_study(["report", "--runs", "runs/quick", "--out", "rep", "--figure", "regularizer"], cli_env, tmp_path)
    assert report.returncode == 0, report.stderr
    assert (tmp_path / "rep" / "regularizer_study.png").is_file()
    full = run_study(["report", "--runs", "runs/quick", "--out", "rep"], cli_env, tmp_path)
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
    cmd = command_line(cfg)
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
            ("cnn", {"pool": "blur"}, 0.921, 0.07, 0.08),
            ("mlp", {"shift": 2}, 0.88, 0.10 + 2 * e, 0.2),
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
        "anti-aliased max-pooling": "supported",
        "shift augmentation narrows the MLP's gap: trained with ±2 px shifts it drops less": "supported",
    }
    robust = verdicts["the CNN is more robust to translation than the MLP"]["detail"]
    assert robust.startswith("mlp − cnn-k3 (accuracy drop under shift) = +20.")
    rows = {r["config"]: r for r in study.rows}
    assert rows["mlp"]["shift_drop_mean"] == pytest.approx(0.30 + 0.002 * 5 / 3, abs=1e-3)
    text = "\n".join(study.notes)
    assert "| mlp-shift2 | 88.00 | +10." in text and "| cnn-k3-gap | conv1 | 32×28×28 | 0.500 | 0.600 | 0.0e+00" in text

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
    assert "mlp-shift2-s0: new" in dry.stdout and "cnn-k3-gap-s1: new" in dry.stdout
    res = run_study(args, cli_env, tmp_path, timeout=1800)  # 14 trainings, each then evaluated on shifted images
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.count(": trained in") == 14
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    spec = studies.get("translation")
    assert doc["study"] == "translation" and [r["config"] for r in doc["table"]] == spec.labels()
    assert all(r["shift_drop_mean"] is not None and r["shift_changed_mean"] is not None for r in doc["table"])
    assert [v["claim"] for v in doc["verdicts"]] == [c.text for c in spec.claims]
    for v in doc["verdicts"]:
        assert v["verdict"] in ("supported", "contradicted", "not supported at this sample size (2 seeds)"), v
    runs = tmp_path / "runs" / "quick"
    assert json.loads((runs / "mlp-shift2-s0" / "config.json").read_text())["shift"] == 2
    assert json.loads((runs / "mlp-s0" / "config.json").read_text())["shift"] == 0
    cache = json.loads((runs / "cnn-k3-s1" / "shift.json").read_text())
    assert cache["evaluations"][0]["n"] == 100 and cache["evaluations"][0]["images"] == shifts.QUICK_IMAGES
    conv1 = cache["equivariance"]["stages"][0]
    assert conv1["stage"] == "conv1" and conv1["equivariance_error"]["1"] < 1e-6  # trained weights: still exact
    assert (tmp_path / "out" / "translation_study.png").stat().st_size > 10_000
    section_md = (tmp_path / "out" / "section.md").read_text()
    assert section_md.startswith("## Translation study") and "Accuracy on shifted test images by config" in section_md

    cached = {p: p.stat().st_mtime_ns for p in runs.glob("*/shift.json")}
    again = run_study(args, cli_env, tmp_path)
    assert again.returncode == 0, again.stderr
    assert {p: p.stat().st_mtime_ns for p in runs.glob("*/shift.json")} == cached  # every evaluation is cached
    assert json.loads((tmp_path / "out" / "results.json").read_text())["verdicts"] == doc["verdicts"]

    report = run_study(["report", "--runs", "runs/quick", "--out", "rep", "--figure", "translation"], cli_env, tmp_path)
    assert report.returncode == 0, report.stderr
    assert (tmp_path / "rep" / "translation_study.png").is_file()


def test_one_family_across_studies_and_a_verdict_that_flips_with_the_recipe_is_fragile(tmp_path: Path) -> None:
    """The kernel and regularizer studies' runs at the project's recipe, and the kernel configs again at 3 epochs,
    where the CNNs do not beat the MLP: every study's verdicts are corrected as one family (the same adjusted p
    whichever study asks), "every CNN beats the MLP" is fragile, supported at 15 epochs only, and the CNN's smaller
    generalization gap replicates."""
    main, short = tmp_path / "main", tmp_path / "short"
    for s in range(3):
        e = 0.001 * s
        fake(main, "mlp", s, 0.89 + e, gap=0.040 + 0.002 * s)
        for k in (3, 5, 7):
            fake(main, "cnn", s, 0.93 + e + 0.0004 * k * s, gap=0.020 + e, kernel=k)
            fake(short, "cnn", s, 0.90 + (-e if k == 5 else e), gap=0.020 + e, epochs=3, kernel=k)
        fake(short, "mlp", s, 0.90 + 0.0005 * s, gap=0.040 + 0.002 * s, epochs=3)
    groups = group_records(load_records(main)[0] + load_records(short)[0])
    lab = studies.analyse_lab(groups)
    assert set(lab) == set(studies.STUDIES)
    families = {json.dumps(s.family, sort_keys=True) for s in lab.values()}
    assert len(families) == 1
    family = lab["kernel"].family
    assert family["size"] == sum(len(spec.claims) for spec in studies.STUDIES.values())
    assert family["tested"] == sum(v["p_raw"] is not None for s in lab.values() for v in s.verdicts)
    for name in ("kernel", "regularizer"):  # a study's own analysis gives the family's numbers
        alone = studies.get(name).run(groups)
        assert [v["p_adjusted"] for v in alone.verdicts] == [v["p_adjusted"] for v in lab[name].verdicts]
    every = next(v for v in lab["kernel"].verdicts if v["claim"] == "every CNN beats the MLP")
    assert every["verdict"] == "fragile" and every["verdict_here"] == "supported"
    assert every["replication"][0]["recipe"] == "fp32, 3 epochs, yours"
    assert every["replication_text"].startswith("fragile: supported here, ")
    (gap,) = lab["regularizer"].verdicts
    assert (
        gap["verdict"] == "supported" and gap["replication_text"] == "replicates: supported under fp32, 3 epochs, yours"
    )
    depth = lab["depth"].verdicts  # cnn-k3 alone of its configs: not tested, so not replicated either
    assert {v["verdict"] for v in depth} == {"not tested"} and {v["replication_text"] for v in depth} == {
        "replication: not run"
    }
    assert f"over the lab's claims ({family['size']} claims, {family['tested']} tested)" in gap["detail"]
