"""Shared fixtures for the model tests: a tiny CPU model and small co-registered S2/S1 pairs."""

from __future__ import annotations

import pytest
import torch

from smartiesviz.models.factories import smarties_vit_tiny_patch8
from smartiesviz.models.mae import SmartiesMAE

IMG = 32  # 4x4 grid of 8-pixel patches (the test modules use the same figure)


def tiny_model(seed: int = 0, **kwargs) -> SmartiesMAE:
    torch.manual_seed(seed)
    kw = dict(
        img_size=IMG, embed_dim=64, depth=2, num_heads=4, decoder_embed_dim=32, decoder_depth=1
    )
    return smarties_vit_tiny_patch8(**{**kw, **kwargs})


@pytest.fixture
def make_model():
    """Factory for tiny models (``make_model(seed=0, **overrides)``)."""
    return tiny_model


@pytest.fixture
def model() -> SmartiesMAE:
    return tiny_model()


@pytest.fixture
def pair() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(3, 12, IMG, IMG, generator=g), torch.randn(3, 2, IMG, IMG, generator=g)
