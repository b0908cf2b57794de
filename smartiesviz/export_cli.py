"""``smartiesviz export``: the encoder for a fixed band set as an ONNX file.

Parser only here (no torch import, so ``smartiesviz --help`` stays fast); the work is in
:mod:`smartiesviz.export`.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``export`` command."""
    p = subparsers.add_parser(
        "export",
        help="export the encoder for a fixed band set to ONNX",
        description=(
            "Export the SMARTIES encoder for one band set and input size to ONNX (projection baked "
            "into one convolution, dynamic batch). Outputs: cls (B, D) and tokens (B, D, H/S, W/S)."
        ),
    )
    p.add_argument("--checkpoint", required=True, help="checkpoint file (released, ours) or 'demo'")
    p.add_argument(
        "--bands",
        required=True,
        help="a sensor ('sentinel2-l2a', 'S1'), 'sensor:B04,B03,B02', or range names/'sensor/band' "
        "specs separated by commas",
    )
    p.add_argument("--img-size", type=int, default=None, help="input size (default: the checkpoint's)")
    p.add_argument("--out", required=True, help="target .onnx file")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default: the exporter's)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from smartiesviz.export import export_onnx, parse_bands_spec  # torch: only when run

    result = export_onnx(
        args.checkpoint, parse_bands_spec(args.bands), args.out, img_size=args.img_size,
        overwrite=args.overwrite, opset=args.opset,
    )  # fmt: skip
    b, c, h, w = result.input_shape
    print(f"wrote {result.path}: x (batch, {c}, {h}, {w}) -> cls (batch, {result.embed_dim}), "
          f"tokens (batch, {result.embed_dim}, {result.grid[0]}, {result.grid[1]})")  # fmt: skip
    print(f"bands: {', '.join(result.bands)}")
    if result.max_rel_error is not None:
        print(f"onnxruntime vs PyTorch: max relative difference {result.max_rel_error:.1e}")
    return 0
