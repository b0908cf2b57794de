"""Cross-sensor token mixup and MAE random masking, as plain functions.

The masks follow the convention stated once in :mod:`smartiesviz.models.mae` (True = kept:
visible to the encoder, or a' holding a's own token).

Random draws use ``argsort`` of uniform noise (as MAE's ``random_masking``) with counts computed
from shapes, so nothing here synchronises with the host. Explicit masks given by the caller are
validated, which does read them back once; that is a user-input check, not a per-batch cost.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from smartiesviz.options import MixupMode, check_option

__all__ = [
    "MixupMode",
    "MaskingResult",
    "cross_sensor_mixup",
    "random_mixup_mask",
    "random_visible_mask",
    "random_masking",
    "check_visible_mask",
    "gather_tokens",
    "masking_indices",
]

def _check_ratio(name: str, ratio: float) -> None:
    if not 0.0 <= float(ratio) <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {ratio!r}")


def _noise_order(
    batch: int, length: int, generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    """``(B, N)`` random permutation of positions per sample (argsort of uniform noise)."""
    gen_device = generator.device if generator is not None else device
    noise = torch.rand(batch, length, generator=generator, device=gen_device)
    return torch.argsort(noise.to(device), dim=1)


def _first_k_mask(order: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean ``(B, N)`` mask, True at the first ``k`` positions of each row of ``order``."""
    mask = torch.zeros(order.shape, dtype=torch.bool, device=order.device)
    return mask.scatter(1, order[:, :k], True)


