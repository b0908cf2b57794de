"""The one tiler: cut a georeferenced scene into tiles, batch them, put outputs back on its grid.

Two ways to tile, one module:

* **Windows for datasets and stitching** (:func:`tile`, :func:`stitch`, :func:`iter_batches`):
  see below. The widgets' row-major full tiles (:func:`full_tiles`, :func:`tile_values`) are the
  ``edge="drop"`` case of the same grid.
* **Streaming on the patch grid** (:class:`PatchGrid`, :func:`iter_grid_batches`, :func:`scatter`),
  used by ``embed`` and the map products: a scene of ``H × W`` pixels has a patch grid of
  ``ceil(H/S) × ceil(W/S)`` cells (``S`` the patch size); the last row/column of cells is completed
  by mirroring the scene's edge. Tiles of ``tile_size`` pixels cover the grid; with ``overlap``
  each tile also reads ``overlap/2`` pixels of context on every side and only its centre is kept.
  Only one batch of tiles is read and normalized at a time, so memory does not grow with the scene
  (a lazily opened cube only reads the batch's windows). Outputs are georeferenced with
  :func:`grid_transform` and :func:`georeferenced` (the scene transform scaled by the patch size).

Windows:

``tile(cube, size, stride)`` returns a :class:`TileSet`: a sequence of :class:`Tile` windows, each
with its pixel offset, affine transform, bounds in the scene CRS and in WGS84 (lon/lat, for maps).
Where the scene is not a whole number of strides, ``edge`` decides: ``"shift"`` (default) moves the
last row/column of tiles back inside the scene (they overlap their neighbours), ``"drop"`` leaves the
remainder out, ``"pad"`` adds tiles that reach past the edge, padded with NaN (which
:func:`~smartiesviz.data.normalize` masks).

``stitch(outputs, tiles)`` places per-tile outputs on the scene's grid and returns a
georeferenced ``(C', H', W')`` DataArray. An output may be at the tile's resolution (maps,
reconstructions: ``(C', size, size)``) or coarser by an integer factor (patch embeddings:
``(D, size/S, size/S)``); overlaps are averaged (in float64, so stitching the tiles of a cube gives
the cube back exactly).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np
import xarray as xr
from affine import Affine

from smartiesviz.data.readers import make_cube

Edge = Literal["shift", "drop", "pad"]
Reduce = Literal["mean", "last"]


@dataclass(frozen=True)
class Tile:
    """One window of a scene.

    Attributes:
        index: position in its :class:`TileSet`.
        row, col: pixel offset of the top-left corner in the scene (with ``edge="pad"`` a tile may
            reach past the bottom/right edge).
        size: tile side in pixels.
        transform: affine transform of the tile (top-left corner).
        bounds: ``(left, bottom, right, top)`` in the scene CRS.
        bounds_wgs84: ``(west, south, east, north)`` in degrees, or ``None`` without a CRS.
    """

    index: int
    row: int
    col: int
    size: int
    transform: Any
    bounds: tuple[float, float, float, float]
    bounds_wgs84: tuple[float, float, float, float] | None


class TileSet(Sequence[Tile]):
    """The tiles of one scene, with the scene's grid.

    Attributes:
        cube: the (possibly NaN-padded) scene the tiles index into.
        height, width: the original scene's size in pixels.
        size, stride: tile side and step in pixels.
        transform, crs: the scene's georeference.
    """

    def __init__(
        self, cube: xr.DataArray, tiles: list[Tile], height: int, width: int, size: int, stride: int
    ):
        self.cube = cube
        self._tiles = tiles
        self.height, self.width = height, width
        self.size, self.stride = size, stride
        self.transform = cube.rio.transform()
        self.crs = cube.rio.crs

    def __len__(self) -> int:
        return len(self._tiles)

    def __getitem__(self, i: Any) -> Any:
        return self._tiles[i]

    def __repr__(self) -> str:
        return (
            f"TileSet({len(self)} tiles of {self.size}px, stride {self.stride}, "
            f"scene {self.height}×{self.width}, bands {list(self.bands)})"
        )

    @property
    def bands(self) -> list[str]:
        return [str(b) for b in self.cube["band"].values]

    def values(self, tile: Tile | int) -> np.ndarray:
        """``(C, size, size)`` array of a tile (a view of the scene when it is in memory)."""
        t = self._tiles[tile] if isinstance(tile, int) else tile
        return np.asarray(self.cube.data[:, t.row : t.row + t.size, t.col : t.col + t.size])

    def data(self, tile: Tile | int) -> xr.DataArray:
        """A tile as a georeferenced ``(C, size, size)`` DataArray (writable with ``.rio.to_raster``)."""
        t = self._tiles[tile] if isinstance(tile, int) else tile
        sub = self.cube.isel(y=slice(t.row, t.row + t.size), x=slice(t.col, t.col + t.size))
        return sub.rio.write_transform(t.transform)


def _starts(n: int, size: int, stride: int, edge: str) -> list[int]:
    if n <= size:
        if n < size and edge != "pad":
            raise ValueError(
                f"the scene ({n} px along one axis) is smaller than the tile size ({size}); "
                "use edge='pad' or a smaller size"
            )
        return [0]
    starts = list(range(0, n - size + 1, stride))
    last_end = starts[-1] + size
    if last_end < n:
        if edge == "shift":
            starts.append(n - size)
        elif edge == "pad":
            starts.append(starts[-1] + stride)
    return starts


def tile(
    cube: xr.DataArray,
    size: int,
    stride: int | None = None,
    edge: Edge = "shift",
) -> TileSet:
    """Cut a ``(C, H, W)`` scene into ``size × size`` tiles every ``stride`` pixels.

    Args:
        cube: georeferenced cube (rioxarray transform; a CRS for WGS84 bounds).
        size: tile side in pixels.
        stride: step between tiles (default ``size``: no overlap).
        edge: ``"shift"``, ``"drop"`` or ``"pad"`` (see the module docstring).

    Returns:
        A :class:`TileSet`, row-major (top row of tiles first).
    """
    if not isinstance(cube, xr.DataArray) or cube.dims != ("band", "y", "x"):
        raise ValueError(
            f"expected a (band, y, x) DataArray; got {getattr(cube, 'dims', type(cube))}"
        )
    stride = stride or size
    if size <= 0 or stride <= 0:
        raise ValueError(f"size ({size}) and stride ({stride}) must be positive")
    if edge not in ("shift", "drop", "pad"):
        raise ValueError(f"edge={edge!r}; expected 'shift', 'drop' or 'pad'")
    h, w = cube.sizes["y"], cube.sizes["x"]
    rows, cols = _starts(h, size, stride, edge), _starts(w, size, stride, edge)
    scene = cube
    need_h, need_w = rows[-1] + size, cols[-1] + size
    if need_h > h or need_w > w:
        scene = _pad_nan(cube, need_h, need_w)
    transform = cube.rio.transform()
    crs = cube.rio.crs
    to_wgs84 = None
    if crs is not None:
        # lazy: pyproj loads the PROJ database; only for WGS84 bounds
        from pyproj import Transformer

        to_wgs84 = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    tiles = []
    for r in rows:
        for c in cols:
            t = transform @ _translation(c, r)
            bounds = corner_bounds(t, size, size)
            geo = None
            if to_wgs84 is not None:
                geo = tuple(float(v) for v in to_wgs84.transform_bounds(*bounds, densify_pts=11))
            tiles.append(Tile(len(tiles), r, c, size, t, bounds, geo))
    return TileSet(scene, tiles, h, w, size, stride)


def _translation(col: int, row: int) -> Any:
    return Affine.translation(col, row)


def corner_bounds(t: Any, width: float, height: float) -> tuple[float, float, float, float]:
    """``(left, bottom, right, top)`` around the four corners (exact for rotated grids too)."""
    corners = [(c, r) for c in (0, width) for r in (0, height)]
    xs = [t.c + t.a * c + t.b * r for c, r in corners]
    ys = [t.f + t.d * c + t.e * r for c, r in corners]
    return min(xs), min(ys), max(xs), max(ys)


def _pad_nan(cube: xr.DataArray, height: int, width: int) -> xr.DataArray:
    c, h, w = cube.shape
    data = np.full((c, height, width), np.nan, dtype=np.result_type(cube.dtype, np.float32))
    data[:, :h, :w] = cube.values
    out = make_cube(
        data, cube.rio.transform(), cube.rio.crs, [str(b) for b in cube["band"].values], cube.attrs
    )
    return out


class TileBatch(NamedTuple):
    """A batch of tiles: ``x`` is ``(B, C, size, size)`` (torch float32, or numpy), ``tiles`` the
    :class:`Tile` of each row."""

    x: Any
    tiles: list[Tile]


def iter_batches(
    tiles: TileSet, batch_size: int = 16, as_tensor: bool = True
) -> Iterator[TileBatch]:
    """Yield :class:`TileBatch` es of ``batch_size`` tiles (the last may be smaller), in order.

    Args:
        tiles: from :func:`tile` (of a normalized cube, for a model).
        batch_size: tiles per batch.
        as_tensor: torch ``float32`` tensors (``True``) or numpy arrays.
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive; got {batch_size}")
    for start in range(0, len(tiles), batch_size):
        chunk = list(tiles[start : start + batch_size])
        x = np.stack([tiles.values(t) for t in chunk]).astype(np.float32, copy=False)
        if as_tensor:
            import torch  # lazy: only for as_tensor; data.tiling stays torch-free

            x = torch.from_numpy(np.ascontiguousarray(x))
        yield TileBatch(x, chunk)


