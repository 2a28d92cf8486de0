"""The wheel as a user installs it: built from this tree, installed without the `[train]` extra into a fresh
venv, and run from a folder outside the checkout. The shipped models travel inside it (fmnist_tui/shipped/),
so predict, serve and the TUI's Classify find a model whatever the working directory.

The venv with the wheel's dependencies (from PyPI, pinned by constraints.txt) is kept in .pytest_cache/,
keyed by those dependencies and this Python; the freshly built wheel is installed into it on every run."""

from __future__ import annotations

import email.parser
import hashlib
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fmnist_tui.core.data import CLASSES
from fmnist_tui.core.extras import TRAIN_MODULES
from fmnist_tui.inference.session import DEFAULT_MODEL, SHIPPED
from tests.conftest import ROOT
from tests.test_base_install import pyproject

PHOTO = ROOT / "tests" / "photos" / "drawn-bag.jpg"  # every shipped model calls it a Bag
VENVS = ROOT / ".pytest_cache" / "wheel-venv"  # ignored by git
#: what a build reads: the top-level files (pyproject.toml, README.md, LICENSE) and these folders
BUILD_FOLDERS = ("fmnist_tui", "export")
#: variables of this shell that would point the installed fmnist at the checkout or at another model
LEAKS = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "FMNIST_MODEL", "FMNIST_PORT", "SAGEMAKER_BIND_TO_PORT")


def test_the_listed_packages_are_the_tree() -> None:
    """pyproject.toml lists the packages (so that export/ can join them): a new subpackage must be listed too."""
    setuptools = pyproject()["tool"]["setuptools"]
    tree = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "fmnist_tui").rglob("__init__.py")}
    assert set(setuptools["packages"]) - set(setuptools["package-dir"]) == tree
    assert setuptools["package-dir"] == {f"fmnist_tui.{SHIPPED}": "export"}


