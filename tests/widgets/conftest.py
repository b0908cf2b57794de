"""Widgets are built headless (no kernel) with the Agg backend and a small seeded model."""

from __future__ import annotations

import io

import matplotlib
import pytest
import torch

matplotlib.use("Agg")


@pytest.fixture(scope="session")
def model():
    """The model the widgets use by default (demo weights when shipped, else untrained tiny)."""
    from smartiesviz.widgets.samples import default_model

    return default_model()


@pytest.fixture(scope="session")
def tiny_model():
    """A seeded untrained tiny model, independent of the demo weights."""
    import smartiesviz

    torch.manual_seed(0)
    return smartiesviz.smarties_vit_tiny_patch8(img_size=64).eval()


def _png_of(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=40)
    data = buf.getvalue()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return data


@pytest.fixture(scope="session")
def png_of():
    """Render a matplotlib Figure to PNG bytes (checks it really draws)."""
    return _png_of
