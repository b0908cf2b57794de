"""Real-browser checks: notebooks with live widgets run in JupyterLab in headless Chromium.

Needs Debian's ``chromium`` (``apt-get install chromium``) and the ``playwright`` Python package
(no browser download: Playwright drives the system Chromium through ``executable_path``).
Skipped only when no Chromium is installed. Screenshots go to pytest's ``tmp_path`` (kept by
pytest for the last runs, printed on failure); tests never write tracked files.

What a user sees is checked through pixels: the map shows data at its centre after Run All,
switching layer and moving the opacity change the map's pixels, clicking the map changes the
tile inspector, and a slider of the reconstruction explorer changes its images.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import nbformat
import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_MS = 6 * 60 * 1000
# The spectrum explorer's live plot: HoloViews draws it with Bokeh on a <canvas> inside the widget
# (Playwright's CSS engine pierces Bokeh's shadow DOM). The widget's title names it.
SPECTRUM_SELECTOR = ".jp-OutputArea-output:has-text('Spectrum explorer:') .bk-Canvas canvas"
MAP_OUTPUT = ".jp-OutputArea-output:has(.widget-html:has-text('Map explorer'))"
RECON_OUTPUT = ".jp-OutputArea-output:has(.widget-html:has-text('Reconstruction explorer'))"
DIAGNOSTIC_SELECTORS = (".jp-OutputArea-output", ".jupyter-widgets", ".leaflet-container", "canvas")

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(900)]

_RUN_ALL = """async () => {
  const app = window.jupyterapp;
  const panel = app.shell.currentWidget;
  await panel.context.ready;
  await panel.sessionContext.ready;
  await app.commands.execute('notebook:run-all-cells');
}"""

# Done when the kernel is idle and every code cell has run, or a cell raised (the rest never run).
_FINISHED = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
  if (!kernel || kernel.status !== 'idle') return false;
  const cells = panel.content.widgets.filter(c => c.model.type === 'code');
  const errored = cells.some(c => c.model.outputs.toJSON().some(o => o.output_type === 'error'));
  return errored || cells.every(c => c.model.executionCount !== null);
}"""

