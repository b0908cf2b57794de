"""``smartiesviz embed``: a scene → a georeferenced raster of patch embeddings.

This module builds the parser only; torch loads when the command runs (fast ``--help``).
"""

from __future__ import annotations

import argparse
from typing import Any

from smartiesviz.errors import UserError

SAMPLES = ("sample:sentinel2", "sample:landsat8")
#: ``--checkpoint`` of ``embed`` and ``export``: both resolve it with
#: :func:`smartiesviz.models.resolve.resolve_checkpoint`.
CHECKPOINT_HELP = (
    "a checkpoint file (ours or a released SMARTIES file), a training run folder, 'demo', or a "
    "released name on the Hugging Face Hub: gsumbul/SMARTIES-v1-ViT-B, gsumbul/SMARTIES-v1-ViT-L, "
    "gsumbul/SMARTIES-v1-finetuned-models/<file> (append @REVISION to the repo id to pin one; "
    "HF_HUB_OFFLINE=1 serves from the Hugging Face cache only)"
)
# Python spellings in shared error messages, and what a command-line user types instead.
_CLI_SPELLINGS = (
    ("pass bands=[...]", "pass --bands NAME ..."),
    ("bands=[...]", "--bands NAME ..."),
    ("pass sensor=...", "pass --sensor NAME"),
    ("sensor=...", "--sensor NAME"),
    ("--overwrite (overwrite=True)", "--overwrite"),
    ("overwrite=True", "--overwrite"),
    ("batch size", "--batch-size"),
)


def register(subparsers: Any) -> None:
    """Add the ``embed`` command."""
    p = subparsers.add_parser(
        "embed",
        help="encode a scene tile by tile into a raster of patch embeddings",
        description=(
            "Tile SCENE on its patch grid, encode the tiles in batches and write the patch "
            "embeddings as a georeferenced raster: GeoTIFF (.tif, written block by block with "
            "bounded memory) or Zarr (.zarr, needs the zarr package). The output grid is the "
            "scene's, scaled by the patch size, in the scene's CRS; one raster band per feature; "
            "mostly-nodata patches are NaN (the file's nodata value). The file appears at OUT "
            "only when complete; an existing OUT is replaced only with --overwrite."
        ),
    )
    p.add_argument(
        "scene",
        help="a multi-band GeoTIFF, a folder of single-band rasters (e.g. *_B04.jp2), or "
        + " / ".join(SAMPLES),
    )
    p.add_argument(
        "--sensor", help="registry sensor name, e.g. sentinel2-l1c (required for files)"
    )
    p.add_argument("--bands", nargs="+", help="bands to use (default: all the model can tokenize)")
    p.add_argument("--checkpoint", help=CHECKPOINT_HELP + " (default: demo)")
    p.add_argument("--out", required=True, help="output path: .tif/.tiff or .zarr")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--tile-size", type=int, help="tile side in pixels (default: model input size)")
    p.add_argument("--overlap", type=int, default=0, help="context pixels shared by tiles")
    p.add_argument("--batch-size", default="auto", help="tiles per batch or 'auto' (default)")
    p.add_argument("--device", help="torch device (default: cpu)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run)


def cli_message(err: BaseException) -> str:
    """An error's message with Python spellings replaced by the command-line options."""
    text = str(err)
    for python, cli in _CLI_SPELLINGS:
        text = text.replace(python, cli)
    return text


def _batch_size(value: str) -> int | str:
    if value == "auto":
        return value
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"--batch-size must be a positive integer or 'auto'; got {value!r}")
    return n


def run(args: argparse.Namespace) -> int:
    """Embed; user errors re-raised as :class:`UserError` in command-line spelling."""
    if args.device:  # a device this machine lacks: one `error:` line, not a torch traceback
        import torch  # lazy: CLI parser module; torch only when a device is named

        try:
            kind = torch.device(args.device).type
        except RuntimeError as err:
            raise UserError(f"--device {args.device}: {err}") from None
        if kind == "cuda" and not torch.cuda.is_available():
            raise UserError(f"--device {args.device}: no CUDA GPU is available; use --device cpu")
    try:
        batch = _batch_size(args.batch_size)
        # lazy: the xarray/GDAL stack; keeps `smartiesviz --help` fast
        from smartiesviz.predict.embed import EmbedOptions, embed_to_file

        options = EmbedOptions(
            bands=tuple(args.bands) if args.bands else None,
            batch_size=batch,
            tile_size=args.tile_size,
            overlap=args.overlap,
            device=args.device,
            progress=not args.no_progress,
        )
        out = embed_to_file(
            args.scene, args.out, args.sensor, args.checkpoint, options, overwrite=args.overwrite
        )
    except (ValueError, KeyError) as err:
        raise UserError(cli_message(err)) from err
    print(f"wrote {out}")
    return 0
