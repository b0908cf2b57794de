"""How a layer file reaches the browser: a PNG overlay or an XYZ tile pyramid, plus legends.

Two ways, measured on the bundled 1942 × 1931 px scene (true-colour layer, a shared 2-core machine
under heavy load, so absolute seconds are pessimistic; ``benchmarks/map.py``):

- **PNG overlay** (``ImageOverlay`` with a ``data:`` URL): the raster read at most ``max_px`` on
  its longest side from the GeoTIFF's overviews, warped to Web Mercator and sent inside the widget
  state: 2.2 MB at 1024 px, 5 s. Works everywhere, including in notebooks executed without a
  server (nbconvert, nbval) and in static HTML, but detail stops at ``max_px``.
- **XYZ pyramid** (``TileLayer``): 256-px PNG tiles from the raster's native zoom down to where
  it fits one tile (:func:`smartiesviz.predict.pyramid.write_pyramid`: 174 tiles, zooms 10-14,
  21 MB, 19 s), written into a folder under the Jupyter root and served by Jupyter's own
  ``/files/`` handler. The browser fetches only the tiles on screen, at any zoom, with full
  detail: nothing to install, works offline and on a remote JupyterHub (same origin, same login).
  localtileserver was not chosen: it needs jupyter-server-proxy on hubs and a separate server
  process; rio-tiler/morecantile would add two dependencies for what is here ~90 lines on top of
  rasterio's ``WarpedVRT``.

``auto`` uses the pyramid for rasters larger than ``max_px`` when the kernel runs under a Jupyter
server whose root contains the working folder, and the overlay otherwise.
"""

from __future__ import annotations

import html
import io
import json
import math
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
from PIL import Image

from smartiesviz.predict.map_layers import LayerFile
from smartiesviz.predict.rasterfile import gdal_env
from smartiesviz.render import data_url, png_bytes, to_rgba8

CLASS_COLOURS = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd",
)  # fmt: skip
Bounds = tuple[tuple[float, float], tuple[float, float]]


def class_lut() -> np.ndarray:
    """``(256, 4)`` uint8 RGBA per class value (255 = no data, transparent)."""
    lut = np.zeros((256, 4), np.uint8)
    for i in range(255):
        h = CLASS_COLOURS[i % len(CLASS_COLOURS)]
        lut[i] = (int(h[1:3], 16), int(h[3:5], 16), int(h[5:7], 16), 255)
    return lut


def colorizer(layer: LayerFile, threshold: float | None = None):
    """``(C, h, w)`` float (NaN = no data) → ``(h, w, 4)`` uint8 RGBA for this layer's kind.

    ``threshold`` (scalar layers) makes values below it transparent.
    """
    if layer.kind == "rgb":
        return lambda t: np.nan_to_num(t[:4]).clip(0, 255).astype(np.uint8).transpose(1, 2, 0)
    if layer.kind == "classes":
        lut = class_lut()
        return lambda t: lut[np.nan_to_num(t[0], nan=255).clip(0, 255).astype(np.uint8)]
    lo = 0.0 if layer.vmin is None else layer.vmin
    hi = 1.0 if layer.vmax is None else layer.vmax

    def scalar(t: np.ndarray) -> np.ndarray:
        v = t[0]
        rgba = to_rgba8(v, layer.cmap, lo, hi)  # NaN transparent
        if threshold is not None:
            rgba[np.nan_to_num(v, nan=-np.inf) < threshold, 3] = 0
        return rgba

    return scalar


def overlay_png(layer: LayerFile, max_px: int, threshold: float | None = None) -> tuple[bytes, Bounds]:
    """The layer warped to Web Mercator with its longest side ``max_px`` (coarse rasters are
    upsampled, nearest, so patch cells stay crisp) → PNG bytes and its lat/lon bounds."""
    import rasterio  # heavy optional: raster reads for display
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT
    from rasterio.warp import transform_bounds

    with gdal_env(), rasterio.open(layer.path) as src:
        coarse = max(src.width, src.height) < max_px
        resampling = "nearest" if coarse or layer.kind == "classes" else "average"
        kw: dict[str, Any] = {"crs": "EPSG:3857", "resampling": Resampling[resampling]}
        if src.dtypes[0] == "float32":
            kw.update(src_nodata=np.nan, nodata=np.nan)
        with WarpedVRT(src, **kw) as vrt:
            scale = max_px / max(vrt.width, vrt.height)
            shape = (vrt.count, max(1, round(vrt.height * scale)), max(1, round(vrt.width * scale)))
            data = vrt.read(out_shape=shape, resampling=Resampling[resampling]).astype(np.float32)
            west, south, east, north = transform_bounds("EPSG:3857", "EPSG:4326", *vrt.bounds)
    rgba = colorizer(layer, threshold)(data)

    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue(), ((south, west), (north, east))


