"""SmartiesEncoder vs a plain timm ViT of the same shape: images per second, side by side.

Both at ViT-B/16 shapes (D 768, depth 12, 12 heads, 224 px), random weights, 12-band Sentinel-2
L2A input, inference (``torch.inference_mode``), CLS output:

* smarties: :class:`SmartiesEncoder` (spectrum-aware projection as one convolution with the
  effective kernel, fixed sin-cos table, timm Blocks, final norm);
* smarties-timm: ``timm.create_model("smarties_encoder_vit_*", num_classes=0)`` (timm's
  ``VisionTransformer`` with the spectral patch embedding; default bands Sentinel-2 L2A);
* timm: ``timm.models.VisionTransformer(in_chans=12, num_classes=0)``: the floor any ViT of this
  shape pays.

Measured round-robin in one process (so load from other processes hits both alike). On CPU by
default; with ``--device cuda`` also in bf16 autocast. Target: smarties within 1.1x of timm.

Run: ``python benchmarks/encoder.py`` (``--quick``: ViT-S at 112 px, for a smoke run).
"""

from __future__ import annotations

import argparse
import os
import sys

import timm
import torch
from timm.models.vision_transformer import VisionTransformer

sys.path.insert(0, os.path.dirname(__file__))
from _measure import median_times  # noqa: E402

import smartiesviz.models  # noqa: E402, F401  (registers smarties_encoder_vit_*)
from smartiesviz.models.encoder import SmartiesEncoder  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="ViT-S at 112 px")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    dim, depth, heads, img = (384, 12, 6, 112) if args.quick else (768, 12, 12, 224)
    torch.manual_seed(0)
    ours = SmartiesEncoder(img_size=img, patch_size=16, embed_dim=dim, depth=depth, num_heads=heads)
    ref = VisionTransformer(img_size=img, patch_size=16, in_chans=12, embed_dim=dim, depth=depth,
                            num_heads=heads, num_classes=0, qkv_bias=True)  # fmt: skip
    name = "smarties_encoder_vit_small_patch16" if args.quick else "smarties_encoder_vit_base_patch16"
    ours_timm = timm.create_model(name, num_classes=0, img_size=img).eval().to(args.device)
    ours, ref = ours.eval().to(args.device), ref.eval().to(args.device)
    x = torch.randn(args.batch, 12, img, img, device=args.device)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)

    def run(fn):
        def call():
            with torch.inference_mode():
                fn()
            sync()

        return call

    variants = {
        "smarties fp32": run(lambda: ours(x, sensor_type="S2")),
        "smarties-timm fp32": run(lambda: ours_timm(x)),
        "timm fp32": run(lambda: ref(x)),
    }
    if args.device.startswith("cuda"):
        def bf16(fn):
            def inner():
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    fn()
            return inner

        variants["smarties bf16"] = run(bf16(lambda: ours(x, sensor_type="S2")))
        variants["smarties-timm bf16"] = run(bf16(lambda: ours_timm(x)))
        variants["timm bf16"] = run(bf16(lambda: ref(x)))
    times = median_times(variants, repeats=args.repeats, warmup=1)
    threads = torch.get_num_threads()
    print(f"ViT D{dim} depth {depth} heads {heads}, {img}px, 12 bands, batch {args.batch}, "
          f"{args.device} ({threads} threads), median of {args.repeats}")  # fmt: skip
    for name, t in times.items():
        print(f"  {name:19s} {args.batch / t:8.2f} images/s  ({t * 1000:.0f} ms/batch)")
    for prec in ("fp32", "bf16"):
        if f"timm {prec}" in times:
            for ours_name in ("smarties", "smarties-timm"):
                ratio = times[f"{ours_name} {prec}"] / times[f"timm {prec}"]
                print(f"  {ours_name} / timm time ({prec}): {ratio:.3f}x (target <= 1.1x)")


if __name__ == "__main__":
    main()
