"""SMARTIES in TerraTorch's backbone registry (``pip install smartiesviz[terratorch]``).

Importing this module registers ``smarties_encoder_vit_{tiny_patch4,tiny_patch8,small_patch16,
base_patch16,large_patch16}`` in ``TERRATORCH_BACKBONE_REGISTRY`` (as ``@register_model`` does
for timm), so TerraTorch's ``EncoderDecoderFactory`` and YAML configs can name them::

    import smartiesviz.integrations.terratorch  # noqa: F401  (registers the backbones)
    from terratorch.models import EncoderDecoderFactory

    model = EncoderDecoderFactory().build_model(
        task="segmentation",
        backbone="smarties_encoder_vit_base_patch16",
        backbone_bands="sentinel2-l2a",              # any band set SMARTIES can tokenize
        backbone_pretrained_file="smarties-v1-vitb.safetensors",
        necks=[{"name": "LearnedInterpolateToPyramidal"}],  # 4 block maps -> a pyramid
        decoder="UperNetDecoder",
        num_classes=5,
    )

The backbone is a :class:`~smartiesviz.models.encoder_timm.SmartiesFeatures`: a list of
``(B, D, H/S, W/S)`` maps from four blocks (``backbone_out_indices`` to choose), with
``out_channels``. In TerraTorch's own configs the input is already normalised; use the
release's statistics (``smartiesviz.data.preprocess.normalize_array``) for the means and stds.

Import this module before ``terratorch`` itself: TerraTorch changes torch's global matmul
precision when it is first imported, and this module imports it with torch's settings kept.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from smartiesviz.models.encoder_timm import create_encoder_model
from smartiesviz.spectrum.resolve import BandsArg
from smartiesviz.torch_globals import preserved

# TerraTorch lowers torch's fp32 matmul precision to "medium" (bf16 on CPUs that have it) for the
# whole process when it is imported; import it here with torch's global settings kept as found.
with preserved():
    import terratorch.models  # noqa: F401  (imports every backbone module, clay's included)
    from terratorch.registry import TERRATORCH_BACKBONE_REGISTRY

__all__ = ["BACKBONES", "build_backbone"]

BACKBONES = (
    "smarties_encoder_vit_tiny_patch4",
    "smarties_encoder_vit_tiny_patch8",
    "smarties_encoder_vit_small_patch16",
    "smarties_encoder_vit_base_patch16",
    "smarties_encoder_vit_large_patch16",
)


def build_backbone(
    variant: str,
    bands: BandsArg | None = None,
    pretrained: bool = False,
    pretrained_file: str | Path | None = None,
    ckpt_path: str | Path | None = None,
    img_size: int | None = None,
    out_indices: Sequence[int] | None = None,
    in_chans: int | None = None,
    **kwargs: Any,
) -> nn.Module:
    """A SMARTIES feature backbone as TerraTorch builds backbones.

    Args:
        variant: one of :data:`BACKBONES`.
        bands: the input's bands (sensor name or band specs); default from ``in_chans``.
        pretrained: True needs ``pretrained_file``/``ckpt_path`` (nothing is downloaded).
        pretrained_file: local checkpoint (released, ours) or ``"demo"``; ``ckpt_path`` is
            TerraTorch's name for it.
        img_size: input size; out_indices: blocks whose maps are returned.
        in_chans: channel count, checked against ``bands``.
        **kwargs: other encoder arguments (``scheme``, ``drop_path_rate``).

    Returns:
        :class:`~smartiesviz.models.encoder_timm.SmartiesFeatures` (``out_channels`` set).
    """
    if ckpt_path is not None and pretrained_file is not None:
        raise ValueError("give pretrained_file or ckpt_path, not both")
    file = pretrained_file if pretrained_file is not None else ckpt_path
    if pretrained and file is None:
        raise ValueError(
            f"{variant}: pretrained=True needs a local file: backbone_pretrained_file='path' "
            "(smarties-v1-vitb.safetensors) or 'demo'; smartiesviz downloads nothing"
        )
    kwargs.pop("num_classes", None)  # TerraTorch may forward it; the head is the decoder's job
    return create_encoder_model(
        variant, bands=bands, in_chans=in_chans, img_size=img_size, pretrained_file=file,
        features_only=True, out_indices=out_indices, **kwargs,
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
