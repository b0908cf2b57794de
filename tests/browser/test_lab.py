"""Real-browser check: tutorial 01 runs in JupyterLab in headless Chromium and its widgets render.

Needs Debian's ``chromium`` (``apt-get install chromium``) and the ``playwright`` Python package
(no browser download: Playwright drives the system Chromium through ``executable_path``).
Skipped only when no Chromium is installed. Saves ``docs/browser-check.png``.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs" / "browser-check.png"
RUN_TIMEOUT_MS = 8 * 60 * 1000
# The spectrum explorer's live plot: HoloViews draws it with Bokeh on a <canvas> inside the widget
# (Playwright's CSS engine pierces Bokeh's shadow DOM). The widget's title names it.
SPECTRUM_SELECTOR = ".jp-OutputArea-output:has-text('Spectrum explorer:') .bk-Canvas canvas"

DIAGNOSTIC_SELECTORS = (".jp-OutputArea-output", ".jupyter-widgets", ".bk-Canvas", "canvas")

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


def _fresh_copy(source: Path, root: Path) -> str:
    """Copy the notebook without outputs into the server root (autosave never reaches the repo)."""
    nb = nbformat.read(source, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nb.metadata.pop("widgets", None)
    nbformat.write(nb, root / source.name)
    return source.name


def test_tutorial_01_widgets_render_in_jupyterlab(
    lab_server, chromium_path: str, chromium_args: list[str]
) -> None:
    notebooks = sorted((ROOT / "tutorials").glob("01-*.ipynb"))
    assert notebooks, "tutorials/01-*.ipynb is missing"
    name = _fresh_copy(notebooks[0], lab_server.root)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=chromium_args)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            console_errors: list[str] = []
            page.on("pageerror", lambda exc: console_errors.append(str(exc)))
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

                plot = page.locator(SPECTRUM_SELECTOR).first
                plot.wait_for(state="visible", timeout=60_000)
                page.wait_for_timeout(1500)  # let Bokeh finish painting before the screenshot
                assert page.get_by_text("Error displaying widget").count() == 0, (
                    "a widget failed to render in JupyterLab"
                )
                assert page.locator(".jp-OutputArea-output:has-text('Loading widget')").count() == 0
                # frame the whole widget (title, controls, weights table, plot) for the screenshot
                page.locator(
                    ".jp-OutputArea-output .widget-html:has-text('Spectrum explorer:')"
                ).first.evaluate("el => el.scrollIntoView({block: 'start'})")
                page.wait_for_timeout(500)
                SCREENSHOT.parent.mkdir(exist_ok=True)
                page.screenshot(path=str(SCREENSHOT))
                assert SCREENSHOT.stat().st_size > 10_000
            except Exception:
                failure = lab_server.root.parent / "failure.png"
                page.screenshot(path=str(failure), full_page=True)
                found = {sel: page.locator(sel).count() for sel in DIAGNOSTIC_SELECTORS}
                print(
                    f"browser check failed; screenshot: {failure}; elements: {found}; "
                    f"page errors: {console_errors}\n{lab_server.log_tail()}"
                )
                raise
        finally:
            browser.close()
