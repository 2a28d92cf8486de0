"""The real `python -m fmnist_tui tui` in a pseudo-terminal (tmux): keys in, screen text out, clean quit."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux (apt-get install -y tmux)")


class Tmux:
    """One detached tmux session on a private server socket."""

    def __init__(self, name: str) -> None:
        self.base = ["tmux", "-L", name]

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.base, *args], capture_output=True, text=True, timeout=30)

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "tui").stdout

    def wait_for(self, text: str, timeout: float = 40.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.2)
        raise AssertionError(f"{text!r} never appeared; the screen was:\n{self.screen()}")

    def alive(self) -> bool:
        return self("has-session", "-t", "tui").returncode == 0


@pytest.mark.slow
def test_real_tui_in_a_terminal(tmp_path: Path, cli_env: dict[str, str]) -> None:
    status = tmp_path / "exit-status"
    command = " ".join(
        shlex.quote(a)
        for a in [
            sys.executable,
            "-m",
            "fmnist_tui",
            "tui",
            "--runs",
            str(tmp_path / "runs"),
            "--export-dir",
            str(tmp_path / "export"),
            "--images",
            str(tmp_path),
        ]
    )
    env = " ".join(
        f"{k}={shlex.quote(v)}" for k, v in cli_env.items() if k in ("FMNIST_VERIFY", "FMNIST_DATA", "PYTHONPATH")
    )
    tmux = Tmux(f"fmnist-test-{os.getpid()}")
    tmux(
        "new-session",
        "-d",
        "-s",
        "tui",
        "-x",
        "100",
        "-y",
        "30",
        f"env TERM=xterm-256color {env} {command}; echo $? > {shlex.quote(str(status))}",
    )
    try:
        tmux.wait_for("1 Train")
        assert "Start" in tmux.wait_for("Quit")
        tmux("send-keys", "-t", "tui", "2")
        tmux.wait_for("No finished runs")
        tmux("send-keys", "-t", "tui", "4")
        tmux.wait_for("250 train · 50 val · 100 test images")
        tmux("send-keys", "-t", "tui", "?")
        tmux.wait_for("CLI twins")
        tmux("send-keys", "-t", "tui", "Escape")  # alone: ESC then a key at once would read as alt+key
        deadline = time.monotonic() + 20
        while "CLI twins" in tmux.screen() and time.monotonic() < deadline:
            time.sleep(0.2)
        tmux("send-keys", "-t", "tui", "q")
        deadline = time.monotonic() + 20
        while not status.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert status.read_text().strip() == "0"
    finally:
        tmux("kill-server")
