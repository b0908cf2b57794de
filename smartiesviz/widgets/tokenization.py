"""TokenizationExplorer: one patch through the spectrum-aware projection, band by band."""

from __future__ import annotations

from typing import Any

import ipywidgets as W
import numpy as np
import torch

from smartiesviz.data.preprocess import StatsArg
from smartiesviz.data.scene import Scene
from smartiesviz.models.resolve import find_projection, model_img_size
from smartiesviz.predict.inference import interactive_inference
from smartiesviz.render import band_label, display_rgb, png_bytes, stretch
from smartiesviz.widgets import samples
from smartiesviz.widgets.controls import image_widget
from smartiesviz.widgets.figures import show_image, static_figure
from smartiesviz.widgets.panels import WidgetBase


class TokenizationExplorer(WidgetBase):
    """Step through the tokenization of one patch (paper Fig. 3, left).

    For the chosen patch: each band's S×S pixels, each band's D-dim embedding through its range's
    layer (or the interpolated mix of layers), their mean, and the token = scale × mean (scale 12
    in the release). The token shown is the model's own tokenizer output for that position.

    Args:
        scene, stats, described: the image and its normalization (see
            :class:`~smartiesviz.widgets.reconstruction.ReconstructionExplorer`); default the
            bundled Sentinel-2 sample.
        model: any :class:`~smartiesviz.SmartiesMAE`, or a checkpoint path (default: the demo model).

    Controls: ``sample`` (Dropdown), ``tile``, ``patch_row``, ``patch_col`` (IntSlider).
    State: ``patch_pixels`` (C, S, S), ``band_embeddings`` (C, D), ``mean`` (D,), ``token`` (D,),
    ``layer_weights`` (C, 17).
    """

    def __init__(
        self,
        scene: Any = None,
        model: torch.nn.Module | str | None = None,
        stats: StatsArg = "auto",
        **described: Any,
    ) -> None:
        super().__init__()
        self.chooser = samples.SceneChooser.for_widget(scene, stats, described)
        self.model = samples.resolve_widget_model(model)
        self.projection = find_projection(self.model)
        self.size = model_img_size(self.model)
        self.patch = int(self.model.patch_size)
        self.sample, self.tile = self.chooser.sample, self.chooser.tile
        grid = self.size // self.patch
        self.patch_row = W.IntSlider(value=grid // 2, min=0, max=grid - 1, description="patch row")
        self.patch_col = W.IntSlider(value=grid // 2, min=0, max=grid - 1, description="patch col")
        self.image_view = image_widget(192)
        self.patches_view = W.Image(format="png")
        self.strips_view = W.Image(format="png", layout=W.Layout(width="520px"))
        self.summary = W.HTML()
        self._chrome(
            [W.HBox([self.sample, self.tile]), W.HBox([self.patch_row, self.patch_col])],
            [
                W.HBox(
                    [
                        self.image_view,
                        W.VBox([W.HTML("<small>patch, band by band</small>"), self.patches_view]),
                    ]
                ),
                W.HTML("<small>band embeddings (rows), mean, token = scale × mean</small>"),
                self.strips_view,
                self.summary,
            ],
            "Tokenization step-through",
        )
        self.scene: Scene | None = None
        self._loading = False
        self.token = None
        self.sample.observe(self._guarded(self._on_sample), names="value")
        self.tile.observe(self._guarded(self._on_tile), names="value")
        for control in (self.patch_row, self.patch_col):
            control.observe(self._guarded(self._update), names="value")
        self._guarded(self._on_sample)()

    @property
    def position(self) -> int:
        """Row-major index of the chosen patch."""
        return int(self.patch_row.value) * (self.size // self.patch) + int(self.patch_col.value)

    def _on_sample(self, _change: object = None) -> None:
        with self.progress.busy(f"loading {self.sample.value}"):
            self.scene = self.chooser.open(self.model)
        self._loading = True  # one pass after the tile slider is set
        try:
            self.chooser.fit_tiles(self.scene, self.size, self.model)
        finally:
            self._loading = False
        self._on_tile()

    def _on_tile(self, _change: object = None) -> None:
        if self._loading:
            return
        self.x = samples.scene_tile(self.scene, int(self.tile.value), self.size)
        self.bands = list(self.scene.specs)
        with interactive_inference():
            self._all_band_emb = self.projection.band_embeddings(self.x, self.bands)[0]  # (N, C, D)
            self._all_tokens = self.projection(self.x, self.bands)[0]  # (N, D)
        self.layer_weights = self.projection.resolve(self.bands).weights.numpy()
        self._update()

    def _update(self, _change: object = None) -> None:
        s, r, c = self.patch, int(self.patch_row.value), int(self.patch_col.value)
        self.patch_pixels = self.x[0, :, r * s : (r + 1) * s, c * s : (c + 1) * s].numpy()
        self.band_embeddings = self._all_band_emb[self.position].numpy()
        self.mean = self.band_embeddings.mean(0)
        self.token = self._all_tokens[self.position].numpy()
        self._render()

    def band_label(self, i: int) -> str:
        """``"B02 → L1"`` (checkpoint layer index), or an interpolation mix ``"B10 → L14 0.85 + L15 0.15"``."""
        w = self.layer_weights[i]
        parts = [f"L{j}" if v >= 0.999 else f"L{j} {v:.2f}" for j, v in enumerate(w) if v > 0]
        return f"{band_label(self.bands[i])} → {' + '.join(parts)}"

    # ---------------------------------------------------------------- views
    def _image_with_box(self) -> np.ndarray:
        img = display_rgb(self.x[0].numpy(), self.bands).copy()
        s, r, c = self.patch, int(self.patch_row.value), int(self.patch_col.value)
        y0, y1, x0, x1 = r * s, (r + 1) * s - 1, c * s, (c + 1) * s - 1
        img[y0, x0 : x1 + 1] = img[y1, x0 : x1 + 1] = (1, 0.1, 0.1)
        img[y0 : y1 + 1, x0] = img[y0 : y1 + 1, x1] = (1, 0.1, 0.1)
        return img

    def _band_tiles(self) -> np.ndarray:
        """All bands of the patch side by side, each stretched alone, 1-px gaps."""
        s = self.patch
        tiles = [stretch(p, dtype="float") for p in self.patch_pixels]
        out = np.full((s, len(tiles) * (s + 1) - 1), np.nan, np.float32)
        for i, t in enumerate(tiles):
            out[:, i * (s + 1) : i * (s + 1) + s] = t
        return out

    def _strips(self) -> np.ndarray:
        """Band embeddings, a gap, the mean, a gap, the token: (C + 4, D)."""
        d = self.band_embeddings.shape[1]
        gap = np.full((1, d), np.nan, np.float32)
        scale = float(self.projection.token_scale)
        return np.concatenate(
            [self.band_embeddings, gap, self.mean[None], gap, self.token[None] / scale], 0
        )

    def _render(self) -> None:
        self.image_view.value = png_bytes(self._image_with_box(), scale=max(1, 192 // self.size))
        self.patches_view.value = png_bytes(
            self._band_tiles(), cmap="gray", vmin=0, vmax=1, scale=6
        )
        strips = self._strips()
        lim = float(np.nanmax(np.abs(strips)))
        self.strips_view.value = png_bytes(strips, cmap="RdBu_r", vmin=-lim, vmax=lim, scale=3)
        names = ", ".join(band_label(b) for b in self.bands)
        self.summary.value = (
            f"<small>patch ({self.patch_row.value}, {self.patch_col.value}) = position {self.position}; "
            f"{len(self.bands)} bands ({names}); token = {self.projection.token_scale:g} × mean of "
            f"{len(self.bands)} band embeddings; |token| = {np.linalg.norm(self.token):.3f}</small>"
        )

    def figure(self):
        """Image with the patch, the patch per band, the band embeddings, the mean and the token."""
        self._require(self.token, "no image loaded")

        n = len(self.bands)
        fig = static_figure(figsize=(13, 4 + 0.18 * n), layout="constrained")
        sub = fig.subfigures(1, 2, width_ratios=[1, 2.6])
        show_image(
            sub[0].subplots(),
            self._image_with_box(),
            f"tile {self.tile.value}, patch {self.position}",
        )
        axes = sub[1].subplots(3, 1, height_ratios=[1.1, n * 0.25 + 0.6, 1.1])
        show_image(
            axes[0],
            self._band_tiles(),
            "patch, band by band: " + " ".join(band_label(b) for b in self.bands),
            cmap="gray",
        )
        lim = float(np.abs(self.band_embeddings).max())
        ax = axes[1]
        im = ax.imshow(
            self.band_embeddings,
            cmap="RdBu_r",
            vmin=-lim,
            vmax=lim,
            aspect="auto",
            interpolation="nearest",
        )
        ax.set_yticks(range(n), [self.band_label(i) for i in range(n)], fontsize=7)
        ax.set_title("each band's embedding through its range's layer (D dims)", fontsize=9)
        fig.colorbar(im, ax=ax, shrink=0.8)
        scale = float(self.projection.token_scale)
        pair = np.stack([self.mean, self.token / scale])
        lim2 = float(np.abs(pair).max())
        im2 = axes[2].imshow(
            pair, cmap="RdBu_r", vmin=-lim2, vmax=lim2, aspect="auto", interpolation="nearest"
        )
        fig.colorbar(im2, ax=axes[2], shrink=0.8)
        axes[2].set_yticks([0, 1], ["mean", f"token/{scale:g}"], fontsize=7)
        axes[2].set_title(
            f"mean over bands, and the token (= {scale:g} × mean, shown ÷{scale:g})", fontsize=9
        )
        return fig
