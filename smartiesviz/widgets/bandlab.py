"""BandLab: drop, add, swap or re-label bands and watch tokens, embedding and probe change.

Inputs are the bundled BigEarthNet pairs (Sentinel-2 L2A, 12 bands, with multi-labels) or a
user's image (``BandLab(cube)``: its centre tile). The reference is the full-band input; every
edit is compared with it:

* token similarity: per-position cosine between the edited and the full-band tokenizer outputs;
* embedding drift: 1 − cosine between pooled encoder features (and CLS) of edited and full input;
* probe: a linear probe's label probabilities for both (default probe: fitted on the pooled
  features of the other five bundled pairs, with flips/rotations; a teaching toy, not a
  benchmark).

A second view compares sensors on one pair: per-position cosine between encoder tokens of the
S2 image, its S1 partner and an RGB image simulated from S2 B04/B03/B02 (the training data's
:func:`~smartiesviz.data.transforms.simulated_rgb_partner`, normalized with the RGB statistics).
"""

from __future__ import annotations

import functools
import html
from typing import Any

import ipywidgets as W
import numpy as np
import torch

from smartiesviz.models.resolve import find_projection, model_img_size
from smartiesviz.predict.inference import interactive_inference, torch_threads
from smartiesviz.predict.probes import linear_probe
from smartiesviz.render import band_label, display_rgb, png_bytes
from smartiesviz.spectrum import layer_weights
from smartiesviz.widgets.controls import image_widget, labelled, pair_dropdown
from smartiesviz.widgets.figures import new_figure, show_image
from smartiesviz.widgets.panels import WidgetBase
from smartiesviz.widgets.samples import (
    bigearthnet_pairs,
    default_tile,
    pair_rgb_tensor,
    pair_tensors,
    resolve_widget_model,
    scene_argument,
    scene_tile,
    user_scene,
)


def _cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cosine_similarity(a, b, dim=-1)


@functools.lru_cache(maxsize=8)
def _default_probe(model: torch.nn.Module, size: int, exclude: int | None = None) -> Any:
    """Linear probe on the bundled pairs' pooled S2 features (8 dihedral views each), leaving
    out pair ``exclude`` (the one on display, so its prediction is not memorised)."""
    feats, labels = [], []
    for i, pair in enumerate(bigearthnet_pairs()):
        if i == exclude:
            continue
        x, bands, _, _ = pair_tensors(i, size)
        views = torch.cat([torch.rot90(v, k, (-2, -1)) for v in (x, x.flip(-1)) for k in range(4)])
        with interactive_inference():
            feats.append(model.pooled_features(views, bands))
        labels += [list(pair.labels)] * len(views)
    with torch_threads(1):
        return linear_probe(torch.cat(feats).numpy(), labels, multilabel=True, max_iter=50)


