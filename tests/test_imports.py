"""Layering: `import smartiesviz` stays light, and the core never imports Jupyter or plotting."""

import json
import subprocess
import sys

import pytest

UI_MODULES = ("matplotlib", "ipywidgets", "IPython", "holoviews", "bokeh", "leafmap", "ipyleaflet")


def modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return {m.split(".")[0] for m in json.loads(out.strip().splitlines()[-1])}


def test_top_level_import_is_light():
    loaded = modules_after("import smartiesviz")
    assert not loaded & {"torch", "timm", "xarray", "rasterio", *UI_MODULES}


@pytest.mark.parametrize(
    "module",
    [
        "smartiesviz.spectrum",
        "smartiesviz.models",
        "smartiesviz.data",
        "smartiesviz.training",
        "smartiesviz.predict",
        "smartiesviz.cli",
    ],
)
def test_core_never_imports_widgets_or_plotting(module):
    code = f"import {module}, importlib, pkgutil\n"
    code += f"pkg = importlib.import_module('{module}')\n"
    code += "for m in pkgutil.walk_packages(getattr(pkg, '__path__', []), pkg.__name__ + '.'):\n"
    code += "    importlib.import_module(m.name)\n"
    loaded = modules_after(code)
    assert not loaded & set(UI_MODULES), f"{module} pulls in {sorted(loaded & set(UI_MODULES))}"
