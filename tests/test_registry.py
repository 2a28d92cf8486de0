"""Adding an architecture is one change in one place: a toy architecture registered here shows up in
`fmnist train --help`, trains under its own run name, appears in the TUI's form and in a study plan."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from torch import nn
from typer.testing import CliRunner

from fmnist_tui.cli import build_app
from fmnist_tui.core import registry
from fmnist_tui.core.config import TrainConfig
from fmnist_tui.core.errors import ConfigError
from fmnist_tui.study.plan import plan

from .tui_support import choices, sync

runner = CliRunner()


def build_toy(size: int = 8) -> nn.Module:
    """A one-hidden-layer network of `size` units (the toy's builder, named in its spec)."""

    return nn.Sequential(nn.Flatten(), nn.Linear(784, size), nn.ReLU(), nn.Linear(size, 10))


@pytest.fixture
def toy() -> Iterator[registry.ArchSpec]:
    spec = registry.register(
        registry.ArchSpec(
            "toy",
            "a toy MLP for the registry test",
            f"{__name__}:build_toy",
            options=(registry.Option("size", int, 8, "Hidden units of the toy.", choices=(8, 16), tag="u{}"),),
        )
    )
    yield spec
    registry.unregister("toy")


@pytest.mark.slow
def test_toy_is_in_train_help_and_trains_under_its_own_name(
    toy: registry.ArchSpec, tiny_data: Path, tmp_path: Path
) -> None:
    app = build_app()
    shown = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0
    assert (
        "mlp|cnn|lcn|resnet|toy" in shown.output
        and "--size" in shown.output
        and re.search(r"toy\W+8\W+16", shown.output)  # the toy's sizes are in the help
    )
    refused = runner.invoke(app, ["train", "--arch", "toy", "--size", "12"])
    assert refused.exit_code == 2 and "valid: 8, 16" in refused.output
    refused = runner.invoke(app, ["train", "--arch", "mlp", "--size", "16"])
    assert refused.exit_code == 2 and "--size" in refused.output and "mlp" in refused.output
    done = runner.invoke(
        app,
        [
            "train",
            "--arch",
            "toy",
            "--size",
            "16",
            "--epochs",
            "1",
            "--subset",
            "64",
            "--threads",
            "1",
            "--out",
            str(tmp_path / "runs"),
            "--data-dir",
            str(tiny_data),
        ],
    )
    assert done.exit_code == 0, done.output
    config = json.loads((tmp_path / "runs" / "toy-u16-s0" / "config.json").read_text())
    assert config["arch"] == "toy" and config["size"] == 16 and config["params"] == 784 * 16 + 16 + 16 * 10 + 10
    listed = runner.invoke(app, ["results", "--runs", str(tmp_path / "runs"), "--format", "json"])
    assert listed.exit_code == 0 and json.loads(listed.output)["table"][0]["config"] == "toy-u16"


def test_toy_appears_in_a_study_plan(toy: registry.ArchSpec, tmp_path: Path) -> None:
    names = [c.run_name for c in plan(["mlp", "toy"], {"size": [8, 16]}, 1, 1, tmp_path)]
    assert names == ["mlp-s0", "toy-s0", "toy-u16-s0"]
    with pytest.raises(ConfigError, match="sizes 32 not valid; valid: 8,16"):
        plan(["toy"], {"size": [32]}, 1, 1, tmp_path)
    dry = runner.invoke(
        build_app(), ["study", "kernel", "--archs", "toy", "--seeds", "2", "--runs", str(tmp_path), "--dry-run"]
    )
    assert dry.exit_code == 0, dry.output
    assert "toy-s0: new" in dry.output and "toy-s1: new" in dry.output
    assert TrainConfig.create(arch="toy", size=16).label == "toy-u16"


@sync
async def test_toy_is_in_the_tui_form(toy: registry.ArchSpec, tmp_path: Path) -> None:
    from textual.widgets import Select

    from fmnist_tui.tui import create_app
    from fmnist_tui.tui.train_screen import TrainPane, option_row

    app = create_app(runs=tmp_path / "runs", export=tmp_path / "export", images=tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        arch = app.query_one("#arch", Select)
        assert "toy" in choices(arch)
        size = app.query_one("#size", Select)
        assert size.disabled and not app.query_one(f"#{option_row('size')}").display  # the default arch (cnn) has none
        arch.value = "toy"
        await pilot.pause()
        assert not size.disabled and app.query_one("#kernel", Select).disabled
        assert app.query_one(f"#{option_row('size')}").display and not app.query_one(f"#{option_row('kernel')}").display
        size.value = 16
        cfg = app.query_one(TrainPane).form_config()
        assert cfg.arch == "toy" and cfg.options == {"size": 16} and cfg.run_name == "toy-u16-s0"
