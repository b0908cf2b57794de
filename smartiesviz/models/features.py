"""Multi-modal features of a co-registered pair (paper Table 8), from a :class:`SmartiesMAE`.

Single-image features are the model's own methods (``encode``, ``cls_features``,
``pooled_features``, ``patch_feature_map``); :meth:`SmartiesMAE.fuse_features` calls
:func:`fuse_features` here.
"""

from __future__ import annotations

import torch

from smartiesviz.models.mixup import cross_sensor_mixup
from smartiesviz.models.vit import ViTEncoder
from smartiesviz.options import FusionMethod, Pooling, check_option
from smartiesviz.spectrum.resolve import BandsArg

__all__ = ["fuse_features", "pool_tokens"]


def pool_tokens(h: torch.Tensor, pool: Pooling, model: ViTEncoder) -> torch.Tensor:
    """``(B, 1+N, D)`` pre-norm encoder output → ``(B, D)``: the CLS token or the mean patch
    token, after the model's final norm."""
    feats = model.normed(h, "post-norm")
    return feats[:, 0] if pool == "cls" else feats[:, 1:].mean(dim=1)


def fuse_features(
    model: ViTEncoder,
    x_a: torch.Tensor,
    bands_a: BandsArg,
    x_b: torch.Tensor,
    bands_b: BandsArg,
    method: FusionMethod = "mixup",
    pool: Pooling = "cls",
    ratio: float = 0.5,
    generator: torch.Generator | None = None,
    mixup_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Multi-modal features of a co-registered pair (paper Table 8).

    Args:
        model: the encoder used (a :class:`SmartiesMAE` or :class:`SmartiesEncoder`).
        x_a: ``(B, C_a, H, W)``.
        bands_a: a's bands.
        x_b: ``(B, C_b, H, W)``, same ``B, H, W``.
        bands_b: b's bands.
        method: ``"stack"``: one image with a's and b's bands stacked (the token is then the
            band-count-weighted mean of the two tokens, exactly what the projection gives for
            the stacked image) → ``(B, D)``; ``"concat"``: encode separately and concatenate
            → ``(B, 2D)``; ``"mixup"``: mirrored token mixup, encode a' and b' (one batch), and
            concatenate → ``(B, 2D)`` (best in the paper).
        pool: ``"cls"`` or ``"mean"`` per encoded image.
        ratio: mixup ratio for ``"mixup"``.
        generator: generator for the mixup draw.
        mixup_mask: explicit ``(B, N)`` mixup mask for ``"mixup"``.

    Returns:
        ``(B, D)`` or ``(B, 2D)`` features.
    """
    check_option("method", method, FusionMethod)
    check_option("pool", pool, Pooling)
    if x_b.shape[0] != x_a.shape[0] or x_b.shape[-2:] != x_a.shape[-2:]:
        raise ValueError(
            f"x_b {tuple(x_b.shape)} must match x_a {tuple(x_a.shape)} in batch, height, width"
        )
    projection = model.spectrum_projection
    rb_a, rb_b = projection.resolve(bands_a), projection.resolve(bands_b)
    if method == "stack":
        n_a, n_b = len(rb_a.keep), len(rb_b.keep)
        grid = model.patch_grid(x_a)
        tok = (n_a * projection(x_a, rb_a) + n_b * projection(x_b, rb_b)) / (n_a + n_b)
        return pool_tokens(model.encode_tokens(tok + model.patch_pos(grid, tok)), pool, model)
    tokens_a, tokens_b = model.embed(x_a, rb_a), model.embed(x_b, rb_b)
    if method == "mixup":
        tokens_a, tokens_b, _ = cross_sensor_mixup(tokens_a, tokens_b, ratio, generator, mixup_mask)
    fa, fb = pool_tokens(model.encode_tokens(torch.cat([tokens_a, tokens_b])), pool, model).chunk(2)
    return torch.cat([fa, fb], dim=1)
