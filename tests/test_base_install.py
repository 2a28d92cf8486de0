"""The base install (no `[train]` extra): work that needs the extra says in one line which extra to install.

Each test runs the CLI in a Python whose `sitecustomize` refuses to import the extra's modules, as a
`pip install fmnist-tui` without `[train]` would. What the base install does (help, predict, serve and the
TUI's Classify with the shipped models) is tested on a real one: tests/test_wheel.py."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fmnist_tui.core.extras import INSTALL_TRAIN, TRAIN_MODULES
from fmnist_tui.inference.session import PACKAGE_EXPORT
from fmnist_tui.tui.classify_screen import no_models_hint
from tests.conftest import ROOT

PHOTO = ROOT / "tests" / "photos" / "drawn-bag.jpg"

BLOCKER = '''"""A base install: the [train] extra's modules are not there."""
import sys

EXTRA = {modules!r}


class BaseInstall:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in EXTRA:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None


sys.meta_path.insert(0, BaseInstall())
'''


def pyproject() -> dict[str, Any]:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def train_extra() -> set[str]:
    """The module names of pyproject.toml's `train` extra (each distribution's name is its module's)."""
    requirements = pyproject()["project"]["optional-dependencies"]["train"]
    return {re.match(r"[A-Za-z0-9_.-]+", r).group(0).lower().replace("-", "_") for r in requirements}


@pytest.fixture
def base_env(tmp_path: Path, cli_env: dict[str, str]) -> dict[str, str]:
    """cli_env (synthetic data, this checkout on PYTHONPATH) in a Python without the train extra."""
    site = tmp_path / "base-site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER.format(modules=sorted(train_extra())))
    return {**cli_env, "PYTHONPATH": f"{site}:{ROOT}"}


def fmnist(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fmnist_tui", *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


def test_the_message_knows_the_extra_of_pyproject() -> None:
    assert train_extra() == TRAIN_MODULES


def test_every_data_file_of_the_package_is_installed() -> None:
    """A non-editable install copies only what package-data names (the TUI's stylesheet once went missing)."""
    package = ROOT / "fmnist_tui"
    patterns = pyproject()["tool"]["setuptools"]["package-data"]["fmnist_tui"]
    shipped = {path for pattern in patterns for path in package.glob(pattern)}
    data = {p for p in package.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc")}
    assert data <= shipped, sorted(str(p.relative_to(ROOT)) for p in data - shipped)


def test_classify_without_models_points_to_the_shipped_ones_and_the_extra(tmp_path: Path) -> None:
    """`fmnist export` needs torch: the hint names what a base install can open, then the extra."""
    hint = no_models_hint(tmp_path / "export").plain
    assert f"--export-dir {PACKAGE_EXPORT}" in hint and "fmnist export RUN" in hint and INSTALL_TRAIN in hint, hint
    assert "--export-dir" not in no_models_hint(PACKAGE_EXPORT).plain  # the shipped folder itself: no loop


@pytest.mark.slow
def test_the_blocker_hides_torch(base_env: dict[str, str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", "import torch"], env=base_env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 1 and "No module named 'torch'" in proc.stderr


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    """A finished cnn run folder (written without torch), so the commands get as far as their real work."""
    from tests.tui_support import fake_run

    fake_run(tmp_path / "runs", "cnn", 3, 0, 0.9)
    return tmp_path / "runs"


@pytest.mark.slow
@pytest.mark.parametrize("command", ["train", "evaluate", "export", "report", "featuremaps"])
def test_work_that_needs_the_extra_is_one_line_and_exit_1(
    command: str, base_env: dict[str, str], runs: Path, tmp_path: Path
) -> None:
    args = {
        "train": ["--epochs", "1", "--out", str(tmp_path / "new")],
        "evaluate": ["cnn-k3-s0", "--runs", str(runs)],
        "export": ["cnn-k3-s0", "--runs", str(runs), "--out", str(tmp_path / "export")],
        "report": ["--runs", str(runs), "--out", str(tmp_path / "report")],
        "featuremaps": ["--run", "cnn-k3-s0", "--runs", str(runs), str(PHOTO), "--out", str(tmp_path / "f.png")],
    }[command]
    proc = fmnist(base_env, command, *args)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1, proc.stderr
    assert len(lines) == 1 and f"fmnist {command} needs" in lines[0] and INSTALL_TRAIN in lines[0], proc.stderr


@pytest.mark.slow
def test_download_names_the_extra(base_env: dict[str, str]) -> None:
    code = (
        "from fmnist_tui.core.data import _download_into_cache\n"
        "try:\n    _download_into_cache()\nexcept Exception as exc:\n    print(type(exc).__name__, exc)"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=base_env, capture_output=True, text=True, timeout=60)
    assert proc.stdout.startswith("DataError") and INSTALL_TRAIN in proc.stdout, proc.stdout + proc.stderr


TUI_SCRIPT = """
import asyncio, sys
from pathlib import Path

import numpy as np

from fmnist_tui.core.runs import Run
from fmnist_tui.tui import create_app
from fmnist_tui.tui.services import Services
from fmnist_tui.tui.train_screen import TrainPane
from tests.tui_support import fake_run, record_notifications, wait_until

tmp, data = Path(sys.argv[1]), Path(sys.argv[2])


async def start_training() -> None:
    app = create_app(runs=tmp / "runs", export=tmp / "export", images=tmp, data_dir=data)
    notes = record_notifications(app)
    async with app.run_test(size=(100, 30)) as pilot:
        pane = app.query_one(TrainPane)
        await pilot.click("#start")
        await wait_until(pilot, lambda: pane.worker is not None and not pane.running, 60, "the failed start")
        await pilot.pause()
        print("train:", " | ".join(n.message for n in notes))


asyncio.run(start_training())
try:
    Services().feature_maps(Run(fake_run(tmp / "runs", "cnn", 3, 0, 0.9)), np.zeros((28, 28), np.uint8))
except Exception as exc:
    print("maps:", type(exc).__name__, exc)
"""


@pytest.mark.slow
def test_tui_train_tab_and_feature_maps_name_the_extra(
    base_env: dict[str, str], tiny_data: Path, tmp_path: Path
) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", TUI_SCRIPT, str(tmp_path), str(tiny_data)],
        env=base_env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    train, maps = proc.stdout.strip().splitlines()[-2:]
    assert train.startswith("train: ") and "torch" in train and INSTALL_TRAIN in train, proc.stdout
    assert maps.startswith("maps: MissingExtraError ") and "torch" in maps and INSTALL_TRAIN in maps, proc.stdout