def random_mixup_mask(
    batch: int,
    length: int,
    ratio: float = 0.5,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Draw a mixup mask with exactly ``round(length·(1 − ratio))`` True per sample.

    Args:
        batch: ``B``.
        length: number of token positions ``N``.
        ratio: fraction of a' positions taken from b.
        generator: optional ``torch.Generator`` (on CPU or on ``device``).
        device: device of the returned mask.

    Returns:
        ``(B, N)`` bool mask, True where a' keeps a's token.
    """
    _check_ratio("mixup ratio", ratio)
    order = _noise_order(batch, length, generator, torch.device(device))
    return _first_k_mask(order, round(length * (1.0 - ratio)))


def random_visible_mask(
    batch: int,
    length: int,
    mask_ratio: float = 0.75,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Draw a visible mask with exactly ``round(length·(1 − mask_ratio))`` True per sample.

    Returns:
        ``(B, N)`` bool mask, True where the encoder sees the position.
    """
    _check_ratio("mask_ratio", mask_ratio)
    order = _noise_order(batch, length, generator, torch.device(device))
    return _first_k_mask(order, round(length * (1.0 - mask_ratio)))


def _check_mask(name: str, mask: torch.Tensor, batch: int, length: int) -> torch.Tensor:
    if not isinstance(mask, torch.Tensor):
        raise TypeError(
            f"{name} must be a bool tensor of shape ({batch}, {length}), got {type(mask)}"
        )
    if tuple(mask.shape) != (batch, length):
        raise ValueError(
            f"{name} has shape {tuple(mask.shape)}, expected (B, N) = ({batch}, {length})"
        )
    if mask.dtype != torch.bool:
        raise TypeError(f"{name} must be a bool tensor (True = kept), got dtype {mask.dtype}")
    return mask


def check_visible_mask(visible_mask: torch.Tensor, batch: int, length: int) -> int:
    """Validate an explicit visible mask and return its per-sample count ``K``.

    Raises:
        ValueError: wrong shape, samples with different counts, or no visible position.
        TypeError: not a bool tensor.
    """
    _check_mask("visible_mask", visible_mask, batch, length)
    counts = visible_mask.sum(dim=1).cpu()  # one read-back: explicit user input only
    k = int(counts[0])
    if bool((counts != k).any()):
        raise ValueError(
            "visible_mask must keep the same number of positions in every sample (the encoder "
            f"batches them); got per-sample counts {counts.tolist()}"
        )
    return k


def cross_sensor_mixup(
    tokens_a: torch.Tensor,
    tokens_b: torch.Tensor,
    ratio: float = 0.5,
    generator: torch.Generator | None = None,
    mask: torch.Tensor | None = None,
    mode: MixupMode = "mirrored",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Exchange tokens between two co-registered images (SMARTIES cross-sensor mixup).

    Per sample, exactly ``round(N·(1 − ratio))`` positions of a' hold a's token and the rest
    hold b's. In ``"mirrored"`` mode (the paper's Eq. 2) b' is the mirror image: b' holds b's
    token where a' holds a's, and a's token elsewhere, so ``a' + b' == a + b`` position-wise.
    In ``"as-released"`` mode b' is b unchanged (what the released training code does).

    Args:
        tokens_a: ``(B, N, ...)`` tokens of image a.
        tokens_b: ``(B, N, ...)`` tokens of image b (same shape).
        ratio: fraction of a' positions taken from b (0.5 in the paper).
        generator: optional ``torch.Generator`` for the random draw.
        mask: optional explicit ``(B, N)`` bool mixup mask (True = a' keeps a); any count.
        mode: ``"mirrored"`` or ``"as-released"``.

    Returns:
        ``(mixed_a, mixed_b, mixup_mask)``: tokens shaped like the inputs and the ``(B, N)``
        bool mask.
    """
    check_option("mixup mode", mode, MixupMode)
    if tokens_a.shape != tokens_b.shape:
        raise ValueError(
            f"tokens_a {tuple(tokens_a.shape)} and tokens_b {tuple(tokens_b.shape)} must have the "
            "same shape (co-registered images on the same patch grid)"
        )
    if tokens_a.ndim < 2:
        raise ValueError(f"tokens must be at least (B, N), got {tuple(tokens_a.shape)}")
    batch, length = tokens_a.shape[:2]
    if mask is None:
        mask = random_mixup_mask(batch, length, ratio, generator, tokens_a.device)
    else:
        mask = _check_mask("mixup mask", mask, batch, length).to(tokens_a.device)
    m = mask.reshape(batch, length, *([1] * (tokens_a.ndim - 2)))
    mixed_a = torch.where(m, tokens_a, tokens_b)
    mixed_b = torch.where(m, tokens_b, tokens_a) if mode == "mirrored" else tokens_b
    return mixed_a, mixed_b, mask


class MaskingResult(NamedTuple):
    """Output of :func:`random_masking`.

    Attributes:
        visible: ``(B, K, D)`` tokens the encoder sees, in ascending position order.
        visible_mask: ``(B, N)`` bool, True = visible.
        ids_keep: ``(B, K)`` positions of the visible tokens.
        ids_restore: ``(B, N)`` index that puts ``cat([visible, masked])`` back in position order.
    """

    visible: torch.Tensor
    visible_mask: torch.Tensor
    ids_keep: torch.Tensor
    ids_restore: torch.Tensor


def gather_tokens(tokens: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """``tokens[b, ids[b]]`` for ``(B, N, D)`` tokens and ``(B, K)`` indices → ``(B, K, D)``."""
    return torch.gather(tokens, 1, ids.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))


def random_masking(
    tokens: torch.Tensor,
    mask_ratio: float = 0.75,
    generator: torch.Generator | None = None,
    visible_mask: torch.Tensor | None = None,
    groups: int = 1,
) -> MaskingResult:
    """MAE random masking with a boolean visible mask.

    Args:
        tokens: ``(G·B, N, D)`` tokens (positional encoding already added): ``G`` groups of ``B``
            samples, sample ``i`` of every group sharing one mask (a' and b' in SMARTIES).
        mask_ratio: fraction of positions hidden from the encoder when drawing at random;
            ``round(N·(1 − mask_ratio))`` positions stay visible in each sample.
        generator: optional ``torch.Generator``.
        visible_mask: optional explicit ``(B, N)`` bool mask (True = visible) with the same
            count in every sample.
        groups: ``G``.

    Returns:
        :class:`MaskingResult`: ``visible`` ``(G·B, K, D)``, ``visible_mask`` ``(B, N)``,
        ``ids_keep`` ``(G·B, K)`` and ``ids_restore`` ``(G·B, N)``.
    """
    rows, length, _ = tokens.shape
    batch = rows // groups
    if batch * groups != rows:
        raise ValueError(f"{rows} token rows do not split into {groups} equal groups")
    if visible_mask is None:
        _check_ratio("mask_ratio", mask_ratio)
        keep = round(length * (1.0 - mask_ratio))
        visible_mask = _first_k_mask(_noise_order(batch, length, generator, tokens.device), keep)
    else:
        keep = check_visible_mask(visible_mask, batch, length)
        visible_mask = visible_mask.to(tokens.device)
    ids_keep, ids_restore = masking_indices(visible_mask, keep)
    if groups > 1:
        ids_keep, ids_restore = ids_keep.repeat(groups, 1), ids_restore.repeat(groups, 1)
    return MaskingResult(gather_tokens(tokens, ids_keep), visible_mask, ids_keep, ids_restore)


def masking_indices(
    visible_mask: torch.Tensor, num_visible: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gather/unshuffle indices for a visible mask with ``num_visible`` True per sample.

    Args:
        visible_mask: ``(B, N)`` bool, True = visible; every row must have ``num_visible`` True
            (not checked here, so no host sync).
        num_visible: ``K``.

    Returns:
        ``(ids_keep (B, K), ids_restore (B, N))``: visible positions in ascending order, and the
        index that puts ``cat([visible, hidden])`` back in position order.
    """
    # Stable sort of "hidden" flags: visible positions first, each group in position order.
    ids_shuffle = torch.argsort((~visible_mask).to(torch.int8), dim=1, stable=True)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    return ids_shuffle[:, :num_visible], ids_restore
