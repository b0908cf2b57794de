"""One MAE pretraining step: SmartiesMAE vs a vanilla timm-based MAE at the same shapes.

Issue 12's target: our MAE step stays <= 1.15x a vanilla timm MAE at the same shapes and token
count. Both sides get the same encoder/decoder widths, depths and heads, patch size, image size,
batch, channels (12 Sentinel-2 L2A bands) and mask ratio 0.75, so both run the same number of
tokens through the same timm ``Block`` stacks; what differs is the rest of the step:

* timm (written here in the style of MAE's ``models_mae.py``): ``timm.layers.PatchEmbed`` with
  ``in_chans=12``, fixed sin-cos table, random masking by argsort of noise, decoder
  ``Linear(D, D_dec)`` + mask token + Blocks + norm + ``Linear(D_dec, S²·C)``, MSE on the masked
  patches of the patchified image;
* ours: :class:`SmartiesMAE` from the factories (spectrum-aware projection and reprojection per
  band, checked inputs, mask records), single sensor, no partner.

A third, informational row (not in the ratio) runs ours with cross-sensor mixup (an S1 partner
with 2 bands): a' and b' go through the encoder and decoder as one batch of 2B, so it costs about
twice a single-sensor step.

Timed: forward + ``loss.backward()`` (no optimizer), gradients reset to None before each step,
measured round-robin in one process (:func:`_measure.median_times`) so load from other processes
hits every variant alike; median of the repeats.

Run: ``python benchmarks/mae_vs_timm.py [--batch 8] [--repeats 5] [--threads 1]``
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn
from timm.layers import PatchEmbed
from timm.models.vision_transformer import Block

sys.path.insert(0, os.path.dirname(__file__))
from _measure import median_times  # noqa: E402

from smartiesviz.models.factories import (  # noqa: E402
    smarties_vit_small_patch16,
    smarties_vit_tiny_patch4,
)
from smartiesviz.models.mae import SmartiesMAE  # noqa: E402
from smartiesviz.models.pos_embed import sincos_pos_embed  # noqa: E402

S2_CHANNELS = 12  # sentinel2-l2a bands in the release (B10 dropped)
S1_CHANNELS = 2  # sentinel1-grd: VV, VH


class TimmMAE(nn.Module):
    """Vanilla MAE (``models_mae.py`` style) on timm building blocks, fixed sin-cos pos-embed."""

    def __init__(
        self, img_size: int, patch_size: int, in_chans: int, embed_dim: int, depth: int,
        num_heads: int, decoder_embed_dim: int, decoder_depth: int, decoder_num_heads: int,
        mlp_ratio: float = 4.0,
    ) -> None:  # fmt: skip
        super().__init__()
        self.patch_size, self.in_chans = patch_size, in_chans
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
        grid = self.patch_embed.grid_size
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.register_buffer("pos_embed", sincos_pos_embed(embed_dim, *grid, cls_token=True))
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio, qkv_bias=True) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.decoder_embed = nn.Linear(embed_dim, decoder_embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_embed_dim))
        self.register_buffer(
            "decoder_pos_embed", sincos_pos_embed(decoder_embed_dim, *grid, cls_token=True)
        )
        self.decoder_blocks = nn.ModuleList(
            Block(decoder_embed_dim, decoder_num_heads, mlp_ratio, qkv_bias=True)
            for _ in range(decoder_depth)
        )
        self.decoder_norm = nn.LayerNorm(decoder_embed_dim, eps=1e-6)
        self.decoder_pred = nn.Linear(decoder_embed_dim, patch_size**2 * in_chans)
        nn.init.normal_(self.cls_token, std=0.02)
        nn.init.normal_(self.mask_token, std=0.02)

    def patchify(self, imgs: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` → ``(B, N, S²·C)`` row-major, pixels then channels (as MAE)."""
        b, c, h, w = imgs.shape
        s = self.patch_size
        x = imgs.reshape(b, c, h // s, s, w // s, s)
        return torch.einsum("nchpwq->nhwpqc", x).reshape(b, (h // s) * (w // s), s * s * c)

    def random_masking(
        self, x: torch.Tensor, mask_ratio: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-sample shuffle by argsort of noise: visible ``(B, K, D)``, mask ``(B, N)`` (1 =
        removed) and the ``(B, N)`` unshuffle index."""
        b, n, d = x.shape
        keep = int(n * (1 - mask_ratio))
        ids_shuffle = torch.argsort(torch.rand(b, n, device=x.device), dim=1)
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        ids_keep = ids_shuffle[:, :keep]
        visible = torch.gather(x, 1, ids_keep.unsqueeze(-1).expand(-1, -1, d))
        mask = torch.ones(b, n, device=x.device)
        mask[:, :keep] = 0
        return visible, torch.gather(mask, 1, ids_restore), ids_restore

    def forward(self, imgs: torch.Tensor, mask_ratio: float = 0.75) -> torch.Tensor:
        """Loss of one step for ``(B, C, H, W)`` images."""
        x = self.patch_embed(imgs) + self.pos_embed[:, 1:]
        x, mask, ids_restore = self.random_masking(x, mask_ratio)
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1)
        for blk in self.blocks:
            x = blk(x)
        x = self.decoder_embed(self.norm(x))
        masks = self.mask_token.expand(x.shape[0], ids_restore.shape[1] + 1 - x.shape[1], -1)
        x_ = torch.cat([x[:, 1:], masks], dim=1)
        x_ = torch.gather(x_, 1, ids_restore.unsqueeze(-1).expand(-1, -1, x.shape[2]))
        x = torch.cat([x[:, :1], x_], dim=1) + self.decoder_pos_embed
        for blk in self.decoder_blocks:
            x = blk(x)
        pred = self.decoder_pred(self.decoder_norm(x))[:, 1:]
        loss = ((pred - self.patchify(imgs)) ** 2).mean(dim=-1)
        return (loss * mask).sum() / mask.sum()


@dataclass(frozen=True)
class Config:
    """One benchmarked shape: a label and our model (the timm MAE copies its shapes)."""

    label: str
    build: Callable[[], SmartiesMAE]


CONFIGS = (
    Config(
        "ViT-S/16 96px (dec 512x8x16)",
        lambda: smarties_vit_small_patch16(
            img_size=96, decoder_embed_dim=512, decoder_depth=8, decoder_num_heads=16
        ),
    ),
    Config("demo tiny/4 64px (dec 128x2x4)", smarties_vit_tiny_patch4),
)


def timm_twin(ours: SmartiesMAE) -> TimmMAE:
    """A :class:`TimmMAE` with our model's shapes (read from its recorded config)."""
    c = ours.config
    return TimmMAE(
        c["img_size"], c["patch_size"], S2_CHANNELS, c["embed_dim"], c["depth"], c["num_heads"],
        c["decoder_embed_dim"], c["decoder_depth"], c["decoder_num_heads"], c["mlp_ratio"],
    )  # fmt: skip


def step_fns(cfg: Config, batch: int) -> dict[str, Callable[[], object]]:
    """The three timed steps of one config: timm, ours, ours with mixup."""
    torch.manual_seed(0)
    ours = cfg.build()
    ref = timm_twin(ours)
    size = ours.img_size
    x_a = torch.randn(batch, S2_CHANNELS, size, size)
    x_b = torch.randn(batch, S1_CHANNELS, size, size)

    def timm_step() -> None:
        ref.zero_grad(set_to_none=True)
        ref(x_a, mask_ratio=0.75).backward()

    def ours_step() -> None:
        ours.zero_grad(set_to_none=True)
        ours(x_a, "sentinel2-l2a", mask_ratio=0.75).loss.backward()

    def mixup_step() -> None:
        ours.zero_grad(set_to_none=True)
        ours(x_a, "sentinel2-l2a", x_b, "sentinel1-grd", mask_ratio=0.75).loss.backward()

    return {"timm": timm_step, "ours": ours_step, "mixup": mixup_step}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, batch {args.batch}, "
          f"12 S2 bands, mask 0.75, fwd+backward, median of {args.repeats} round-robin repeats")  # fmt: skip
    print("| config | timm ms | ours ms | ours/timm | ours+S1 mixup ms (info) |")
    print("|---|---|---|---|---|")
    for cfg in CONFIGS:
        t = median_times(step_fns(cfg, args.batch), args.repeats, args.warmup)
        ms = {k: 1000 * v for k, v in t.items()}
        print(f"| {cfg.label} | {ms['timm']:.1f} | {ms['ours']:.1f} | "
              f"{t['ours'] / t['timm']:.2f}x | {ms['mixup']:.1f} |")  # fmt: skip
    print("target (issue 12): ours/timm <= 1.15x")


if __name__ == "__main__":
    main()
