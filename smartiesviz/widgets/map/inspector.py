"""The tile inspector: one model-sized tile of the scene, masked and reconstructed, band by band."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from smartiesviz.data.tiling import clip_window, pad_block
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


def tile_grid(job: EmbeddingJob) -> tuple[int, int]:
    """``(rows, cols)`` of model-sized tiles covering the scene."""
    s, h, w = job.tile_size, job.grid.height, job.grid.width
    return -(-h // s), -(-w // s)


def reconstruct_tile(job: EmbeddingJob, index: int, mask_ratio: float, seed: int) -> TileRecon:
    """Read, normalize (edges mirrored) and reconstruct tile ``index`` (row-major)."""
    rows, cols = tile_grid(job)
    if not 0 <= index < rows * cols:
        raise ValueError(f"tile {index} is outside the scene's {rows} × {cols} tiles")
    r, c = divmod(index, cols)
    s = job.tile_size
    ys, xs, pads = clip_window(r * s, c * s, s, job.grid.height, job.grid.width)
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