def _as_numpy(a: Any) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a)


def stitch(
    outputs: Any,
    tiles: TileSet,
    bands: Sequence[str] | None = None,
    reduce: Reduce = "mean",
) -> xr.DataArray:
    """Place per-tile outputs on the scene grid.

    Args:
        outputs: ``(N, C', h, w)`` array/tensor or a sequence of ``N`` ``(C', h, w)`` (or ``(h, w)``)
            arrays, one per tile in ``tiles`` order; ``h = w = size / f`` for an integer factor ``f``
            (1 for maps and reconstructions, the patch size for patch embeddings).
        tiles: the :class:`TileSet` the outputs were computed on.
        bands: names for the ``C'`` output channels (default: the scene's band names when ``C'``
            equals their number, else ``0 … C'-1``).
        reduce: ``"mean"`` (overlaps averaged) or ``"last"`` (later tiles overwrite).

    Returns:
        ``(C', ceil(H/f), ceil(W/f))`` float DataArray with the scene's CRS and a transform of
        pixel size ``f`` × the scene's; pixels no tile covered are NaN. A ``coverage`` coordinate
        ``(y, x)`` counts the tiles that wrote each pixel.
    """
    if reduce not in ("mean", "last"):
        raise ValueError(f"reduce={reduce!r}; expected 'mean' or 'last'")
    arrs = _tile_outputs(outputs, len(tiles))
    c = arrs[0].shape[0]
    f = _output_factor(tiles, arrs[0].shape[1], arrs[0].shape[2])
    data, count = _accumulate(arrs, tiles, f, reduce)
    dtype = np.result_type(arrs[0].dtype, np.float32)
    scene_bands = tiles.bands
    if bands is None:
        bands = scene_bands if c == len(scene_bands) else [str(i) for i in range(c)]
    elif len(bands) != c:
        raise ValueError(f"{len(bands)} band names for outputs with {c} channels")
    return _stitched_cube(data.astype(dtype), count, tiles, f, list(bands))


