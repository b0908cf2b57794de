"""How visible the tile grid is in a map product: the boundary-jump ratio.

A ViT sees one window of the scene at a time, so a product computed window by window can jump
where one window's kept core meets the next (a tile grid on the map). :func:`boundary_jumps`
measures it: the mean jump between neighbouring patches whose shared edge is a window-core
boundary, divided by the mean jump between neighbouring patches inside one core. About 1 means
the grid is invisible (boundaries look like any other patch edge); issue 27 asks for at most 1.2.

Window cores start at patch-grid cell 0 and repeat every ``step`` cells along both axes (the
:class:`~smartiesviz.data.tiling.PatchGrid` layout: ``step = cells_per_tile - 2 × margin``), so
the boundaries sit before cells ``step, 2·step, …``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from smartiesviz.data.tiling import PatchGrid

JumpKind = Literal["continuous", "classes"]


@dataclass(frozen=True)
class SeamStats:
    """Jumps between neighbouring patches of a product.

    Attributes:
        across: mean jump over pairs whose shared edge is a window-core boundary.
        inside: mean jump over pairs inside one window core.
        ratio: ``across / inside`` (``inf`` when ``inside`` is 0 and ``across`` is not, 1 when
            both are 0).
        n_across, n_inside: pairs counted (pairs with a NaN cell are skipped).
    """

    across: float
    inside: float
    ratio: float
    n_across: int
    n_inside: int


def core_step(grid: PatchGrid) -> int:
    """Cells between window-core boundaries of ``grid``."""
    return grid.cells_per_tile - 2 * grid.margin


def patch_means(values: np.ndarray, scale: int) -> np.ndarray:
    """``(C, H, W)`` pixels → ``(C, ceil(H/scale), ceil(W/scale))`` NaN-ignoring patch means
    (a partial patch at the bottom/right edge averages the pixels it has)."""
    c, h, w = values.shape
    ny, nx = -(-h // scale), -(-w // scale)
    padded = np.full((c, ny * scale, nx * scale), np.nan, np.float64)
    padded[:, :h, :w] = values
    blocks = padded.reshape(c, ny, scale, nx, scale)
    valid = np.isfinite(blocks)
    total = np.where(valid, blocks, 0).sum(axis=(2, 4))
    count = valid.sum(axis=(2, 4))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def boundary_jumps(
    product: np.ndarray, step: int, scale: int = 1, kind: JumpKind = "continuous"
) -> SeamStats:
    """Mean jump across window-core boundaries against the mean jump inside cores.

    Args:
        product: ``(H, W)`` or ``(C, H, W)`` array, NaN = no data. On the patch grid
            (``scale=1``) or on the pixel grid (``scale`` = the patch size: pixels are first
            averaged per patch, so "neighbouring patches" means the same on both grids).
        step: window-core side in patch-grid cells (:func:`core_step`).
        scale: pixels per patch-grid cell along each axis.
        kind: ``"continuous"``: a jump is the Euclidean distance between the two patches'
            ``C`` values; ``"classes"``: 1 where the two labels differ, else 0 (``C`` must be 1).

    Returns:
        :class:`SeamStats`. Scene edges are not boundaries; both axes are pooled.
    """
    if step < 1 or scale < 1:
        raise ValueError(f"step ({step}) and scale ({scale}) must be positive")
    values = np.asarray(product, np.float64)
    values = values[None] if values.ndim == 2 else values
    if values.ndim != 3:
        raise ValueError(f"product must be (H, W) or (C, H, W); got shape {product.shape}")
    if kind not in ("continuous", "classes"):
        raise ValueError(f"kind must be 'continuous' or 'classes'; got {kind!r}")
    if kind == "classes" and values.shape[0] != 1:
        raise ValueError(f"a class product has one channel; got {values.shape[0]}")
    cells = patch_means(values, scale) if scale > 1 else values
    sums = {True: [0.0, 0], False: [0.0, 0]}
    for axis in (1, 2):  # rows (vertical neighbours), then columns
        a = np.moveaxis(cells, axis, 1)  # (C, n, m): pairs (i-1, i) along the second axis
        prev, nxt = a[:, :-1], a[:, 1:]
        if kind == "classes":
            jump = (prev[0] != nxt[0]).astype(np.float64)
        else:
            jump = np.sqrt(((nxt - prev) ** 2).sum(0))
        ok = np.isfinite(prev).all(0) & np.isfinite(nxt).all(0)
        at_boundary = (np.arange(1, a.shape[1]) % step == 0)[:, None]
        for where in (True, False):
            sel = ok & (at_boundary if where else ~at_boundary)
            sums[where][0] += float(jump[sel].sum())
            sums[where][1] += int(sel.sum())
    across = sums[True][0] / max(sums[True][1], 1)
    inside = sums[False][0] / max(sums[False][1], 1)
    if inside > 0:
        ratio = across / inside
    else:
        ratio = 1.0 if across == 0 else float("inf")
    return SeamStats(across, inside, ratio, sums[True][1], sums[False][1])
