"""Similarity search over a scene's patch embeddings, within and across sensors.

SMARTIES encodes every sensor into one feature space, so a patch of any sensor (a Sentinel-1 radar
chip, a Landsat-8 patch, a patch of the scene itself) can be compared with every patch of a scene:
the result is a georeferenced map of cosine similarities in ``[-1, 1]`` on the scene's patch grid.
The scene's embeddings may be a DataArray or a GeoTIFF written by :func:`embed_to_file`; a GeoTIFF
is read a block of rows at a time (memory bounded by the block, not the scene).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from smartiesviz.data.tiling import georeferenced
from smartiesviz.predict.embed import embed
from smartiesviz.predict.rasterfile import gdal_env

if TYPE_CHECKING:  # pragma: no cover
    import xarray as xr

ROWS_PER_BLOCK = 64


def row_blocks(embeddings: Any) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(row0, block)`` with ``block`` a float32 ``(D, rows, nx)`` slice of the grid."""
    if isinstance(embeddings, (str, os.PathLike)):
        import rasterio  # heavy optional: streamed reads of an embeddings GeoTIFF
        from rasterio.windows import Window

        with gdal_env(), rasterio.open(embeddings) as src:
            for r in range(0, src.height, ROWS_PER_BLOCK):
                h = min(ROWS_PER_BLOCK, src.height - r)
                yield r, src.read(window=Window(0, r, src.width, h)).astype(np.float32)
    else:
        values = embeddings.values
        for r in range(0, values.shape[1], ROWS_PER_BLOCK):
            yield r, np.asarray(values[:, r : r + ROWS_PER_BLOCK], np.float32)


def grid_of(embeddings: Any) -> tuple[Any, Any, int, int, int]:
    """``(crs, transform, D, ny, nx)`` of an embeddings grid (DataArray or GeoTIFF)."""
    if isinstance(embeddings, (str, os.PathLike)):
        import rasterio  # heavy optional: header of an embeddings GeoTIFF

        with rasterio.open(embeddings) as src:
            return src.crs, src.transform, src.count, src.height, src.width
    d, ny, nx = embeddings.shape
    return embeddings.rio.crs, embeddings.rio.transform(recalc=True), d, ny, nx


def cell_at(embeddings: Any, lat: float, lon: float) -> tuple[int, int]:
    """``(row, col)`` of the patch-grid cell under a WGS84 point; ValueError outside the grid."""
    from pyproj import Transformer  # lazy: pyproj loads the PROJ database; only for WGS84 bounds

    crs, transform, _, ny, nx = grid_of(embeddings)
    x, y = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(lon, lat)
    col, row = ~transform * (x, y)
    if not (0 <= row < ny and 0 <= col < nx):
        raise ValueError(f"({lat:.5f}, {lon:.5f}) is outside the scene")
    return int(row), int(col)


def vector_at(embeddings: Any, row: int, col: int) -> np.ndarray:
    """The ``(D,)`` embedding of one patch-grid cell."""
    if isinstance(embeddings, (str, os.PathLike)):
        import rasterio  # heavy optional: one pixel of an embeddings GeoTIFF
        from rasterio.windows import Window

        with rasterio.open(embeddings) as src:
            return src.read(window=Window(col, row, 1, 1))[:, 0, 0].astype(np.float32)
    return np.asarray(embeddings.values[:, row, col], np.float32)


def mean_embedding(embeddings: Any) -> np.ndarray:
    """The ``(D,)`` mean of a scene's valid patch embeddings (one streamed pass)."""
    total, count = None, 0
    for _, block in row_blocks(embeddings):
        flat = block.reshape(block.shape[0], -1)
        flat = flat[:, np.isfinite(flat).all(0)].astype(np.float64)
        total = flat.sum(1) if total is None else total + flat.sum(1)
        count += flat.shape[1]
    if not count:
        raise ValueError("the scene has no valid patch embedding (all nodata)")
    return (total / count).astype(np.float32)


