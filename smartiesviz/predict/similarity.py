"""Similarity search over a scene's patch embeddings, within and across sensors.

SMARTIES encodes every sensor into one feature space, so a patch of any sensor (a Sentinel-1 radar
chip, a Landsat-8 patch, a patch of the scene itself) can be compared with every patch of a scene:
the result is a georeferenced map of cosine similarities in ``[-1, 1]`` on the scene's patch grid.
The scene's embeddings may be a DataArray or a GeoTIFF written by :func:`embed_to_file`; a GeoTIFF
is read a block of rows at a time (memory bounded by the block, not the scene).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from smartiesviz.data.tiling import georeferenced
from smartiesviz.predict.embed import embed
from smartiesviz.predict.rasterfile import gdal_env

if TYPE_CHECKING:  # pragma: no cover
    import xarray as xr

ROWS_PER_BLOCK = 64
#: Values read at once (16 MB of float32): rows (or bands) per read shrink as the grid widens, so
#: memory per read stays constant whatever the scene's size.
BLOCK_VALUES = 4_000_000


def row_blocks(embeddings: Any) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(row0, block)`` with ``block`` a float32 ``(D, rows, nx)`` slice of the grid, at
    most :data:`ROWS_PER_BLOCK` rows and about :data:`BLOCK_VALUES` values (at least one row)."""
    _, _, d, ny, nx = grid_of(embeddings)
    rows = int(np.clip(BLOCK_VALUES // max(1, d * nx), 1, ROWS_PER_BLOCK))
    for r, _, chunks in strips(embeddings, rows, d):
        for _, block in chunks():
            yield r, block


def strips(embeddings: Any, rows: int | None = None, bands: int | None = None,
           ) -> Iterator[tuple[int, int, Callable[[], Iterator[tuple[int, np.ndarray]]]]]:  # fmt: skip
    """Yield ``(row0, height, chunks)`` per strip of ``rows`` grid rows (default: the file's block
    height, or :data:`ROWS_PER_BLOCK`); ``chunks()`` yields ``(band0, (k, height, nx) float32)``
    reads of ``bands`` features at a time (default: about :data:`BLOCK_VALUES` values), and may be
    called again to re-read the strip. Reading whole file blocks band by band reads each block of
    a band-interleaved GeoTIFF once, with memory bounded by one read, not by the grid."""
    if isinstance(embeddings, (str, os.PathLike)):
        import rasterio  # heavy optional: streamed reads of an embeddings GeoTIFF
        from rasterio.windows import Window

        with gdal_env(), rasterio.open(embeddings) as src:
            d, ny, nx = src.count, src.height, src.width
            rows = rows or src.block_shapes[0][0]
            k = bands or max(1, min(d, BLOCK_VALUES // (rows * nx)))
            for r in range(0, ny, rows):
                h = min(rows, ny - r)

                def chunks(r: int = r, h: int = h) -> Iterator[tuple[int, np.ndarray]]:
                    for b in range(0, d, k):
                        idx = list(range(b + 1, min(d, b + k) + 1))
                        block = src.read(idx, window=Window(0, r, nx, h))
                        yield b, block.astype(np.float32, copy=False)

                yield r, h, chunks
    else:
        values = embeddings.values
        d, ny, nx = values.shape
        rows = rows or ROWS_PER_BLOCK
        k = bands or max(1, min(d, BLOCK_VALUES // (rows * nx)))
        for r in range(0, ny, rows):
            h = min(rows, ny - r)

            def chunks(r: int = r, h: int = h) -> Iterator[tuple[int, np.ndarray]]:
                for b in range(0, d, k):
                    yield b, np.asarray(values[b : b + k, r : r + h], np.float32)

            yield r, h, chunks


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
    col, row = ~transform @ (x, y)
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
    """The ``(D,)`` mean of a scene's valid patch embeddings (a patch is valid when all its
    features are finite), streamed strip by strip, band chunk by band chunk."""
    total, count = None, 0
    for _, _, chunks in strips(embeddings):
        valid = None
        for _, block in chunks():  # first pass: patches finite in every feature
            ok = np.isfinite(block).all(0)
            valid = ok if valid is None else valid & ok
        parts = [block[:, valid].astype(np.float64).sum(1) for _, block in chunks()]
        part = np.concatenate(parts)
        total = part if total is None else total + part
        count += int(valid.sum())
    if not count:
        raise ValueError("the scene has no valid patch embedding (all nodata)")
    return (total / count).astype(np.float32)


def cosine_map(embeddings: Any, query: np.ndarray, center: np.ndarray | None = None) -> xr.DataArray:
    """Cosine similarity of every patch with ``query`` ``(D,)``: a ``(y, x)`` DataArray in
    ``[-1, 1]`` on the patch grid (NaN at masked patches).

    ``center`` ``(D,)`` (e.g. :func:`mean_embedding`) is subtracted from the query and every patch
    first: all patches of one scene share a large common component, so raw cosines crowd near 1
    (0.87 to 1 on the bundled scene with the demo model); centred ones spread over ``[-1, 1]``.
    Dot products and norms are accumulated band chunk by band chunk (:func:`strips`): memory is
    the ``(ny, nx)`` output plus one read, whatever the number of features or patches.
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
    for r, h, chunks in strips(embeddings):
        dot, sq = np.zeros((h, nx)), np.zeros((h, nx))
        for b, block in chunks():
            e = block.astype(np.float64) - shift[b : b + len(block), None, None]
            dot += np.tensordot(q[b : b + len(block)], e, 1)
            sq += np.einsum("bij,bij->ij", e, e)
        sim = dot / np.maximum(np.sqrt(sq), 1e-12)
        out[r : r + h] = np.clip(sim, -1, 1)
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
                  model: Any = None, center: bool = True,
                  **options: Any) -> xr.DataArray | dict[str, xr.DataArray]:  # fmt: skip
    """Similarity of every scene patch to a query image of any sensor (its mean patch embedding);
    ``center`` subtracts the scene's mean embedding from both first.

    The scene's embeddings must come from the same ``model``. Returns a ``(y, x)`` DataArray in
    ``[-1, 1]`` with attrs ``query_sensor``.

    ``embeddings`` may also be an archive's catalogue (``catalog.json``, its folder, or
    :func:`~smartiesviz.predict.catalog.open_catalog` entries): the query is then compared with
    every scene of the archive (encoded with the archive's ``token_norm``), with ``center`` the
    mean of each sensor over the archive subtracted from its scenes and from a query of that
    sensor (:func:`~smartiesviz.predict.catalog.archive_centers`), and the result is a
    ``dict`` of such maps keyed by scene id (rank patches across scenes with
    :func:`~smartiesviz.predict.catalog.search`).
    """
    from smartiesviz.predict import catalog  # lazy: only for archives

    if catalog.is_catalog(embeddings):
        entries = catalog.entries_of(embeddings)
        norms = {e.properties.get("smartiesviz:token_norm") for e in entries} - {None}
        if len(norms) == 1:  # encode the query as the archive was
            options.setdefault("token_norm", norms.pop())
        q = query_embedding(cube, sensor, model, **options)
        centers = catalog.archive_centers(entries, "sensor" if center else "none")
        q_sensor = str(sensor or cube.attrs.get("sensor"))
        # the query is centred by its own sensor's archive mean when the archive has one
        own = next((centers[e.id] for e in entries if e.sensor == q_sensor), None)
        maps = {}
        for entry in entries:
            c = centers[entry.id]
            shifted = q if own is None or c is None else q - own + c  # cosine_map subtracts c
            maps[entry.id] = cosine_map(entry.path, shifted, c)
            maps[entry.id].attrs.update(query_sensor=q_sensor, scene_sensor=str(entry.sensor))
        return maps
    q = query_embedding(cube, sensor, model, **options)
    sim = cosine_map(embeddings, q, mean_embedding(embeddings) if center else None)
    sim.attrs["query_sensor"] = str(sensor or cube.attrs.get("sensor"))
    return sim
