"""Real-browser checks: notebooks with live widgets run in JupyterLab in headless Chromium.

Needs Debian's ``chromium`` (``apt-get install chromium``) and the ``playwright`` Python package
(no browser download: Playwright drives the system Chromium through ``executable_path``).
Skipped only when no Chromium is installed. Screenshots go to pytest's ``tmp_path`` (kept by
pytest for the last runs, printed on failure); tests never write tracked files.

What a user sees is checked through pixels: the map shows data at its centre after Run All,
switching layer and moving the opacity change the map's pixels, clicking the map changes the
tile inspector, a click in "find similar" mode redraws the similarity layer and its threshold
slider changes the map, and the sliders and buttons of the reconstruction, tokenization and mixup
explorers change their images.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import nbformat
import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
# The notebooks whose live widgets the tests below drive (``test_coverage.py`` checks the list).
LIVE_WIDGET_NOTEBOOKS = (
    "tutorials/01-*.ipynb",
    "tutorials/02-*.ipynb",
    "tutorials/03-*.ipynb",
    "tutorials/04-*.ipynb",
    "notebooks/bring-your-own-geotiff.ipynb",
    "notebooks/reconstructions-on-the-map.ipynb",
    "notebooks/land-cover-in-20-clicks.ipynb",
)
RUN_TIMEOUT_MS = 6 * 60 * 1000
# The spectrum explorer's live plot: HoloViews draws it with Bokeh on a <canvas> inside the widget
# (Playwright's CSS engine pierces Bokeh's shadow DOM). The widget's title names it.
SPECTRUM_SELECTOR = ".jp-OutputArea-output:has-text('Spectrum explorer:') .bk-Canvas canvas"
MAP_OUTPUT = ".jp-OutputArea-output:has(.widget-html:has-text('Map explorer'))"
RECON_OUTPUT = ".jp-OutputArea-output:has(.widget-html:has-text('Reconstruction explorer'))"
TOKENS_OUTPUT = ".jp-OutputArea-output:has(.widget-html:has-text('Tokenization step-through'))"
MIXUP_OUTPUT = ".jp-OutputArea-output:has(.widget-html:has-text('Cross-sensor mixup viewer'))"
# the explorers' error panel (smartiesviz.widgets.panels.ErrorPanel): shown instead of a traceback
WIDGET_ERROR = ".widget-html:has-text('Cannot show this:')"
LEAFLET_BACKGROUND = np.array([221, 221, 221])  # the map's empty grey
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

# Run Python in the notebook's kernel (widget messages flow as from a cell); returns its output.
_KERNEL = """async (code) => {
  const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
  const future = kernel.requestExecute({code, stop_on_error: true, store_history: false});
  let out = '';
  future.onIOPub = (msg) => {
    if (msg.header.msg_type === 'stream') out += msg.content.text;
    if (msg.header.msg_type === 'error') out += `ERROR ${msg.content.ename}: ${msg.content.evalue}`;
  };
  await future.done;
  return out;
}"""

# Images inside the map that failed to load (a broken-image icon for the user).
_BROKEN_IMAGES = """(root) => [...root.querySelectorAll('img')]
  .filter(img => img.complete && img.naturalWidth === 0 && img.getAttribute('src'))
  .map(img => img.getAttribute('src').slice(0, 80))"""


def _fresh_copy(source: Path, root: Path, cells: int | None = None) -> str:
    """Copy the notebook without outputs into the server root (autosave never reaches the repo);
    ``cells``: only its first cells (the rest runs under nbval, not in the browser)."""
    nb = nbformat.read(source, as_version=4)
    nb.cells = nb.cells[:cells]
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


def _data_share(px: np.ndarray) -> float:
    """Share of a map screenshot's ``(H, W, 3)`` pixels that are not Leaflet's empty grey."""
    return float((np.abs(px - LEAFLET_BACKGROUND).max(-1) > 24).mean())


def _scene_box(png: bytes) -> tuple[float, float, float, float]:
    """``(x0, y0, width, height)`` in pixels of the largest patch of not-empty-grey pixels in a
    map screenshot (the scene; controls and legends are apart from it): clicks aimed inside it
    hit the scene at any framing."""
    from scipy import ndimage  # a scikit-learn dependency

    data = np.abs(_pixels(png) - LEAFLET_BACKGROUND).max(-1) > 24
    data[:3], data[-3:], data[:, :3], data[:, -3:] = False, False, False, False  # the frame
    parts, n = ndimage.label(data)
    assert n, "the map shows nothing"
    largest = 1 + int(np.argmax(ndimage.sum_labels(data, parts, range(1, n + 1))))
    ys, xs = ndimage.find_objects((parts == largest).astype(int))[0]
    return float(xs.start), float(ys.start), float(xs.stop - xs.start), float(ys.stop - ys.start)


def _inside(scene: tuple[float, float, float, float], fx: float, fy: float) -> dict[str, float]:
    """The point at fractions ``(fx, fy)`` of the scene's box, as a Playwright position."""
    x0, y0, w, h = scene
    return {"x": x0 + w * fx, "y": y0 + h * fy}