def _tile_outputs(outputs: Any, n_tiles: int) -> list[np.ndarray]:
    """The outputs of :func:`stitch` as ``n_tiles`` numpy arrays of one ``(C', h, w)`` shape."""
    if hasattr(outputs, "shape") and not isinstance(outputs, list | tuple):
        arrs = list(_as_numpy(outputs))
    else:
        arrs = [_as_numpy(o) for o in outputs]
    if len(arrs) != n_tiles:
        raise ValueError(f"{len(arrs)} outputs for {n_tiles} tiles")
    arrs = [a[None] if a.ndim == 2 else a for a in arrs]
    c, oh, ow = arrs[0].shape
    if any(a.shape != (c, oh, ow) for a in arrs):
        raise ValueError("all tile outputs must have the same shape")
    return arrs


def _output_factor(tiles: TileSet, oh: int, ow: int) -> int:
    """``f``: how many scene pixels one side of an ``oh × ow`` tile output's pixel spans, checked
    to divide the tile size and every tile's offset."""
    size = tiles.size
    if oh != ow or size % oh:
        raise ValueError(
            f"tile outputs of {oh}×{ow} do not divide the tile size {size} by a whole factor"
        )
    f = size // oh
    for t in tiles:
        if t.row % f or t.col % f:
            raise ValueError(
                f"tile at pixel ({t.row}, {t.col}) is not on the output's {f}-pixel grid; tile with a "
                f"stride that is a multiple of {f} and edge='pad' or 'drop'"
            )
    return f


