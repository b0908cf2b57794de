"""Every notebook that displays a live widget is driven in a real browser by ``test_lab.py``.

A widget is live when a cell ends with a widget object (``explorer`` after ``explorer =
MapExplorer(...)``, or the constructor call itself): JupyterLab then renders its view and a user
interacts with it. Cells that only draw a widget's ``.figure()`` show a static matplotlib image,
which nbval already checks. Cheap (AST only): runs without Chromium.
"""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat

import smartiesviz.widgets

from .test_lab import LIVE_WIDGET_NOTEBOOKS, ROOT

WIDGET_CLASSES = set(smartiesviz.widgets.__all__)


def _code(cell_source: str) -> ast.Module | None:
    lines = [ln for ln in cell_source.splitlines() if not ln.lstrip().startswith(("%", "!"))]
    try:
        return ast.parse("\n".join(lines))
    except SyntaxError:
        return None


def _constructs_widget(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    return name in WIDGET_CLASSES


def shows_live_widget(path: Path) -> bool:
    """Whether a code cell of the notebook ends with a widget object (so its view is displayed)."""
    widget_names: set[str] = set()
    for cell in nbformat.read(path, as_version=4).cells:
        tree = _code(cell.source) if cell.cell_type == "code" else None
        if tree is None or not tree.body:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and _constructs_widget(node.value):
                widget_names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        last = tree.body[-1]
        if isinstance(last, ast.Expr) and (
            _constructs_widget(last.value)
            or (isinstance(last.value, ast.Name) and last.value.id in widget_names)
        ):
            return True
    return False


def test_detector_tells_a_live_widget_from_a_static_figure(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("e = SpectrumExplorer(sensor='landsat8')\ne.figure()")]
    nbformat.write(nb, tmp_path / "static.ipynb")
    assert not shows_live_widget(tmp_path / "static.ipynb")
    nb.cells.append(nbformat.v4.new_code_cell("%matplotlib inline\ne"))
    nbformat.write(nb, tmp_path / "live.ipynb")
    assert shows_live_widget(tmp_path / "live.ipynb")


def test_every_live_widget_notebook_has_a_browser_test() -> None:
    notebooks = sorted([*ROOT.glob("tutorials/*.ipynb"), *ROOT.glob("notebooks/*.ipynb")])
    assert len(notebooks) >= 10
    live = {str(p.relative_to(ROOT)) for p in notebooks if shows_live_widget(p)}
    driven = {str(p.relative_to(ROOT)) for pattern in LIVE_WIDGET_NOTEBOOKS
              for p in ROOT.glob(pattern)}  # fmt: skip
    assert live == driven, f"live widgets without a browser test: {sorted(live - driven)}"
