"""A raster as a Web-Mercator XYZ tile pyramid (256-px PNGs in ``{z}/{x}/{y}.png`` folders).

Any web map (Leaflet, ipyleaflet's ``TileLayer``) shows such a folder at every zoom while only
fetching the tiles on screen, so the browser never receives one huge image. Tiles are warped from
the raster with GDAL (``WarpedVRT``, one virtual raster per zoom level on the tile grid, reading the
raster's internal overviews for coarse levels), colour-mapped by a caller-given function and
written as PNG. Memory is one tile row of the virtual raster, whatever the raster's size.

Why files and not a tile server: written once into a folder under the Jupyter root, the tiles are
served by Jupyter's own file handler (``/files/...``), so the map works offline and on a remote
JupyterHub without extra server extensions (localtileserver needs jupyter-server-proxy on a hub).

The work is bounded before any tile is written: at most :data:`MAX_ZOOM` and :data:`MAX_TILES`
tiles (a requested ``max_zoom`` beyond either is refused, a default one lowered with a warning).
Tiles are never written through a link: a link (or file) where a ``{z}`` or ``{z}/{x}`` folder
belongs is replaced by a folder, and each PNG is written as a new file (old entry unlinked first).
"""

from __future__ import annotations

import io
import math
import os
import warnings
from collections.abc import Callable, Iterator
from contextlib import closing, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine
from PIL import Image

from smartiesviz.data.cache import CacheRepairWarning
from smartiesviz.errors import UserError
from smartiesviz.predict.rasterfile import gdal_env

#: Half the Web-Mercator world width (metres).
ORIGIN = 20037508.342789244
TILE = 256
#: Finest zoom written (~4 cm per pixel at the equator: finer than any imagery mapped here).
MAX_ZOOM = 22
#: Most tiles one pyramid may have (~1 GB of PNGs; a full 110 km Sentinel-2 granule needs ~2.8k).
MAX_TILES = 10_000

#: ``(C, h, w)`` float data with NaN outside the raster → ``(h, w, 4)`` uint8 RGBA.
Colorizer = Callable[[np.ndarray], np.ndarray]
#: ``(minx, miny, maxx, maxy)`` in Web-Mercator metres.
Bounds = tuple[float, float, float, float]
#: ``((south, west), (north, east))`` in degrees.
LatLonBounds = tuple[tuple[float, float], tuple[float, float]]


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
    max_tiles: int = MAX_TILES,
) -> Pyramid:
    """Write the XYZ pyramid of ``raster`` (any CRS) into ``folder``.

    Args:
        raster: a GeoTIFF with a CRS; float bands use NaN (or the file's nodata) outside the data,
            colour layers an alpha band.
        folder: created if needed; existing tiles are overwritten.
        colorize: ``(C, 256, 256)`` float32 (NaN = no data) → ``(256, 256, 4)`` uint8 RGBA.
        resampling: GDAL resampling for zoomed-out levels (``"nearest"`` for classes).
        min_zoom, max_zoom: default: the raster's native zoom (at most :data:`MAX_ZOOM`, lowered
            until ``max_tiles`` suffice, with a warning) and down to where it fits one tile.
        on_progress: called with the fraction done.
        max_tiles: the most tiles to write (default :data:`MAX_TILES`).

    Raises:
        UserError: a zoom outside ``0..MAX_ZOOM``, or zooms that need more than ``max_tiles``
            tiles (the message gives the count and the largest ``max_zoom`` that fits).
    """
    import rasterio  # heavy optional: only pyramid writing needs GDAL

    folder = Path(folder)
    _check_zooms(min_zoom, max_zoom)
    with gdal_env(), rasterio.open(raster) as src:
        if src.crs is None:
            raise ValueError(f"raster {str(raster)!r} has no CRS; it cannot be placed on a map")
        merc, bounds, native_res = _footprint(src)
        native = zoom_for_resolution(native_res)
        zmin, zmax = _zoom_range(merc, native, min_zoom, max_zoom)
        zmax = _bounded_zoom(str(raster), merc, zmin, zmax, native, max_zoom is None, max_tiles)
        total = _count(merc, zmin, zmax)
        folder.mkdir(parents=True, exist_ok=True)
        done = 0
        zooms = range(zmin, zmax + 1)
        # written here, not in _tile_rows: real_folder's warning then names our caller
        with closing(_tile_rows(src, raster, merc, zooms, resampling, native_res)) as rows:
            for z, x0, y, row in rows:
                nx = row.shape[-1] // TILE
                for i in range(nx):
                    out = real_folder(folder / str(z) / str(x0 + i), folder) / f"{y}.png"
                    _write_new(out, _png(colorize(row[:, :, i * TILE : (i + 1) * TILE])))
                done += nx
                if on_progress is not None:
                    on_progress(done / total)
    return Pyramid(folder, zmin, zmax, bounds, total)


def _check_zooms(min_zoom: int | None, max_zoom: int | None) -> None:
    """Refuse requested zooms outside ``0..MAX_ZOOM`` or in the wrong order."""
    for name, z in (("min_zoom", min_zoom), ("max_zoom", max_zoom)):
        if z is not None and not 0 <= z <= MAX_ZOOM:
            raise UserError(f"{name}={z} is outside 0..{MAX_ZOOM} (pyramid.MAX_ZOOM)")
    if min_zoom is not None and max_zoom is not None and min_zoom > max_zoom:
        raise UserError(f"min_zoom={min_zoom} is above max_zoom={max_zoom}")


