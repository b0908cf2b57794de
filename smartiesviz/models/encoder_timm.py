"""timm models around :class:`SmartiesEncoder`: a classifier and a ``features_only`` backbone.

Registered names (after ``import smartiesviz.models``)::

    smarties_encoder_vit_tiny_patch4    D 192, depth 4, 3 heads, patch 4, 64 px (the demo's shape)
    smarties_encoder_vit_tiny_patch8    D 192, depth 4, 3 heads, patch 8, 64 px
    smarties_encoder_vit_small_patch16  D 384, depth 12, 6 heads, 224 px
    smarties_encoder_vit_base_patch16   D 768, depth 12, 12 heads, 224 px (released ViT-B)
    smarties_encoder_vit_large_patch16  D 1024, depth 24, 16 heads, 224 px (released ViT-L)

``timm.create_model(name, bands="sentinel2-l2a", num_classes=K, img_size=64,
pretrained_file="smarties-v1-vitb.safetensors")`` gives a :class:`SmartiesClassifier` whose band
set is fixed at construction (so ``forward(x)`` takes the image only, as timm trainers call it).
Without ``bands`` the band set follows ``in_chans`` (12: Sentinel-2 L2A, 13: L1C, 2: Sentinel-1,
3: RGB). ``features_only=True`` gives a :class:`SmartiesFeatures`: a list of ``(B, D, h, w)``
maps from the blocks ``out_indices``, with timm's ``feature_info``. Nothing is ever downloaded:
``pretrained=True`` raises; pass ``pretrained_file`` (or ``"demo"``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from timm.models import register_model
from timm.models._features import FeatureInfo
from torch import nn

from smartiesviz.models.encoder import SmartiesEncoder
from smartiesviz.models.options import check_option
from smartiesviz.spectrum import resolve_bands
from smartiesviz.spectrum.resolve import BandsArg

__all__ = ["SmartiesClassifier", "SmartiesFeatures", "create_encoder_model", "bands_for_channels"]

GlobalPool = Literal["token", "avg"]
#: channel count → default sensor when only ``in_chans`` is known (TorchGeo, TerraTorch).
CHANNEL_SENSORS: dict[int, str] = {12: "sentinel2-l2a", 13: "sentinel2-l1c", 2: "sentinel1-grd", 3: "rgb"}
_ARCHS: dict[str, dict[str, Any]] = {
    "smarties_encoder_vit_tiny_patch4": dict(img_size=64, patch_size=4, embed_dim=192, depth=4, num_heads=3),
    "smarties_encoder_vit_tiny_patch8": dict(img_size=64, patch_size=8, embed_dim=192, depth=4, num_heads=3),
    "smarties_encoder_vit_small_patch16": dict(img_size=224, patch_size=16, embed_dim=384, depth=12, num_heads=6),
    "smarties_encoder_vit_base_patch16": dict(img_size=224, patch_size=16, embed_dim=768, depth=12, num_heads=12),
    "smarties_encoder_vit_large_patch16": dict(img_size=224, patch_size=16, embed_dim=1024, depth=24, num_heads=16),
}  # fmt: skip
_IGNORED_TIMM_KWARGS = ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir")


def bands_for_channels(in_chans: int | None, bands: BandsArg | None) -> BandsArg:
    """The band argument for a model: ``bands`` (checked against ``in_chans``) or a default."""
    if bands is None:
        if in_chans not in CHANNEL_SENSORS:
            raise ValueError(
                f"pass bands=... (a sensor name or band list): in_chans={in_chans} does not imply a "
                f"sensor (known: {', '.join(f'{c}: {s}' for c, s in CHANNEL_SENSORS.items())})"
            )
        return CHANNEL_SENSORS[in_chans]
    if in_chans is not None:
        n = resolve_bands(bands).n_input
        if n != in_chans:
            raise ValueError(f"in_chans={in_chans} but bands={bands!r} describe {n} channels")
    return bands


class SmartiesClassifier(nn.Module):
    """Encoder with a fixed band set and a linear head, in timm's classifier interface.

    Args:
        encoder: the :class:`SmartiesEncoder` (its ``global_pool`` sets the pooling).
        bands: the input's bands (any band argument), fixed for every call.
        num_classes: head outputs; 0 for no head (``forward`` returns pooled features).
        drop_rate: dropout before the head.
    """

    def __init__(
        self, encoder: SmartiesEncoder, bands: BandsArg, num_classes: int = 1000, drop_rate: float = 0.0
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.bands = encoder.spectrum_projection.resolve(bands)
        self.num_features = self.embed_dim = encoder.embed_dim
        self.in_chans = self.bands.n_input
        self.global_pool: GlobalPool = "avg" if encoder.global_pool else "token"
        self.head_drop = nn.Dropout(drop_rate)
        self.num_classes = num_classes
        self.head: nn.Module = nn.Linear(encoder.embed_dim, num_classes) if num_classes else nn.Identity()
        if isinstance(self.head, nn.Linear):
            nn.init.trunc_normal_(self.head.weight, std=2e-5)
            nn.init.zeros_(self.head.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` → ``(B, 1+N, D)`` tokens after the final norm (identity for ``avg``)."""
        return self.encoder.norm(self.encoder.forward_tokens(x, self.bands))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """``(B, 1+N, D)`` from :meth:`forward_features` → logits ``(B, K)`` (or ``(B, D)``)."""
        x = self.encoder.fc_norm(x[:, 1:].mean(dim=1)) if self.global_pool == "avg" else x[:, 0]
        x = self.head_drop(x)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` in model units → ``(B, num_classes)`` logits."""
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: GlobalPool | None = None) -> None:
        """New head with ``num_classes`` outputs (pooling cannot change: it fixes the norms)."""
        if global_pool is not None and global_pool != self.global_pool:
            raise ValueError(
                f"this model pools with {self.global_pool!r}; rebuild it with global_pool={global_pool!r}"
            )
        self.num_classes = num_classes
        self.head = nn.Linear(self.embed_dim, num_classes) if num_classes else nn.Identity()


class SmartiesFeatures(nn.Module):
    """Backbone for dense heads: ``(B, C, H, W)`` → list of ``(B, D, H/S, W/S)`` block outputs.

    Maps are the tokens after the chosen blocks, before any norm, patch tokens only (as the
    release's ``all_tokens`` output for the last block).

    Args:
        encoder: the :class:`SmartiesEncoder`.
        bands: the input's bands, fixed.
        out_indices: block indices (negative from the end), or an int ``n`` for the last ``n``
            blocks; default: four evenly spaced blocks ending with the last (UPerNet-style).

    Attributes:
        feature_info: timm ``FeatureInfo`` (``num_chs`` D, ``reduction`` S, ``module``).
        out_channels: ``[D] * len(out_indices)`` (what TerraTorch reads).
    """

    def __init__(
        self, encoder: SmartiesEncoder, bands: BandsArg, out_indices: int | Sequence[int] | None = None
    ) -> None:
        super().__init__()
        depth = encoder.depth
        if out_indices is None:
            n = min(4, depth)
            out_indices = [round((i + 1) * depth / n) - 1 for i in range(n)]
        elif isinstance(out_indices, int):
            out_indices = list(range(depth - out_indices, depth))
        idx = [i % depth if -depth <= i < depth else None for i in out_indices]
        if None in idx or not idx:
            raise ValueError(f"out_indices {list(out_indices)} out of range for {depth} blocks")
        self.out_indices = tuple(sorted(set(idx)))
        self.encoder = encoder
        self.bands = encoder.spectrum_projection.resolve(bands)
        self.in_chans = self.bands.n_input
        info = [
            dict(num_chs=encoder.embed_dim, reduction=encoder.patch_size, module=f"encoder.blocks.{i}")
            for i in range(depth)
        ]
        self.feature_info = FeatureInfo(info, self.out_indices)
        self.out_channels = [encoder.embed_dim] * len(self.out_indices)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        enc = self.encoder
        grid = enc.patch_grid(x)
        h = enc.embed(x, self.bands)
        cls = (enc.cls_token + enc.pos_embed[:, :1]).to(h.dtype)
        h = torch.cat([cls.expand(h.shape[0], -1, -1), h], dim=1)
        outs = []
        for i, blk in enumerate(enc.blocks[: self.out_indices[-1] + 1]):
            h = blk(h)
            if i in self.out_indices:
                outs.append(enc.token_map(h, grid))
        return outs


def create_encoder_model(
    variant: str,
    pretrained: bool = False,
    *,
    bands: BandsArg | None = None,
    in_chans: int | None = None,
    num_classes: int = 1000,
    img_size: int | None = None,
    pretrained_file: str | Path | None = None,
    global_pool: GlobalPool = "token",
    features_only: bool = False,
    out_indices: int | Sequence[int] | None = None,
    drop_rate: float = 0.0,
    drop_path_rate: float = 0.0,
    **kwargs: Any,
) -> SmartiesClassifier | SmartiesFeatures:
    """Build a registered variant (what the timm entry points call).

    Args:
        variant: one of the registered names.
        pretrained: must be False: nothing is downloaded; use ``pretrained_file``.
        bands: the input's bands; default from ``in_chans`` (see :func:`bands_for_channels`).
        in_chans: channel count (timm/TorchGeo convention), checked against ``bands``.
        num_classes: classifier outputs (ignored with ``features_only``).
        img_size: input size (default: the variant's, or the file's).
        pretrained_file: a checkpoint path or ``"demo"``; its shapes must match the variant.
        global_pool: ``"token"`` (CLS after the norm) or ``"avg"`` (patch mean, ``fc_norm``).
        features_only: return a :class:`SmartiesFeatures`.
        out_indices: blocks for ``features_only``.
        drop_rate: head dropout; drop_path_rate: stochastic depth.
        **kwargs: other encoder arguments (``scheme``); timm's bookkeeping ones are ignored.
    """
    if pretrained:
        raise ValueError(
            f"{variant}: smartiesviz never downloads weights; pass pretrained_file='path/to/"
            "smarties-v1-vitb.safetensors' (a local file) or pretrained_file='demo'"
        )
    for key in _IGNORED_TIMM_KWARGS:
        kwargs.pop(key, None)
    check_option("global_pool", global_pool, GlobalPool)
    arch = dict(_ARCHS[variant])
    bands = bands_for_channels(in_chans, bands)
    pool = global_pool == "avg"
    if pretrained_file is not None:
        encoder = SmartiesEncoder.from_pretrained(
            pretrained_file, img_size=img_size, global_pool=pool, drop_path_rate=drop_path_rate,
            **kwargs,
        )  # heads: the file's sidecar, else D / 64 (what every variant here uses)
        got = {k: encoder.config[k] for k in ("embed_dim", "depth", "patch_size", "num_heads")}
        want = {k: arch[k] for k in got}
        if got != want:
            fits = [n for n, a in _ARCHS.items() if all(a[k] == v for k, v in got.items())]
            raise ValueError(
                f"{pretrained_file} holds a {got} encoder but {variant} is {want}"
                + (f"; use {fits[0]}" if fits else "")
            )
        encoder.train()
    else:
        arch["img_size"] = img_size or arch["img_size"]
        encoder = SmartiesEncoder(**arch, global_pool=pool, drop_path_rate=drop_path_rate, **kwargs)
    model: SmartiesClassifier | SmartiesFeatures
    if features_only:
        model = SmartiesFeatures(encoder, bands, out_indices)
    else:
        model = SmartiesClassifier(encoder, bands, num_classes, drop_rate)
    model.arch_name = variant
    return model


@register_model
def smarties_encoder_vit_tiny_patch4(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """SMARTIES encoder, D 192, depth 4, 3 heads, patch 4, 64 px (the bundled demo's shape)."""
    return create_encoder_model("smarties_encoder_vit_tiny_patch4", pretrained, **kwargs)


@register_model
def smarties_encoder_vit_tiny_patch8(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """SMARTIES encoder, D 192, depth 4, 3 heads, patch 8, 64 px."""
    return create_encoder_model("smarties_encoder_vit_tiny_patch8", pretrained, **kwargs)


@register_model
def smarties_encoder_vit_small_patch16(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """SMARTIES encoder, ViT-S/16: D 384, depth 12, 6 heads, 224 px."""
    return create_encoder_model("smarties_encoder_vit_small_patch16", pretrained, **kwargs)


@register_model
def smarties_encoder_vit_base_patch16(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """SMARTIES encoder, ViT-B/16 (released shapes): D 768, depth 12, 12 heads, 224 px."""
    return create_encoder_model("smarties_encoder_vit_base_patch16", pretrained, **kwargs)


@register_model
def smarties_encoder_vit_large_patch16(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """SMARTIES encoder, ViT-L/16 (released shapes): D 1024, depth 24, 16 heads, 224 px."""
    return create_encoder_model("smarties_encoder_vit_large_patch16", pretrained, **kwargs)
