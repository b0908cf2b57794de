"""``smartiesviz layers``: the map's products of a scene, listed or written to a GeoTIFF.

The products are the registry's (:data:`smartiesviz.predict.products.PRODUCTS`), computed through
:class:`~smartiesviz.predict.map_layers.SceneLayers` and its cache, exactly as the map shows them.
This module builds the parser only; torch loads when the command runs (fast ``--help``).
"""

from __future__ import annotations

import argparse
import shutil
import textwrap
from pathlib import Path
from typing import Any

from smartiesviz.errors import UserError
from smartiesviz.predict.cli import CHECKPOINT_HELP, cli_message

EPILOG = """\
examples:
  smartiesviz layers sample:sentinel2 --list
  smartiesviz layers sample:sentinel2 "PCA colour" --out pca.tif
  smartiesviz layers scene.tif "NIR from RGB" --sensor sentinel2-l2a --out nir.tif --overwrite
"""


def register(subparsers: Any) -> None:
    """Add the ``layers`` command."""
    p = subparsers.add_parser(
        "layers",
        help="list a scene's map products, or write one as a GeoTIFF",
        description=textwrap.fill(
            "With --list, print the map products SCENE can have (those whose band roles its "
            "sensor declares), with their kind and legend. With PRODUCT and --out, compute that "
            "product as the map does (streamed, cached per scene and model in the map-layer "
            "cache) and copy it to OUT, a GeoTIFF: RGBA uint8 for colour products, float32 "
            "(NaN = no data) for scalar ones, uint8 (255 = no data) for classes. OUT appears "
            "only when complete; an existing OUT is replaced only with --overwrite.",
            88,
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("scene", help="a multi-band GeoTIFF, a folder of single-band rasters, or a "
                   "sample (sample:sentinel2, sample:landsat8, sample:bigearthnet:0)")  # fmt: skip
    p.add_argument("product", nargs="?", help="the product to write (see --list)")
    p.add_argument("--sensor", help="registry sensor name (required for a file)")
    p.add_argument("--checkpoint", help=CHECKPOINT_HELP + " (default: demo)")
    p.add_argument("--list", action="store_true", help="list the products SCENE can have")
    p.add_argument("--out", help="output GeoTIFF (.tif/.tiff) for PRODUCT")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--cache", help="map-layer cache folder (default: the user cache, map-layers)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """List the products (``--list``) or write one; user errors as :class:`UserError`."""
    try:
        if args.list:
            if args.product or args.out:
                raise UserError("--list takes only SCENE (and --sensor); leave out PRODUCT/--out")
            return list_products(args.scene, args.sensor)
        if not args.product or not args.out:
            raise UserError("give PRODUCT and --out FILE.tif, or --list to see the products")
        out = write_product(args.scene, args.product, args.out, args.sensor, args.checkpoint,
                            args.cache, args.overwrite)  # fmt: skip
    except (ValueError, KeyError) as err:
        raise UserError(cli_message(err)) from err
    print(f"wrote {out}")
    return 0


def list_products(scene: str, sensor: str | None) -> int:
    """Print one line per product the scene can have (name, kind, legend), then those it
    cannot have with the reason."""
    # lazy: the model and GDAL stack; keeps `smartiesviz --help` fast
    from smartiesviz.predict.embed import open_source
    from smartiesviz.predict.products import PRODUCTS

    opened = open_source(scene, sensor)
    bands = list(opened.bands)
    width = max(len(n) for n in PRODUCTS)
    print(f"products of {opened.name!r} ({opened.sensor}, bands {', '.join(bands)}):")
    missing = []
    for name, p in PRODUCTS.items():
        reason = p.missing(opened.sensor, bands)
        if reason is None:
            print(f"  {name:<{width}}  {p.kind:<7}  {p.legend}")
        else:
            missing.append(f"  {name}: needs the {', '.join(p.needs)} band roles ({reason})")
    if missing:
        print("not available:", *missing, sep="\n")
    return 0


def write_product(scene: str, name: str, out: str, sensor: str | None = None,
                  checkpoint: str | None = None, cache: str | None = None,
                  overwrite: bool = False) -> Path:  # fmt: skip
    """Compute product ``name`` of ``scene`` through the map-layer cache and copy it to ``out``
    atomically.

    Raises:
        UserError: an unknown product, one the scene cannot have, or a bad output path.
    """
    from smartiesviz import outputs  # lazy: the model and GDAL stack, as above
    from smartiesviz.models.resolve import resolve_model
    from smartiesviz.predict.embed import open_source
    from smartiesviz.predict.map_layers import SceneLayers
    from smartiesviz.predict.products import product

    found = product(name)  # an unknown name fails before anything is opened or loaded
    if Path(out).suffix.lower() not in (".tif", ".tiff"):
        raise UserError(f"--out {out!r}: give a GeoTIFF path (.tif or .tiff)")
    opened = open_source(scene, sensor)
    inputs = [p for p in (scene, opened.cube.encoding.get("source"), checkpoint) if p]
    inputs = [p for p in inputs if Path(p).exists()]  # (sample and Hub names are not files)
    outputs.check_output(out, inputs, overwrite, what="--out")
    if (reason := found.missing(opened.sensor, list(opened.bands))) is not None:
        raise UserError(f"scene {scene!r} cannot have the {name!r} product: {reason}")
    store = SceneLayers(opened, resolve_model(checkpoint or "demo"),
                        Path(cache) if cache else None)  # fmt: skip
    layer = store.get(name)
    outputs.check_output(out, [*inputs, layer.path], overwrite, what="--out")
    with outputs.atomic_path(out) as tmp:
        shutil.copyfile(layer.path, tmp)
    return Path(out)