@contextmanager
def _notebook(lab_server, chromium_path: str, chromium_args: list[str], source: Path,
              tmp_path: Path, cells: int | None = None) -> Iterator[Page]:  # fmt: skip
    """Open ``source`` (its first ``cells``) in JupyterLab, Run All, assert no cell raised;
    yields the page."""
    name = _fresh_copy(source, lab_server.root, cells)
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


def _slide(widget, label: str, key: str, presses: int) -> None:
    """Move the ipywidgets slider labelled ``label`` with the keyboard, as a user would."""
    handle = widget.locator(f".widget-slider:has-text('{label}') .noUi-handle").first
    handle.focus()
    for _ in range(presses):
        handle.press(key)


def _scroll_to(page: Page, selector: str):
    """The first output matching ``selector``, scrolled to the top once the kernel is idle."""
    out = page.locator(selector).first
    out.evaluate("el => el.scrollIntoView({block: 'start'})")
    _wait_idle(page)
    return out


def _snap(page: Page, widget, path: Path) -> bytes:
    """Screenshot of ``widget`` once the kernel is idle, also saved to ``path``."""
    _wait_idle(page)
    png = widget.screenshot()
    path.write_bytes(png)
    return png


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
        scene = _scene_box(first)  # the map frames the scene at a whole zoom: not edge to edge
        px = _pixels(first)
        h, w = px.shape[:2]
        centre = px[h // 3 : 2 * h // 3, w // 3 : 2 * w // 3]
        assert _data_share(centre) > 0.9, "no data at the centre"
        assert leaflet.evaluate(_BROKEN_IMAGES) == []
        assert out.locator(".widget-html:has-text('true colour (')").count() >= 1  # legend

        layer_menu.select_option("reconstruction")
        _wait_idle(page)
        recon = shot("reconstruction")
        assert _changed(first, recon) > 0.05, "switching layer did not change the map"
        assert leaflet.evaluate(_BROKEN_IMAGES) == []
        assert out.locator(".widget-html:has-text('hidden and rebuilt')").count() >= 1

        _slide(out, "opacity", "ArrowLeft", 12)
        _wait_idle(page)
        faded = shot("reconstruction-faded")
        assert _changed(recon, faded) > 0.05, "moving the opacity did not change the map"

        caption = out.locator(".widget-html:has-text('click the map'), "
                              ".widget-html:has-text('(row ')").first  # fmt: skip
        before_caption = caption.inner_text()
        before_tile = out.locator(".widget-image").last.get_attribute("src")
        leaflet.click(position=_inside(scene, 0.3, 0.6))
        _wait_idle(page)
        after_caption = out.locator(".widget-html:has-text('(row ')").first.inner_text()
        assert after_caption != before_caption
        assert out.locator(".widget-image").last.get_attribute("src") != before_tile
        page.screenshot(path=str(tmp_path / "map-page.png"))

        # click-to-find-similar: the clicked patch becomes the query of the similarity layer
        # (Run All left the notebook's query, the scene's centre, in that layer)
        layer_menu.select_option("similarity")
        _wait_idle(page)
        legend = out.locator(".widget-html:has-text('cosine similarity to the patch at')").first
        centre_query, centre_map = legend.inner_text(), shot("similarity-centre")
        out.locator(".widget-toggle-button:has-text('find similar')").first.click()
        _wait_idle(page)
        leaflet.click(position=_inside(scene, 0.4, 0.3))
        _wait_idle(page)
        assert layer_menu.input_value() == "similarity"
        clicked_query = legend.inner_text()
        assert clicked_query != centre_query, f"the click did not become the query: {clicked_query}"
        similar = shot("find-similar")
        assert _changed(centre_map, similar) > 0.05, "the new query did not reach the map"
        assert leaflet.evaluate(_BROKEN_IMAGES) == []
        _slide(out, "threshold", "ArrowRight", 10)  # from the notebook's 0.5 to 0.7
        _wait_idle(page)
        thresholded = shot("find-similar-threshold")
        shown = [_data_share(_pixels(similar)), _data_share(_pixels(thresholded))]
        assert 0 < shown[1] < shown[0], f"a higher threshold should hide some patches: {shown}"
        assert out.locator(WIDGET_ERROR).count() == 0


@pytest.mark.parametrize(
    "pattern", ["tutorials/04-*.ipynb", "notebooks/bring-your-own-geotiff.ipynb"]
)
def test_reconstruction_explorer_slider_changes_images(lab_server, chromium_path, chromium_args,
                                                       tmp_path, pattern) -> None:  # fmt: skip
    """Tutorial 04 (a bundled sample) and the bring-your-own-GeoTIFF notebook (a user's file)."""
    source = sorted(ROOT.glob(pattern))[0]
    with _notebook(lab_server, chromium_path, chromium_args, source, tmp_path) as page:
        out = _scroll_to(page, RECON_OUTPUT)
        before = _snap(page, out, tmp_path / "recon-before.png")
        _slide(out, "mask", "ArrowRight", 5)
        after = _snap(page, out, tmp_path / "recon-after.png")
        assert out.locator(WIDGET_ERROR).count() == 0
        assert _changed(before, after) > 0.01, "moving the mask-ratio slider changed nothing"


def test_tokenization_explorer_follows_its_sliders(lab_server, chromium_path, chromium_args,
                                                   tmp_path) -> None:  # fmt: skip
    """Tutorial 02: the chosen patch and the tile slider change the band-by-band panels."""
    source = sorted((ROOT / "tutorials").glob("02-*.ipynb"))[0]
    with _notebook(lab_server, chromium_path, chromium_args, source, tmp_path) as page:
        out = _scroll_to(page, TOKENS_OUTPUT)
        images = out.locator(".widget-image")
        assert images.count() >= 3 and out.locator(WIDGET_ERROR).count() == 0
        sources = [images.nth(i).get_attribute("src") for i in range(images.count())]
        assert all(src and src.startswith("blob:") for src in sources), sources
        before = _snap(page, out, tmp_path / "tokens-before.png")
        _slide(out, "patch col", "ArrowRight", 2)
        moved = _snap(page, out, tmp_path / "tokens-patch.png")
        assert _changed(before, moved) > 0.01, "moving the patch column changed nothing"
        _slide(out, "tile", "ArrowRight", 1)
        tiled = _snap(page, out, tmp_path / "tokens-tile.png")
        assert _changed(moved, tiled) > 0.01, "moving the tile slider changed nothing"
        assert out.locator(WIDGET_ERROR).count() == 0


def test_mixup_viewer_redraws_on_ratio_and_new_draw(lab_server, chromium_path, chromium_args,
                                                    tmp_path) -> None:  # fmt: skip
    """Tutorial 03: the mixup ratio slider and the "new draw" button redraw the seven panels."""
    source = sorted((ROOT / "tutorials").glob("03-*.ipynb"))[0]
    with _notebook(lab_server, chromium_path, chromium_args, source, tmp_path) as page:
        out = _scroll_to(page, MIXUP_OUTPUT)
        assert out.locator(".widget-image").count() == 7
        assert out.locator(WIDGET_ERROR).count() == 0
        before = _snap(page, out, tmp_path / "mixup-before.png")
        _slide(out, "mixup ratio", "ArrowRight", 10)
        mixed = _snap(page, out, tmp_path / "mixup-ratio.png")
        assert _changed(before, mixed) > 0.01, "moving the mixup ratio changed nothing"
        seed = out.locator(".widget-text:has-text('seed') input").first
        start = int(seed.input_value())
        out.locator("button:has-text('new draw')").first.click()
        drawn = _snap(page, out, tmp_path / "mixup-new-draw.png")
        assert int(seed.input_value()) == start + 1
        assert _changed(mixed, drawn) > 0.01, "a new draw changed nothing"
        assert out.locator(WIDGET_ERROR).count() == 0


def _first_cells_until(source: Path, text: str) -> int:
    """How many cells of the notebook to run so that the cell containing ``text`` is the last."""
    cells = nbformat.read(source, as_version=4).cells
    return next(i for i, c in enumerate(cells) if text in c.source) + 1


# The src of every image overlay in the map (the class layer is one): changes when one is redrawn.
_OVERLAY_SRCS = """(root) => [...root.querySelectorAll('img.leaflet-image-layer')]
  .map(img => img.getAttribute('src').length + ':' + img.getAttribute('src').slice(-32)).join('|')"""


def test_labelling_notebook_draws_classes_and_maps_them(lab_server, chromium_path, chromium_args,
                                                        tmp_path) -> None:  # fmt: skip
    """Land cover in 20 clicks, up to the live map (the rest runs under nbval): drawing with the
    map's draw toolbar (mouse clicks) labels the chosen class, the class layer appears with the
    second class and changes with each label, labels round-trip through the save/load buttons,
    the map is a leafmap Map and split works."""
    source = ROOT / "notebooks" / "land-cover-in-20-clicks.ipynb"
    cells = _first_cells_until(source, "tool = explorer.label(")
    with _notebook(lab_server, chromium_path, chromium_args, source, tmp_path, cells) as page:
        out = page.locator(MAP_OUTPUT).first
        leaflet = out.locator(".leaflet-container").first
        out.evaluate("el => el.scrollIntoView({block: 'start'})")
        _wait_idle(page)
        box = leaflet.bounding_box()
        assert box and box["width"] > 300 and box["height"] > 300
        root = leaflet.element_handle()

        def kernel(code: str) -> str:  # runs after the kernel has handled the clicks before it
            text = page.evaluate(_KERNEL, code)
            assert "ERROR" not in text, text
            return text.strip()

        def shot(name: str) -> bytes:
            _wait_idle(page)
            png = leaflet.screenshot()
            (tmp_path / f"labels-{name}.png").write_bytes(png)
            return png

        def click(fx: float, fy: float, redraws: bool = False) -> None:
            """A click inside the scene; with ``redraws``, wait for an overlay to change, say when."""
            before = root.evaluate(_OVERLAY_SRCS)
            t0 = time.perf_counter()
            leaflet.click(position=_inside(scene, fx, fy))
            if redraws:
                page.wait_for_function(f"([root, before]) => ({_OVERLAY_SRCS})(root) !== before",
                                       arg=[root, before], polling=100, timeout=60_000)  # fmt: skip
                print(f"class layer redrawn {time.perf_counter() - t0:.2f} s after the click")

        def pick(name: str, tool: str) -> None:
            out.locator(f".widget-toggle-button:has-text('{name}')").first.click()
            out.locator(f".leaflet-draw-draw-{tool}").first.click()

        empty = shot("empty")
        scene = _scene_box(empty)
        assert kernel("print(len(tool.labels.features), explorer.click_mode.value)") == "0 draw labels"
        pick("water", "marker")
        click(0.35, 0.55)
        assert kernel("print(tool.labels.counts(), tool.class_map)") == (
            "{'water': 1, 'vegetation': 0, 'bare or built-up': 0} None")  # one class: no map yet
        pick("vegetation", "marker")
        click(0.6, 0.4, redraws=True)  # a second class: the class layer appears
        two = shot("two-classes")
        assert _changed(empty, two) > 0.2, "the class layer did not appear"
        assert leaflet.evaluate(_BROKEN_IMAGES) == []
        pick("bare or built-up", "polygon")  # a polygon of a third class: the class layer changes
        for fx, fy in [(0.42, 0.4), (0.5, 0.4), (0.5, 0.5), (0.42, 0.5)]:
            click(fx, fy)
            page.wait_for_timeout(200)
        click(0.42, 0.4, redraws=True)  # back on the first vertex: the polygon closes
        three = shot("three-classes")
        counts = kernel("print(tool.labels.counts(), tool.labels.features[-1]['geometry']['type'],"
                        " explorer.selected_tile)")  # fmt: skip
        assert counts == "{'water': 1, 'vegetation': 1, 'bare or built-up': 1} Polygon None", counts
        assert _changed(two, three) > 0.01, "a new label did not change the class layer"
        # GeoJSON round trip through the buttons: save, undo, load
        path = out.locator(".widget-text:has-text('file') input").first
        path.fill("my-labels.geojson")
        path.press("Enter")
        out.locator("button:has-text('save labels')").first.click()
        out.locator("button:has-text('undo')").first.click()
        assert kernel("print(len(tool.labels.features))") == "2"
        out.locator("button:has-text('load labels')").first.click()
        back = kernel("import json; print(json.load(open('my-labels.geojson'))"
                      " == tool.labels.to_geojson(), len(tool.labels.features))")  # fmt: skip
        assert back == "True 3", back
        assert out.locator(WIDGET_ERROR).count() == 0
        # the map is leafmap's, and two products compare side by side
        assert kernel("import leafmap; print(isinstance(explorer.map, leafmap.Map))") == "True"
        kernel("tool.clear(); explorer.split('true colour', 'reconstruction')")  # as at "empty"
        split = shot("split")
        assert out.locator(".leaflet-sbs-divider").count() == 1
        assert _changed(empty, split) > 0.05, "the split view did not change the map"
        assert leaflet.evaluate(_BROKEN_IMAGES) == []
        page.screenshot(path=str(tmp_path / "labels-page.png"))
