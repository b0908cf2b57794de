"""Static matplotlib twins of the widgets, without pyplot (so no global backend state).

Live views show small PNG panels rendered by :mod:`smartiesviz.render`; every widget's
``.figure()`` builds its matplotlib twin with these helpers.
"""

from __future__ import annotations

import functools
import io
from typing import Any

import numpy as np


def static_figure(**kw: Any):
    """A pyplot-free matplotlib ``Figure`` that shows itself as PNG in Jupyter.

    Figures made without pyplot have no display formatter unless ``%matplotlib inline`` is
    active; ``_repr_png_`` makes ``explorer.figure()`` render at the end of a cell either way.
    """
    return _static_figure_class()(**kw)


@functools.lru_cache(maxsize=1)
def _static_figure_class() -> type:
    from matplotlib.figure import Figure  # lazy: matplotlib only for static (non-widget) figures

    class StaticFigure(Figure):
        def _repr_png_(self) -> bytes:
            return figure_png(self, dpi=100)

    return StaticFigure


def new_figure(nrows: int, ncols: int, *, size: tuple[float, float] | None = None, **kw: Any):
    """A pyplot-free matplotlib Figure (see :func:`static_figure`) with an (nrows, ncols) axes array."""
    fig = static_figure(figsize=size or (2.6 * ncols, 2.6 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, axes


def show_image(ax: Any, img: np.ndarray, title: str, **kw: Any) -> Any:
    """``imshow`` without ticks, nearest-neighbour, with a small title."""
    im = ax.imshow(img, interpolation="nearest", **kw)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    return im


def figure_png(fig: Any, dpi: int = 80) -> bytes:
    """PNG bytes of a matplotlib figure."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()
