"""Streaming tiles of a scene on its patch grid, normalized one batch at a time.

A scene of ``H × W`` pixels has a patch grid of ``ceil(H/S) × ceil(W/S)`` cells (``S`` the patch
size); the last row/column of cells is completed by mirroring the scene's edge. Tiles of
``tile_size`` pixels cover the grid; with ``overlap`` each tile also reads ``overlap/2`` pixels of
context on every side and only its centre is kept, so predictions near tile borders see context.
Only one batch of tiles is read and normalized at a time, so memory does not grow with the scene
(for cubes opened lazily, e.g. ``rioxarray.open_rasterio``, only the batch's windows are read).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import xarray as xr


@dataclass(frozen=True)
class TileWindow:
    """One tile, in patch-grid cells and in pixels.

    Attributes:
        row, col: first patch-grid cell that this tile writes (its kept core).
        rows, cols: number of core cells written.
        y0, x0: pixel offset of the tile's top-left corner in the scene (may be negative: the
            tile then reads mirrored pixels beyond the edge).
        margin: cells of context on each side of the core, inside the tile.
    """

    row: int
    col: int
    rows: int
    cols: int
    y0: int
    x0: int
    margin: int


@dataclass(frozen=True)
class PatchGrid:
    """The patch grid of a scene and the tiles that cover it."""

    height: int
    width: int
    patch_size: int
    tile_size: int
    overlap: int = 0

    def __post_init__(self) -> None:
        s, t = self.patch_size, self.tile_size
        if t <= 0 or t % s:
            raise ValueError(f"tile_size ({t}) must be a positive multiple of the patch size ({s})")
        if self.overlap < 0 or self.overlap % (2 * s) or self.overlap >= t:
            raise ValueError(
                f"overlap ({self.overlap}) must be a multiple of 2 × patch size ({2 * s}) "
                f"and smaller than tile_size ({t})"
            )
        if self.height <= 0 or self.width <= 0:
            raise ValueError(f"scene must have pixels; got {self.height} × {self.width}")

    @property
    def shape(self) -> tuple[int, int]:
        """``(ny, nx)`` cells of the patch grid."""
        s = self.patch_size
        return math.ceil(self.height / s), math.ceil(self.width / s)

    @property
    def margin(self) -> int:
        return self.overlap // (2 * self.patch_size)

    @property
    def cells_per_tile(self) -> int:
        return self.tile_size // self.patch_size

    def windows(self) -> list[TileWindow]:
        """Tiles in row-major order whose cores partition the grid."""
        ny, nx = self.shape
        m, step, s = self.margin, self.cells_per_tile - 2 * self.margin, self.patch_size
        out = []
        for r in range(0, ny, step):
            for c in range(0, nx, step):
                out.append(
                    TileWindow(
                        r, c, min(step, ny - r), min(step, nx - c), (r - m) * s, (c - m) * s, m
                    )
                )
        return out


def clip_window(y0: int, x0: int, size: int, height: int, width: int) -> tuple[slice, slice, tuple]:
    """The part of a ``size``-pixel window at ``(y0, x0)`` inside the scene, and the padding
    (``numpy.pad`` widths for a ``(C, h, w)`` block) that completes it to the window."""
    ya, yb = max(y0, 0), min(y0 + size, height)
    xa, xb = max(x0, 0), min(x0 + size, width)
    pads = ((0, 0), (ya - y0, y0 + size - yb), (xa - x0, x0 + size - xb))
    return slice(ya, yb), slice(xa, xb), pads


def pad_block(block: np.ndarray, pads: tuple) -> np.ndarray:
    """Mirror a block beyond the scene edges (``numpy.pad`` mode ``symmetric``)."""
    if any(p for pair in pads for p in pair):
        block = np.pad(block, pads, mode="symmetric")
    return block


def iter_batches(
    cube: xr.DataArray,
    grid: PatchGrid,
    batch_size: int,
    normalizer: Callable[[xr.DataArray], np.ndarray],
    windows: Sequence[TileWindow] | None = None,
) -> Iterator[tuple[list[TileWindow], np.ndarray]]:
    """Yield ``(windows, x)`` with ``x`` a float32 ``(B, C, T, T)`` batch in model units.

    Neighbouring tiles of one tile row are read as one strip (only their own pixels), normalized
    with ``normalizer`` (a function of a raw ``(band, y, x)`` sub-cube returning a ``(C, h, w)``
    float array), cut into tiles and mirrored at the scene edges. Memory is bounded by the batch.
    """
    windows = grid.windows() if windows is None else list(windows)
    t = grid.tile_size
    for i in range(0, len(windows), batch_size):
        chunk = windows[i : i + batch_size]
        tiles = []
        for run in _row_runs(chunk, t):
            ys, _, _ = clip_window(run[0].y0, run[0].x0, t, grid.height, grid.width)
            xa = max(run[0].x0, 0)
            xb = min(run[-1].x0 + t, grid.width)
            strip = np.asarray(normalizer(cube.isel(y=ys, x=slice(xa, xb))), dtype=np.float32)
            for win in run:
                _, xs, pads = clip_window(win.y0, win.x0, t, grid.height, grid.width)
                tiles.append(pad_block(strip[:, :, xs.start - xa : xs.stop - xa], pads))
        yield chunk, np.stack(tiles)


def _row_runs(windows: Sequence[TileWindow], tile_size: int) -> list[list[TileWindow]]:
    """Split windows into runs of horizontally touching or overlapping tiles of one row."""
    runs: list[list[TileWindow]] = []
    for win in windows:
        prev = runs[-1][-1] if runs else None
        if prev is not None and prev.y0 == win.y0 and 0 < win.x0 - prev.x0 <= tile_size:
            runs[-1].append(win)
        else:
            runs.append([win])
    return runs


def scatter(
    out: np.ndarray, windows: Sequence[TileWindow], maps: np.ndarray, scale: int = 1
) -> None:
    """Write each tile's core of ``maps`` ``(B, L, t·scale, t·scale)`` into ``out``
    ``(L, ny·scale, nx·scale)`` (``scale`` = 1 for patch-grid maps, the patch size for pixels)."""
    for win, m in zip(windows, maps):
        r0, c0 = win.margin * scale, win.margin * scale
        rows, cols = win.rows * scale, win.cols * scale
        out[
            :, win.row * scale : win.row * scale + rows, win.col * scale : win.col * scale + cols
        ] = m[:, r0 : r0 + rows, c0 : c0 + cols]


def core_valid(win: TileWindow, scale: int, height: int, width: int) -> tuple[slice, slice]:
    """Slices of a tile's core (in units of ``scale`` pixels per cell) that lie inside the scene,
    relative to the tile (so mirrored padding beyond the scene edge is excluded)."""
    y0, x0 = win.row * scale, win.col * scale
    rows = min(win.rows * scale, height - y0)
    cols = min(win.cols * scale, width - x0)
    m = win.margin * scale
    return slice(m, m + rows), slice(m, m + cols)
