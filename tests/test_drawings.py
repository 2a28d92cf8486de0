"""Real garment drawings (tests/drawings: open emoji sets): the set is whole; the default model's accuracy floor on
the in-class drawings, and the share of the none-of-them drawings it flags unsure."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from PIL import Image

from fmnist_tui.core.data import CLASSES
from tests.conftest import ROOT
from tests.test_predict import SHIPPED_DEFAULT, needs_shipped, run_predict

DRAWINGS = ROOT / "tests" / "drawings"
#: The share of the in-class drawings (labels.csv's `accepted` is a class) the shipped default model must get
#: right through `fmnist predict` (README, "Drawings", has the measurements): a change that loses more than one
#: drawing fails here.
FLOOR = 0.72
#: The share of the drawings of no class (`none`) the default model must flag unsure: the issue's goal.
NONE_FLAGGED = 0.8
NONE = "none"


def labels() -> list[dict[str, str]]:
    with open(DRAWINGS / "labels.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_every_drawing_is_listed_once_with_known_classes_and_a_licence() -> None:
    rows = labels()
    files = sorted(p.name for p in DRAWINGS.glob("*.png"))
    assert sorted(r["file"] for r in rows) == files and len(files) == len(set(files)) == 142
    for row in rows:
        assert row["accepted"] == NONE or (row["accepted"] and set(row["accepted"].split("|")) <= set(CLASSES)), row
        assert row["source"] in ("fluent", "openmoji") and row["author"], row
        assert (DRAWINGS / f"LICENSE-{'fluentui-emoji' if row['source'] == 'fluent' else 'openmoji'}.txt").is_file()
        with Image.open(DRAWINGS / row["file"]) as img:
            assert img.size == (128, 128) and img.mode == "RGBA", row["file"]  # the vendor's transparency, kept


@pytest.mark.slow
@needs_shipped
def test_the_default_model_reads_the_drawings_above_the_floor(tmp_path: Path) -> None:
    rows = labels()
    res = run_predict([str(DRAWINGS), "--format", "json"], cwd=tmp_path)  # the default model, as a user runs it
    assert res.returncode == 0, res.stderr
    got = {Path(r["path"]).name: r for r in json.loads(res.stdout)}
    assert set(got) == {r["file"] for r in rows}
    in_class = [r for r in rows if r["accepted"] != NONE]
    wrong = {
        r["file"]: (r["accepted"], got[r["file"]]["label"])
        for r in in_class
        if got[r["file"]]["label"] not in r["accepted"].split("|")
    }
    accuracy = 1 - len(wrong) / len(in_class)
    shown = f"{accuracy:.1%} < {FLOOR:.0%} with {SHIPPED_DEFAULT.name}"
    assert accuracy >= FLOOR, f"{shown}; wrong (accepted, got): {wrong}"
    none = [got[r["file"]]["unsure"] for r in rows if r["accepted"] == NONE]
    assert none and sum(none) / len(none) >= NONE_FLAGGED, f"none-of-them flagged: {sum(none)} of {len(none)}"
