"""The one SMARTIES ViT encoder: spectrum-aware tokens → CLS + blocks → pre- or post-norm tokens.

Every encoder path runs through this module:

* :class:`ViTEncoder` is the trunk that :class:`~smartiesviz.models.mae.SmartiesMAE` (pretraining)
  and :class:`~smartiesviz.models.encoder.SmartiesEncoder` (the release's downstream model)
  inherit: ``spectrum_projection``, ``cls_token``, ``blocks``, ``norm`` (state-dict names as in
  the release), the one patch-grid check, and the feature outputs (:meth:`ViTEncoder.cls_features`,
  :meth:`~ViTEncoder.patch_feature_map`, :meth:`~ViTEncoder.intermediate_maps`). Subclasses say
  only where the positions come from (:meth:`~ViTEncoder.patch_pos`, :meth:`~ViTEncoder.cls_row`).
* :func:`run_blocks`, :func:`apply_token_norm` and :func:`tokens_to_map` are the stages as pure
  functions, shared with the ONNX export's baked encoder (:mod:`smartiesviz.export`).
* the timm models (:mod:`smartiesviz.models.encoder_timm`) are timm's ``VisionTransformer`` (timm's
  contract needs its class) built from :data:`VIT_ARCHS` with :func:`layer_norm`; a test checks
  they compute what :class:`ViTEncoder` computes.

Token normalisation (:data:`~smartiesviz.options.TokenNorm`): ``"pre-norm"`` is the last
block's output (the release's ``all_tokens``, what its segmentation heads read), ``"post-norm"``
after the final LayerNorm (how the release normalises its CLS feature, and the MAE's pretraining
output). Every dense output defaults to :data:`~smartiesviz.options.DEFAULT_TOKEN_NORM`.

:data:`VIT_ARCHS` is the one architecture table: the encoder shapes (``smarties_encoder_<name>`` in
timm, :func:`~smartiesviz.models.encoder.build_encoder`) and the pretraining decoder shapes
(``smarties_<name>`` factories).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from timm.models.vision_transformer import Block
from torch import nn

from smartiesviz.models.mixup import gather_tokens
from smartiesviz.models.tokenizer import SpectrumAwareProjection, patch_grid_shape
from smartiesviz.options import DEFAULT_TOKEN_NORM, TokenNorm, check_option
from smartiesviz.spectrum import NUM_LAYERS
from smartiesviz.spectrum.resolve import BandsArg

__all__ = [
    "VIT_ARCHS",
    "ENCODER_KEYS",
    "ViTEncoder",
    "apply_token_norm",
    "encoder_arch",
    "layer_norm",
    "run_blocks",
    "tokens_to_map",
    "vit_blocks",
]

#: The one architecture table, by variant name: the release's ViT-B/L, ViT-S, and the tiny CPU
#: shape (the demo's at patch 4). Encoder keys (:data:`ENCODER_KEYS`) and the pretraining decoder.
VIT_ARCHS: dict[str, dict[str, Any]] = {
    "vit_tiny_patch4": dict(img_size=64, patch_size=4, embed_dim=192, depth=4, num_heads=3,
                            decoder_embed_dim=128, decoder_depth=2, decoder_num_heads=4),
    "vit_tiny_patch8": dict(img_size=64, patch_size=8, embed_dim=192, depth=4, num_heads=3,
                            decoder_embed_dim=128, decoder_depth=2, decoder_num_heads=4),
    "vit_small_patch16": dict(img_size=224, patch_size=16, embed_dim=384, depth=12, num_heads=6,
                              decoder_embed_dim=256, decoder_depth=4, decoder_num_heads=8),
    "vit_base_patch16": dict(img_size=224, patch_size=16, embed_dim=768, depth=12, num_heads=12,
                             decoder_embed_dim=512, decoder_depth=8, decoder_num_heads=16),
    "vit_large_patch16": dict(img_size=224, patch_size=16, embed_dim=1024, depth=24, num_heads=16,
                              decoder_embed_dim=512, decoder_depth=8, decoder_num_heads=16),
}  # fmt: skip
#: the keys of a :data:`VIT_ARCHS` entry that describe the encoder
ENCODER_KEYS = ("img_size", "patch_size", "embed_dim", "depth", "num_heads")


def encoder_arch(variant: str) -> dict[str, Any]:
    """The encoder part of a :data:`VIT_ARCHS` entry (a fresh dict)."""
    return {k: VIT_ARCHS[variant][k] for k in ENCODER_KEYS}


def layer_norm(dim: int, **kwargs: Any) -> nn.LayerNorm:
    """The ViT's LayerNorm (eps 1e-6, as MAE and the release)."""
    return nn.LayerNorm(dim, eps=1e-6, **kwargs)


