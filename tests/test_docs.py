"""The docs generator (fmnist_tui/docs.py): README's and docs/'s generated blocks are current, the CLI reference
has every command and option, study and benchmark pages come from the files that exist, the site builds --strict."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fmnist_tui import docs
from fmnist_tui.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[1]


def test_generated_blocks_are_current() -> None:
    """README.md's and docs/'s tables equal what the generator makes now from results/, export/, the registry."""
    stale = docs.stale(ROOT)
    assert not stale, f"generated blocks are stale in {', '.join(stale)}: run `python -m fmnist_tui.docs` and commit"


def test_cli_reference_has_every_command_and_option() -> None:
    import typer.main

    from fmnist_tui.cli import build_app

    text = docs.cli_reference()
    group = typer.main.get_command(build_app())
    ctx = group.context_class(group, info_name="fmnist")
    for name in COMMANDS:
        assert f"\n## fmnist {name}\n" in text, name
        command = group.get_command(ctx, name)
        section = text.split(f"\n## fmnist {name}\n", 1)[1].split("\n## fmnist ", 1)[0]
        for param in command.params:
            if param.param_type_name == "option" and not getattr(param, "hidden", False):
                assert f"`{' / '.join([*param.opts, *param.secondary_opts])}`" in section, (name, param.opts)
            elif param.param_type_name == "argument":
                assert f"`{(param.name or '').upper()}`" in section, (name, param.name)


def test_cli_reference_shows_choices_ranges_and_defaults() -> None:
    text = docs.cli_reference()
    train = text.split("\n## fmnist train\n", 1)[1].split("\n## fmnist ", 1)[0]
    assert "| `--arch` | `mlp` \\| `cnn`" in train
    assert "| `--shift` | integer 0–8 | `0` |" in train
    assert "&lt;run>" in text and "<run>" not in text.replace("`", "")  # no raw HTML from help texts


def _prose(markdown: str) -> str:
    """README without its generated blocks, code, link targets and URLs: what a person typed."""
    markdown = docs.BLOCK.sub("", markdown)
    markdown = re.sub(r"```.*?```", "", markdown, flags=re.S)
    markdown = re.sub(r"`[^`]*`", "", markdown)
    markdown = re.sub(r"\]\([^)]*\)", "]", markdown)
    return re.sub(r"<[^>]*>", "", markdown)


def test_readme_is_a_front_door() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    for needed in ("make run", "make test", "pip install fmnist-tui", "[train]", "[cluster]", "fmnist tui"):
        assert needed in readme, needed
    for command in ("train --arch cnn --kernel 3", "evaluate", "predict", "study kernel"):
        assert f"fmnist {command}" in readme, command
    assert "<!-- generated: claims -->" in readme and "<!-- generated: models -->" in readme
    for target in re.findall(r"\]\(([^)#]+)\)", readme):
        if not re.match(r"[a-z]+:", target):
            assert (ROOT / target).exists(), f"README links to {target}, which is not in the repository"


def test_readme_types_no_number() -> None:
    """Numbers change when a benchmark is re-run: README has them only in blocks generated from files."""
    found = re.findall(r"[^\n]*\d[^\n]*", _prose((ROOT / "README.md").read_text()))
    assert not found, f"hand-typed numbers in README.md: {found}"


def test_readme_generated_blocks_name_shipped_models_and_verdicts() -> None:
    readme = (ROOT / "README.md").read_text()
    manifest = json.loads((ROOT / "export" / "manifest.json").read_text())
    for model in manifest["models"]:
        assert f"`{model['file']}`" in readme
    for study in docs.studies():
        assert f"`fmnist study {study}`" in readme or f"results/{study}/" in readme, study


# --- pages from the files that exist -----------------------------------------------------------------------
def _computed(root: Path, name: str = "kernel") -> Path:
    """A study folder as the lab writes one, small and fixed."""
    folder = root / "results" / name
    folder.mkdir(parents=True)
    verdicts = [{"claim": "3×3 beats 5×5", "verdict": "supported", "detail": "cnn-k3 − cnn-k5 = +1.00 points"}]
    results = {"schema": 1, "study": name, "table": [], "verdicts": verdicts}
    (folder / "results.json").write_text(json.dumps(results))
    (folder / "results.md").write_text(
        "## Results by config\n\n| config |\n|---|\n| mlp |\n\n## Verdicts on x\n\n- no\n"
    )
    (folder / "section.md").write_text("## Kernel\n\n![f](kernel_study.png)\n\nThe recipe and runs.\n\n### T\n")
    (folder / "kernel_study.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    machine = {"cpu": "Some CPU", "cores": 2, "isa": "AVX2", "gpu": None}
    runs = [{"run": "mlp-s0", "source": "shipped", "test_accuracy": 0.5, "train_seconds": 1.5, "machine": machine}]
    (folder / "provenance.json").write_text(
        json.dumps({"schema": 1, "study": name, "preset": {"seeds": 1}, "runs": runs})
    )
    return folder


def test_study_page_not_computed_says_how(tmp_path: Path) -> None:
    page = docs.study_page(tmp_path, "depth")
    assert "Not yet computed" in page and "`fmnist study depth`" in page
    assert "## What is switched on and off" in page and "`cnn-k3-d4`" in page
    assert "## Verdicts" not in page


def test_study_page_computed_shows_verdicts_figure_tables_provenance(tmp_path: Path) -> None:
    _computed(tmp_path)
    page = docs.study_page(tmp_path, "kernel", "kernel_study.png")
    assert "| 3×3 beats 5×5 | **supported** | — | — | — | cnn-k3 − cnn-k5 = +1.00 points |" in page  # older layout
    assert "![Kernel-size study](kernel_study.png)" in page
    assert "The recipe and runs." in page and "### Results by config" in page
    assert "Verdicts on x" not in page  # shown once, from results.json
    assert "Some CPU, 2 cores, AVX2" in page and "Not yet computed" not in page


def test_pages_pick_up_whatever_results_exist(tmp_path: Path) -> None:
    _computed(tmp_path)
    out = tmp_path / "site-docs"
    written = docs.write_pages(tmp_path, out)
    assert out / "studies" / "kernel_study.png" in written
    index = (out / "studies" / "index.md").read_text()
    assert "| [kernel](kernel.md) |" in index and "not yet: `fmnist study depth`" in index
    assert {f"studies/{name}.md" for name in docs.studies()} <= {str(p.relative_to(out)) for p in written}


def _verdict(claim: str, p_raw: float, p_adjusted: float, verdict: str = "supported") -> dict:
    """A verdict record as `fmnist study` writes one (the fields the docs read)."""
    family = {"name": "the lab's claims", "size": 21, "tested": 2}
    difference = {"name": "cnn-k3 − mlp", "estimate": 0.0332, "ci_low": 0.0254, "ci_high": 0.041}
    return {
        "claim": claim,
        "study": "kernel",
        "verdict": verdict,
        "detail": "cnn-k3 − mlp = +3.32 points",
        "margin": 0.005,
        "differences": [difference],
        "p_raw": p_raw,
        "p_adjusted": p_adjusted,
        "family": family,
        "replication_text": "replication: not run",
    }


def test_claims_table_shows_effect_raw_and_adjusted_p_replication_and_the_forest(tmp_path: Path) -> None:
    folder = _computed(tmp_path)
    verdicts = [_verdict("every CNN beats the MLP", 2e-4, 4e-3), _verdict("3×3 beats 5×5", 0.2, 1.0, "fragile")]
    members = [{"study": "kernel", "claim": v["claim"], "p_raw": v["p_raw"]} for v in verdicts]
    family = {"name": "the lab's claims", "method": "holm", "alpha": 0.05, "size": 21, "tested": 2, "members": members}
    (folder / "results.json").write_text(json.dumps({"schema": 1, "table": [], "verdicts": verdicts, "family": family}))
    table = docs.claims_table(tmp_path, lambda name, done: None)
    assert "| effect, 95% CI (points) | p → adjusted | replication |" in table
    assert "| every CNN beats the MLP | **supported** | +3.32 [+2.54, +4.10] | &lt; 0.001 → 0.004 (of 21) |" in table
    assert "| 3×3 beats 5×5 | **fragile** |" in table and "replication: not run" in table
    assert "different sets of runs" not in table
    page = docs.study_page(tmp_path, "kernel", "kernel_study.png")
    assert "over the family of the lab's claims: 21 claims across every study, 2 of them tested" in page
    out = tmp_path / "site-docs"
    written = docs.write_pages(tmp_path, out)
    index = (out / "studies" / "index.md").read_text()
    assert "## Every claim as a forest" in index and f"]({docs.FOREST})" in index
    svg = (out / "studies" / docs.FOREST).read_text()
    assert out / "studies" / docs.FOREST in written and svg.startswith("<svg") and svg.count("<circle") == 2
    assert "every CNN beats the MLP" in svg and "supported (p_adj 0.004)" in svg
    # a second study analysed over other runs: its family differs, and the docs say so
    other = _computed(tmp_path, "depth")
    (other / "results.json").write_text(json.dumps({"verdicts": [], "family": {**family, "members": members[:1]}}))
    assert "different sets of runs" in docs.claims_table(tmp_path, lambda name, done: None)


def test_benchmarks_page_shows_outputs_with_their_machine(tmp_path: Path) -> None:
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "x_speed.py").write_text('"""Times x."""\nap.add_argument("--json", type=Path)\n')
    assert "No benchmark outputs yet" in docs.benchmarks_page(tmp_path)
    assert "`python bench/x_speed.py --json bench/results/x_speed.json`" in docs.benchmarks_page(tmp_path)
    results = tmp_path / docs.BENCH_RESULTS
    results.mkdir()
    (results / "x_speed.json").write_text(
        json.dumps({"machine": {"cpu": "Some CPU"}, "rows": [{"model": "mlp", "s": 1.25}]})
    )
    (results / "y_speed.json").write_text(json.dumps({"ratio": 2.0}))
    page = docs.benchmarks_page(tmp_path)
    assert "Some CPU" in page and "| mlp | 1.25 |" in page
    assert "## y_speed" in page and "Machine: not recorded in the file." in page


def test_fill_remakes_blocks_and_refuses_unknown_ones() -> None:
    text = "a\n<!-- generated: x -->\nold\n<!-- end -->\nb\n"
    assert docs.fill(text, {"x": lambda: "new\n"}) == "a\n<!-- generated: x -->\nnew\n<!-- end -->\nb\n"
    with pytest.raises(SystemExit, match="unknown generated block 'x'"):
        docs.fill(text, {})


def test_nav_lists_every_study() -> None:
    nav = (ROOT / "mkdocs.yml").read_text()
    for name in docs.studies():
        assert f"studies/{name}.md" in nav, f"mkdocs.yml's nav lacks studies/{name}.md"


# --- the generator as it runs ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_generator_imports_no_torch(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from fmnist_tui import docs; "
        f"docs.write_pages(docs.ROOT, Path({str(tmp_path)!r})); docs.stale(docs.ROOT); "
        "print(sorted(m for m in ('torch', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
def test_mkdocs_build_strict(tmp_path: Path) -> None:
    """The site as `make test` builds it: generated pages, then mkdocs build --strict (a broken link, a page
    missing from the nav or a bad config fails it)."""
    pytest.importorskip("mkdocs")
    pytest.importorskip("material")
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    docs.write_pages(ROOT, tmp_path / "docs")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(tmp_path / "site")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    cli = (tmp_path / "site" / "reference" / "cli" / "index.html").read_text()
    assert all(f"fmnist {name}" in cli for name in COMMANDS)
    assert (tmp_path / "site" / "studies" / "kernel" / "index.html").exists()
