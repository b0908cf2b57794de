"""ReconstructionExplorer: what the masked auto-encoder rebuilds from the visible patches."""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as W
import numpy as np
import torch

from smartiesviz.data.preprocess import StatsArg
from smartiesviz.data.scene import Scene
from smartiesviz.models.resolve import model_img_size
from smartiesviz.predict.inference import patch_mask_to_pixels, run_mae
from smartiesviz.render import band_label, display_rgb, outline_patches, png_bytes, stretch
from smartiesviz.widgets.controls import image_widget, mask_ratio_slider
from smartiesviz.widgets.figures import new_figure, show_image
from smartiesviz.widgets.panels import WidgetBase
from smartiesviz.widgets.samples import SceneChooser, resolve_widget_model, scene_tile

#: The panels, left to right. The decoder's output at *visible* patches is never shown as a
#: reconstruction (the model was never trained to rebuild what it sees): the "reconstruction"
#: panel takes visible patches from the input, dimmed and outlined, and only hidden patches from
#: the decoder.
PANELS = ("input", "visible patches", "reconstruction", "error (hidden)")


class ReconstructionExplorer(WidgetBase):
    """Masked reconstruction of one tile: input, visible patches, reconstruction, error.

    The reconstruction panel shows the decoder's output on the hidden patches only; visible
    patches show the input, dimmed and outlined in white (they are not reconstructions).

    Args:
        scene: the image: a bundled sample (``"sentinel2"``, ``"sentinel1"``, ``"landsat8"``,
            ``"rgb"``; default ``"sentinel2"``), a :class:`~smartiesviz.data.scene.Scene`, a
            ``(band, y, x)`` DataArray in physical units, a GeoTIFF or band folder, or a
            ``(C, H, W)`` array in model units (see :func:`smartiesviz.widgets.samples.user_scene`).
        model: any :class:`~smartiesviz.SmartiesMAE`, or a checkpoint path (default: the demo model).
        mask_ratio: initial fraction of hidden patches.
        seed: initial seed of the mask draw.
        stats: normalization statistics of a DataArray ``image`` (``"auto"``, ``"release"``,
            ``"data"``: computed from the image, a release entry or your own; see
            :func:`smartiesviz.data.normalize`).
        **described: ``sensor=`` of a file without one, ``bands=`` of an array (the older
            ``image=``/``sample=`` spellings still work, with a FutureWarning).

    Controls: ``sample`` (Dropdown), ``tile`` (IntSlider), ``mask_ratio`` (FloatSlider),
    ``redraw`` (Button: next seed), ``seed`` (IntText), ``band`` (Dropdown: composite or a band).
    State: ``x`` (C, H, W) input, ``recon`` (C, H, W) raw decoder output, ``visible`` (N,) bool,
    ``band_mse`` (C,) error on hidden patches, ``bands`` (band specs).
    """

    def __init__(
        self,
        scene: Any = None,
        model: torch.nn.Module | str | None = None,
        mask_ratio: float = 0.75,
        seed: int = 0,
        stats: StatsArg = "auto",
        **described: Any,
    ) -> None:
        super().__init__()
        self.chooser = SceneChooser.for_widget(scene, stats, described)
        self.model = resolve_widget_model(model)
        self.size = model_img_size(self.model)
        self.patch = int(self.model.patch_size)
        self.sample, self.tile = self.chooser.sample, self.chooser.tile
        self.mask_ratio = mask_ratio_slider(mask_ratio)
        self.redraw = W.Button(description="re-draw mask", icon="refresh")
        self.seed = W.IntText(value=seed, description="seed", layout=W.Layout(width="160px"))
        self.band = W.Dropdown(options=["composite"], description="band")
        names = PANELS
        self.panels = {n: image_widget(180) for n in names}
        self.captions = {n: W.HTML(f"<small>{n}</small>") for n in names}
        self.summary = W.HTML()
        grid = W.HBox([W.VBox([self.captions[n], self.panels[n]]) for n in names])
        self._chrome(
            [
                W.HBox([self.sample, self.tile]),
                W.HBox([self.mask_ratio, self.redraw, self.seed]),
                self.band,
            ],
            [grid, self.summary],
            "Reconstruction explorer",
        )
        self.scene: Scene | None = None
        self._loading = False
        self.x = self.recon = None
        self.visible = None
        self.band_mse = None
        self.bands: tuple = ()
        self.sample.observe(self._guarded(self._on_sample), names="value")
        for control in (self.tile, self.mask_ratio, self.seed):
            control.observe(self._guarded(self._on_change), names="value")
        self.band.observe(self._guarded(self._render), names="value")
        self.redraw.on_click(self._guarded(self._on_redraw))
        self._guarded(self._on_sample)()

    # ---------------------------------------------------------------- callbacks
    def _on_sample(self, _change: object = None) -> None:
        with self.progress.busy(f"loading {self.sample.value}"):
            self.scene = self.chooser.open(self.model)
        self.bands = self.scene.specs
        self._loading = True  # one model run after all controls are set, not one per control
        try:
            self.chooser.fit_tiles(self.scene, self.size, self.model)
            self.band.options = ["composite", *[band_label(b) for b in self.bands]]
            self.band.value = "composite"
        finally:
            self._loading = False
        self._on_change()

    def _on_redraw(self, _button: object = None) -> None:
        self.seed.value = int(self.seed.value) + 1  # triggers _on_change

    def _on_change(self, _change: object = None) -> None:
        if self.scene is None or self._loading:
            return
        x = scene_tile(self.scene, int(self.tile.value), self.size)
        out = run_mae(
            self.model, x, list(self.bands), mask_ratio=self.mask_ratio.value, seed=self.seed.value
        )
        self.x = x[0].numpy()
        self.recon = out.recon_a[0].float().numpy()
        self.visible = out.visible_mask[0].cpu()
        hidden = ~patch_mask_to_pixels(self.visible, self.size, self.size, self.patch)
        err = (self.recon - self.x) ** 2
        self.band_mse = (
            err[:, hidden].mean(axis=1)
            if hidden.any()
            else np.zeros(len(self.bands), dtype=np.float32)
        )
        self._render()

    # ---------------------------------------------------------------- views
    def _layers(self) -> dict[str, np.ndarray]:
        """The panels as display arrays for the selected band (or composite), unmarked:
        ``"reconstruction"`` is the input at visible patches and the decoder at hidden ones."""
        vis = patch_mask_to_pixels(self.visible, self.size, self.size, self.patch)
        pasted = np.where(vis[None], self.x, self.recon)
        err = ((self.recon - self.x) ** 2) * (~vis)[None]
        if self.band.value == "composite":
            show = lambda a: display_rgb(a, self.bands, ref=self.x)  # noqa: E731
            err_map = err.mean(0)
        else:
            i = [band_label(b) for b in self.bands].index(self.band.value)
            show = lambda a: np.repeat(  # noqa: E731
                stretch(a[i], dtype="float", ref=self.x[i])[..., None], 3, -1
            )
            err_map = err[i]
        masked = show(self.x).copy()
        masked[~vis] = 0.35  # hidden patches in grey
        return {
            "input": show(self.x),
            "visible patches": masked,
            "reconstruction": show(pasted),
            "error (hidden)": err_map,
        }

    def _panels(self) -> dict[str, np.ndarray]:
        """:meth:`_layers` as drawn: visible patches of the reconstruction dimmed and outlined."""
        layers = self._layers()
        grid = self.visible.reshape(self.size // self.patch, -1).numpy()
        layers["reconstruction"] = outline_patches(layers["reconstruction"], grid, self.patch)
        return layers

    def _render(self, _change: object = None) -> None:
        if self.x is None or self._loading:
            return
        scale = max(1, 180 // self.size)
        layers = self._panels()
        for name, arr in layers.items():
            self.panels[name].value = png_bytes(arr, cmap="magma", scale=scale)
        emax = float(layers["error (hidden)"].max())
        self.captions[
            "error (hidden)"
        ].value = f"<small>squared error, hidden (0–{emax:.3g})</small>"
        self.summary.value = self._summary_html()

    def _summary_html(self) -> str:
        """Seed, visible count, mean hidden MSE and a table of per-band MSE bars."""
        top = max(self.band_mse.max(), 1e-9)
        rows = "".join(
            f"<tr><td>{html.escape(band_label(b))}</td><td>{v:.4f}</td>"
            f'<td><div style="background:#c0392b;height:8px;width:{int(120 * v / top)}px">'
            "</div></td></tr>"
            for b, v in zip(self.bands, self.band_mse)
        )
        n_vis = int(self.visible.sum())
        return (
            f"<small>seed {self.seed.value}; {n_vis}/{self.visible.numel()} patches visible; "
            f"MSE on hidden patches (model units): {float(self.band_mse.mean()):.4f}</small>"
            f"<table style='font-size:11px'>{rows}</table>"
        )

    def figure(self):
        """Input, visible, reconstruction (hidden patches), error panels and per-band error bars."""
        self._require(self.x, "no image loaded")
        fig, axes = new_figure(1, len(PANELS) + 1, size=(14.5, 3.2))
        titles = {"reconstruction": "reconstruction\n(visible: input, outlined)"}
        for ax, (name, arr) in zip(axes[0], self._panels().items()):
            title = titles.get(name, name)
            im = show_image(ax, arr, title, cmap="magma" if arr.ndim == 2 else None)
            if arr.ndim == 2:
                fig.colorbar(im, ax=ax, shrink=0.8)
        ax = axes[0, -1]
        ax.bar(range(len(self.bands)), self.band_mse, color="#c0392b")
        ax.set_xticks(
            range(len(self.bands)), [band_label(b) for b in self.bands], rotation=90, fontsize=7
        )
        ax.set_title("per-band MSE (hidden)", fontsize=9)
        fig.suptitle(
            f"{self.sample.value} tile {self.tile.value}: mask ratio {self.mask_ratio.value:.2f}, "
            f"seed {self.seed.value}, band {self.band.value}",
            fontsize=10,
        )
        return fig