def vit_blocks(
    dim: int, depth: int, num_heads: int, mlp_ratio: float = 4.0, drop_path_rate: float = 0.0
) -> nn.ModuleList:
    """``depth`` timm ``Block``\\ s (qkv bias, LayerNorm eps 1e-6, drop path rising linearly)."""
    dpr = torch.linspace(0, drop_path_rate, depth).tolist() if depth and drop_path_rate else None
    return nn.ModuleList(
        Block(dim, num_heads, mlp_ratio, qkv_bias=True, drop_path=dpr[i] if dpr else 0.0,
              norm_layer=layer_norm)  # fmt: skip
        for i in range(depth)
    )


def run_blocks(
    cls: torch.Tensor, tokens: torch.Tensor, blocks: Sequence[nn.Module]
) -> torch.Tensor:
    """Prepend the CLS row and run the blocks: ``(1, 1, D)``, ``(B, N, D)`` → ``(B, 1+N, D)``,
    the last block's output (pre-norm)."""
    h = torch.cat([cls.to(tokens.dtype).expand(tokens.shape[0], -1, -1), tokens], dim=1)
    for blk in blocks:
        h = blk(h)
    return h


def apply_token_norm(h: torch.Tensor, norm: nn.Module, token_norm: TokenNorm) -> torch.Tensor:
    """``(B, L, D)`` pre-norm tokens → as ``token_norm`` says (``norm`` applied for post-norm)."""
    return norm(h) if token_norm == "post-norm" else h


