"""Tokenizer speed and memory: ours vs a naive per-layer reference vs timm's PatchEmbed (floor).

ViT-B shapes: D 768, patch 16, 224×224, 12 bands (Sentinel-2 L2A), batch 8, on CPU.

* ours: SpectrumAwareProjection (effective kernel assembled from the 17 layers, one conv).
* naive: the straightforward reading of the method: zeros (B, h, w, C, D), one masked assignment
  per layer (each band's patches through its layer), mean over bands, ×12.
* PatchEmbed: timm's Conv2d patch embedding with the same 12 input channels (no spectral
  awareness): the floor any tokenizer of this shape pays.

Run: ``python benchmarks/tokenizer.py`` (add ``--quick`` for a smaller smoke run).
"""

from __future__ import annotations

import argparse
import os
import sys

import torch
from timm.layers import PatchEmbed

sys.path.insert(0, os.path.dirname(__file__))
from _measure import measure_in_subprocess, median_times, report_memory  # noqa: E402

from smartiesviz import SpectrumAwareProjection, resolve_bands  # noqa: E402

D, S, IMG, BATCH, SENSOR = 768, 16, 224, 8, "sentinel2-l2a"


class NaiveTokenizer(torch.nn.Module):
    """Per-layer masked assignment into a (B, h, w, C, D) tensor, then mean ×12."""

    def __init__(self, proj: SpectrumAwareProjection) -> None:
        super().__init__()
        self.proj = proj

    def forward(self, x: torch.Tensor, bands: str) -> torch.Tensor:
        rb = resolve_bands(bands)
        b, c, h, w = x.shape
        gh, gw = h // S, w // S
        patches = (
            x.reshape(b, c, gh, S, gw, S).permute(0, 2, 4, 1, 3, 5).reshape(b, gh, gw, c, S * S)
        )
        emb = torch.zeros(b, gh, gw, c, D, dtype=x.dtype)
        layer_of_band = rb.weights.argmax(1)  # S2: every band has exactly one layer
        for layer in rb.used_layers:
            mask = layer_of_band == layer
            emb[:, :, :, mask] = self.proj.layers[layer](patches[:, :, :, mask])
        return 12 * emb.mean(3).reshape(b, gh * gw, D)


def build(variant: str, batch: int):
    torch.manual_seed(0)
    proj = SpectrumAwareProjection(D, S)
    model = {
        "ours": proj,
        "naive": NaiveTokenizer(proj),
        "patchembed": PatchEmbed(IMG, S, in_chans=12, embed_dim=D),
    }[variant]
    x = torch.randn(batch, 12, IMG, IMG)
    fwd = (lambda: model(x)) if variant == "patchembed" else (lambda: model(x, SENSOR))
    return model, fwd


def step(fwd, backward: bool):
    def run():
        if backward:
            fwd().sum().backward()
        else:
            with torch.no_grad():
                fwd()

    return run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="batch 2, fewer repeats")
    parser.add_argument("--measure-memory", help=argparse.SUPPRESS)
    parser.add_argument("--backward", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    batch = 2 if args.quick else BATCH
    if args.measure_memory:
        _, fwd = build(args.measure_memory, batch)
        report_memory(step(fwd, args.backward))
        return

    repeats = 3 if args.quick else 7
    variants = ("ours", "naive", "patchembed")
    built = {v: build(v, batch)[1] for v in variants}
    print(
        f"tokenizer benchmark: D={D} S={S} {IMG}x{IMG} C=12 batch={batch} threads={torch.get_num_threads()}"
    )
    print(f"{'':<12}{'fwd ms':>10}{'fwd+bwd ms':>12}{'fwd MiB':>10}{'fwd+bwd MiB':>13}")
    fwd_ms = median_times({v: step(built[v], False) for v in variants}, repeats)
    bwd_ms = median_times({v: step(built[v], True) for v in variants}, repeats)
    flag = ["--quick"] if args.quick else []
    res = {}
    for v in variants:
        res[v] = (
            fwd_ms[v] * 1e3,
            bwd_ms[v] * 1e3,
            measure_in_subprocess(__file__, v, flag)["extra_peak_mib"],
            measure_in_subprocess(__file__, v, [*flag, "--backward"])["extra_peak_mib"],
        )
        print(f"{v:<12}{res[v][0]:>10.1f}{res[v][1]:>12.1f}{res[v][2]:>10.1f}{res[v][3]:>13.1f}")
    ours, naive, floor = res["ours"], res["naive"], res["patchembed"]
    print()
    print(f"ours fwd / PatchEmbed fwd          = {ours[0] / floor[0]:.2f}x   (target <= 1.15)")
    print(f"naive fwd / ours fwd               = {naive[0] / ours[0]:.2f}x   (target >= 1.5)")
    print(f"naive fwd+bwd / ours fwd+bwd       = {naive[1] / ours[1]:.2f}x   (target >= 2)")
    # Every tokenizer of this shape must hold its output, the PatchEmbed floor; the spectral
    # machinery's own cost is what it needs above that floor.
    for i, what in ((2, "fwd"), (3, "fwd+bwd")):
        above_ours, above_naive = max(ours[i] - floor[i], 0.0), max(naive[i] - floor[i], 0.0)
        print(
            f"{what:<7} peak memory: ours/naive = {ours[i] / naive[i]:.3f}; above the PatchEmbed floor: "
            f"ours {above_ours:.1f} MiB vs naive {above_naive:.1f} MiB = {above_ours / above_naive:.3f}"
            f"   (target <= 1/C = {1 / 12:.3f})"
        )


if __name__ == "__main__":
    main()
