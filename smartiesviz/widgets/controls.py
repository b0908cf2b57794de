"""Controls shared by the widgets: ratio sliders, the BigEarthNet pair dropdown, image panels."""

from __future__ import annotations

import html

import ipywidgets as W
import torch

from smartiesviz.widgets.samples import bigearthnet_pairs, default_pair


def ratio_slider(value: float, description: str, max_value: float = 1.0) -> W.FloatSlider:
    """A 0–``max_value`` ratio slider in steps of 0.05 that updates on release (model calls)."""
    return W.FloatSlider(
        value=value, min=0.0, max=max_value, step=0.05, description=description,
        continuous_update=False,
    )  # fmt: skip


def mask_ratio_slider(value: float) -> W.FloatSlider:
    """The masking-ratio slider shared by the widgets (0–0.95: at least one patch stays visible)."""
    return ratio_slider(value, "mask ratio", max_value=0.95)


def pair_dropdown(model: torch.nn.Module, pair: int | None = None) -> W.Dropdown:
    """A dropdown over the bundled BigEarthNet pairs, on ``pair`` (default: the model's held-out one)."""
    names = [getattr(p, "name", f"pair {i}") for i, p in enumerate(bigearthnet_pairs())]
    if pair is None:
        pair = default_pair(model)
    if not 0 <= int(pair) < len(names):
        raise ValueError(
            f"pair {pair} out of range: the bundled BigEarthNet pairs are 0..{len(names) - 1}"
        )
    return W.Dropdown(
        options=[(str(n), i) for i, n in enumerate(names)], value=int(pair), description="pair"
    )


def image_widget(width: int = 160) -> W.Image:
    """An empty square PNG panel."""
    return W.Image(format="png", layout=W.Layout(width=f"{width}px", height=f"{width}px"))


def labelled(widget: W.Widget, text: str) -> W.VBox:
    """``widget`` under a small caption."""
    return W.VBox([W.HTML(f"<small>{html.escape(text)}</small>"), widget])