def _accumulate(
    arrs: list[np.ndarray], tiles: TileSet, f: int, reduce: Reduce
) -> tuple[np.ndarray, np.ndarray]:
    """``(data, count)`` on the output grid (``ceil(H/f) × ceil(W/f)``): ``data`` ``(C', h, w)``
    float64, the mean (or last) of the tiles over each pixel, NaN where none; ``count`` ``(h, w)``
    int32, the tiles that wrote each pixel."""
    c, oh, ow = arrs[0].shape
    canvas_h = max(t.row for t in tiles) // f + oh
    canvas_w = max(t.col for t in tiles) // f + ow
    acc = np.zeros((c, canvas_h, canvas_w), dtype=np.float64)
    count = np.zeros((canvas_h, canvas_w), dtype=np.int32)
    for t, a in zip(tiles, arrs):
        r, q = t.row // f, t.col // f
        if reduce == "mean":
            acc[:, r : r + oh, q : q + ow] += a
        else:
            acc[:, r : r + oh, q : q + ow] = a
        count[r : r + oh, q : q + ow] += 1
    out_h, out_w = math.ceil(tiles.height / f), math.ceil(tiles.width / f)
    acc, count = acc[:, :out_h, :out_w], count[:out_h, :out_w]
    with np.errstate(invalid="ignore", divide="ignore"):
        divisor = np.maximum(count, 1) if reduce == "mean" else np.ones_like(count)
        data = np.where(count > 0, acc / divisor, np.nan)
    return data, count


def _stitched_cube(
    data: np.ndarray, count: np.ndarray, tiles: TileSet, f: int, bands: list[str]
) -> xr.DataArray:
    """``data`` ``(C', h, w)`` georeferenced on the scene's grid coarsened by ``f``, with a
    ``coverage`` coordinate (``count``); the scene's sensor and units kept for its own bands."""
    transform = tiles.transform @ Affine.scale(f)
    attrs = {
        k: v
        for k, v in tiles.cube.attrs.items()
        if k in ("sensor", "units") and bands == tiles.bands
    }
    resolution = float(math.hypot(transform.a, transform.d))  # the pixel side, rotated or not
    attrs.update(resolution=resolution, stitched_tiles=len(tiles), tile_size=tiles.size)
    out = make_cube(data, transform, tiles.crs, bands, attrs)
    return out.assign_coords(coverage=(("y", "x"), count))


# ------------------------------------------------------------------------- full tiles (widgets)
def full_tiles(height: int, width: int, size: int) -> tuple[int, int]:
    """Rows and columns of whole ``size``-pixel tiles in an ``height × width`` scene (row-major,
    remainder dropped: the ``edge="drop"`` grid of :func:`tile`)."""
    return height // size, width // size


def tile_values(values: np.ndarray, index: int, size: int) -> np.ndarray:
    """Tile ``index`` (row-major over :func:`full_tiles`) of a ``(C, H, W)`` array: ``(C, size, size)``."""
    rows, cols = full_tiles(values.shape[-2], values.shape[-1], size)
    if not 0 <= index < rows * cols:
        raise ValueError(
            f"tile {index} out of range: the scene has {rows * cols} tiles of {size} px"
        )
    r, c = divmod(int(index), cols)
    return values[..., r * size : (r + 1) * size, c * size : (c + 1) * size]


# ----------------------------------------------------------------- streaming on the patch grid
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


