"""The SMARTIES pretraining model sizes as plain factories (``smartiesviz.smarties_vit_base_patch16``).

They build the masked auto-encoder :class:`SmartiesMAE`, whose ``forward`` takes two images and
their bands and returns a loss: not a timm classifier, so these names are deliberately *not* in
timm's registry (timm's model contract: ``default_cfg``, ``num_classes``, ``features_only`` ...).
timm's names are the downstream encoders ``smarties_encoder_vit_*``
(:mod:`smartiesviz.models.encoder_timm`). No factory downloads weights: build the model, then
``smartiesviz.load_pretrained(model, path)`` with a local file. The shapes are
:data:`smartiesviz.models.vit.VIT_ARCHS`, the one architecture table.
"""

from __future__ import annotations

from typing import Any

from smartiesviz.models.mae import SmartiesMAE
from smartiesviz.models.vit import VIT_ARCHS

__all__ = [
    "smarties_vit_tiny_patch8",
    "smarties_vit_tiny_patch4",
    "smarties_vit_small_patch16",
    "smarties_vit_base_patch16",
    "smarties_vit_large_patch16",
]

def _create_smarties(variant: str, pretrained: bool = False, **kwargs: Any) -> SmartiesMAE:
    """``SmartiesMAE`` of ``VIT_ARCHS[variant]`` (``smarties_`` prefix dropped); ``kwargs`` win."""
    if pretrained:
        raise ValueError(
            f"{variant}: smartiesviz never downloads weights; build the model and call "
            "smartiesviz.load_pretrained(model, 'smarties-v1-vitb.safetensors') with a local file"
        )
    model = SmartiesMAE(**dict(VIT_ARCHS[variant.removeprefix("smarties_")], **kwargs))
    model.arch_name = variant
    return model


def smarties_vit_tiny_patch8(pretrained: bool = False, **kwargs: Any) -> SmartiesMAE:
    """Tiny CPU-sized model: D 192, depth 4, 3 heads; decoder 128 wide, 2 blocks, 4 heads; 64²."""
    return _create_smarties("smarties_vit_tiny_patch8", pretrained, **kwargs)


def smarties_vit_tiny_patch4(pretrained: bool = False, **kwargs: Any) -> SmartiesMAE:
    """The demo's shape: the tiny model at patch 4, 16 × 16 tokens of 4 × 4 px at 64²."""
    return _create_smarties("smarties_vit_tiny_patch4", pretrained, **kwargs)


def smarties_vit_small_patch16(pretrained: bool = False, **kwargs: Any) -> SmartiesMAE:
    """ViT-S/16: D 384, depth 12, 6 heads; decoder 256 wide, 4 blocks, 8 heads; 224²."""
    return _create_smarties("smarties_vit_small_patch16", pretrained, **kwargs)


def smarties_vit_base_patch16(pretrained: bool = False, **kwargs: Any) -> SmartiesMAE:
    """ViT-B/16, released shapes: D 768, depth 12, 12 heads; decoder 512/8/16; 224²."""
    return _create_smarties("smarties_vit_base_patch16", pretrained, **kwargs)


def smarties_vit_large_patch16(pretrained: bool = False, **kwargs: Any) -> SmartiesMAE:
    """ViT-L/16, released shapes: D 1024, depth 24, 16 heads; decoder 512/8/16; 224²."""
    return _create_smarties("smarties_vit_large_patch16", pretrained, **kwargs)
