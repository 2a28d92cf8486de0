"""The torch boundary: the user's path (core, inference, the server, `predict`) imports no torch."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT

#: Imports every module of the torch-free layers (new modules are found by the walk) in a fresh
#: interpreter, and names the first one after whose import torch was loaded.
PROBE = """
import importlib, json, pkgutil, sys
import fmnist_tui.core, fmnist_tui.inference

names = [m.name for package in (fmnist_tui.core, fmnist_tui.inference)
         for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]
names += ["fmnist_tui.deploy.serve", "fmnist_tui.cli.predict_cmd"]
culprit = None
for name in names:
    importlib.import_module(name)
    if culprit is None and "torch" in sys.modules:
        culprit = name
print(json.dumps({"modules": names, "torch_by": culprit,
                  "torch": sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))}))
"""


def test_torch_free_layers_import_no_torch() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout)
    modules = set(found["modules"])
    # the walk sees the real packages (an empty walk would pass vacuously)
    assert {
        "fmnist_tui.inference.preprocess",
        "fmnist_tui.inference.session",
        "fmnist_tui.inference.files",
        "fmnist_tui.inference.classify",
        "fmnist_tui.inference.prediction",
        "fmnist_tui.core.data",
    } <= modules
    assert found["torch"] == [], f"{found['torch_by']} imports torch: import it lazily, where it is used"
