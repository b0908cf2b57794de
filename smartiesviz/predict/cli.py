"""``smartiesviz embed``: a scene → a georeferenced raster of patch embeddings."""

from __future__ import annotations

import argparse
from typing import Any

SAMPLES = {"sample:sentinel2": "sentinel2_sample", "sample:landsat8": "landsat8_sample"}


def register(subparsers: Any) -> None:
    """Add the ``embed`` command."""
    p = subparsers.add_parser(
        "embed",
        help="encode a scene tile by tile into a raster of patch embeddings",
        description=(
            "Tile SCENE on its patch grid, encode the tiles in batches and write the patch "
            "embeddings as a georeferenced raster: GeoTIFF (.tif, written window by window) or "
            "Zarr (.zarr, needs the zarr package). The output grid is the scene's, scaled by the "
            "patch size, in the scene's CRS; one raster band per feature."
        ),
    )
    p.add_argument(
        "scene",
        help="a multi-band GeoTIFF, a folder of single-band rasters (e.g. *_B04.jp2), or "
        + " / ".join(SAMPLES),
    )
    p.add_argument("--sensor", required=True, help="registry sensor name, e.g. sentinel2-l1c")
    p.add_argument("--bands", nargs="+", help="bands to use (default: all the model can tokenize)")
    p.add_argument("--checkpoint", help="model checkpoint (default: the bundled demo model)")
    p.add_argument("--out", required=True, help="output path: .tif/.tiff or .zarr")
    p.add_argument("--tile-size", type=int, help="tile side in pixels (default: model input size)")
    p.add_argument("--overlap", type=int, default=0, help="context pixels shared by tiles")
    p.add_argument("--batch-size", default="auto", help="tiles per batch or 'auto' (default)")
    p.add_argument("--device", help="torch device (default: cpu)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run)


def read_scene(scene: str, sensor: str, bands: list[str] | None = None) -> Any:
    """Open a scene as a cube: bundled sample, folder of band files, or multi-band raster.

    A single multi-band file is opened lazily (rioxarray), so only the windows being encoded are
    read; a folder is read and resampled to a common grid by the data module.
    """
    from pathlib import Path

    from smartiesviz import data

    if scene in SAMPLES:
        cube = getattr(data, SAMPLES[scene])()
        if cube.attrs.get("sensor") not in (None, sensor):
            cube = cube.assign_attrs(sensor=sensor)
        return cube
    path = Path(scene)
    if not path.exists():
        raise FileNotFoundError(
            f"scene {scene!r} does not exist (give a raster file, a folder of band rasters, or "
            f"one of {', '.join(SAMPLES)})"
        )
    if path.is_dir():
        return data.read_geotiff(path, sensor=sensor)
    import rioxarray

    lazy = rioxarray.open_rasterio(path, masked=True)
    names = lazy.attrs.get("long_name")
    if isinstance(names, (tuple, list)) and len(names) == lazy.sizes.get("band", -1):
        lazy = lazy.assign_coords(band=[str(n) for n in names])
    try:
        cube = data.from_xarray(lazy, sensor=sensor)
    except ValueError:  # no band descriptions and a different count: let the reader explain
        return data.read_geotiff(path, sensor=sensor)
    return cube


def run(args: argparse.Namespace) -> int:
    import sys

    from smartiesviz.errors import UserError
    from smartiesviz.predict.embed import embed_to_file

    batch: int | str = args.batch_size
    if batch != "auto":
        try:
            batch = int(batch)
        except ValueError:
            print(
                f"error: --batch-size must be an integer or 'auto'; got {batch!r}", file=sys.stderr
            )
            return 2
    if args.device:  # a device this machine lacks: one `error:` line, not a torch traceback
        import torch  # heavy: only when a device is named

        try:
            kind = torch.device(args.device).type
        except RuntimeError as err:
            raise UserError(f"--device {args.device}: {err}") from None
        if kind == "cuda" and not torch.cuda.is_available():
            raise UserError(f"--device {args.device}: no CUDA GPU is available; use --device cpu")
    try:
        cube = read_scene(args.scene, args.sensor)
        out = embed_to_file(
            cube,
            args.out,
            sensor=args.sensor,
            model=args.checkpoint,
            bands=args.bands,
            batch_size=batch,
            tile_size=args.tile_size,
            overlap=args.overlap,
            device=args.device,
            progress=not args.no_progress,
        )
    except (FileNotFoundError, ValueError, KeyError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0
