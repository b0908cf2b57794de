"""A raster as a Web-Mercator XYZ tile pyramid (256-px PNGs in ``{z}/{x}/{y}.png`` folders).

Any web map (Leaflet, ipyleaflet's ``TileLayer``) shows such a folder at every zoom while only
fetching the tiles on screen, so the browser never receives one huge image. Tiles are warped from
the raster with GDAL (``WarpedVRT``, one virtual raster per zoom level on the tile grid, reading the
raster's internal overviews for coarse levels), colour-mapped by a caller-given function and
written as PNG. Memory is one tile row of the virtual raster, whatever the raster's size.

Why files and not a tile server: written once into a folder under the Jupyter root, the tiles are
served by Jupyter's own file handler (``/files/...``), so the map works offline and on a remote
JupyterHub without extra server extensions (localtileserver needs jupyter-server-proxy on a hub).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine
from PIL import Image

from smartiesviz.predict.rasterfile import gdal_env

#: Half the Web-Mercator world width (metres).
ORIGIN = 20037508.342789244
TILE = 256

#: ``(C, h, w)`` float data with NaN outside the raster → ``(h, w, 4)`` uint8 RGBA.
Colorizer = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Pyramid:
    """A written tile pyramid.

    Attributes:
        folder: root of the ``{z}/{x}/{y}.png`` tree.
        min_zoom, max_zoom: the zoom levels written (``max_zoom`` at or finer than the raster).
        bounds: ``((south, west), (north, east))`` of the raster in degrees.
        tiles: number of PNG files.
    """

    folder: Path
    min_zoom: int
    max_zoom: int
    bounds: tuple[tuple[float, float], tuple[float, float]]
    tiles: int


def tile_resolution(z: int) -> float:
    """Metres (Web Mercator) per pixel of a 256-px tile at zoom ``z``."""
    return 2 * ORIGIN / TILE / 2**z


def zoom_for_resolution(res: float) -> int:
    """Smallest zoom whose tile pixels are at most ``res`` Web-Mercator metres."""
    return max(0, math.ceil(math.log2(2 * ORIGIN / TILE / res)))


def tile_range(bounds: tuple[float, float, float, float], z: int) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)`` (inclusive) tile indices covering Web-Mercator ``(minx, miny, maxx,
    maxy)`` at zoom ``z``."""
    n, size = 2**z, 2 * ORIGIN / 2**z
    minx, miny, maxx, maxy = bounds
    x0 = int(np.clip(math.floor((minx + ORIGIN) / size), 0, n - 1))
    x1 = int(np.clip(math.floor((maxx + ORIGIN) / size - 1e-9), 0, n - 1))
    y0 = int(np.clip(math.floor((ORIGIN - maxy) / size), 0, n - 1))
    y1 = int(np.clip(math.floor((ORIGIN - miny) / size - 1e-9), 0, n - 1))
    return x0, y0, x1, y1


def write_pyramid(
    raster: str | os.PathLike,
    folder: str | os.PathLike,
    colorize: Colorizer,
    resampling: str = "average",
    min_zoom: int | None = None,
    max_zoom: int | None = None,
    on_progress: Callable[[float], None] | None = None,
) -> Pyramid:
    """Write the XYZ pyramid of ``raster`` (any CRS) into ``folder``.

    Args:
        raster: a GeoTIFF with a CRS; float bands use NaN (or the file's nodata) outside the data,
            colour layers an alpha band.
        folder: created if needed; existing tiles are overwritten.
        colorize: ``(C, 256, 256)`` float32 (NaN = no data) → ``(256, 256, 4)`` uint8 RGBA.
        resampling: GDAL resampling for zoomed-out levels (``"nearest"`` for classes).
        min_zoom, max_zoom: default: the raster's native zoom and down to where it fits one tile.
        on_progress: called with the fraction done.
    """
    import rasterio  # heavy optional: only pyramid writing needs GDAL
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT
    from rasterio.warp import transform_bounds
    from rasterio.windows import Window

    folder = Path(folder)
    with gdal_env(), rasterio.open(raster) as src:
        if src.crs is None:
            raise ValueError(f"raster {str(raster)!r} has no CRS; it cannot be placed on a map")
        merc = transform_bounds(src.crs, "EPSG:3857", *src.bounds, densify_pts=21)
        west, south, east, north = transform_bounds(src.crs, "EPSG:4326", *src.bounds)
        native_res = (merc[2] - merc[0]) / src.width
        zmax = zoom_for_resolution(native_res) if max_zoom is None else max_zoom
        span = max(merc[2] - merc[0], merc[3] - merc[1])
        zfit = max(0, int(math.floor(math.log2(2 * ORIGIN / span))))
        zmin = min(zmax, zfit) if min_zoom is None else min_zoom
        levels = [(z, tile_range(merc, z)) for z in range(zmin, zmax + 1)]
        total = sum((x1 - x0 + 1) * (y1 - y0 + 1) for _, (x0, y0, x1, y1) in levels)
        nodata = src.nodata if src.nodata is not None else (None if src.count in (2, 4) else np.nan)
        done = 0
        for z, (x0, y0, x1, y1) in levels:
            res, size = tile_resolution(z), 2 * ORIGIN / 2**z
            nx, ny = x1 - x0 + 1, y1 - y0 + 1
            transform = Affine(res, 0, -ORIGIN + x0 * size, 0, -res, ORIGIN - y0 * size)
            vrt_kw = dict(crs="EPSG:3857", transform=transform, width=nx * TILE,
                          height=ny * TILE, resampling=Resampling[resampling])  # fmt: skip
            if nodata is not None and src.dtypes[0].startswith("float"):
                vrt_kw.update(src_nodata=nodata, nodata=np.nan)
            # read a zoomed-out level from the raster's overview of the closest finer resolution
            level = _overview_level(src, res / native_res)
            opened = nullcontext(src) if level is None else rasterio.open(raster, overview_level=level)
            with opened as level_src, WarpedVRT(level_src, **vrt_kw) as vrt:
                for j in range(ny):  # one row of tiles at a time
                    row = vrt.read(window=Window(0, j * TILE, nx * TILE, TILE)).astype(np.float32)
                    for i in range(nx):
                        tile = row[:, :, i * TILE : (i + 1) * TILE]
                        out = folder / str(z) / str(x0 + i) / f"{y0 + j}.png"
                        out.parent.mkdir(parents=True, exist_ok=True)
                        Image.fromarray(colorize(tile), "RGBA").save(out, compress_level=1)
                    done += nx
                    if on_progress is not None:
                        on_progress(done / total)
    return Pyramid(folder, zmin, zmax, ((south, west), (north, east)), total)


def _overview_level(src: Any, factor: float) -> int | None:
    """Index of the coarsest internal overview at most ``factor`` times coarser than ``src``."""
    best = None
    for i, f in enumerate(src.overviews(1)):
        if f <= factor:
            best = i
    return best
