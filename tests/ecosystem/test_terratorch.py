"""SMARTIES + UPerNet through TerraTorch's backbone registry and EncoderDecoderFactory."""

from __future__ import annotations

import importlib.util

import pytest
import torch

# find_spec, not importorskip: importing terratorch bare would lower torch's matmul precision for
# the whole run; our adapter imports it with torch's global settings kept (issue 28)
if importlib.util.find_spec("terratorch") is None:
    pytest.skip("needs the terratorch extra: pip install smartiesviz[terratorch]", allow_module_level=True)
import smartiesviz.integrations.terratorch as tt  # noqa: E402  (before terratorch itself)

# isort: split
from terratorch.models import EncoderDecoderFactory  # noqa: E402
from terratorch.registry import BACKBONE_REGISTRY  # noqa: E402

from smartiesviz.models.encoder import SmartiesEncoder  # noqa: E402
from tests.ecosystem.conftest import demo_encoder_name  # noqa: E402


def test_backbones_are_registered() -> None:
    for name in tt.BACKBONES:
        assert name in BACKBONE_REGISTRY
    backbone = BACKBONE_REGISTRY.build("smarties_encoder_vit_tiny_patch8", bands="S1", img_size=32)
    assert backbone.out_channels == [192] * 4
    with pytest.raises(ValueError, match="downloads nothing"):
        BACKBONE_REGISTRY.build("smarties_encoder_vit_tiny_patch8", bands="S1", pretrained=True)


def test_upernet_forward_backward_with_demo_weights() -> None:
    torch.manual_seed(0)
    model = EncoderDecoderFactory().build_model(
        task="segmentation",
        backbone=demo_encoder_name(),
        backbone_bands="sentinel2-l2a",
        backbone_pretrained_file="demo",
        necks=[{"name": "LearnedInterpolateToPyramidal"}],
        decoder="UperNetDecoder",
        decoder_channels=32,
        num_classes=3,
    )
    demo = SmartiesEncoder.from_pretrained("demo").state_dict()["blocks.3.mlp.fc2.weight"]
    encoder = model.encoder.encoder
    assert torch.equal(encoder.state_dict()["blocks.3.mlp.fc2.weight"], demo)
    x = torch.randn(2, 12, 64, 64)
    y = torch.randint(0, 3, (2, 64, 64))
    out = model(x).output
    assert out.shape == (2, 3, 64, 64)
    loss = torch.nn.functional.cross_entropy(out, y)
    loss.backward()
    grads = [p.grad for p in encoder.blocks[-1].parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert encoder.spectrum_projection.layers[0].weight.grad.abs().sum() > 0  # S2 B01 layer trained
    assert encoder.spectrum_projection.layers[15].weight.grad is None  # S1 layer unused
