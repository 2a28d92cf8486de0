"""The lab's shipped record (results/): every committed analysis is what the committed runs give; a fresh clone's
`study`, `results`, `report` and TUI read it beside the user's own runs, never pooling runs trained otherwise;
damaged or foreign files are one line each, the rest still shown."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from fmnist_tui.cli import app
from fmnist_tui.core.config import TrainConfig
from fmnist_tui.core.fsutil import dumps, write_json
from fmnist_tui.core.runs import write_metrics
from fmnist_tui.study import lab, studies
from fmnist_tui.study.results import SHIPPED, YOURS, group_records
from fmnist_tui.study.verdicts import study_markdown
from tests.conftest import cheapest_shipped_model
from tests.tui_support import screen_text, sync, wait_workers

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"
cli = CliRunner()
#: the study folders the repository ships (each written by `fmnist study NAME --runs results/runs --out results/NAME`)
SHIPPED_STUDIES = sorted(p.parent.name for p in RESULTS.glob("*/results.json"))


def normal(obj: Any) -> Any:
    """`obj` as its JSON file holds it."""
    return json.loads(dumps(obj))


@pytest.fixture(scope="module")
def shipped_lab() -> dict[str, Any]:
    """Every study over the committed runs, its verdicts corrected over the lab's family of claims."""
    return studies.analyse_lab(group_records(lab.load([(RESULTS / "runs", SHIPPED)])[0]))


@pytest.mark.parametrize("name", SHIPPED_STUDIES)
def test_every_committed_analysis_is_what_the_committed_runs_give(name: str, shipped_lab: dict[str, Any]) -> None:
    """Each study folder is what the runs give now, its adjusted p-values those of one family over every study's
    runs: a study re-analysed alone after another's runs changed fails here (`make lab` re-analyses them all)."""
    study = shipped_lab[name]
    committed = json.loads((RESULTS / name / "results.json").read_text())
    fresh = normal(study.to_dict())
    for part in ("table", "comparisons", "per_class", "verdicts", "family", "study"):
        assert fresh[part] == committed[part], (name, part)
    assert study_markdown(study) == (RESULTS / name / "results.md").read_text()
    provenance = lab.read_provenance(RESULTS / name)
    assert provenance is not None
    assert sorted(r["run"] for r in provenance["runs"]) == sorted(n for row in fresh["table"] for n in row["runs"])
    assert all(r["machine"] and r["torch"] and r["finished_at"] and r["train_seconds"] for r in provenance["runs"])


def test_the_shipped_record_is_small_and_holds_no_weights() -> None:
    files = [p for p in RESULTS.rglob("*") if p.is_file()]
    tracked = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "results"], capture_output=True, text=True, check=False
    ).stdout.split()
    assert not [f for f in tracked if f.endswith((".safetensors", ".pt", ".lock"))]
    assert sum((ROOT / f).stat().st_size for f in tracked if (ROOT / f).exists()) < 20_000_000
    assert files or not tracked


def finished(root: Path, arch: str, seed: int, acc: Any, bf16: bool = True, **options: Any) -> Path:
    """A finished run's files, as the trainer writes them (bf16 or fp32 numerics)."""
    cfg = TrainConfig.create(arch=arch, seed=seed, out=str(root), **options)
    cfg.run_dir.mkdir(parents=True)
    write_json(cfg.run_dir / "config.json", {**cfg.to_dict(), "run": cfg.run_name, "bf16_autocast": bf16})
    row = {"epoch": 1, "train_loss": 0.5, "train_acc": 0.9, "val_loss": 0.5, "val_acc": 0.88, "lr": 0.0}
    write_metrics(cfg.run_dir / "metrics.csv", [{**row, "seconds": 1.0, "images_per_s": 1.0}])
    summary = {"test_accuracy": acc, "finished": True, "params": 1, "macs": 1, "train_seconds": 60.0, "seed": seed}
    (cfg.run_dir / "summary.json").write_text(json.dumps(summary))  # as written, NaN tokens included
    return cfg.run_dir