def tokens_to_map(h: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """``(B, 1+N, D)`` → the patch tokens as a map ``(B, D, gh, gw)`` (CLS dropped)."""
    return h[:, 1:].transpose(1, 2).reshape(h.shape[0], h.shape[-1], *grid)


class ViTEncoder(nn.Module):
    """The SMARTIES encoder trunk (subclassed by ``SmartiesMAE`` and ``SmartiesEncoder``).

    Args:
        img_size: default input size (square); any ``H, W`` divisible by ``patch_size`` works.
        patch_size: patch side ``S``.
        embed_dim: width ``D``.
        depth: encoder blocks.
        num_heads: attention heads.
        mlp_ratio: MLP hidden width / ``D``.
        num_layers: learned spectral-range layers (17 in the release).
        scheme: interpolation scheme for bands without a learned layer (``None``: the
            tokenizer's default).
        drop_path_rate: stochastic depth (linearly increasing over blocks).
        final_norm: False replaces ``norm`` by ``Identity`` (an encoder pooling through its own
            ``fc_norm``, as MAE's fine-tuning ViT); post-norm outputs are then refused.

    Attributes:
        img_size, patch_size, embed_dim, depth, num_heads, grid_size: as built.
        spectrum_projection: :class:`SpectrumAwareProjection`; cls_token: ``(1, 1, D)``;
        blocks: timm ``Block``\\ s; norm: the final LayerNorm.
        arch_name, checkpoint_path, checkpoint_info, checkpoint_source: see
            :class:`~smartiesviz.models.protocol.SmartiesModel` (the members every caller may use).
    """

    def __init__(
        self, img_size: int, patch_size: int, embed_dim: int, depth: int, num_heads: int,
        mlp_ratio: float = 4.0, num_layers: int = NUM_LAYERS, scheme: str | None = None,
        drop_path_rate: float = 0.0, final_norm: bool = True,
    ) -> None:  # fmt: skip
        super().__init__()
        patch_grid_shape(img_size, img_size, patch_size, "img_size")
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        self.img_size = img_size
        self.patch_size = patch_size
        self.embed_dim = embed_dim
        self.depth = depth
        self.num_heads = num_heads
        self.grid_size = (img_size // patch_size, img_size // patch_size)
        extra = {} if scheme is None else {"scheme": scheme}
        # creation order fixes the random initialisation: projection, CLS, blocks, norm
        self.spectrum_projection = SpectrumAwareProjection(
            embed_dim, patch_size, num_layers, **extra
        )
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.blocks = vit_blocks(embed_dim, depth, num_heads, mlp_ratio, drop_path_rate)
        self.norm: nn.Module = layer_norm(embed_dim) if final_norm else nn.Identity()
        self.arch_name: str = type(self).__name__  # a factory sets the variant's name
        self.checkpoint_path: Path | None = None  # set by loading: save_checkpoint keeps it
        self.checkpoint_info: Any = None  # the loaded file's CheckpointInfo
        self.checkpoint_source: Any = None  # CheckpointSource of a named checkpoint (sha256, Hub)

    # ------------------------------------------------------------------ positions (subclasses)
    def patch_pos(self, grid: tuple[int, int], ref: torch.Tensor) -> torch.Tensor:
        """``(1, N, D)`` positional vectors of the patches of ``grid`` (``ref``: device, dtype)."""
        raise NotImplementedError

    def cls_row(self) -> torch.Tensor:
        """``(1, 1, D)``: the CLS token plus its positional vector."""
        raise NotImplementedError

    # ------------------------------------------------------------------ stages
    def patch_grid(self, x: torch.Tensor) -> tuple[int, int]:
        """``(H/S, W/S)`` of a ``(B, C, H, W)`` input, else a clear error (the one check)."""
        if x.ndim != 4:
            raise ValueError(f"expected an image batch (B, C, H, W), got shape {tuple(x.shape)}")
        return patch_grid_shape(int(x.shape[-2]), int(x.shape[-1]), self.patch_size, "input size")

    def embed(self, x: torch.Tensor, bands: BandsArg) -> torch.Tensor:
        """Spectrum-aware tokens plus positions: ``(B, C, H, W)`` → ``(B, N, D)`` (no CLS)."""
        grid = self.patch_grid(x)
        tokens = self.spectrum_projection(x, bands)
        return tokens + self.patch_pos(grid, tokens)

    def encode_tokens(
        self, tokens: torch.Tensor, ids_keep: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``(B, N, D)`` positioned tokens (only ``ids_keep`` ``(B, K)`` when given) → CLS + blocks
        → ``(B, 1+K, D)``, pre-norm."""
        if ids_keep is not None:
            tokens = gather_tokens(tokens, ids_keep)
        return run_blocks(self.cls_row(), tokens, self.blocks)

    def forward_tokens(self, x: torch.Tensor, bands: BandsArg) -> torch.Tensor:
        """All tokens after the last block, before the final norm: ``(B, 1+N, D)``, CLS first."""
        return self.encode_tokens(self.embed(x, bands))

    def normed(self, h: torch.Tensor, token_norm: TokenNorm) -> torch.Tensor:
        """Pre-norm tokens ``(B, L, D)`` as ``token_norm`` says (checked here)."""
        check_option("token_norm", token_norm, TokenNorm)
        if token_norm == "post-norm" and isinstance(self.norm, nn.Identity):
            raise ValueError(
                "token_norm='post-norm' needs the final norm, which this encoder does not use "
                "(global_pool=True pools through fc_norm); use token_norm='pre-norm'"
            )
        return apply_token_norm(h, self.norm, token_norm)

    def token_map(
        self, tokens: torch.Tensor, grid: tuple[int, int], token_norm: TokenNorm = "pre-norm"
    ) -> torch.Tensor:
        """``(B, 1+N, D)`` pre-norm tokens → patch-token map ``(B, D, gh, gw)`` (CLS dropped)."""
        return tokens_to_map(self.normed(tokens, token_norm), grid)

    def pool(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(B, 1+N, D)`` pre-norm tokens → the feature vector ``(B, D)``: CLS after the norm."""
        return self.norm(tokens[:, 0])

    # ------------------------------------------------------------------ features
    def encode(self, x: torch.Tensor, bands: BandsArg) -> torch.Tensor:
        """Every token after the final norm: ``(B, C, H, W)`` → ``(B, 1+N, D)``, CLS first."""
        return self.normed(self.forward_tokens(x, bands), "post-norm")

    def cls_features(self, x: torch.Tensor, bands: BandsArg) -> torch.Tensor:
        """The feature vector ``(B, D)``: the CLS token after the final norm (the release's
        default; an encoder with ``global_pool`` gives ``fc_norm`` of the patch mean)."""
        return self.pool(self.forward_tokens(x, bands))

    def pooled_features(self, x: torch.Tensor, bands: BandsArg) -> torch.Tensor:
        """Mean of the post-norm patch tokens (CLS excluded): ``(B, D)``.

        The release's ``avg`` pooling applies a freshly trained ``fc_norm`` after pooling; with
        only pretrained weights we pool the final-norm tokens instead.
        """
        return self.encode(x, bands)[:, 1:].mean(dim=1)

    def patch_feature_map(
        self, x: torch.Tensor, bands: BandsArg, token_norm: TokenNorm = DEFAULT_TOKEN_NORM
    ) -> torch.Tensor:
        """Patch tokens as a feature map ``(B, D, H/S, W/S)``, before or after the final norm."""
        return self.token_map(self.forward_tokens(x, bands), self.patch_grid(x), token_norm)

    def intermediate_maps(
        self, x: torch.Tensor, bands: BandsArg, indices: Sequence[int],
        token_norm: TokenNorm = DEFAULT_TOKEN_NORM,
    ) -> list[torch.Tensor]:  # fmt: skip
        """Patch-token maps ``(B, D, H/S, W/S)`` after the blocks ``indices`` (0-based, as timm's
        ``forward_intermediates``), for segmentation necks (UPerNet and the like)."""
        grid, wanted = self.patch_grid(x), set(indices)
        if bad := [i for i in indices if not 0 <= i < len(self.blocks)]:
            raise ValueError(f"block indices {bad} out of range 0..{len(self.blocks) - 1}")
        h = run_blocks(self.cls_row(), self.embed(x, bands), [])
        maps = []
        for i, blk in enumerate(self.blocks):
            h = blk(h)
            if i in wanted:
                maps.append(tokens_to_map(self.normed(h, token_norm), grid))
        return maps
