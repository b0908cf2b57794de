"""`smartiesviz tour` on two tiny notebooks: the report, the figures, the exit code."""

from __future__ import annotations

import base64
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from smartiesviz.cli import main

pytestmark = pytest.mark.timeout(300)

PLOT = """import matplotlib
matplotlib.use("agg")
from matplotlib.figure import Figure
from IPython.display import display
fig = Figure(figsize=(2, 2))
fig.subplots().plot([0, 1], [1, 0])
display(fig)"""


def _write(folder: Path, name: str, title: str, *code: str) -> None:
    nb = new_notebook(cells=[new_markdown_cell(f"# {title}"), *(new_code_cell(c) for c in code)])
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, folder / name)


@pytest.fixture()
def tutorials(tmp_path: Path) -> Path:
    folder = tmp_path / "tutorials"
    folder.mkdir()
    _write(folder, "01-plot.ipynb", "A plot", "%matplotlib inline", PLOT)
    _write(folder, "02-broken.ipynb", "Broken", "print('before')", "raise RuntimeError('boom 42')")
    (folder / "notes.ipynb").write_text("not a numbered tutorial: ignored")
    return folder


def test_tour_writes_report_and_fails_on_a_broken_notebook(
    tutorials: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report"
    code = main(["tour", "--tutorials", str(tutorials), "--out", str(out)])
    printed = capsys.readouterr().out

    assert code == 1
    lines = printed.splitlines()
    assert any(line.startswith("ok") and "01-plot" in line and " s " in line for line in lines)
    assert any(line.startswith("FAIL") and "02-broken" in line for line in lines)
    assert "boom 42" in printed
    index = out / "index.html"
    assert str(index) in printed

    page = index.read_text()
    assert "A plot" in page and "Broken" in page and "boom 42" in page
    figures = sorted((out / "figures").glob("*.png"))
    assert [f.name for f in figures] == ["01-plot-1.png"]
    png = figures[0].read_bytes()
    assert png.startswith(b"\x89PNG")
    assert base64.b64encode(png).decode() in page  # embedded, not linked
    assert (out / "01-plot.html").is_file() and (out / "02-broken.html").is_file()
    # the source notebooks are never modified
    assert nbformat.read(tutorials / "01-plot.ipynb", as_version=4).cells[2].outputs == []


def test_tour_only_selects_notebooks_and_exits_zero(tutorials: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    assert main(["tour", "--tutorials", str(tutorials), "--out", str(out), "--only", "01"]) == 0
    page = (out / "index.html").read_text()
    assert "A plot" in page and "Broken" not in page


def test_tour_reports_missing_tutorials(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tour", "--tutorials", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    assert "no tutorial notebooks" in capsys.readouterr().err


def test_clean_notebook_strips_widget_state_and_loaders() -> None:
    from smartiesviz.tour import WIDGET_MIME, clean_notebook

    cell = new_code_cell("w")
    cell.outputs = [
        nbformat.from_dict({"output_type": "display_data", "metadata": {}, "data": {
            "application/vnd.holoviews_load.v0+json": "", "application/javascript": "x" * 20_000}}),
        nbformat.from_dict({"output_type": "execute_result", "execution_count": 1, "metadata": {},
            "data": {WIDGET_MIME: {"model_id": "abc"}, "text/plain": "SpectrumExplorer(children=(...))"}}),
        nbformat.from_dict({"output_type": "display_data", "metadata": {},
            "data": {WIDGET_MIME: {"model_id": "def"}, "text/plain": "embed:  10%|#  | 1/10"}}),
        nbformat.from_dict({"output_type": "stream", "name": "stdout", "text": "kept\n"}),
    ]  # fmt: skip
    nb = new_notebook(cells=[cell])
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}

    clean_notebook(nb)

    assert "widgets" not in nb.metadata
    outputs = nb.cells[0].outputs
    assert [o.output_type for o in outputs] == ["execute_result", "stream"]
    assert WIDGET_MIME not in outputs[0].data
    assert outputs[0].data["text/plain"].startswith("[SpectrumExplorer: live widget")


def test_lab_opens_jupyterlab_on_the_first_tutorial(
    tutorials: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    calls: list[list[str]] = []
    monkeypatch.setattr("smartiesviz.tour.run_in_group", lambda command: calls.append(command) or 0)
    assert main(["lab", "--tutorials", str(tutorials), "--port", "8899", "--no-browser"]) == 0
    (command,) = calls
    assert command[:3] == [sys.executable, "-m", "jupyterlab"]
    assert f"--ServerApp.root_dir={tutorials.parent}" in command
    assert "--port=8899" in command and "--no-browser" in command
    assert command[-1] == str(tutorials / "01-plot.ipynb")
