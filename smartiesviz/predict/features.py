"""Frozen-encoder features of a batch of images, through the model's own feature methods.

- :func:`extract_features`: CLS token (``model.cls_features``), mean of the patch tokens
  (``model.pooled_features``) or the patch-feature map (``model.patch_feature_map``);
- :func:`fused_features`: multi-modal features of co-registered pairs (``model.fuse_features``:
  image stacking, feature concatenation, mixup concatenation; the paper's Table 8).
"""

from __future__ import annotations

from typing import Any, Literal, get_args

import numpy as np
import torch

from smartiesviz.models.resolve import model_device, resolve_model
from smartiesviz.options import FusionMethod

#: Which features :func:`extract_features` returns.
FeatureKind = Literal["cls", "pooled", "patch"]
FUSION_METHODS: tuple[str, ...] = get_args(FusionMethod)


def extract_features(
    x: Any,
    bands: Any,
    model: Any = None,
    kind: FeatureKind = "cls",
    batch_size: int = 64,
) -> np.ndarray:
    """Frozen-encoder features of a batch of images.

    Args:
        x: ``(B, C, H, W)`` images in model units (array or tensor).
        bands: their band specs (see the band conventions).
        model: a SmartiesMAE, a checkpoint path or ``None`` (demo model).
        kind: ``"cls"`` (CLS token after the final norm, the release's default), ``"pooled"``
            (mean of the patch tokens) or ``"patch"`` (the ``(D, H/S, W/S)`` map).

    Returns:
        ``(B, D)`` float32 features, or ``(B, D, H/S, W/S)`` for ``"patch"``.
    """
    if kind not in get_args(FeatureKind):
        raise ValueError(f"kind must be 'cls', 'pooled' or 'patch'; got {kind!r}")
    model = resolve_model(model)
    xt = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).float()
    if xt.ndim != 4:
        raise ValueError(f"x must be (B, C, H, W); got shape {tuple(xt.shape)}")
    device = model_device(model)
    features = {
        "cls": model.cls_features,
        "pooled": model.pooled_features,
        "patch": model.patch_feature_map,
    }[kind]
    with torch.no_grad():
        out = [features(chunk.to(device), bands) for chunk in torch.split(xt, batch_size)]
    return torch.cat(out).float().cpu().numpy()


def fused_features(
    x_a: Any,
    bands_a: Any,
    x_b: Any,
    bands_b: Any,
    model: Any = None,
    method: FusionMethod = "mixup",
    kind: FeatureKind = "cls",
    mixup_ratio: float = 0.5,
    seed: int = 0,
) -> np.ndarray:
    """Multi-modal features of co-registered pairs (the paper's Table 8 fusion strategies).

    Args:
        x_a, x_b: ``(B, C_a, H, W)`` and ``(B, C_b, H, W)`` images in model units.
        bands_a, bands_b: their band specs.
        method: ``"stack"`` (one image with both sensors' bands: one token per position from
            all bands), ``"concat"`` (encode each, concatenate features: ``2D``) or ``"mixup"``
            (cross-sensor token mixup of the pair before encoding, both mixed images encoded,
            features concatenated: ``2D``; the paper's best).
        kind: ``"cls"`` or ``"pooled"``.
        mixup_ratio: share of positions taken from the other image for ``"mixup"``.
        seed: seeds the mixup positions.

    Returns:
        ``(B, D)`` for ``"stack"``, ``(B, 2D)`` otherwise.
    """
    if method not in FUSION_METHODS:
        raise ValueError(f"method must be one of {FUSION_METHODS}; got {method!r}")
    if kind not in ("cls", "pooled"):
        raise ValueError(f"kind must be 'cls' or 'pooled' for fused features; got {kind!r}")
    model = resolve_model(model)
    device = model_device(model)
    xa = torch.as_tensor(np.asarray(x_a) if not isinstance(x_a, torch.Tensor) else x_a).float()
    xb = torch.as_tensor(np.asarray(x_b) if not isinstance(x_b, torch.Tensor) else x_b).float()
    if xa.shape[0] != xb.shape[0] or xa.shape[-2:] != xb.shape[-2:]:
        raise ValueError(
            f"x_a {tuple(xa.shape)} and x_b {tuple(xb.shape)} must share batch size and H, W"
        )
    gen = torch.Generator(device=device).manual_seed(seed)
    pool = "cls" if kind == "cls" else "mean"
    with torch.no_grad():
        feats = model.fuse_features(
            xa.to(device), bands_a, xb.to(device), bands_b, method, pool, mixup_ratio, gen
        )
    return feats.float().cpu().numpy()
