"""``smartiesviz embed``: a scene → a georeferenced raster of patch embeddings.

This module builds the parser only; torch loads when the command runs (fast ``--help``).
"""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path
from typing import Any, get_args

from smartiesviz.errors import UserError
from smartiesviz.options import DEFAULT_TOKEN_NORM, TokenNorm

SAMPLES = ("sample:sentinel2", "sample:landsat8")
#: ``--checkpoint`` of ``embed`` and ``export``: both resolve it with
#: :func:`smartiesviz.models.resolve.resolve_checkpoint`.
CHECKPOINT_HELP = (
    "a checkpoint file (ours or a released SMARTIES file), a training run folder, 'demo', or a "
    "released name on the Hugging Face Hub: gsumbul/SMARTIES-v1-ViT-B, gsumbul/SMARTIES-v1-ViT-L, "
    "gsumbul/SMARTIES-v1-finetuned-models/<file> (append @REVISION to the repo id to pin one; "
    "HF_HUB_OFFLINE=1 serves from the Hugging Face cache only)"
)
ARCHIVE_EPILOG = """\
many scenes:
  smartiesviz embed scenes.txt --out embeddings/        # a list file, one scene per line:
                                                       #   PATH  or  PATH<TAB>SENSOR
                                                       #   or  PATH sensor=SENSOR
  smartiesviz embed 'tiles/*.tif' --out embeddings/     # a glob (quoted)
  smartiesviz embed tiles/ --out embeddings/ --sensor sentinel2-l2a   # a folder of scenes
  torchrun --nproc_per_node 4 -m smartiesviz.cli embed scenes.txt --out embeddings/
  smartiesviz launch slurm --nodes 2 --gpus-per-node 4 -- embed scenes.txt --out embeddings/
A rerun skips the scenes the manifest (embeddings/manifest/) records as finished.
"""