def cosine_map(embeddings: Any, query: np.ndarray, center: np.ndarray | None = None) -> xr.DataArray:
    """Cosine similarity of every patch with ``query`` ``(D,)``: a ``(y, x)`` DataArray in
    ``[-1, 1]`` on the patch grid (NaN at masked patches).

    ``center`` ``(D,)`` (e.g. :func:`mean_embedding`) is subtracted from the query and every patch
    first: all patches of one scene share a large common component, so raw cosines crowd near 1
    (0.87 to 1 on the bundled scene with the demo model); centred ones spread over ``[-1, 1]``.
    """
    crs, transform, d, ny, nx = grid_of(embeddings)
    shift = np.zeros(d) if center is None else np.asarray(center, np.float64).reshape(-1)
    q = np.asarray(query, np.float64).reshape(-1) - shift
    if q.shape[0] != d:
        raise ValueError(f"query has {q.shape[0]} features; the scene's embeddings have {d}")
    if not np.isfinite(q).all() or not np.linalg.norm(q) > 0:
        raise ValueError("the query embedding is masked (nodata) or zero; pick another patch")
    q = q / np.linalg.norm(q)
    out = np.empty((ny, nx), np.float32)
    for r, block in row_blocks(embeddings):
        e = block.reshape(d, -1).astype(np.float64) - shift[:, None]
        sim = (q @ e) / np.maximum(np.linalg.norm(e, axis=0), 1e-12)
        out[r : r + block.shape[1]] = np.clip(sim, -1, 1).reshape(block.shape[1:])
    attrs = {"units": "cosine", "centered": int(center is not None)}
    return georeferenced(out, crs, transform, name="similarity", attrs=attrs)


def similarity_at(embeddings: Any, lat: float, lon: float, center: bool = True) -> xr.DataArray:
    """Similarity of every patch to the patch under ``(lat, lon)`` (which scores 1); ``center``
    subtracts the scene's mean embedding first (see :func:`cosine_map`).

    Returns:
        float32 ``(y, x)`` DataArray in ``[-1, 1]``, attrs ``query_row``, ``query_col``,
        ``query_lat``, ``query_lon``.
    """
    row, col = cell_at(embeddings, lat, lon)
    mean = mean_embedding(embeddings) if center else None
    sim = cosine_map(embeddings, vector_at(embeddings, row, col), mean)
    sim.values[row, col] = 1.0  # exactly 1 at the query (float rounding aside)
    sim.attrs.update(query_row=row, query_col=col, query_lat=lat, query_lon=lon)
    return sim


def query_embedding(cube: xr.DataArray, sensor: str | None = None, model: Any = None,
                    **options: Any) -> np.ndarray:  # fmt: skip
    """The ``(D,)`` mean patch embedding of a query image of any sensor (e.g. a 120 × 120 px
    Sentinel-1 chip), encoded by the same model as the scene. ``options``: see ``EmbedOptions``."""
    options.setdefault("progress", False)
    e = embed(cube, sensor, model, **options)
    rows = e.values.reshape(e.shape[0], -1)
    rows = rows[:, np.isfinite(rows).all(0)]
    if rows.shape[1] == 0:
        raise ValueError("the query image has no valid patch (all nodata)")
    return rows.mean(1)


def similarity_to(embeddings: Any, cube: xr.DataArray, sensor: str | None = None,
                  model: Any = None, center: bool = True, **options: Any) -> xr.DataArray:  # fmt: skip
    """Similarity of every scene patch to a query image of any sensor (its mean patch embedding);
    ``center`` subtracts the scene's mean embedding from both first.

    The scene's embeddings must come from the same ``model``. Returns a ``(y, x)`` DataArray in
    ``[-1, 1]`` with attrs ``query_sensor``.
    """
    q = query_embedding(cube, sensor, model, **options)
    sim = cosine_map(embeddings, q, mean_embedding(embeddings) if center else None)
    sim.attrs["query_sensor"] = str(sensor or cube.attrs.get("sensor"))
    return sim