class BandLab(WidgetBase):
    """Edit an input's bands and see what the tokenizer, encoder and a probe make of it.

    Args:
        scene: the image to edit: a :class:`~smartiesviz.data.scene.Scene`, a ``(band, y, x)``
            DataArray in physical units, a GeoTIFF, band folder or sample name, or a
            ``(C, H, W)`` array in model units (give ``bands=``); ``None``: the pair's S2 image.
        pair: index of the BigEarthNet pair (default: the one the model never trained on, if
            recorded in its checkpoint, else 0).
        model: any :class:`~smartiesviz.SmartiesMAE`, or a checkpoint path (default: the demo model).
        probe: a fitted probe with ``predict_proba`` and ``classes`` on pooled features
            (default: a linear probe fitted on the other bundled pairs).
        **described: ``sensor=`` of a file without one, ``bands=`` of an array (``image=``, the
            older spelling of ``scene=``, still works with a FutureWarning).

    Controls: ``pair`` (Dropdown), ``active`` (SelectMultiple: bands fed; deselect to drop),
    ``swap_a``/``swap_b`` + ``swap`` (Button), ``replace_which`` + ``replace_min``/``replace_max``
    (nm) + ``replace`` (Button), ``reset`` (Button), ``level`` (Dropdown, consistency view).
    State: ``config`` (list of (channel, band spec)), ``token_similarity`` (h, w),
    ``drift`` (dict), ``probe_full``/``probe_edit`` (L,), ``consistency`` (dict of (h, w)).
    """

    def __init__(
        self,
        scene: Any = None,
        pair: int | None = None,
        model: torch.nn.Module | str | None = None,
        probe: Any = None,
        **described: Any,
    ) -> None:
        super().__init__()
        user = scene_argument(scene, described)
        self._user = user if user[0] is not None else None
        self.model = resolve_widget_model(model)
        self.projection = find_projection(self.model)
        self.size = model_img_size(self.model)
        self.grid = self.size // int(self.model.patch_size)
        self._probe = probe
        self._build_controls(pair)
        self._build_views()
        self._chrome(self._control_rows(), self._view_rows(), "Band lab")
        self.config: list[tuple[int, Any]] = []
        self._syncing = False
        self.consistency: dict[str, np.ndarray] = {}
        self.pair.observe(self._guarded(self._on_pair), names="value")
        self.active.observe(self._guarded(self._on_active), names="value")
        self.level.observe(self._guarded(self._update_consistency), names="value")
        self.swap.on_click(self._guarded(self._on_swap))
        self.replace.on_click(self._guarded(self._on_replace))
        self.reset.on_click(self._guarded(self._on_reset))
        self._guarded(self._on_pair)()

    # ---------------------------------------------------------------- layout
    def _build_controls(self, pair: int | None) -> None:
        """Pair choice, band selection, swap, re-label, reset and consistency level."""
        self.pair = pair_dropdown(self.model, pair)
        self.active = W.SelectMultiple(description="bands fed", rows=6)
        self.swap_a = W.Dropdown(description="swap")
        self.swap_b = W.Dropdown(description="with")
        self.swap = W.Button(description="swap wavelengths")
        self.replace_which = W.Dropdown(description="re-label")
        self.replace_min = W.FloatText(value=1100.0, description="as min nm")
        self.replace_max = W.FloatText(value=1250.0, description="max nm")
        self.replace = W.Button(description="replace")
        self.reset = W.Button(description="reset", icon="undo")
        self.level = W.Dropdown(
            options=["encoder", "tokens"], value="encoder", description="compare"
        )

    def _build_views(self) -> None:
        """The lab view (input, token similarity, probe) and the cross-sensor images."""
        self.config_html = W.HTML()
        self.input_view = image_widget(160)
        self.similarity_view = image_widget(160)
        self.probe_html = W.HTML()
        self.lab_view = W.HBox(
            [
                labelled(self.input_view, "input (full-band composite)"),
                labelled(
                    self.similarity_view, "token cosine vs full band (yellow = 1, purple = −1)"
                ),
                self.probe_html,
            ]
        )
        self.consistency_names = ("S2 vs S1", "S2 vs RGB (sim.)", "S1 vs RGB (sim.)")
        self.consistency_images = {n: image_widget(160) for n in self.consistency_names}
        self.consistency_captions = {
            n: W.HTML(f"<small>{n}</small>") for n in self.consistency_names
        }
        self.consistency_view = W.HBox(
            [
                W.VBox([self.consistency_captions[n], self.consistency_images[n]])
                for n in self.consistency_names
            ]
        )
        self.summary = W.HTML()

    def _control_rows(self) -> list[W.Widget]:
        """Controls laid out: pair + reset, then band selection beside swap / re-label."""
        swap_row = W.HBox([self.swap_a, self.swap_b, self.swap])
        replace_row = W.HBox([self.replace_which, self.replace_min, self.replace_max, self.replace])
        return [
            W.HBox([self.pair, self.reset]),
            W.HBox([self.active, W.VBox([swap_row, replace_row])]),
        ]

    def _view_rows(self) -> list[W.Widget]:
        """Outputs laid out: configuration, summary, lab view, then the consistency view."""
        return [
            self.config_html,
            self.summary,
            self.lab_view,
            W.HTML("<b>Cross-sensor consistency</b> (same pair: S2, S1, RGB simulated from S2)"),
            self.level,
            self.consistency_view,
        ]

    # ---------------------------------------------------------------- state
    @property
    def probe(self) -> Any:
        """The given probe, or the default one fitted on the other bundled pairs."""
        if self._probe is not None:
            return self._probe
        with self.progress.busy("fitting the default probe on the other bundled pairs"):
            return _default_probe(self.model, self.size, int(self.pair.value))

    @property
    def edited_bands(self) -> list[Any]:
        return [spec for _, spec in self.config]

    def _on_pair(self, _change: object = None) -> None:
        with self.progress.busy("loading pair"):
            index = int(self.pair.value)
            self.x_s2, self.bands_s2, self.x_s1, self.bands_s1 = pair_tensors(index, self.size)
            self.x_rgb, self.bands_rgb = pair_rgb_tensor(index, self.size)
            if self._user is None:
                self.x, bands = self.x_s2, self.bands_s2
            else:
                scene = user_scene(*self._user)
                self.x = scene_tile(scene, default_tile(scene, self.size, self.model), self.size)
                bands = scene.specs
        self.full_bands = list(bands)
        self.short = [band_label(b) for b in bands]
        with interactive_inference():
            self.tokens_full = self.projection(self.x, self.full_bands)[0]
            enc = self.model.encode(self.x, self.full_bands)[0]
        self.cls_full, self.pooled_full = enc[0], enc[1:].mean(0)
        for dd in (self.swap_a, self.swap_b, self.replace_which):
            dd.options = [(n, i) for i, n in enumerate(self.short)]
        self.swap_a.value, self.swap_b.value = 0, min(1, len(self.short) - 1)
        self._on_reset()
        self._update_consistency()

    def _on_reset(self, _button: object = None) -> None:
        self.config = list(enumerate(self.full_bands))
        self._sync_active()
        self._update()

    def _sync_active(self) -> None:
        """Show ``config`` in the band selector without re-running the model."""
        self._syncing = True
        try:
            self.active.options = [(n, i) for i, n in enumerate(self.short)]
            self.active.value = tuple(ch for ch, _ in self.config)
        finally:
            self._syncing = False

    def _on_active(self, _change: object = None) -> None:
        if self._syncing:
            return
        chosen = set(self.active.value)
        if not chosen:
            self._sync_active()
            raise ValueError("at least one band must be fed to the model; re-select a band")
        specs = dict(self.config)
        self.config = [(ch, specs.get(ch, self.full_bands[ch])) for ch in sorted(chosen)]
        self._update()

    def _on_swap(self, _button: object = None) -> None:
        a, b = int(self.swap_a.value), int(self.swap_b.value)
        specs = dict(self.config)
        missing = [self.short[i] for i in (a, b) if i not in specs]
        if missing:
            raise ValueError(f"cannot swap: band(s) {missing} are dropped; add them back first")
        specs[a], specs[b] = specs[b], specs[a]
        self.config = [(ch, specs[ch]) for ch, _ in self.config]
        self._update()

    def _on_replace(self, _button: object = None) -> None:
        ch = int(self.replace_which.value)
        lo, hi = float(self.replace_min.value), float(self.replace_max.value)
        if not 0 < lo < hi:
            raise ValueError(f"replacement band ({lo:g}, {hi:g}) nm: expected 0 < min_nm < max_nm")

        layer_weights((lo, hi))  # refuses out-of-spectrum bands with the reason
        specs = dict(self.config)
        if ch not in specs:
            raise ValueError(
                f"band {self.short[ch]} is dropped; add it back before re-labelling it"
            )
        specs[ch] = (lo, hi)
        self.config = [(c, specs[c]) for c, _ in self.config]
        self._update()

    # ---------------------------------------------------------------- compute
    def _update(self) -> None:
        channels = [ch for ch, _ in self.config]
        x = self.x[:, channels]
        bands = self.edited_bands
        with interactive_inference():
            tokens = self.projection(x, bands)[0]
            enc = self.model.encode(x, bands)[0]
        self.tokens_edit = tokens
        self.token_similarity = _cos(tokens, self.tokens_full).reshape(self.grid, self.grid).numpy()
        cls, pooled = enc[0], enc[1:].mean(0)
        self.drift = {
            "pooled": float(1 - _cos(pooled, self.pooled_full)),
            "cls": float(1 - _cos(cls, self.cls_full)),
        }
        probe = self.probe
        probs = probe.predict_proba(torch.stack([self.pooled_full, pooled]).numpy())
        self.probe_full, self.probe_edit = np.asarray(probs[0]), np.asarray(probs[1])
        self.classes = [str(c) for c in getattr(probe, "classes", range(len(self.probe_full)))]
        self._render()

    def _update_consistency(self, _change: object = None) -> None:
        x2, b2, x1, b1 = self.x_s2, self.bands_s2, self.x_s1, self.bands_s1
        xr, br = self.x_rgb, self.bands_rgb
        with interactive_inference():
            if self.level.value == "tokens":
                t = [self.projection(x, b)[0] for x, b in ((x2, b2), (x1, b1), (xr, br))]
            else:
                t = [self.model.encode(x, b)[0, 1:] for x, b in ((x2, b2), (x1, b1), (xr, br))]
        g = self.grid
        self.consistency = {
            "S2 vs S1": _cos(t[0], t[1]).reshape(g, g).numpy(),
            "S2 vs RGB (sim.)": _cos(t[0], t[2]).reshape(g, g).numpy(),
            "S1 vs RGB (sim.)": _cos(t[1], t[2]).reshape(g, g).numpy(),
        }
        scale = max(1, 160 // self.grid)
        for name, m in self.consistency.items():
            self.consistency_images[name].value = png_bytes(m, vmin=-1, vmax=1, scale=scale)
            self.consistency_captions[
                name
            ].value = f"<small>{name}: mean cosine {m.mean():.2f} ({self.level.value})</small>"

    # ---------------------------------------------------------------- views
    def _config_text(self) -> str:
        parts = []
        for ch, spec in self.config:
            label = band_label(spec)
            parts.append(
                label
                if label == self.short[ch]
                else f"{self.short[ch]}→<b>{html.escape(label)}</b>"
            )
        dropped = [n for i, n in enumerate(self.short) if i not in dict(self.config)]
        text = "<small>fed: " + ", ".join(parts)
        if dropped:
            text += " &nbsp; dropped: <s>" + ", ".join(dropped) + "</s>"
        return text + "</small>"

    def _render(self) -> None:
        self.config_html.value = self._config_text()
        self.summary.value = (
            f"<small>embedding drift from full-band input (1 − cosine): pooled <b>{self.drift['pooled']:.4f}</b>, "
            f"CLS {self.drift['cls']:.4f}; mean token similarity {float(self.token_similarity.mean()):.3f}</small>"
        )
        self.input_view.value = png_bytes(
            display_rgb(self.x[0].numpy(), self.full_bands), scale=max(1, 160 // self.size)
        )
        self.similarity_view.value = png_bytes(
            self.token_similarity, vmin=-1, vmax=1, scale=max(1, 160 // self.grid)
        )
        k = np.argsort(-np.maximum(self.probe_full, self.probe_edit))[:6]
        rows = "".join(
            f"<tr><td>{html.escape(self.classes[i][:40])}</td>"
            f'<td><div style="background:#1f77b4;height:7px;width:{int(100 * self.probe_full[i])}px"></div>'
            f'<div style="background:#ff7f0e;height:7px;width:{int(100 * self.probe_edit[i])}px"></div></td>'
            f"<td>{self.probe_full[i]:.2f} → {self.probe_edit[i]:.2f}</td></tr>"
            for i in k
        )
        self.probe_html.value = (
            "<small>probe: label probability, <span style='color:#1f77b4'>full</span> → "
            f"<span style='color:#ff7f0e'>edited</span></small><table style='font-size:11px'>{rows}</table>"
        )

    def _consistency_figure(self, fig=None, axes=None):
        if fig is None:
            fig, axes = new_figure(1, 3, size=(9, 3))
            axes = axes[0]
        for ax, (name, m) in zip(axes, self.consistency.items()):
            im = show_image(ax, m, f"{name}: mean {m.mean():.2f}", cmap="viridis", vmin=-1, vmax=1)
        fig.colorbar(im, ax=list(axes), shrink=0.8, label=f"cosine ({self.level.value})")
        return fig

    def figure(self, consistency: bool = True):
        """Token similarity map, probe probabilities (full vs edited) and the consistency maps."""
        fig, axes = new_figure(2 if consistency else 1, 3, size=(12, 6.4 if consistency else 3.2))
        comp = display_rgb(self.x[0].numpy(), self.full_bands)
        show_image(axes[0, 0], comp, "input (full-band composite)")
        im = show_image(
            axes[0, 1],
            self.token_similarity,
            f"token cosine vs full (mean {self.token_similarity.mean():.3f})",
            cmap="viridis",
            vmin=-1,
            vmax=1,
        )
        fig.colorbar(im, ax=axes[0, 1], shrink=0.8)
        ax = axes[0, 2]
        k = np.argsort(-np.maximum(self.probe_full, self.probe_edit))[:8]
        y = np.arange(len(k))
        ax.barh(y - 0.2, self.probe_full[k], 0.4, label="full")
        ax.barh(y + 0.2, self.probe_edit[k], 0.4, label="edited")
        ax.set_yticks(y, [self.classes[i][:28] for i in k], fontsize=6)
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.legend(fontsize=7)
        ax.set_title(f"probe; drift pooled {self.drift['pooled']:.3f}", fontsize=9)
        if consistency:
            self._consistency_figure(fig, axes[1])
        return fig
