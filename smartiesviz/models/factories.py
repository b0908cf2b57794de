"""The SMARTIES pretraining model sizes as plain factories (``smartiesviz.smarties_vit_base_patch16``).

They build the masked auto-encoder :class:`SmartiesMAE`, whose ``forward`` takes two images and
their bands and returns a loss: not a timm classifier, so these names are deliberately *not* in
timm's registry (timm's model contract: ``default_cfg``, ``num_classes``, ``features_only`` ...).
timm's names are the downstream encoders ``smarties_encoder_vit_*``
(:mod:`smartiesviz.models.encoder_timm`). No factory downloads weights: build the model, then
``smartiesviz.load_pretrained(model, path)`` with a local file.
"""

from __future__ import annotations

from typing import Any

from smartiesviz.models.mae import SmartiesMAE

__all__ = [
    "smarties_vit_tiny_patch8",
    "smarties_vit_tiny_patch4",
    "smarties_vit_small_patch16",
    "smarties_vit_base_patch16",
    "smarties_vit_large_patch16",
]

# the tiny CPU-sized shape, at patch 8 or 4
_TINY = dict(img_size=64, embed_dim=192, depth=4, num_heads=3,
             decoder_embed_dim=128, decoder_depth=2, decoder_num_heads=4)  # fmt: skip


def _create_smarties(variant: str, pretrained: bool = False, **kwargs: Any) -> SmartiesMAE:
    if pretrained:
        raise ValueError(
            f"{variant}: smartiesviz never downloads weights; build the model and call "
            "smartiesviz.load_pretrained(model, 'smarties-v1-vitb.safetensors') with a local file"
        )
    model = SmartiesMAE(**kwargs)
    model.arch_name = variant
    return model


def smarties_vit_tiny_patch8(pretrained: bool = False, **kwargs: Any) -> SmartiesMAE:
    """Tiny CPU-sized model: D 192, depth 4, 3 heads; decoder 128 wide, 2 blocks, 4 heads; 64²."""
    model_args = dict(_TINY, patch_size=8)
    return _create_smarties("smarties_vit_tiny_patch8", pretrained, **dict(model_args, **kwargs))


def smarties_vit_tiny_patch4(pretrained: bool = False, **kwargs: Any) -> SmartiesMAE:
    """The demo's shape: the tiny model at patch 4, 16 × 16 tokens of 4 × 4 px at 64²."""
    model_args = dict(_TINY, patch_size=4)
    return _create_smarties("smarties_vit_tiny_patch4", pretrained, **dict(model_args, **kwargs))


def smarties_vit_small_patch16(pretrained: bool = False, **kwargs: Any) -> SmartiesMAE:
    """ViT-S/16: D 384, depth 12, 6 heads; decoder 256 wide, 4 blocks, 8 heads; 224²."""
    model_args = dict(patch_size=16, embed_dim=384, depth=12, num_heads=6,
                      decoder_embed_dim=256, decoder_depth=4, decoder_num_heads=8)  # fmt: skip
    return _create_smarties("smarties_vit_small_patch16", pretrained, **dict(model_args, **kwargs))


def smarties_vit_base_patch16(pretrained: bool = False, **kwargs: Any) -> SmartiesMAE:
    """ViT-B/16, released shapes: D 768, depth 12, 12 heads; decoder 512/8/16; 224²."""
    model_args = dict(patch_size=16, embed_dim=768, depth=12, num_heads=12)
    return _create_smarties("smarties_vit_base_patch16", pretrained, **dict(model_args, **kwargs))


def smarties_vit_large_patch16(pretrained: bool = False, **kwargs: Any) -> SmartiesMAE:
    """ViT-L/16, released shapes: D 1024, depth 24, 16 heads; decoder 512/8/16; 224²."""
    model_args = dict(patch_size=16, embed_dim=1024, depth=24, num_heads=16)
    return _create_smarties("smarties_vit_large_patch16", pretrained, **dict(model_args, **kwargs))
