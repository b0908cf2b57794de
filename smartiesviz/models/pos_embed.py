"""Fixed 2D sine-cosine positional encodings (as in MAE) and their bicubic resampling.

The SMARTIES release, like MAE, uses a *fixed* 2D sin-cos table: the first ``D/2`` dimensions
encode the patch column, the last ``D/2`` the patch row, each as ``[sin(p·ω), cos(p·ω)]`` with
``ω_k = 10000^(-k / (D/4))``. Positions are numbered row-major (top row first); the CLS token gets
a zero vector. Values are computed in float64 and rounded once to the output dtype, which is
what the release's numpy code does, so a table computed here equals the one stored in its files.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "sincos_1d",
    "sincos_2d",
    "sincos_pos_embed",
    "interpolate_pos_embed",
    "grid_from_num_tokens",
]


def sincos_1d(dim: int, pos: torch.Tensor) -> torch.Tensor:
    """1D sin-cos encoding.

    Args:
        dim: output dimension (even).
        pos: positions, any shape; flattened to ``(M,)``.

    Returns:
        ``(M, dim)`` tensor ``[sin(pos·ω), cos(pos·ω)]`` in ``pos.dtype``.
    """
    if dim % 2:
        raise ValueError(f"sin-cos encoding needs an even dimension, got {dim}")
    omega = torch.arange(dim // 2, dtype=pos.dtype, device=pos.device) / (dim / 2.0)
    omega = 1.0 / 10000**omega  # (dim/2,)
    out = pos.reshape(-1, 1) * omega.reshape(1, -1)  # (M, dim/2) outer product
    return torch.cat([out.sin(), out.cos()], dim=1)


def sincos_2d(
    dim: int,
    grid_h: int,
    grid_w: int,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """2D sin-cos table for a ``grid_h × grid_w`` patch grid, without a CLS row.

    Args:
        dim: embedding dimension (multiple of 4).
        grid_h: number of patch rows.
        grid_w: number of patch columns.
        device: output device.
        dtype: output dtype (the table is computed in float64 where the device supports it).

    Returns:
        ``(grid_h·grid_w, dim)`` tensor, rows in row-major patch order.
    """
    if dim % 4:
        raise ValueError(f"2D sin-cos encoding needs a dimension divisible by 4, got {dim}")
    if grid_h < 1 or grid_w < 1:
        raise ValueError(f"patch grid must be at least 1x1, got {grid_h}x{grid_w}")
    device = torch.device(device) if device is not None else torch.device("cpu")
    work = torch.float32 if device.type == "mps" else torch.float64
    rows = torch.arange(grid_h, dtype=work, device=device)
    cols = torch.arange(grid_w, dtype=work, device=device)
    r, c = torch.meshgrid(rows, cols, indexing="ij")  # (gh, gw) each
    # MAE's convention: first half encodes the column (x), second half the row (y).
    emb = torch.cat([sincos_1d(dim // 2, c), sincos_1d(dim // 2, r)], dim=1)
    return emb.to(dtype)


def sincos_pos_embed(
    dim: int,
    grid_h: int,
    grid_w: int | None = None,
    *,
    cls_token: bool = False,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Sin-cos positional table in the release's stored layout.

    Args:
        dim: embedding dimension.
        grid_h: patch rows.
        grid_w: patch columns (defaults to ``grid_h``).
        cls_token: prepend a zero row for the CLS token.
        device: output device.
        dtype: output dtype.

    Returns:
        ``(1, [1+] grid_h·grid_w, dim)`` tensor.
    """
    grid_w = grid_h if grid_w is None else grid_w
    emb = sincos_2d(dim, grid_h, grid_w, device=device, dtype=dtype)
    if cls_token:
        emb = torch.cat([emb.new_zeros(1, dim), emb], dim=0)
    return emb.unsqueeze(0)


def grid_from_num_tokens(num_tokens: int, num_prefix_tokens: int = 1) -> tuple[int, int]:
    """Square patch grid ``(g, g)`` implied by a stored table of ``num_tokens`` rows.

    Raises:
        ValueError: if ``num_tokens - num_prefix_tokens`` is not a perfect square.
    """
    n = num_tokens - num_prefix_tokens
    g = int(round(n**0.5))
    if n < 1 or g * g != n:
        raise ValueError(
            f"a positional table with {num_tokens} rows ({num_prefix_tokens} prefix) is not a square "
            f"patch grid; pass the grid size explicitly"
        )
    return g, g


def interpolate_pos_embed(
    pos_embed: torch.Tensor,
    new_grid: tuple[int, int],
    old_grid: tuple[int, int] | None = None,
    num_prefix_tokens: int = 1,
) -> torch.Tensor:
    """Resample a stored positional table to another patch grid (bicubic, like MAE/the release).

    Uses ``F.interpolate(mode="bicubic", align_corners=False)`` without antialiasing, as MAE's
    ``interpolate_pos_embed`` does; prefix (CLS) rows are kept unchanged.

    Args:
        pos_embed: ``(1, P + gh·gw, D)`` table.
        new_grid: target ``(rows, cols)``.
        old_grid: source ``(rows, cols)``; inferred as square when omitted.
        num_prefix_tokens: number of leading non-spatial rows ``P``.

    Returns:
        ``(1, P + rows·cols, D)`` table in ``pos_embed.dtype``.
    """
    if pos_embed.ndim != 3 or pos_embed.shape[0] != 1:
        raise ValueError(f"expected a (1, P+N, D) positional table, got {tuple(pos_embed.shape)}")
    old_grid = old_grid or grid_from_num_tokens(pos_embed.shape[1], num_prefix_tokens)
    if old_grid[0] * old_grid[1] + num_prefix_tokens != pos_embed.shape[1]:
        raise ValueError(
            f"positional table has {pos_embed.shape[1]} rows, expected {num_prefix_tokens} + "
            f"{old_grid[0]}x{old_grid[1]}"
        )
    if tuple(old_grid) == tuple(new_grid):
        return pos_embed
    prefix, grid = pos_embed[:, :num_prefix_tokens], pos_embed[:, num_prefix_tokens:]
    dim = pos_embed.shape[-1]
    grid = grid.float().reshape(1, old_grid[0], old_grid[1], dim).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=tuple(new_grid), mode="bicubic", align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(1, -1, dim).to(pos_embed.dtype)
    return torch.cat([prefix, grid], dim=1)
