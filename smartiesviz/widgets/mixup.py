"""MixupViewer: cross-sensor token mixup on a BigEarthNet Sentinel-1/Sentinel-2 pair."""

from __future__ import annotations

import ipywidgets as W
import numpy as np
import torch

from smartiesviz.models.resolve import model_img_size
from smartiesviz.predict.inference import interactive_inference, patch_mask_to_pixels
from smartiesviz.render import display_rgb, png_bytes
from smartiesviz.widgets.controls import (
    image_widget,
    mask_ratio_slider,
    pair_dropdown,
    ratio_slider,
)
from smartiesviz.widgets.figures import new_figure, show_image
from smartiesviz.widgets.panels import WidgetBase
from smartiesviz.widgets.samples import pair_tensors, resolve_widget_model


class MixupViewer(WidgetBase):
    """The random mixup mask, the mixed inputs a' and b', and the shared visible mask.

    a is the pair's Sentinel-2 image, b its Sentinel-1 image. Each position of a' is drawn in the
    composite of the image its token came from (true colour for S2, VV/VH/VV−VH for S1); b' is the
    mirror ("mirrored", paper Eq. 2) or b itself ("as-released").

    Args:
        pair: index of the BigEarthNet pair (default: the one the model never trained on, if
            recorded in its checkpoint, else 0).
        model: any :class:`~smartiesviz.SmartiesMAE`, or a checkpoint path (default: the demo model).
        ratio: initial mixup ratio (fraction of a' positions taken from b).
        mask_ratio: initial fraction of hidden positions.
        seed: initial seed (mixup drawn first, then the visible mask, from one generator).

    Controls: ``pair`` (Dropdown), ``ratio`` and ``mask_ratio`` (FloatSlider), ``mode``
    (Dropdown), ``new_draw`` (Button: next seed), ``seed`` (IntText). State: ``mixup_mask`` and
    ``visible_mask`` ((N,) bool), ``recon_a`` and ``recon_b`` ((C, H, W)).
    """

    def __init__(
        self,
        pair: int | None = None,
        model: torch.nn.Module | str | None = None,
        ratio: float = 0.5,
        mask_ratio: float = 0.75,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.model = resolve_widget_model(model)
        self.size = model_img_size(self.model)
        self.patch = int(self.model.patch_size)
        self.pair = pair_dropdown(self.model, pair)
        self.ratio = ratio_slider(ratio, "mixup ratio")
        self.mask_ratio = mask_ratio_slider(mask_ratio)
        self.mode = W.Dropdown(
            options=["mirrored", "as-released"], value="mirrored", description="mode"
        )
        self.new_draw = W.Button(description="new draw", icon="random")
        self.seed = W.IntText(value=seed, description="seed", layout=W.Layout(width="160px"))
        self.names = (
            "a: S2",
            "b: S1",
            "a' (mixed)",
            "b' (mixed)",
            "visible (shared)",
            "a rebuilt (hidden)",
            "b rebuilt (hidden)",
        )
        self.panels = {n: image_widget(140) for n in self.names}
        self.summary = W.HTML()
        grid = W.HBox([W.VBox([W.HTML(f"<small>{n}</small>"), self.panels[n]]) for n in self.names])
        self._chrome(
            [
                W.HBox([self.pair, self.mode]),
                W.HBox([self.ratio, self.mask_ratio]),
                W.HBox([self.new_draw, self.seed]),
            ],
            [grid, self.summary],
            "Cross-sensor mixup viewer (BigEarthNet S2 = a, S1 = b)",
        )
        self.mixup_mask = self.visible_mask = None
        self.recon_a = self.recon_b = None
        for control in (self.pair, self.ratio, self.mask_ratio, self.mode, self.seed):
            control.observe(self._guarded(self._update), names="value")
        self.new_draw.on_click(self._guarded(self._on_new_draw))
        self._guarded(self._update)()

    def _on_new_draw(self, _button: object = None) -> None:
        self.seed.value = int(self.seed.value) + 1  # triggers _update

    def _update(self, _change: object = None) -> None:
        with self.progress.busy("loading pair"):
            xa, bands_a, xb, bands_b = pair_tensors(int(self.pair.value), self.size)
        gen = torch.Generator().manual_seed(int(self.seed.value))
        with interactive_inference():
            out = self.model(
                xa,
                bands_a,
                xb,
                bands_b,
                mask_ratio=float(self.mask_ratio.value),
                mixup_ratio=float(self.ratio.value),
                generator=gen,
                mixup_mode=self.mode.value,
            )
        self.xa, self.xb, self.bands_a, self.bands_b = (
            xa[0].numpy(),
            xb[0].numpy(),
            bands_a,
            bands_b,
        )
        self.mixup_mask = out.mixup_mask[0].cpu()
        self.visible_mask = out.visible_mask[0].cpu()
        self.recon_a = out.recon_a[0].float().numpy()
        self.recon_b = out.recon_b[0].float().numpy()
        self._render()

    def _layers(self) -> dict[str, np.ndarray]:
        ca = display_rgb(self.xa, self.bands_a)
        cb = display_rgb(self.xb, self.bands_b)
        from_a = patch_mask_to_pixels(self.mixup_mask, self.size, self.size, self.patch)[
            ..., None
        ]
        vis = patch_mask_to_pixels(self.visible_mask, self.size, self.size, self.patch)
        a_mixed = np.where(from_a, ca, cb)
        b_mixed = np.where(from_a, cb, ca) if self.mode.value == "mirrored" else cb
        visible = np.where(vis[..., None], a_mixed, 0.15)
        return {
            "a: S2": ca,
            "b: S1": cb,
            "a' (mixed)": a_mixed,
            "b' (mixed)": b_mixed,
            "visible (shared)": visible,
            # visible positions from the inputs, hidden ones from the reconstructions
            "a rebuilt (hidden)": display_rgb(
                np.where(vis, self.xa, self.recon_a), self.bands_a, ref=self.xa
            ),
            "b rebuilt (hidden)": display_rgb(
                np.where(vis, self.xb, self.recon_b), self.bands_b, ref=self.xb
            ),
        }

    def _render(self) -> None:
        scale = max(1, 140 // self.size)
        for name, arr in self._layers().items():
            self.panels[name].value = png_bytes(arr, scale=scale)
        n = self.mixup_mask.numel()
        self.summary.value = (
            f"<small>seed <b>{self.seed.value}</b>: a' holds {int(self.mixup_mask.sum())}/{n} of a's tokens "
            f"({float(self.mixup_mask.float().mean()):.0%}), {n - int(self.mixup_mask.sum())} from b; "
            f"{int(self.visible_mask.sum())}/{n} positions visible to the encoder (same for a' and b'); "
            f"mode {self.mode.value}</small>"
        )

    def figure(self):
        """The seven panels of the current draw."""
        self._require(self.mixup_mask, "no pair loaded")
        fig, axes = new_figure(1, len(self.names), size=(2.4 * len(self.names), 2.9))
        for ax, (name, arr) in zip(axes[0], self._layers().items()):
            show_image(ax, arr, name)
        fig.suptitle(
            f"mixup ratio {self.ratio.value:.2f} (a' keeps {float(self.mixup_mask.float().mean()):.0%} of a), "
            f"mask ratio {self.mask_ratio.value:.2f}, seed {self.seed.value}, {self.mode.value}",
            fontsize=10,
        )
        return fig