_ERRORS = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  const errors = [];
  panel.content.widgets.forEach((cell, i) => {
    if (cell.model.type !== 'code') return;
    for (const o of cell.model.outputs.toJSON()) {
      if (o.output_type === 'error') errors.push(`cell ${i}: ${o.ename}: ${o.evalue}`);
    }
  });
  return errors;
}"""

# Images inside the map that failed to load (a broken-image icon for the user).
_BROKEN_IMAGES = """(root) => [...root.querySelectorAll('img')]
  .filter(img => img.complete && img.naturalWidth === 0 && img.getAttribute('src'))
  .map(img => img.getAttribute('src').slice(0, 80))"""


def _fresh_copy(source: Path, root: Path) -> str:
    """Copy the notebook without outputs into the server root (autosave never reaches the repo)."""
    nb = nbformat.read(source, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nb.metadata.pop("widgets", None)
    nbformat.write(nb, root / source.name)
    return source.name


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)


def _changed(a: bytes, b: bytes) -> float:
    """Share of pixels that differ visibly between two same-size screenshots."""
    pa, pb = _pixels(a), _pixels(b)
    h, w = min(pa.shape[0], pb.shape[0]), min(pa.shape[1], pb.shape[1])
    return float((np.abs(pa[:h, :w] - pb[:h, :w]).max(-1) > 24).mean())


@contextmanager
def _notebook(lab_server, chromium_path: str, chromium_args: list[str], source: Path,
              tmp_path: Path) -> Iterator[Page]:  # fmt: skip
    """Open ``source`` in JupyterLab, Run All, assert no cell raised; yields the page."""
    name = _fresh_copy(source, lab_server.root)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=chromium_args)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page_errors: list[str] = []
        page.on("pageerror", lambda exc: page_errors.append(str(exc)))
        try:
            page.goto(lab_server.notebook_url(name), timeout=120_000)
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
            page.wait_for_function(
                "() => window.jupyterapp && window.jupyterapp.shell.currentWidget "
                "&& window.jupyterapp.shell.currentWidget.sessionContext",
                timeout=120_000,
            )
            page.evaluate(_RUN_ALL)
            page.wait_for_function(_FINISHED, timeout=RUN_TIMEOUT_MS, polling=1000)
            errors = page.evaluate(_ERRORS)
            assert not errors, f"cells raised in JupyterLab: {errors}\n{lab_server.log_tail()}"
            assert page.get_by_text("Error displaying widget").count() == 0
            yield page
        except Exception:
            failure = tmp_path / "failure.png"
            page.screenshot(path=str(failure), full_page=True)
            found = {sel: page.locator(sel).count() for sel in DIAGNOSTIC_SELECTORS}
            print(f"browser check failed; screenshot: {failure}; elements: {found}; "
                  f"page errors: {page_errors}\n{lab_server.log_tail()}")  # fmt: skip
            raise
        finally:
            browser.close()


def _wait_idle(page: Page, timeout_ms: int = 180_000) -> None:
    """Wait until the kernel has handled every widget message (idle), then for the view."""
    page.wait_for_timeout(500)
    page.wait_for_function(
        "() => { const s = window.jupyterapp.shell.currentWidget.sessionContext.session;"
        " return s && s.kernel && s.kernel.status === 'idle'; }",
        timeout=timeout_ms, polling=500,
    )  # fmt: skip
    page.wait_for_timeout(1500)  # tiles and overlays load, leaflet fades them in


def test_tutorial_01_widgets_render_in_jupyterlab(lab_server, chromium_path, chromium_args,
                                                  tmp_path) -> None:  # fmt: skip
    notebooks = sorted((ROOT / "tutorials").glob("01-*.ipynb"))
    assert notebooks, "tutorials/01-*.ipynb is missing"
    with _notebook(lab_server, chromium_path, chromium_args, notebooks[0], tmp_path) as page:
        plot = page.locator(SPECTRUM_SELECTOR).first
        plot.wait_for(state="visible", timeout=60_000)
        page.wait_for_timeout(1500)  # let Bokeh finish painting before the screenshot
        assert page.locator(".jp-OutputArea-output:has-text('Loading widget')").count() == 0
        page.locator(".jp-OutputArea-output .widget-html:has-text('Spectrum explorer:')"
                     ).first.evaluate("el => el.scrollIntoView({block: 'start'})")  # fmt: skip
        page.wait_for_timeout(500)
        shot = tmp_path / "tutorial-01.png"
        page.screenshot(path=str(shot))
        assert shot.stat().st_size > 10_000


def test_map_notebook_shows_data_and_reacts(lab_server, chromium_path, chromium_args,
                                            tmp_path) -> None:  # fmt: skip
    source = ROOT / "notebooks" / "reconstructions-on-the-map.ipynb"
    with _notebook(lab_server, chromium_path, chromium_args, source, tmp_path) as page:
        out = page.locator(MAP_OUTPUT).first
        leaflet = out.locator(".leaflet-container").first
        leaflet.scroll_into_view_if_needed()
        out.evaluate("el => el.scrollIntoView({block: 'start'})")
        _wait_idle(page)
        box = leaflet.bounding_box()
        assert box and box["width"] > 300 and box["height"] > 300

        def shot(name: str) -> bytes:
            png = leaflet.screenshot()
            (tmp_path / f"map-{name}.png").write_bytes(png)
            return png

        # after Run All the notebook's similarity layer is shown: go back to the first layer
        layer_menu = out.locator(".widget-dropdown:has-text('layer') select").first
        layer_menu.select_option("true colour")
        _wait_idle(page)
        first = shot("true-colour")
        px = _pixels(first)
        h, w = px.shape[:2]
        centre = px[h // 3 : 2 * h // 3, w // 3 : 2 * w // 3]
        background = np.array([221, 221, 221])  # leaflet's empty grey
        assert (np.abs(centre - background).max(-1) > 24).mean() > 0.9, "no data at the centre"
        assert leaflet.evaluate(_BROKEN_IMAGES) == []
        assert out.locator(".widget-html:has-text('true colour (')").count() >= 1  # legend

        layer_menu.select_option("reconstruction")
        _wait_idle(page)
        recon = shot("reconstruction")
        assert _changed(first, recon) > 0.05, "switching layer did not change the map"
        assert leaflet.evaluate(_BROKEN_IMAGES) == []
        assert out.locator(".widget-html:has-text('hidden and rebuilt')").count() >= 1

        handle = out.locator(".widget-slider:has-text('opacity') .noUi-handle").first
        handle.focus()
        for _ in range(12):
            handle.press("ArrowLeft")
        _wait_idle(page)
        faded = shot("reconstruction-faded")
        assert _changed(recon, faded) > 0.05, "moving the opacity did not change the map"

        caption = out.locator(".widget-html:has-text('click the map'), "
                              ".widget-html:has-text('(row ')").first  # fmt: skip
        before_caption = caption.inner_text()
        before_tile = out.locator(".widget-image").last.get_attribute("src")
        leaflet.click(position={"x": box["width"] * 0.3, "y": box["height"] * 0.6})
        _wait_idle(page)
        after_caption = out.locator(".widget-html:has-text('(row ')").first.inner_text()
        assert after_caption != before_caption
        assert out.locator(".widget-image").last.get_attribute("src") != before_tile
        page.screenshot(path=str(tmp_path / "map-page.png"))


def test_reconstruction_explorer_slider_changes_images(lab_server, chromium_path, chromium_args,
                                                       tmp_path) -> None:  # fmt: skip
    source = sorted((ROOT / "tutorials").glob("04-*.ipynb"))[0]
    with _notebook(lab_server, chromium_path, chromium_args, source, tmp_path) as page:
        out = page.locator(RECON_OUTPUT).first
        out.evaluate("el => el.scrollIntoView({block: 'start'})")
        _wait_idle(page)
        before = out.screenshot()
        (tmp_path / "recon-before.png").write_bytes(before)
        handle = out.locator(".widget-slider:has-text('mask') .noUi-handle").first
        handle.focus()
        for _ in range(5):
            handle.press("ArrowRight")
        _wait_idle(page)
        after = out.screenshot()
        (tmp_path / "recon-after.png").write_bytes(after)
        assert _changed(before, after) > 0.01, "moving the mask-ratio slider changed nothing"
