"""Single-tile interactive inference: thread limits, a seeded masked forward pass, tile tensors.

The widgets and the map's tile inspector run the model on one small tile per user action; these
helpers keep that fast and reproducible (one intra-op thread, seeded mask draws).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from smartiesviz.data.holdout import Holdout
from smartiesviz.models.protocol import SmartiesModel


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op threads and ``n`` BLAS/OpenMP threads (numpy,
    scikit-learn) (``None``: leave the settings), then restore."""
    if n is None:
        yield
        return

    threads = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        with threadpool_limits(int(n)):
            yield
    finally:
        torch.set_num_threads(threads)


@contextlib.contextmanager
def interactive_inference() -> Iterator[None]:
    """``torch.inference_mode`` on one intra-op thread, for single-tile interactive calls.

    A 64-px tile through a tiny ViT is too small to gain from more threads, and on a shared
    machine extra threads spin-wait: measured 23–31 ms on one thread vs 190–360 ms on two under
    load. The previous thread count is restored afterwards.
    """
    with torch_threads(1), torch.inference_mode():
        yield


def run_mae(
    model: torch.nn.Module,
    x: torch.Tensor,
    bands: Sequence[Any],
    *,
    mask_ratio: float,
    seed: int,
    x_b: torch.Tensor | None = None,
    bands_b: Sequence[Any] | None = None,
    mixup_ratio: float = 0.5,
) -> Any:
    """One masked forward pass (``(1, C, H, W)`` in model units) with a seeded generator, under
    :func:`interactive_inference`; returns the model's output record. Non-finite values (no
    data) are filled with 0, the band mean in model units, before the model sees them."""
    x = _filled(x)
    x_b = None if x_b is None else _filled(x_b)
    gen = torch.Generator().manual_seed(int(seed))
    kwargs: dict[str, Any] = {"mask_ratio": float(mask_ratio), "generator": gen}
    if x_b is not None:
        kwargs.update(x_b=x_b, bands_b=list(bands_b or []), mixup_ratio=float(mixup_ratio))
    with interactive_inference():
        return model(x, list(bands), **kwargs)


def _filled(x: torch.Tensor) -> torch.Tensor:
    return x if bool(torch.isfinite(x).all()) else torch.nan_to_num(x, 0.0, 0.0, 0.0)


def patch_mask_to_pixels(mask: torch.Tensor, h: int, w: int, patch: int) -> np.ndarray:
    """``(N,)`` patch mask, row-major → ``(h, w)`` pixel mask."""
    grid = mask.reshape(h // patch, w // patch).cpu().numpy()
    return np.kron(grid, np.ones((patch, patch), dtype=grid.dtype)).astype(grid.dtype)


def resize(values: np.ndarray, size: int) -> torch.Tensor:
    """``(C, H, W)`` array → ``(1, C, size, size)`` tensor (antialiased bilinear when sizes differ)."""
    x = torch.as_tensor(np.ascontiguousarray(values), dtype=torch.float32)[None]
    if x.shape[-2:] != (size, size):
        x = torch.nn.functional.interpolate(
            x, size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )
    return x


def model_holdout(model: SmartiesModel) -> Holdout:
    """What a checkpoint was never trained on (its ``metadata.holdout``); empty when unrecorded."""
    info = model.checkpoint_info
    if isinstance(getattr(info, "holdout", None), Holdout):  # a CheckpointInfo
        return info.holdout
    return Holdout.from_metadata(((info or {}).get("metadata") or {}).get("holdout"))
