"""Importing smartiesviz changes nothing global (issue 28): torch's settings and warnings filters.

TerraTorch lowers torch's fp32 matmul precision when it is imported; our adapter imports it with the
settings kept. The suite-wide guard in ``tests/conftest.py`` catches a test that changes them."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest
import torch

from smartiesviz.torch_globals import preserved, snapshot

IMPORT_EVERYTHING = """
import importlib, json, pkgutil, warnings, torch
from smartiesviz.torch_globals import snapshot
before, filters = snapshot(), list(warnings.filters)
import smartiesviz
skipped = []
for m in pkgutil.walk_packages(smartiesviz.__path__, "smartiesviz."):
    try:
        importlib.import_module(m.name)
    except ImportError as err:  # an optional extra that is not installed
        skipped.append(f"{m.name}: {err}")
after = snapshot()
# a library's filter for its own warning class (sympy's "once" for SymPyDeprecationWarning, added
# when torch first imports sympy) is that library's business; one for a built-in class such as
# UserWarning or DeprecationWarning would change what users see everywhere
added = [f for f in warnings.filters if f not in filters and f[2].__module__ == "builtins"]
removed = [f for f in filters if f not in warnings.filters]
print(json.dumps({
    "changed": {k: [str(before[k]), str(after[k])] for k in before if before[k] != after[k]},
    "filters_changed": [str(f) for f in added + removed],
    "terratorch": "smartiesviz.integrations.terratorch" in __import__("sys").modules,
    "skipped": skipped,
}))
"""


def test_importing_every_module_changes_no_torch_setting_or_warning_filter() -> None:
    out = subprocess.run(
        [sys.executable, "-c", IMPORT_EVERYTHING], capture_output=True, text=True, timeout=300,
    ).stdout  # fmt: skip
    result = json.loads(out.strip().splitlines()[-1])
    assert result["changed"] == {}
    assert result["filters_changed"] == []
    if importlib.util.find_spec("terratorch") is not None:
        assert result["terratorch"], result["skipped"]  # the adapter that used to lower precision


@pytest.mark.skipif(importlib.util.find_spec("terratorch") is None, reason="needs terratorch")
def test_bare_terratorch_import_lowers_precision() -> None:
    # the hazard the adapter guards against is real, so the test above can fail
    code = "import torch, terratorch; print(torch.get_float32_matmul_precision())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    assert out.strip().splitlines()[-1] == "medium"


def test_preserved_puts_every_setting_back() -> None:
    before = snapshot()
    with preserved():
        torch.set_float32_matmul_precision("medium")
        torch.set_num_threads(max(1, before["num_threads"] - 1) if before["num_threads"] > 1 else 2)
        torch.set_default_dtype(torch.float64)
        torch.use_deterministic_algorithms(True, warn_only=True)
    assert snapshot() == before


MAKE_A_MAP = """
import json, warnings
from smartiesviz.widgets.map.explorer import MapExplorer  # torch, numpy: their own filters first
filters = list(warnings.filters)
{action}
print(json.dumps(len([f for f in warnings.filters if f not in filters])))
"""


@pytest.mark.parametrize(
    ("action", "changes"),
    [
        ("import leafmap.leafmap", True),  # the hazard: leafmap ignores every warning on import
        ("MapExplorer._make_map(None)", False),
    ],
    ids=["bare-leafmap", "our-map"],
)
def test_the_leafmap_map_leaves_the_warning_filters_as_found(action: str, changes: bool) -> None:
    code = MAKE_A_MAP.format(action=action)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    added = json.loads(out.stdout.strip().splitlines()[-1])
    assert (added > 0) is changes, out.stderr[-2000:]
