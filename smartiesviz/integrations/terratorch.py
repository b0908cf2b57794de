"""SMARTIES in TerraTorch's backbone registry (``pip install smartiesviz[terratorch]``).

Importing this module registers ``smarties_encoder_vit_{tiny_patch4,tiny_patch8,small_patch16,
base_patch16,large_patch16}`` in ``TERRATORCH_BACKBONE_REGISTRY`` (as ``@register_model`` does
for timm), so TerraTorch's ``EncoderDecoderFactory`` and YAML configs can name them::

    import smartiesviz.integrations.terratorch  # noqa: F401  (registers the backbones)
    from terratorch.models import EncoderDecoderFactory

    model = EncoderDecoderFactory().build_model(
        task="segmentation",
        backbone="smarties_encoder_vit_base_patch16",
        backbone_bands=["BLUE", "GREEN", "RED", "NIR_NARROW", "SWIR_1", "SWIR_2"],  # HLSBands
        backbone_pretrained_file="smarties-v1-vitb.safetensors",
        necks=[{"name": "LearnedInterpolateToPyramidal"}],  # 4 block maps -> a pyramid
        decoder="UperNetDecoder",
        num_classes=5,
    )

TerraTorch 1.2 discovers third-party backbones only through imports (no entry-point group; its
``custom_modules_path`` imports a folder). That one import happens by itself from a config that
names a class of this module: the shipped ``configs/terratorch-segmentation.yaml`` sets
``model.class_path: smartiesviz.integrations.terratorch.SemanticSegmentationTask`` (TerraTorch's
own task, re-exported here), so ``terratorch fit --config`` needs no ``custom_modules_path``.

``backbone_bands`` takes TerraTorch's band names (``HLSBands`` members or their strings:
``BLUE, GREEN, RED, NIR_NARROW, SWIR_1, SWIR_2``, ``RED_EDGE_1``, ``VV``, ...), any SMARTIES band
argument (``"sentinel2-l2a"``, ``["sentinel2-l2a/B04", "red_2"]``), or a mix.
:func:`release_means_stds` gives the ``means``/``stds`` for TerraTorch's datamodules from the
release's statistics (the shipped YAML's values come from it).

The backbone is the timm model's ``features_only`` form (timm's own feature wrapper): a list of
``(B, D, H/S, W/S)`` maps from four blocks (``backbone_out_indices`` to choose), with
``out_channels`` and ``token_norm``. The maps are ``"pre-norm"`` tokens by default (each block's
output before the final norm; at the last block the release's ``all_tokens``, what its
segmentation heads read); ``backbone_token_norm="post-norm"`` passes each through the final norm
(:data:`smartiesviz.options.TokenNorm`). TerraTorch itself records no such choice: the
built model's ``encoder.token_norm`` says which.

Import this module before ``terratorch`` itself: TerraTorch changes torch's global matmul
precision when it is first imported, and this module imports it with torch's settings kept.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import Enum
from pathlib import Path
from typing import Any

from timm.models import get_pretrained_cfg
from torch import nn

from smartiesviz.integrations.benchmark_bands import (
    TERRATORCH_BANDS,
    benchmark_bands,
    release_means_stds,
)
from smartiesviz.models.encoder_timm import create_encoder_model
from smartiesviz.options import DEFAULT_TOKEN_NORM, TokenNorm, check_option
from smartiesviz.spectrum.resolve import BandsArg
from smartiesviz.torch_globals import preserved

# TerraTorch lowers torch's fp32 matmul precision to "medium" (bf16 on CPUs that have it) for the
# whole process when it is imported; import it here with torch's global settings kept as found.
with preserved():
    import terratorch.models  # noqa: F401  (imports every backbone module, clay's included)
    from terratorch.registry import TERRATORCH_BACKBONE_REGISTRY
    from terratorch.tasks import ClassificationTask, SemanticSegmentationTask

__all__ = [
    "BACKBONES",
    "ClassificationTask",
    "SemanticSegmentationTask",
    "build_backbone",
    "release_means_stds",
    "terratorch_bands",
]

BACKBONES = (
    "smarties_encoder_vit_tiny_patch4",
    "smarties_encoder_vit_tiny_patch8",
    "smarties_encoder_vit_small_patch16",
    "smarties_encoder_vit_base_patch16",
    "smarties_encoder_vit_large_patch16",
)


def terratorch_bands(bands: BandsArg | Sequence[Any] | None) -> BandsArg | None:
    """``bands`` with TerraTorch's band names (``HLSBands`` members or their strings) replaced by
    SMARTIES band specs (see :data:`~smartiesviz.integrations.benchmark_bands.TERRATORCH_BANDS`);
    everything else (a sensor name, our band specs) is kept as given."""
    if bands is None or isinstance(bands, str):
        return bands
    if isinstance(bands, Enum):
        bands = [bands]
    if not isinstance(bands, Sequence):
        return bands  # a ResolvedBands
    return [
        benchmark_bands([b])[0] if isinstance(b, Enum) or (isinstance(b, str) and b in TERRATORCH_BANDS)
        else b
        for b in bands
    ]  # fmt: skip


def build_backbone(
    variant: str,
    bands: BandsArg | None = None,
    pretrained: bool = False,
    pretrained_file: str | Path | None = None,
    ckpt_path: str | Path | None = None,
    img_size: int | None = None,
    out_indices: Sequence[int] | None = None,
    in_chans: int | None = None,
    token_norm: TokenNorm = DEFAULT_TOKEN_NORM,
    **kwargs: Any,
) -> nn.Module:
    """A SMARTIES feature backbone as TerraTorch builds backbones.

    Args:
        variant: one of :data:`BACKBONES`.
        bands: the input's bands: a sensor name, band specs, or TerraTorch band names
            (``HLSBands`` members or ``"BLUE"``, ``"NIR_NARROW"``, ...); default from ``in_chans``.
        pretrained: without a file: the released weights through timm's Hugging Face Hub cache
            (``base_patch16``, ``large_patch16``; other variants have none and are refused).
        pretrained_file: local checkpoint (released, ours) or ``"demo"``; ``ckpt_path`` is
            TerraTorch's name for it.
        img_size: input size; out_indices: blocks whose maps are returned.
        in_chans: channel count, checked against ``bands``.
        token_norm: the maps before (``"pre-norm"``, default) or after the final norm
            (``"post-norm"``); ``backbone_token_norm`` in TerraTorch's factory arguments.
        **kwargs: other encoder arguments (``scheme``, ``drop_path_rate``).

    Returns:
        the ``features_only`` model: ``(B, C, H, W)`` → list of ``(B, D, H/S, W/S)``, with
        ``out_channels`` and ``token_norm``.
    """
    check_option("token_norm", token_norm, TokenNorm)
    if ckpt_path is not None and pretrained_file is not None:
        raise ValueError("give pretrained_file or ckpt_path, not both")
    file = pretrained_file if pretrained_file is not None else ckpt_path
    if pretrained and file is None:
        cfg = get_pretrained_cfg(variant)
        if cfg is None or not cfg.hf_hub_id:  # timm would silently keep the random weights
            released = [n for n in BACKBONES if (c := get_pretrained_cfg(n)) and c.hf_hub_id]
            raise ValueError(
                f"{variant} has no released weights to download: pass backbone_pretrained_file="
                f"'path' or 'demo'; pretrained=True alone works for {', '.join(released)}"
            )
    kwargs.pop("num_classes", None)  # TerraTorch may forward it; the head is the decoder's job
    return create_encoder_model(
        variant, pretrained=pretrained and file is None, bands=terratorch_bands(bands),
        in_chans=in_chans, img_size=img_size, pretrained_file=file, features_only=True,
        out_indices=out_indices, token_norm=token_norm, **kwargs,
    )  # fmt: skip


def _builder(variant: str) -> Callable[..., nn.Module]:
    def build(**kwargs: Any) -> nn.Module:
        return build_backbone(variant, **kwargs)

    build.__name__ = build.__qualname__ = variant  # the registry keys on __name__
    build.__doc__ = f"TerraTorch backbone {variant} (see smartiesviz.integrations.terratorch)."
    return build


for _name in BACKBONES:
    if _name not in TERRATORCH_BACKBONE_REGISTRY:
        TERRATORCH_BACKBONE_REGISTRY.register(_builder(_name))
