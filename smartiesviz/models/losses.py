"""The MAE reconstruction loss per patch, as one memory-lean autograd function."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["patch_squared_error"]


def patch_squared_error(recon: torch.Tensor, target: torch.Tensor, patch: int) -> torch.Tensor:
    """Squared error averaged over bands × pixels of each patch: ``(B, C, H, W)`` × 2 → ``(B, N)``.

    Computed in at least float32 (bf16/fp16 inputs are scored in fp32); the backward allocates a
    single image-sized tensor. Shapes are not checked here (see ``SmartiesMAE.patch_errors``).
    """
    return _PatchSquaredError.apply(recon, target, patch)


class _PatchSquaredError(torch.autograd.Function):
    """Per-patch mean squared error ``(B, C, H, W)`` × 2 → ``(B, N)`` (≥ float32), memory-lean."""

    @staticmethod
    def forward(ctx: Any, recon: torch.Tensor, target: torch.Tensor, patch: int) -> torch.Tensor:
        ctx.save_for_backward(recon, target)
        ctx.patch = patch
        b, c, h, w = recon.shape
        work = torch.promote_types(recon.dtype, torch.float32)  # bf16/fp16 are scored in fp32
        d = recon.to(work) - target.to(work)
        d.square_()
        return (
            d.reshape(b, c, h // patch, patch, w // patch, patch).mean(dim=(1, 3, 5)).reshape(b, -1)
        )

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:
        recon, target = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None, None
        p = ctx.patch
        b, c, h, w = recon.shape
        work = torch.promote_types(recon.dtype, torch.float32)
        scale = (grad.to(work) * (2.0 / (c * p * p))).reshape(b, 1, h // p, 1, w // p, 1)
        d = recon.to(work) - target.to(work)
        d.view(b, c, h // p, p, w // p, p).mul_(scale)
        return d.to(recon.dtype), None, None