def jupyter_root() -> tuple[Path, str] | None:
    """``(root_dir, base_url)`` of the running Jupyter server whose root holds the working
    folder (the kernel's), or ``None`` (no server: nbconvert, plain Python).

    Reads the servers' ``jpserver-*.json`` runtime files directly: importing
    ``jupyter_server.serverapp`` for ``list_running_servers`` takes 8 s on a busy machine.
    """
    # lazy: Jupyter paths only to find the running server
    from jupyter_core.paths import jupyter_runtime_dir

    cwd = Path.cwd().resolve()
    for info_file in sorted(Path(jupyter_runtime_dir()).glob("jpserver-*.json")):
        try:
            info = json.loads(info_file.read_text())
            os.kill(int(info["pid"]), 0)  # the server is still running
        except (OSError, ValueError, KeyError):
            continue
        root = Path(info.get("root_dir") or info.get("notebook_dir") or "/").resolve()
        if cwd == root or root in cwd.parents:
            return root, str(info.get("base_url", "/"))
    return None


def files_url(folder: Path, root: Path, base_url: str) -> str:
    """URL template of a ``{z}/{x}/{y}.png`` folder under the Jupyter root (``/files/`` handler)."""
    rel = folder.resolve().relative_to(root).as_posix()
    return f"{base_url.rstrip('/')}/files/{quote(rel)}/{{z}}/{{x}}/{{y}}.png"


def view_for(bounds: Bounds, width_px: int = 760, height_px: int = 500) -> tuple[tuple[float, float], float]:
    """Centre and zoom that frame ``bounds`` in a map of the given size, computed up front so the
    map opens framed whether or not its view is rendered yet. The zoom is a whole number: at a
    fractional zoom Leaflet scales the 256-px tiles of a pyramid and leaves 1-px gaps between
    them (Leaflet issue 3575), bright hairlines along tile edges on a light basemap."""
    (s, w), (n, e) = bounds

    def merc_y(lat: float) -> float:
        return math.log(math.tan(math.pi / 4 + math.radians(lat) / 2))

    dx = (e - w) / 360 if e > w else 1e-6
    dy = max(merc_y(n) - merc_y(s), 1e-9) / (2 * math.pi)
    zoom = min(math.log2(width_px / 256 / dx), math.log2(height_px / 256 / dy))
    zoom = max(0.0, float(math.floor(zoom)))
    centre_y = (merc_y(n) + merc_y(s)) / 2
    lat = math.degrees(2 * math.atan(math.exp(centre_y)) - math.pi / 2)
    return (lat, (w + e) / 2), zoom


def legend_html(layer: LayerFile, threshold: float | None = None) -> str:
    """A legend for what the layer shows: a colour bar, class swatches or the sentence alone."""
    title = (f"<div style='max-width:280px;white-space:normal;line-height:1.2'><b>"
             f"{html.escape(layer.name)}</b><br><small>{html.escape(layer.legend)}</small></div>")
    if layer.kind == "scalar":
        grad = data_url(png_bytes(np.linspace(0, 1, 128)[None].repeat(8, 0), cmap=layer.cmap))
        note = "" if threshold is None else f"; hidden below {threshold:.2f}"
        return (
            f"{title}<br><img src='{grad}' style='width:160px;height:10px'><br>"
            f"<small>{layer.vmin:.3g} … {layer.vmax:.3g}{note}</small>"
        )
    if layer.kind == "classes":
        items = "".join(
            f"<div><span style='display:inline-block;width:10px;height:10px;"
            f"background:{CLASS_COLOURS[i % 16]}'></span> <small>{html.escape(n)}</small></div>"
            for i, n in enumerate(layer.classes)
        )
        return f"{title}{items}"
    return title