@dataclass
class Install:
    """A fresh venv holding the wheel (no extra), and an empty folder outside the checkout to run it in."""

    venv: Path
    wheel: Path
    cwd: Path
    env: dict[str, str]

    def fmnist(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return self.run(str(self.venv / "bin" / "fmnist"), *args, timeout=timeout)

    def python(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return self.run(str(self.venv / "bin" / "python"), *args, timeout=timeout)

    def run(self, *command: str, timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(command, cwd=self.cwd, env=self.env, capture_output=True, text=True, timeout=timeout)


def checked(command: list[str], timeout: float, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run a build or install step; its failure shows pip's last lines, not only the exit code."""
    kwargs.setdefault("env", {k: v for k, v in os.environ.items() if k not in LEAKS})  # pip must not see the checkout
    proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, **kwargs)
    assert proc.returncode == 0, f"{' '.join(command)}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def source_tree(dest: Path) -> Path:
    """Copy the files a build reads (tracked or new, not ignored) to `dest`: no stale build/ of the checkout."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout.decode()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the files a build reads are unknown")
    for name in filter(None, listed.split("\0")):
        inside = "/" not in name or name.split("/")[0] in BUILD_FOLDERS
        if inside and (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    return dest


def build_wheel(dest: Path) -> Path:
    """`pip wheel` of a copy of the tree, in build isolation (setuptools from build-system.requires), as a
    user's `pip install .` builds it."""
    src = source_tree(dest / "src")
    checked(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check", "-w", str(dest), str(src)],
        timeout=600,
    )
    (wheel,) = dest.glob("fmnist_tui-*.whl")
    return wheel


def requirements(wheel: Path) -> list[str]:
    """The wheel's own dependencies, without those of its extras."""
    with zipfile.ZipFile(wheel) as whl:
        name = next(n for n in whl.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = email.parser.Parser().parsestr(whl.read(name).decode())
    return sorted(r for r in metadata.get_all("Requires-Dist") or [] if "extra ==" not in r)


def dependency_venv(wheel: Path) -> Path:
    """A venv with the wheel's dependencies, made once per set of them (and constraints.txt and this Python)."""
    constraints, needs = ROOT / "constraints.txt", requirements(wheel)
    key = json.dumps([sys.version, needs, constraints.read_text()])
    venv = VENVS / hashlib.sha256(key.encode()).hexdigest()[:16]
    if not (venv / ".complete").is_file():
        shutil.rmtree(VENVS, ignore_errors=True)  # an older key's venv, or one whose install was cut short
        checked([sys.executable, "-m", "venv", str(venv)], timeout=300)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
        checked([*pip, "-c", str(constraints), *needs], timeout=900)
        (venv / ".complete").write_text(key)
    return venv


def clean_env(venv: Path) -> dict[str, str]:
    """This shell's environment without what would lead the installed fmnist to the checkout."""
    env = {k: v for k, v in os.environ.items() if k not in LEAKS and not k.startswith("SM_")}
    return {**env, "PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"}


@pytest.fixture(scope="module")
def install(tmp_path_factory: pytest.TempPathFactory) -> Install:
    wheel = build_wheel(tmp_path_factory.mktemp("wheel"))
    venv = dependency_venv(wheel)
    python = str(venv / "bin" / "python")
    uninstall = [python, "-m", "pip", "uninstall", "-y", "-q", "fmnist-tui"]
    subprocess.run(uninstall, capture_output=True, timeout=120, env=clean_env(venv))
    checked([python, "-m", "pip", "install", "--disable-pip-version-check", "-q", "--no-deps", str(wheel)], 300)
    checked([python, "-m", "pip", "check"], timeout=120)  # the cached dependencies are the wheel's
    cwd = tmp_path_factory.mktemp("elsewhere")
    assert not cwd.resolve().is_relative_to(ROOT)
    shutil.copy(PHOTO, cwd / "bag.jpg")
    return Install(venv, wheel, cwd, clean_env(venv))


@pytest.mark.slow
def test_the_wheel_carries_the_shipped_models(install: Install) -> None:
    with zipfile.ZipFile(install.wheel) as whl:
        shipped = {Path(n).name for n in whl.namelist() if n.startswith(f"fmnist_tui/{SHIPPED}/")}
    assert shipped == {p.name for p in (ROOT / "export").iterdir() if p.suffix == ".onnx"} | {"manifest.json"}


@pytest.mark.slow
def test_the_install_is_the_base_one_and_not_the_checkout(install: Install) -> None:
    code = (
        "import importlib.util, json, fmnist_tui\n"
        "from fmnist_tui.inference.session import PACKAGE_EXPORT\n"
        f"extra = [m for m in {sorted(TRAIN_MODULES)!r} if importlib.util.find_spec(m)]\n"
        "print(json.dumps([fmnist_tui.__file__, str(PACKAGE_EXPORT), extra]))"
    )
    proc = install.python("-c", code)
    assert proc.returncode == 0, proc.stderr
    package, shipped, extra = json.loads(proc.stdout)
    site = install.venv.resolve()
    assert Path(package).is_relative_to(site) and Path(shipped).is_relative_to(site), (package, shipped)
    assert Path(shipped).name == SHIPPED and extra == []


@pytest.mark.slow
@pytest.mark.parametrize("args", [["--help"], []], ids=["help", "no-args"])
def test_help_lists_every_command(install: Install, args: list[str]) -> None:
    from fmnist_tui.cli import COMMANDS

    proc = install.fmnist(*args)
    assert proc.returncode in ((0,) if args else (0, 2)), proc.stderr  # no args: 2 from click 8.2 on, 0 before
    assert "Usage: fmnist" in proc.stdout and not proc.stderr, proc.stderr
    assert all(f" {name} " in proc.stdout for name in COMMANDS), proc.stdout


@pytest.mark.slow
def test_version(install: Install) -> None:
    proc = install.fmnist("--version")
    version = install.wheel.name.split("-")[1]
    assert proc.returncode == 0 and proc.stdout.strip() == f"fmnist {version}", proc.stdout + proc.stderr


@pytest.mark.slow
def test_a_mistyped_command_is_a_usage_error(install: Install) -> None:
    proc = install.fmnist("prdict", "bag.jpg")
    said = [line for line in proc.stderr.splitlines() if "No such command" in line]
    assert proc.returncode == 2 and len(said) == 1 and "'predict'" in said[0], proc.stderr
    assert "Traceback" not in proc.stderr and "matplotlib" not in proc.stderr, proc.stderr


@pytest.mark.slow
def test_predict_with_the_shipped_default_model(install: Install) -> None:
    proc = install.fmnist("predict", "bag.jpg")
    assert proc.returncode == 0 and "Bag" in proc.stdout, proc.stdout + proc.stderr
    proc = install.fmnist("predict", "bag.jpg", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    (row,) = json.loads(proc.stdout)
    assert row["error"] is None and row["label"] == "Bag" and row["label"] == CLASSES[row["index"]], row


def wait_ready(port: int, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    """Poll GET /ping until the model is loaded (503 before), or fail if the server ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            conn.request("GET", "/ping")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        finally:
            conn.close()
        time.sleep(0.2)
    raise AssertionError(f"the server did not become ready (exit code {proc.poll()})")


@pytest.mark.slow
def test_serve_answers_with_the_shipped_default_model(install: Install) -> None:
    command = [str(install.venv / "bin" / "fmnist"), "serve", "--host", "127.0.0.1", "--port", "0"]
    proc = subprocess.Popen(command, cwd=install.cwd, env=install.env, stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert f"{SHIPPED}/{DEFAULT_MODEL}" in line and "http://127.0.0.1:" in line, line
        port = int(line.split("http://127.0.0.1:")[1].split()[0])
        wait_ready(port, proc)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/ping")
        assert json.loads(conn.getresponse().read()) == {"status": "ok"}
        conn.request("POST", "/invocations", body=PHOTO.read_bytes(), headers={"Content-Type": "image/jpeg"})
        answer = conn.getresponse()
        assert answer.status == 200 and json.loads(answer.read())["predictions"][0]["label"] == "Bag"
        conn.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
        proc.wait()


TUI_SCRIPT = """
import asyncio, json, sys, time

from textual.widgets import Input, Select

from fmnist_tui.inference.session import PACKAGE_EXPORT
from fmnist_tui.tui import create_app
from fmnist_tui.tui.classify_screen import ClassifyPane


async def classify(app, image):
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("3")
        await pilot.pause()
        pane, model = app.query_one(ClassifyPane), app.query_one("#model", Select).value
        if model is Select.NULL:
            return {"model": None, "label": None}
        field = app.query_one("#image-path", Input)
        field.value = image
        field.focus()
        await pilot.press("enter")
        deadline = time.monotonic() + 60
        while pane.last is None and time.monotonic() < deadline:
            await pilot.pause(0.05)
        return {"model": str(model), "label": pane.last and pane.last["top"][0]["label"]}


print(json.dumps({
    "shipped": str(PACKAGE_EXPORT),
    "default": asyncio.run(classify(create_app(), sys.argv[1])),
    "given": asyncio.run(classify(create_app(export=PACKAGE_EXPORT), sys.argv[1])),
}))
"""


@pytest.fixture(scope="module")
def classify_tab(install: Install) -> dict[str, Any]:
    """What the installed TUI's Classify tab chose and answered: with its default folders, and given the
    shipped models' folder."""
    proc = install.python("-c", TUI_SCRIPT, "bag.jpg", timeout=180)
    assert proc.returncode == 0, proc.stderr
    shown: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return shown


@pytest.mark.slow
def test_classify_loads_the_shipped_models(classify_tab: dict[str, Any]) -> None:
    given = classify_tab["given"]
    assert given == {"model": str(Path(classify_tab["shipped"]) / DEFAULT_MODEL), "label": "Bag"}, classify_tab


@pytest.mark.slow
def test_classify_finds_the_shipped_models_by_default(classify_tab: dict[str, Any]) -> None:
    assert classify_tab["default"]["label"] == "Bag", classify_tab
