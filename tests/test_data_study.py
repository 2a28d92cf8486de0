"""The data-efficiency study end to end: nested stratified training sets of a 50,000-image synthetic split,
the same steps at every size, the contrast claim, the figure against the size."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, make_tiny_dataset


@pytest.mark.slow
def test_data_study_quick_end_to_end(tmp_path: Path) -> None:
    data = make_tiny_dataset(tmp_path / "data", per_class_train=6000, per_class_test=10, gz=False)
    env = {**os.environ, "FMNIST_VERIFY": "0", "FMNIST_DATA": str(data), "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
    args = ["study", "data", "--quick", "--seeds", "2", "--epochs", "1", "--subset", "64", "--runs", "runs"]
    res = subprocess.run(
        [sys.executable, "-m", "fmnist_tui", *args, "--out", "out"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    # the quick preset trains the smallest, a middle and the largest size of the family
    assert [r["config"] for r in doc["table"]] == [
        f"{arch}-n{n}" for arch in ("mlp", "cnn-k3", "lcn-k3") for n in (500, 2000, 50000)
    ]
    config = json.loads((tmp_path / "runs" / "quick" / "cnn-k3-n500-s0" / "config.json").read_text())
    assert (config["train_size"], config["train_images"], config["epoch_images"]) == (500, 500, 64)
    (v,) = doc["verdicts"]
    assert v["claim"].startswith("the CNN's advantage over the MLP grows as data shrinks")
    assert v["detail"].startswith("(cnn-k3-n500 − mlp-n500) − (cnn-k3-n50000 − mlp-n50000) = ")
    assert v["verdict"] in ("supported", "contradicted", "not supported at this sample size (2 seeds)")
    assert (tmp_path / "out" / "data_study.png").stat().st_size > 1000
    assert "stratified subset" in (tmp_path / "out" / "section.md").read_text()
