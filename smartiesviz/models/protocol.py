"""What a SMARTIES model offers its callers (predictions, widgets, export, adapters): one Protocol.

:class:`SmartiesModel` is what code outside ``models/`` may rely on instead of probing a model
with ``getattr(model, name, default)``. Both :class:`~smartiesviz.models.mae.SmartiesMAE` and
:class:`~smartiesviz.models.encoder.SmartiesEncoder` satisfy it (they share
:class:`~smartiesviz.models.vit.ViTEncoder`, which defines every member); a test checks that.
It is ``runtime_checkable``, so ``isinstance(model, SmartiesModel)`` checks that the members exist
(not their types).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from smartiesviz.models.tokenizer import SpectrumAwareProjection
from smartiesviz.options import TokenNorm
from smartiesviz.spectrum.resolve import BandsArg

__all__ = ["SmartiesModel"]


@runtime_checkable
class SmartiesModel(Protocol):
    """A SMARTIES ViT encoder: sizes, the tokenizer, and the feature outputs.

    Attributes:
        img_size: default (square) input side in pixels (the positional table's).
        patch_size: patch side ``S``.
        embed_dim: token width ``D``.
        num_heads: attention heads per block.
        grid_size: ``(img_size/S, img_size/S)``.
        spectrum_projection: the tokenizer.
        blocks: the encoder blocks (their count is the depth).
        arch_name: the variant name (``"smarties_vit_tiny_patch4"``) or the class name.
        checkpoint_path: the weights file the model was loaded from (never overwritten), or None.
        checkpoint_info: the file's :class:`~smartiesviz.models.checkpoint.CheckpointInfo`, or None.
        checkpoint_source: the :class:`~smartiesviz.models.resolve.CheckpointSource` of a named
            checkpoint (file, Hub commit, sha256), or None.
    """

    img_size: int
    patch_size: int
    embed_dim: int
    num_heads: int
    grid_size: tuple[int, int]
    spectrum_projection: SpectrumAwareProjection
    blocks: nn.ModuleList
    arch_name: str
    checkpoint_path: Path | None
    checkpoint_info: Any
    checkpoint_source: Any

    def patch_grid(self, x: torch.Tensor) -> tuple[int, int]:
        """``(H/S, W/S)`` of a ``(B, C, H, W)`` batch; a clear error when not divisible."""
        ...

    def embed(self, x: torch.Tensor, bands: BandsArg) -> torch.Tensor:
        """``(B, C, H, W)`` → positioned tokens ``(B, N, D)``."""
        ...

    def encode(self, x: torch.Tensor, bands: BandsArg) -> torch.Tensor:
        """``(B, C, H, W)`` → every token after the final norm ``(B, 1+N, D)``, CLS first."""
        ...

    def cls_features(self, x: torch.Tensor, bands: BandsArg) -> torch.Tensor:
        """``(B, C, H, W)`` → the feature vector ``(B, D)``."""
        ...

    def pooled_features(self, x: torch.Tensor, bands: BandsArg) -> torch.Tensor:
        """``(B, C, H, W)`` → mean of the post-norm patch tokens ``(B, D)``."""
        ...

    def patch_feature_map(
        self, x: torch.Tensor, bands: BandsArg, token_norm: TokenNorm = ...
    ) -> torch.Tensor:
        """``(B, C, H, W)`` → patch tokens as a map ``(B, D, H/S, W/S)``."""
        ...

    def intermediate_maps(
        self, x: torch.Tensor, bands: BandsArg, indices: Sequence[int], token_norm: TokenNorm = ...
    ) -> list[torch.Tensor]:
        """``(B, C, H, W)`` → maps ``(B, D, H/S, W/S)`` after the blocks ``indices``."""
        ...
