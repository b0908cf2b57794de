"""The tile inspector: one tile of the embed job's grid, masked and reconstructed, band by band."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from smartiesviz.data.tiling import PatchGrid, TileWindow, clip_window, pad_block
from smartiesviz.predict.embed import EmbeddingJob
from smartiesviz.predict.inference import patch_mask_to_pixels
from smartiesviz.render import band_label, display_rgb, stretch
from smartiesviz.widgets.figures import new_figure, show_image


@dataclass
class TileRecon:
    """One tile's input ``x`` and reconstruction ``recon`` ``(C, S, S)`` in model units, the
    visible-patch mask ``visible`` ``(N,)`` (True = shown to the encoder) and its band specs."""

    index: int
    x: np.ndarray
    recon: np.ndarray
    visible: torch.Tensor
    bands: list[str]


@dataclass(frozen=True)
class TileGrid:
    """The inspector's tiles: the embed job's tiles (:meth:`PatchGrid.windows`), row-major.

    The one source of tile geometry for the map: the tile under a click, the window it reads and
    the outline drawn all come from here, so they agree for any ``tile_size`` and ``overlap``.
    Tile ``i`` reads the ``tile_size``-pixel window at :meth:`window` (mirrored past the scene
    edge) and stands for the pixels of its core (:meth:`core`); the cores partition the scene.
    """

    grid: PatchGrid

    @classmethod
    def of(cls, job: EmbeddingJob) -> TileGrid:
        """The tiles of ``job`` (its :class:`PatchGrid`: tile size, overlap, scene size)."""
        return cls(job.grid)

    @property
    def size(self) -> int:
        """Tile side in pixels (``job.tile_size``)."""
        return self.grid.tile_size

    @property
    def _step(self) -> int:  # core side in pixels
        return (self.grid.cells_per_tile - 2 * self.grid.margin) * self.grid.patch_size

    @property
    def shape(self) -> tuple[int, int]:
        """``(rows, cols)`` of tiles covering the scene."""
        t = self._step
        return -(-self.grid.height // t), -(-self.grid.width // t)

    def _window(self, index: int) -> TileWindow:
        rows, cols = self.shape
        if not 0 <= index < rows * cols:
            raise ValueError(f"tile {index} is outside the scene's {rows} × {cols} tiles")
        return self.grid.windows()[index]

    def window(self, index: int) -> tuple[int, int, int]:
        """``(y0, x0, size)``: the pixel window tile ``index`` reads (``y0``/``x0`` may be
        negative, and the window may reach past the scene: those pixels are mirrored)."""
        w = self._window(index)
        return w.y0, w.x0, self.size

    def core(self, index: int) -> tuple[slice, slice]:
        """``(rows, cols)`` pixel slices of the scene that tile ``index`` stands for."""
        w, p = self._window(index), self.grid.patch_size
        return (slice(w.row * p, min((w.row + w.rows) * p, self.grid.height)),
                slice(w.col * p, min((w.col + w.cols) * p, self.grid.width)))  # fmt: skip

    def index_at(self, row: float, col: float) -> int:
        """Index of the tile whose core holds scene pixel ``(row, col)`` (fractional allowed)."""
        if not (0 <= row < self.grid.height and 0 <= col < self.grid.width):
            raise ValueError(f"pixel ({row:.1f}, {col:.1f}) is outside the "
                             f"{self.grid.height} × {self.grid.width} scene")  # fmt: skip
        return int(row // self._step) * self.shape[1] + int(col // self._step)


def reconstruct_tile(job: EmbeddingJob, index: int, mask_ratio: float, seed: int) -> TileRecon:
    """Read, normalize (edges mirrored) and reconstruct tile ``index`` of :class:`TileGrid`;
    ``x``/``recon`` are ``(C, T, T)`` with ``T = job.tile_size``."""
    y0, x0, s = TileGrid.of(job).window(index)
    ys, xs, pads = clip_window(y0, x0, s, job.grid.height, job.grid.width)
    x = pad_block(np.asarray(job.normalizer(job.cube.isel(y=ys, x=xs)), np.float32), pads)
    rb = job.model.resolve(job.band_specs)
    gen = torch.Generator().manual_seed(seed + index)
    with torch.no_grad():
        out = job.model(torch.from_numpy(x)[None], rb, mask_ratio=mask_ratio, generator=gen)
    keep = list(rb.keep)
    return TileRecon(index, x[keep], out.recon_a[0].float().numpy(), out.visible_mask[0],
                     [job.band_specs[i] for i in keep])  # fmt: skip


def panels(t: TileRecon, patch: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(top row, bottom row) of ``(S, S, 3)`` images: input, visible, bands; reconstruction of
    the hidden patches pasted into the visible input, the hidden patches marked, bands."""
    s = t.x.shape[-1]
    vis = patch_mask_to_pixels(t.visible, s, s, patch)
    comp = display_rgb(t.x, t.bands)
    masked = comp.copy()
    masked[~vis] = 0.35
    pasted = np.where(vis[None], t.x, t.recon)
    grey = lambda a: np.repeat(a[..., None], 3, -1)  # noqa: E731
    top = [comp, masked, *[grey(stretch(b, dtype="float")) for b in t.x]]
    bottom = [
        display_rgb(pasted, t.bands, ref=t.x),
        _outline_hidden(display_rgb(pasted, t.bands, ref=t.x), vis),
        *[grey(stretch(np.where(vis, b, r), dtype="float", ref=b)) for r, b in zip(t.recon, t.x)],
    ]
    return top, bottom


def _outline_hidden(img: np.ndarray, vis: np.ndarray) -> np.ndarray:
    """Tint the reconstructed (hidden) pixels so they are told apart from copied input."""
    out = img.copy()
    out[~vis] = 0.6 * out[~vis] + 0.4 * np.array([1.0, 0.3, 0.2])
    return out


def mosaic(top: list[np.ndarray], bottom: list[np.ndarray], gap: int = 2) -> np.ndarray:
    """Two rows of equal-size panels as one ``(2·S + gap, n·(S + gap) − gap, 3)`` image."""
    s = top[0].shape[0]
    out = np.ones((2 * s + gap, len(top) * (s + gap) - gap, 3), np.float32)
    for r, row in enumerate((top, bottom)):
        for i, img in enumerate(row):
            out[r * (s + gap) : r * (s + gap) + s, i * (s + gap) : i * (s + gap) + s] = img
    return out


def tile_figure(t: TileRecon, patch: int) -> Any:
    """Matplotlib figure of :func:`panels` with titles."""
    top, bottom = panels(t, patch)
    names = ["input", "visible", *[band_label(b) for b in t.bands]]
    fig, axes = new_figure(2, len(top), size=(1.25 * len(top), 2.9))
    for i, (a, b) in enumerate(zip(top, bottom)):
        show_image(axes[0, i], a, names[i])
        show_image(axes[1, i], b, ["hidden rebuilt", "rebuilt (tinted)"][i] if i < 2 else "recon")
    fig.suptitle(f"tile {t.index}: input (top); hidden patches rebuilt, visible copied (bottom)",
                 fontsize=9)  # fmt: skip
    return fig
