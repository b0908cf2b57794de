"""``smartiesviz export``: the encoder for a fixed band set as an ONNX file.

Parser only here (no torch import, so ``smartiesviz --help`` stays fast); the work is in
:mod:`smartiesviz.export`.
"""

from __future__ import annotations

import argparse
from typing import get_args

from smartiesviz.options import DEFAULT_TOKEN_NORM, TokenNorm
from smartiesviz.predict.cli import CHECKPOINT_HELP

#: ``TokenNorm``'s values, default first
TOKEN_NORMS = (DEFAULT_TOKEN_NORM, *(v for v in get_args(TokenNorm) if v != DEFAULT_TOKEN_NORM))


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``export`` command."""
    p = subparsers.add_parser(
        "export",
        help="export the encoder for a fixed band set to ONNX",
        description=(
            "Export the SMARTIES encoder for one band set to ONNX (projection baked into one "
            "convolution; dynamic batch, height and width). Outputs: cls (B, D) and tokens "
            "(B, D, H/S, W/S), pre-norm unless --token-norm post-norm. The file's metadata names the bands in order, the "
            "release's normalisation, the checkpoint's sha256 and bands without a SMARTIES layer."
        ),
    )
    p.add_argument("--checkpoint", required=True, help=CHECKPOINT_HELP)
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
    p.add_argument("--fixed-size", action="store_true", help="fix height and width at --img-size")
    p.add_argument(
        "--token-norm",
        choices=TOKEN_NORMS,
        default="pre-norm",
        help="the tokens output before the final norm ('pre-norm', the release's all_tokens; "
        "default) or after it ('post-norm'); recorded as the file's token_norm metadata",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from smartiesviz.export import export_onnx, parse_bands_spec  # torch: only when run
    from smartiesviz.models.resolve import resolve_checkpoint

    # the same resolution as `embed --checkpoint` (file, run folder, demo, Hub name)
    checkpoint = resolve_checkpoint(args.checkpoint).path
    result = export_onnx(
        checkpoint, parse_bands_spec(args.bands), args.out, img_size=args.img_size,
        overwrite=args.overwrite, opset=args.opset, dynamic_size=not args.fixed_size,
        token_norm=args.token_norm,
    )  # fmt: skip
    b, c, h, w = result.input_shape
    hw = "H, W" if h < 0 else f"{h}, {w}"  # dynamic size: multiples of the patch size
    grid = "H/S, W/S" if h < 0 else f"{result.grid[0]}, {result.grid[1]}"
    print(f"wrote {result.path}: x (batch, {c}, {hw}) -> cls (batch, {result.embed_dim}), "
          f"tokens (batch, {result.embed_dim}, {grid}, {args.token_norm}); metadata: bands, "
          "normalization, checkpoint_sha256, token_norm")  # fmt: skip
    print(f"bands: {', '.join(result.bands)}")
    if result.unused_bands:
        print(f"unused inputs (no SMARTIES layer): {', '.join(result.unused_bands)}")
    if result.max_rel_error is not None:
        print(f"onnxruntime vs PyTorch: max relative difference {result.max_rel_error:.1e}")
    return 0