DESCRIPTION = (
    "Tile SCENE on its patch grid, encode the tiles in batches and write the patch "
    "embeddings as a georeferenced raster: GeoTIFF (.tif, written block by block with "
    "bounded memory) or Zarr (.zarr, needs the zarr package). The output grid is the "
    "scene's, scaled by the patch size, in the scene's CRS; one raster band per feature; "
    "mostly-nodata patches are NaN (the file's nodata value). The file appears at OUT "
    "only when complete; an existing OUT is replaced only with --overwrite. "
    "Many scenes (several SCENEs, a list file, a glob or a folder of scenes) go into an "
    "output FOLDER: one cloud-optimised GeoTIFF per scene, a manifest that makes a rerun "
    "skip finished scenes, catalog.json and a VRT mosaic per CRS; under torchrun or "
    "`smartiesviz launch slurm` each process takes its share of the scenes."
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
        description=textwrap.fill(DESCRIPTION, 88),
        epilog=ARCHIVE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "scene",
        nargs="+",
        help="a multi-band GeoTIFF, a folder of single-band rasters (e.g. *_B04.jp2), or "
        + " / ".join(SAMPLES)
        + "; for many scenes: several of these, a list file (.txt/.list/.lst), a quoted glob "
        "('tiles/*.tif') or a folder of scenes (with --out FOLDER)",
    )
    p.add_argument(
        "--sensor",
        help="registry sensor name, e.g. sentinel2-l1c (required for a single file; many "
        "scenes: for those without one in the list whose band names do not tell it)",
    )
    p.add_argument("--bands", nargs="+", help="bands to use (default: all the model can tokenize)")
    p.add_argument("--checkpoint", help=CHECKPOINT_HELP + " (default: demo)")
    p.add_argument(
        "--out", required=True, help="output path: .tif/.tiff or .zarr; a folder for many scenes"
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--tile-size", type=int, help="tile side in pixels (default: model input size)")
    p.add_argument(
        "--overlap", type=overlap_arg, default=0,
        help="pixels shared by neighbouring tiles, cross-faded so the output has no seams at tile "
        "edges (a multiple of 2 × the patch size), or 'auto' (half the tile: 4× the model passes)",
    )  # fmt: skip
    p.add_argument("--batch-size", default="auto", help="tiles per batch or 'auto' (default)")
    p.add_argument(
        "--device",
        help="torch device (default: cpu; many scenes: cuda:LOCAL_RANK when there is a GPU)",
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument(
        "--token-norm",
        choices=get_args(TokenNorm),
        default=DEFAULT_TOKEN_NORM,
        help="patch tokens before (default, as the release's segmentation heads read them) or "
        "after the encoder's final LayerNorm; recorded in every output",
    )
    add_on_bad(p)
    p.set_defaults(func=run)


def add_on_bad(p: argparse.ArgumentParser) -> None:
    """``--on-bad``, shared by the commands that take many scenes."""
    p.add_argument(
        "--on-bad",
        choices=("skip", "error"),
        default="skip",
        help="many scenes: record a scene that fails and go on (skip, default) or stop (error)",
    )


def cli_message(err: BaseException) -> str:
    """An error's message with Python spellings replaced by the command-line options."""
    text = str(err)
    for python, cli in _CLI_SPELLINGS:
        text = text.replace(python, cli)
    return text


def batch_size_arg(value: str) -> int | str:
    """``--batch-size``: a positive integer or ``'auto'``."""
    if value == "auto":
        return value
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"--batch-size must be a positive integer or 'auto'; got {value!r}")
    return n


def overlap_arg(value: str) -> int | str:
    """``--overlap``: pixels (checked against the patch and tile size later) or ``'auto'``."""
    if value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected pixels or 'auto'; got {value!r}") from None


def check_device(args: argparse.Namespace) -> None:
    """Refuse a ``--device`` this machine lacks with one ``error:`` line."""
    if args.device:  # a device this machine lacks: one `error:` line, not a torch traceback
        import torch  # lazy: CLI parser module; torch only when a device is named

        try:
            kind = torch.device(args.device).type
        except RuntimeError as err:
            raise UserError(f"--device {args.device}: {err}") from None
        if kind == "cuda" and not torch.cuda.is_available():
            raise UserError(f"--device {args.device}: no CUDA GPU is available; use --device cpu")


def embed_options(args: argparse.Namespace) -> Any:
    """The :class:`~smartiesviz.predict.embed.EmbedOptions` the command line describes."""
    # lazy: the xarray/GDAL stack; keeps `smartiesviz --help` fast
    from smartiesviz.predict.embed import EmbedOptions

    return EmbedOptions(
        bands=tuple(args.bands) if args.bands else None,
        batch_size=batch_size_arg(args.batch_size),
        tile_size=args.tile_size,
        overlap=args.overlap,
        device=args.device,
        progress=not args.no_progress,
        token_norm=args.token_norm,
    )


def run(args: argparse.Namespace) -> int:
    """Embed; user errors re-raised as :class:`UserError` in command-line spelling."""
    check_device(args)
    from smartiesviz.predict.archive import is_archive_request

    if is_archive_request(args.scene, args.out):
        return run_many(args, "embed", embed_options)
    try:
        from smartiesviz.predict.embed import embed_to_file  # lazy: the xarray/GDAL stack

        options = embed_options(args)
        out = embed_to_file(
            args.scene[0], args.out, args.sensor, args.checkpoint, options,
            overwrite=args.overwrite,
        )  # fmt: skip
    except (ValueError, KeyError) as err:
        raise UserError(cli_message(err)) from err
    print(f"wrote {out}")
    return 0


def run_many(args: argparse.Namespace, kind: str, make_options: Any) -> int:
    """Many scenes into the folder ``--out`` (:func:`smartiesviz.predict.archive.run_archive`):
    this process's share; prints its summary line, and the archive's when it finished it.

    ``kind`` is ``"embed"`` or ``"predict"``; ``make_options(args)`` builds the options record
    (``args`` needs ``scene``, ``out``, ``sensor``, ``checkpoint``, ``overwrite``, ``on_bad``,
    ``no_progress``). Failed scenes are listed on stderr; the exit code is 0 unless the run
    stopped (``--on-bad error``)."""
    import sys

    from smartiesviz.predict.archive import archive_line, expand_inputs, run_archive

    try:
        out = Path(args.out)
        if out.suffix.lower() in {".tif", ".tiff", ".zarr"} and not out.is_dir():
            raise UserError(
                f"--out {args.out!r}: many scenes need an output folder, not a "
                f"{Path(args.out).suffix} file"
            )
        scenes = expand_inputs(args.scene, args.sensor, exclude=Path(args.out))
        summary = run_archive(
            scenes, args.out, kind, checkpoint=args.checkpoint, options=make_options(args),
            on_bad=args.on_bad, overwrite=args.overwrite, progress=not args.no_progress,
        )  # fmt: skip
    except (ValueError, KeyError) as err:
        raise UserError(cli_message(err)) from err
    for line in summary.errors:
        print(f"failed: {line}", file=sys.stderr)
    print(summary.line(), flush=True)
    if summary.catalog is not None:
        print(archive_line(args.out, scenes))
        print(f"index: {summary.catalog}" + "".join(f", {m}" for m in summary.mosaics))
    return 0
