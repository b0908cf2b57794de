"""A checkpoint in the released layout, written by the tests from the documented facts.

Layout (``../shared/reference/SMARTIES-facts.md``, "Released checkpoint layout"): ``cls_token``,
``pos_embed`` (fixed sin-cos, CLS row zero), ``mask_token``, ``decoder_pos_embed``,
``spectrum_projection.spectrum_embeds.{0..16}.proj.{weight,bias}`` (``Linear(S², D)``), timm
``blocks.{i}.*``, ``norm``, ``decoder_embed``, ``decoder_blocks.{i}.*``, ``decoder_norm``,
``decoder_preds.{0..16}``. Random weights, small shapes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

D, DEPTH, HEADS, S, IMG = 128, 2, 2, 4, 16
DEC_D, DEC_DEPTH = 32, 1


def demo_encoder_name() -> str:
    """The timm/TerraTorch name whose shape the shipped demo weights have (read from their JSON)."""
    from smartiesviz.models.demo import demo_info

    return f"smarties_encoder_vit_tiny_patch{demo_info().architecture['patch_size']}"


def mae_sincos(dim: int, grid: int) -> np.ndarray:
    """MAE's 2-D sin-cos table with a zero CLS row, ``(1 + grid², dim)`` (float64)."""

    def one_d(d: int, pos: np.ndarray) -> np.ndarray:
        omega = 1.0 / 10000 ** (np.arange(d // 2, dtype=np.float64) / (d / 2.0))
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    ys, xs = np.meshgrid(np.arange(grid, dtype=np.float64), np.arange(grid, dtype=np.float64), indexing="ij")
    emb = np.concatenate([one_d(dim // 2, xs), one_d(dim // 2, ys)], axis=1)  # columns first
    return np.concatenate([np.zeros((1, dim)), emb], axis=0)


def _block(prefix: str, dim: int, g: torch.Generator) -> dict[str, torch.Tensor]:
    def r(*shape: int, scale: float = 0.05) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * scale

    return {
        f"{prefix}.norm1.weight": 1 + r(dim, scale=0.1), f"{prefix}.norm1.bias": r(dim),
        f"{prefix}.attn.qkv.weight": r(3 * dim, dim), f"{prefix}.attn.qkv.bias": r(3 * dim),
        f"{prefix}.attn.proj.weight": r(dim, dim), f"{prefix}.attn.proj.bias": r(dim),
        f"{prefix}.norm2.weight": 1 + r(dim, scale=0.1), f"{prefix}.norm2.bias": r(dim),
        f"{prefix}.mlp.fc1.weight": r(4 * dim, dim), f"{prefix}.mlp.fc1.bias": r(4 * dim),
        f"{prefix}.mlp.fc2.weight": r(dim, 4 * dim), f"{prefix}.mlp.fc2.bias": r(dim),
    }  # fmt: skip


def release_state_dict(
    seed: int = 0, dim: int = D, depth: int = DEPTH, dec_depth: int = DEC_DEPTH
) -> dict[str, torch.Tensor]:
    """Random weights in the released pretraining layout (17 projection layers)."""
    D, DEPTH, DEC_DEPTH = dim, depth, dec_depth  # noqa: N806
    g = torch.Generator().manual_seed(seed)
    sd: dict[str, torch.Tensor] = {
        "cls_token": torch.randn(1, 1, D, generator=g) * 0.02,
        "pos_embed": torch.from_numpy(mae_sincos(D, IMG // S)).float()[None],
        "mask_token": torch.randn(1, 1, DEC_D, generator=g) * 0.02,
        "decoder_pos_embed": torch.from_numpy(mae_sincos(DEC_D, IMG // S)).float()[None],
        "norm.weight": 1 + 0.1 * torch.randn(D, generator=g),
        "norm.bias": 0.05 * torch.randn(D, generator=g),
        "decoder_embed.weight": 0.05 * torch.randn(DEC_D, D, generator=g),
        "decoder_embed.bias": torch.zeros(DEC_D),
        "decoder_norm.weight": torch.ones(DEC_D),
        "decoder_norm.bias": torch.zeros(DEC_D),
    }
    for i in range(17):
        sd[f"spectrum_projection.spectrum_embeds.{i}.proj.weight"] = 0.1 * torch.randn(D, S * S, generator=g)
        sd[f"spectrum_projection.spectrum_embeds.{i}.proj.bias"] = 0.05 * torch.randn(D, generator=g)
        sd[f"decoder_preds.{i}.weight"] = 0.05 * torch.randn(S * S, DEC_D, generator=g)
        sd[f"decoder_preds.{i}.bias"] = torch.zeros(S * S)
    for i in range(DEPTH):
        sd.update(_block(f"blocks.{i}", D, g))
    for i in range(DEC_DEPTH):
        sd.update(_block(f"decoder_blocks.{i}", DEC_D, g))
    return sd


@pytest.fixture(scope="session")
def release_sd() -> dict[str, torch.Tensor]:
    return release_state_dict()


@pytest.fixture
def release_file(tmp_path: Path, release_sd: dict[str, torch.Tensor]) -> Path:
    path = tmp_path / "smarties-v1-test.safetensors"
    save_file(release_sd, str(path))
    return path