@pytest.fixture
def shipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A shipped record of the regularizer study (mlp at 15 seeds, cnn-k3 at 3, bf16) in tmp/results, and the
    working directory in tmp, as in a fresh clone."""
    results = tmp_path / "results"
    for s in range(15):
        finished(results / "runs", "mlp", s, 0.89 + 0.001 * s)
    for s in range(3):
        finished(results / "runs", "cnn", s, 0.93 + 0.001 * s, kernel=3)
    monkeypatch.setenv("FMNIST_RESULTS", str(results))
    monkeypatch.chdir(tmp_path)
    return results


def test_a_fresh_clone_analyses_the_shipped_runs_and_trains_nothing(shipped: Path, tmp_path: Path) -> None:
    dry = cli.invoke(app, ["study", "regularizer", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "(18 shipped)" in dry.output and "mlp-s0: shipped (the shipped results)" in dry.output
    assert "measured cnn-k3: 60 s a run (3 runs; bf16, 1 thread)" in dry.output
    res = cli.invoke(app, ["study", "regularizer"])
    assert res.exit_code == 0, res.output
    assert "analysed 18 runs: 18 shipped" in res.output and not (tmp_path / "checkpoints").exists()
    doc = json.loads((tmp_path / "reports" / "studies" / "regularizer" / "results.json").read_text())
    assert [(r["config"], r["source"]) for r in doc["table"]] == [("mlp", SHIPPED), ("cnn-k3", SHIPPED)]
    listed = cli.invoke(app, ["study", "--list"])
    assert "0/18 runs yours in checkpoints, 18 shipped" in listed.output.split("regularizer:")[1]
    own = cli.invoke(app, ["study", "regularizer", "--no-shipped", "--dry-run"])
    assert "(18 new)" in own.output and "shipped" not in own.output.split("\n")[0]


def test_your_runs_show_beside_the_shipped_ones_and_are_never_pooled_with_them(shipped: Path, tmp_path: Path) -> None:
    """A run of yours of another recipe (or of fp32 numerics) is listed as yours; the study's analysis takes one
    recipe, numerics and source: the shipped one here, which covers more runs."""
    finished(tmp_path / "checkpoints", "cnn", 0, 0.80, kernel=3, epochs=2, name="cnn-k3-e2-s0")
    finished(tmp_path / "checkpoints", "mlp", 0, 0.70, bf16=False)
    res = cli.invoke(app, ["results", "--format", "json"])
    assert res.exit_code == 0, res.output
    rows = [(g["config"], g["source"], g["numerics"], g["n"]) for g in json.loads(res.output)["groups"]]
    assert sorted(rows) == sorted(
        [
            ("mlp", YOURS, "fp32", 1),
            ("mlp", SHIPPED, "bf16", 15),
            ("cnn-k3", YOURS, "bf16", 1),
            ("cnn-k3", SHIPPED, "bf16", 3),
        ]
    )
    study = cli.invoke(app, ["study", "regularizer"])
    assert study.exit_code == 0 and "analysed 18 runs: 18 shipped" in study.output, study.output
    table = cli.invoke(app, ["results"]).output
    assert "| mlp |" in table and "yours, fp32" in table and "shipped, bf16" in table


def test_bad_numbers_and_damaged_files_are_one_line_each_and_the_rest_is_shown(shipped: Path, tmp_path: Path) -> None:
    mine = tmp_path / "checkpoints"
    for seed, acc in enumerate((float("nan"), float("inf"), 5.0, -1, 1e308)):
        finished(mine, "mlp", seed, acc, epochs=3, name=f"mlp-e3-s{seed}")
    res = cli.invoke(app, ["results", "--format", "json"])
    assert res.exit_code == 0, res.output
    warned = [line for line in res.output.splitlines() if line.startswith("warning: skipped mlp-e3-s")]
    assert len(warned) == 5 and all("summary.json has test_accuracy" in w for w in warned), res.output
    doc = json.loads(res.output[res.output.index("{") :])  # strict JSON: no NaN or Infinity tokens
    assert {g["config"] for g in doc["groups"]} == {"mlp", "cnn-k3"} and "NaN" not in res.output
    for cmd in (["study", "regularizer"], ["report", "--figure", "regularizer", "--out", "rep"]):
        out = cli.invoke(app, cmd)
        assert out.exit_code == 0 and "Traceback" not in out.output, out.output
    (shipped / "regularizer").mkdir()
    (shipped / "regularizer" / "provenance.json").write_text('{"schema": 99, "runs": []}')
    listed = cli.invoke(app, ["study", "--list"])
    assert listed.exit_code == 0 and "is of a newer layout (schema 99)" in listed.output
    (shipped / "regularizer" / "provenance.json").write_text("{damaged")
    listed = cli.invoke(app, ["study", "--list"])
    assert listed.exit_code == 0 and "provenance.json is damaged" in listed.output and "claim:" in listed.output


def test_single_seed_tables_are_strict_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    finished(tmp_path / "checkpoints", "mlp", 0, 0.9)
    res = cli.invoke(app, ["results", "--format", "json"])
    assert res.exit_code == 0 and "NaN" not in res.output
    (row,) = json.loads(res.output)["groups"]
    assert row["test_acc_ci_low"] is None and not any(isinstance(v, float) and math.isnan(v) for v in row.values())


def test_quick_runs_live_in_runs_quick_for_every_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    spec = studies.get("regularizer")
    for cfg in spec.plan(spec.quick, tmp_path / "x" / "quick")[:2]:
        finished(tmp_path / "x" / "quick", cfg.arch, cfg.seed, 0.9, **cfg.options, epochs=3, subset=6144, lr=6e-3)
    listed = cli.invoke(app, ["study", "--list", "--runs", "x"])
    assert (
        "quick (3 seeds × 3 epochs on the first 6,144 images, peak lr 0.006): 2/6 runs yours in x/quick"
        in listed.output
    )
    dry = cli.invoke(app, ["study", "regularizer", "--quick", "--runs", "x", "--dry-run"])
    assert "in x/quick (2 done, 4 new)" in dry.output, dry.output


@pytest.mark.slow
@sync
async def test_the_tui_results_tab_offers_the_shipped_studies(shipped: Path, tmp_path: Path) -> None:
    from fmnist_tui.tui import create_app
    from fmnist_tui.tui.results_screen import ResultsPane

    app = create_app(runs=tmp_path / "checkpoints", export=tmp_path / "export", images=tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2")
        await wait_workers(app)
        await pilot.pause()
        assert "18 runs in 2 groups" in screen_text(app)
        app.query_one(ResultsPane).pick_study("regularizer")
        await pilot.pause()
        text = screen_text(app)
        assert "regularizer: 18 runs in 2 configs, the lab's shipped" in text
        assert "overfits less than the MLP" in text and "mlp ·lab" in text


@pytest.mark.realdata
@pytest.mark.slow
def test_a_fresh_clone_reports_every_shipped_study(tmp_path: Path) -> None:
    """`fmnist report` in a folder with no runs of its own, reading the repository's results/: a section and a
    figure for every shipped study, and exit 0 (feature maps need weights: named absent)."""
    env = {**os.environ, "FMNIST_RESULTS": str(RESULTS), "PYTHONPATH": str(ROOT)}
    models = cheapest_shipped_model(tmp_path / "models")
    res = subprocess.run(
        [sys.executable, "-m", "fmnist_tui", "report", "--out", "rep", "--onnx-dir", str(models)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    md = (tmp_path / "rep" / "report.md").read_text()
    for name in SHIPPED_STUDIES:
        assert f"## {studies.get(name).title}" in md and (tmp_path / "rep" / f"{name}_study.png").is_file()
    assert "featuremaps" in res.stdout and "mlp-s0.onnx: test accuracy" in md


def test_study_results_and_the_docs_show_one_family(shipped: Path, tmp_path: Path) -> None:
    """Two studies computed into the shipped record (the regularizer's runs, and the depth study's beside them):
    `fmnist study` wrote each verdict's adjusted p over one family of every study's claims, and `fmnist results`
    and the docs generator show those same numbers (no family note: the analyses agree)."""
    from fmnist_tui import docs

    for s in range(3):
        for depth, acc in ((1, 0.90), (3, 0.935), (4, 0.936)):
            finished(shipped / "runs", "cnn", s, acc + 0.001 * s, kernel=3, depth=depth)
    for name in ("regularizer", "depth"):
        res = cli.invoke(app, ["study", name, "--runs", "results/runs", "--out", f"results/{name}"])
        assert res.exit_code == 0 and "trained in" not in res.output, res.output
    written = {name: json.loads((shipped / name / "results.json").read_text()) for name in ("regularizer", "depth")}
    assert written["regularizer"]["family"] == written["depth"]["family"]
    family = written["depth"]["family"]
    assert family["size"] == sum(len(spec.claims) for spec in studies.STUDIES.values()) and family["tested"] >= 2
    shown = json.loads(cli.invoke(app, ["results", "--format", "json"]).stdout)
    assert shown["family"] == family  # `results` shows the kernel study's verdicts, corrected over the same family
    table = docs.claims_table(tmp_path, lambda name, done: None)
    assert "different sets of runs" not in table
    for name, doc in written.items():
        for v in doc["verdicts"]:
            member = next(m for m in family["members"] if m["claim"] == v["claim"])
            assert member["p_adjusted"] == v["p_adjusted"] and member["study"] == name
            row = next(line for line in table.splitlines() if line.startswith(f"| {docs.cell(v['claim'])} |"))
            assert f"**{v['verdict']}**" in row
            if v["p_raw"] is not None:
                assert f"{docs._p(v['p_raw'])} → {docs._p(v['p_adjusted'])} (of {family['size']})" in row
    beat = next(v for v in written["depth"]["verdicts"] if v["claim"].startswith("2 conv blocks beat 1"))
    assert beat["verdict"] == "supported" and beat["replication_text"] == "replication: not run"