def iter_grid_batches(
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


#: Share of a window that neighbouring windows overlap by for seamless products.
OVERLAP_SHARE = 0.5
Overlap = int | Literal["auto"]


def seamless_overlap(tile_size: int, patch_size: int) -> int:
    """The overlap of seamless products: half the window (:data:`OVERLAP_SHARE`), rounded down
    to a multiple of twice the patch size (windows stay patch-aligned): 32 px for 64-px windows.

    Why half: neighbouring windows are cross-faded over their overlap (:class:`Blender`), and on
    the bundled scene with the demo model a quarter (16 px) or 3/8 (24 px) of the window still
    leaves k-means classes and similarity jumping at window boundaries (boundary-jump ratio about
    1.6 at 16 px, 1.3 at 24 px; 1.1 at half, ``benchmarks/seams.py``). The cost is
    ``(T / (T - overlap))²`` model passes: 4× at half."""
    unit = 2 * patch_size
    overlap = int(tile_size * OVERLAP_SHARE) // unit * unit
    return overlap if overlap < tile_size else 0


def resolve_overlap(overlap: Overlap, tile_size: int, patch_size: int) -> int:
    """``overlap`` in pixels: ``"auto"`` is :func:`seamless_overlap`; a number is checked as a
    :class:`PatchGrid` checks it (ValueError naming the value)."""
    if overlap == "auto":
        return seamless_overlap(tile_size, patch_size)
    if isinstance(overlap, bool) or not isinstance(overlap, int):
        raise ValueError(f"overlap must be a number of pixels or 'auto'; got {overlap!r}")
    PatchGrid(tile_size, tile_size, patch_size, tile_size, overlap)  # refuses a bad overlap
    return overlap


def blend_ramp(cells: int, margin: int, scale: int = 1) -> np.ndarray:
    """``(cells·scale,)`` weights of one window side: 1 in the middle, a linear ramp over the
    ``2·margin`` cells at each end, so that the weights of two windows overlapping by ``2·margin``
    cells (a :class:`PatchGrid` row) sum to 1 over their overlap."""
    n, ramp = cells * scale, 2 * margin * scale
    w = np.ones(n, np.float32)
    if ramp:
        up = (np.arange(ramp, dtype=np.float32) + 0.5) / ramp
        w[:ramp], w[n - ramp :] = up, up[::-1]
    return w


class Blender:
    """Blend overlapping window outputs into the scene grid, streaming finished row strips.

    Keeping only each window's centre still leaves a step where two windows meet (a ViT's tokens
    near a window's edge differ from those of the same place seen mid-window); weighting each
    window by :func:`blend_ramp` in both directions cross-fades neighbours over their whole
    overlap instead. The weights are separable and the windows a product grid, so their sum is
    ``wy[y] · wx[x]`` (two vectors); a NaN (no data) in a window's output stays NaN (validity is
    the same in every window that sees a patch). Windows must come in :meth:`PatchGrid.windows`
    order (row-major); memory is ``channels × window rows × width`` floats, not the scene.

    Args:
        grid: the windows' :class:`PatchGrid`.
        channels: ``C`` of each window output.
        scale: output pixels per patch-grid cell (1 for patch maps, the patch size for pixels).
    """

    def __init__(self, grid: PatchGrid, channels: int, scale: int = 1) -> None:
        self.grid, self.channels, self.scale = grid, int(channels), int(scale)
        ny, nx = grid.shape
        self.height, self.width = ny * scale, nx * scale
        self.ramp = blend_ramp(grid.cells_per_tile, grid.margin, scale)
        step = grid.cells_per_tile - 2 * grid.margin
        self.wy = self._weight_sum(ny, step)
        self.wx = self._weight_sum(nx, step)
        self.acc = np.zeros((self.channels, len(self.ramp), self.width), np.float32)
        self.top = 0  # scene row (output pixels) of the buffer's first row

    def _weight_sum(self, cells: int, step: int) -> np.ndarray:
        """Summed ramp weights along one axis of ``cells`` cells (windows every ``step``)."""
        k, n, t = self.scale, cells * self.scale, len(self.ramp)
        total = np.zeros(n + 2 * t, np.float32)  # padded: windows reach past both edges
        for start in range(0, cells, step):
            a = (start - self.grid.margin) * k + t
            total[a : a + t] += self.ramp
        return total[t : t + n]

    def add(
        self, windows: Sequence[TileWindow], maps: np.ndarray
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Add ``maps`` ``(B, C, T·scale, T·scale)`` of ``windows``; yield ``(row0, block)`` for
        each strip that no later window touches: ``block`` float32 ``(C, rows, nx·scale)``."""
        k, tsz = self.scale, len(self.ramp)
        for win, m in zip(windows, maps):
            y0, x0 = (win.row - win.margin) * k, (win.col - win.margin) * k
            yield from self._flush(max(y0, 0))
            ya, yb = max(y0, 0), min(y0 + tsz, self.height)
            xa, xb = max(x0, 0), min(x0 + tsz, self.width)
            w = self.ramp[ya - y0 : yb - y0, None] * self.ramp[None, xa - x0 : xb - x0]
            part = np.asarray(m[:, ya - y0 : yb - y0, xa - x0 : xb - x0], np.float32)
            self.acc[:, ya - self.top : yb - self.top, xa:xb] += part * w

    def blend(
        self, batches: Iterable[tuple[Sequence[TileWindow], np.ndarray]]
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Every strip of ``(windows, maps)`` batches: :meth:`add` each, then :meth:`finish`."""
        for windows, maps in batches:
            yield from self.add(windows, maps)
        yield from self.finish()

    def finish(self) -> Iterator[tuple[int, np.ndarray]]:
        """Yield the remaining strips (after the last :meth:`add`)."""
        yield from self._flush(self.height)

    def _flush(self, upto: int) -> Iterator[tuple[int, np.ndarray]]:
        n = min(upto, self.height) - self.top
        if n <= 0:
            return
        block = self.acc[:, :n] / self.wy[self.top : self.top + n, None]
        block /= self.wx
        yield self.top, block
        rows = self.acc.shape[1]
        self.acc[:, : rows - n] = self.acc[:, n:]
        self.acc[:, rows - n :] = 0
        self.top += n


# --------------------------------------------------------------------------- output geography
def is_rotated(transform: Any) -> bool:
    """Whether an affine transform rotates or shears (nonzero ``b``/``d`` terms)."""
    return bool(transform.b or transform.d)


def cube_transform(cube: xr.DataArray) -> Any:
    """The affine transform of a cube's top-left pixel corner, exact for any affine.

    A rotated or sheared grid (which rioxarray opens without ``x``/``y`` coordinates) keeps the
    file's own transform; a north-up grid is recomputed from its coordinates (so a sliced cube is
    right); no coordinates and no transform give the identity (pixel coordinates).
    """
    import rioxarray  # noqa: F401  (registers the .rio accessor)

    stored = cube.rio.transform()
    if is_rotated(stored):
        return stored
    if "x" in cube.coords and "y" in cube.coords and cube.sizes["x"] > 1 and cube.sizes["y"] > 1:
        return cube.rio.transform(recalc=True)
    return stored


def grid_transform(cube: xr.DataArray, factor: int) -> tuple[Any, Any]:
    """CRS and the affine transform of a grid ``factor`` times coarser than the cube's (the patch
    grid for ``factor`` = patch size): ``cube_transform(cube) * Affine.scale(factor)``, exact for
    rotated and sheared grids too.

    Returns:
        ``(crs, transform)``; ``crs`` is ``None`` when the cube has none, or when it has no
        geotransform (a CRS with the identity transform, e.g. a file georeferenced only by GCPs
        or RPCs): such a grid is in pixel coordinates, placed nowhere.
    """
    crs = cube.rio.crs
    transform = cube_transform(cube)
    if transform == Affine.identity():
        crs = None
    return crs, transform @ Affine.scale(factor)


def georeferenced(
    values: np.ndarray,
    crs: Any,
    transform: Any,
    leading: tuple[str, Sequence[Any]] | None = None,
    name: str | None = None,
    attrs: dict[str, Any] | None = None,
) -> xr.DataArray:
    """Wrap a ``([L,] ny, nx)`` array as a DataArray on the grid of ``transform`` with ``crs``.

    Coordinates are cell centres, as rioxarray expects; a rotated or sheared grid has none (as
    rioxarray opens one): its exact transform is stored. ``leading`` names the first dim and its
    coordinate (e.g. ``("feature", range(D))``).
    """
    import rioxarray  # noqa: F401  (registers the .rio accessor)

    ny, nx = values.shape[-2:]
    coords: dict[str, Any] = {}
    if not is_rotated(transform):
        coords["y"] = transform.f + (np.arange(ny) + 0.5) * transform.e
        coords["x"] = transform.c + (np.arange(nx) + 0.5) * transform.a
    dims: tuple[str, ...] = ("y", "x")
    if leading is not None:
        dims = (leading[0], *dims)
        coords[leading[0]] = list(leading[1])
    da = xr.DataArray(values, dims=dims, coords=coords, name=name, attrs=dict(attrs or {}))
    # in place: rioxarray otherwise deep-copies the (possibly large) values twice
    if crs is not None:
        da.rio.write_crs(crs, inplace=True)
    da.rio.write_transform(transform, inplace=True)
    return da