def _footprint(src: Any) -> tuple[Bounds, LatLonBounds, float]:
    """``(Web-Mercator bounds, ((south, west), (north, east)) in degrees, native pixel size in
    Web-Mercator metres)`` of an open raster."""
    from rasterio.warp import transform_bounds

    merc = transform_bounds(src.crs, "EPSG:3857", *src.bounds, densify_pts=21)
    west, south, east, north = transform_bounds(src.crs, "EPSG:4326", *src.bounds)
    return merc, ((south, west), (north, east)), (merc[2] - merc[0]) / src.width


def _zoom_range(merc: Bounds, native: int, min_zoom: int | None,
                max_zoom: int | None) -> tuple[int, int]:  # fmt: skip
    """``(zmin, zmax)`` before the tile limit: the requested zooms, else the native zoom (at most
    :data:`MAX_ZOOM`) down to the zoom where the raster fits one tile."""
    zmax = min(native, MAX_ZOOM) if max_zoom is None else max_zoom
    span = max(merc[2] - merc[0], merc[3] - merc[1])
    zfit = max(0, int(math.floor(math.log2(2 * ORIGIN / span))))
    zmin = min(zmax, zfit) if min_zoom is None else min_zoom
    return zmin, max(zmin, zmax)  # a requested min_zoom above the native zoom


def _tile_rows(src: Any, raster: str | os.PathLike, merc: Bounds, zooms: range, resampling: str,
               native_res: float) -> Iterator[tuple[int, int, int, np.ndarray]]:  # fmt: skip
    """``(z, x0, y, row)`` for every row of tiles covering ``merc``, zoom by zoom: ``row`` is the
    ``(C, 256, nx·256)`` float32 of tiles ``x0 .. x0+nx-1`` of tile row ``y``, warped from ``src``
    (NaN outside the raster). One ``WarpedVRT`` per zoom; one row in memory at a time."""
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT
    from rasterio.windows import Window

    nodata = src.nodata if src.nodata is not None else (None if src.count in (2, 4) else np.nan)
    for z in zooms:
        x0, y0, x1, y1 = tile_range(merc, z)
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
            for j in range(ny):
                row = vrt.read(window=Window(0, j * TILE, nx * TILE, TILE)).astype(np.float32)
                yield z, x0, y0 + j, row


def _png(rgba: np.ndarray) -> bytes:
    """``(256, 256, 4)`` uint8 RGBA as PNG bytes (fast compression: tiles are many and small)."""
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def _count(merc: tuple[float, float, float, float], zmin: int, zmax: int) -> int:
    """Tiles of zooms ``zmin..zmax`` covering Web-Mercator bounds ``merc``."""
    ranges = (tile_range(merc, z) for z in range(zmin, zmax + 1))
    return sum((x1 - x0 + 1) * (y1 - y0 + 1) for x0, y0, x1, y1 in ranges)


def _bounded_zoom(name: str, merc: tuple[float, float, float, float], zmin: int, zmax: int,
                  native: int, default: bool, max_tiles: int) -> int:  # fmt: skip
    """``zmax``, or the largest zoom whose pyramid has at most ``max_tiles`` tiles: lowered with a
    warning for a default ``zmax``, refused for a requested one (nothing is written then)."""
    total = _count(merc, zmin, zmax)
    fits = zmax
    while fits >= zmin and _count(merc, zmin, fits) > max_tiles:
        fits -= 1
    if fits < zmin:
        raise UserError(f"the tile pyramid of {name} would write {total:,} tiles (zooms {zmin}-"
                        f"{zmax}), over the limit of {max_tiles:,}; ask for a larger min_zoom")  # fmt: skip
    if fits < zmax and not default:
        raise UserError(
            f"the tile pyramid of {name} would write {total:,} tiles (zooms {zmin}-{zmax}), over "
            f"the limit of {max_tiles:,} (pyramid.MAX_TILES); ask for max_zoom={fits} or less"
        )
    if default and fits < native:
        why = f"over the limit of {max_tiles:,} tiles" if fits < zmax else f"MAX_ZOOM is {MAX_ZOOM}"
        more = f", {total:,} tiles to zoom {zmax}" if fits < zmax else ""
        warnings.warn(
            f"tile pyramid of {name}: writing zooms {zmin}-{fits} ({_count(merc, zmin, fits):,} "
            f"tiles), not down to its native zoom {native} ({why}{more}); the map enlarges zoom "
            f"{fits} beyond",
            stacklevel=3,
        )
    return fits


def real_folder(path: Path, root: Path) -> Path:
    """``path`` (under ``root``) as a real folder, created: a link or file on the way from ``root``
    is removed (with a warning; a link is never followed), so nothing is written outside ``root``."""
    here = Path(root)
    for part in Path(path).relative_to(root).parts:
        here = here / part
        if here.is_symlink() or (here.exists() and not here.is_dir()):
            warnings.warn(f"{here} is a link or a file where a folder of map tiles belongs; "
                          "replacing it (never followed)", CacheRepairWarning, stacklevel=3)  # fmt: skip
            here.unlink()
        here.mkdir(exist_ok=True)
    return Path(path)


def _write_new(path: Path, data: bytes) -> None:
    """Write ``data`` as a new file at ``path``: an old entry (file, link, hard link) is unlinked
    first, so nothing is ever written through a link."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _overview_level(src: Any, factor: float) -> int | None:
    """Index of the coarsest internal overview at most ``factor`` times coarser than ``src``."""
    best = None
    for i, f in enumerate(src.overviews(1)):
        if f <= factor:
            best = i
    return best
