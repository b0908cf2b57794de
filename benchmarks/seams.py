"""The tile grid in the map products: boundary-jump ratio of every product, and what it costs.

For each product of :class:`~smartiesviz.predict.map_layers.SceneLayers` (and the similarity to
the patch at the scene's centre) on the bundled Sentinel-2 scene (1942 × 1931 px) or the 2 × 2
mosaic of it (``benchmarks/map.py`` ``write_mosaic``, opened lazily), with the demo model, this
measures the boundary-jump ratio (:func:`smartiesviz.predict.seams.boundary_jumps`: mean jump
between neighbouring patches across window-core boundaries / inside cores; target <= 1.2) and the
seconds each product took (the slowdown overlap costs). Each run uses a fresh layer cache, so the
embeddings are computed by the first embedding product (PCA colour) and reused by the next ones.

``--crop N`` measures an ``N × N`` px window near the scene's centre (for the mosaic: where its
four copies meet), its origin on a multiple of 64 px so that window boundaries fall where they
fall in the whole scene (the copies' seams are not on them), for runs that cannot afford the
whole scene on a shared CPU. ``--overlap`` forces
the windows' overlap in pixels (default: the map's own choice).

Measured on a shared 2-core machine, demo model. "before" is the code before issue 27 item 4
(windows without overlap, each window's output kept whole, k-means on raw embeddings); "after"
is windows overlapping by half (32 px), cross-faded. The mosaic columns: a 2048-px crop centred
where its four copies meet (``--crop 2048 --threads 1``, before and after started together, so
their first products ran side by side; the whole mosaic did not fit the session's CPU time):

    product                 bundled 1942x1931     mosaic 2x2, 2048 px crop
                            ratio before / after  ratio before / after   seconds before / after
    true colour (input)     1.00 / 0.99           1.00 / 1.00            3.8 / 3.7
    reconstruction          1.94 / 0.90           1.93 / 0.91            26.5 / 92.8
    reconstruction error    1.90 / 0.95           1.84 / 0.92            84.9 / 225.2
    PCA colour (+ embed)    2.33 / 0.98           2.39 / 0.99            64.8 / 72.3
    k-means classes         2.14 / 0.98           2.34 / 1.04            4.1 / 2.7
    NIR from RGB            2.74 / 0.94           2.83 / 0.95            30.5 / 93.5
    similarity (centre)     2.94 / 0.97           2.48 / 0.94            1.1 / 0.9

Overlap costs ``(T / (T - overlap))²`` = 4× the model passes (2.7-3.5× measured above, less for
embedding, whose writing and normalizing do not grow); 3/8 of the window (24 px) would cost 2.6×
but leaves k-means at 1.35 and similarity at 1.33 on a 512-px crop of the bundled scene (a
quarter, 16 px, is worse). A ratio below 1 means the cross-fade averages two windows where they
meet, slightly smoother there than inside a window. Whole bundled scene, after (seconds, not
side by side with before's 21, 178, 96, 144): reconstruction 281, error 805, PCA + embed 148,
NIR 199.

Usage::

    python benchmarks/seams.py --scene bundled --out before.json
    python benchmarks/seams.py --scene mosaic --crop 2048 --threads 1
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

PIXEL_PRODUCTS = ("true colour", "reconstruction", "NIR from RGB")


def _open(scene: str, tmp: Path, crop: int | None):
    from smartiesviz import data
    from smartiesviz.predict.embed import open_source

    if scene == "bundled":
        cube = data.sentinel2_sample()
    else:
        sys.path.insert(0, str(Path(__file__).parent))
        from map import write_mosaic  # benchmarks/map.py

        path = tmp / "mosaic2x2.tif"
        write_mosaic(path, 2)
        cube = open_source(path, "sentinel2-l1c").cube
    if crop:  # origin on the whole scene's window grid (64 px), so boundaries stay where they were
        h, w = cube.sizes["y"], cube.sizes["x"]
        y0, x0 = (max(0, n // 2 - crop // 2) // 64 * 64 for n in (h, w))
        cube = cube.isel(y=slice(y0, y0 + crop), x=slice(x0, x0 + crop))
    return cube


def _values(layer) -> np.ndarray:
    """A layer's GeoTIFF as float ``(C, h, w)`` with NaN where it has no data."""
    import rasterio

    with rasterio.open(layer.path) as src:
        v = src.read().astype(np.float64)
    if layer.kind == "rgb":
        rgb = v[:3]
        rgb[:, v[3] == 0] = np.nan
        return rgb
    if layer.kind == "classes":
        v[v == 255] = np.nan
    return v


def measure(scene: str, crop: int | None, overlap: int | None, products: list[str]) -> dict:
    from smartiesviz import load_demo_model
    from smartiesviz.predict import map_layers
    from smartiesviz.predict.seams import boundary_jumps, core_step

    model = load_demo_model()
    rows: dict = {}
    with tempfile.TemporaryDirectory(prefix="smartiesviz-bench-seams-") as tmp:
        cube = _open(scene, Path(tmp), crop)
        kw = {}
        if overlap is not None:
            if "overlap" in inspect.signature(map_layers.SceneLayers).parameters:
                kw["overlap"] = overlap
            else:  # the code before issue 27: only the embeddings read EmbedOptions.overlap
                from smartiesviz.predict.embed import EmbedOptions

                kw["options"] = EmbedOptions(overlap=overlap)
        params = inspect.signature(map_layers.SceneLayers).parameters
        # (before issue 25: the cube and its sensor; now the scene, whose sensor the cube carries)
        first = (cube, "sentinel2-l1c") if "sensor" in params else (cube,)
        store = map_layers.SceneLayers(*first, model, Path(tmp) / "cache", **kw)
        opts = getattr(store, "product_options", store.options)  # (before issue 27: options)
        grid = opts.job(cube, "sentinel2-l1c", model).grid
        step, s = core_step(grid), grid.patch_size
        info = {"scene": f"{scene} {cube.sizes['y']}x{cube.sizes['x']}",
                "overlap": grid.overlap, "core_step_cells": step}  # fmt: skip
        print(json.dumps(info), flush=True)
        for name in products:
            t0 = time.perf_counter()
            if name == "similarity":
                bounds = store.cube.rio.transform_bounds("EPSG:4326")
                lon, lat = (bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2
                values, kind, scale = store.similarity_at(lat, lon).values, "continuous", 1
            else:
                layer = store.get(name)
                values = _values(layer)
                kind = "classes" if layer.kind == "classes" else "continuous"
                scale = s if name in PIXEL_PRODUCTS else 1
            seconds = time.perf_counter() - t0
            st = boundary_jumps(values, step, scale, kind)
            rows[name] = {"ratio": round(st.ratio, 3), "across": st.across, "inside": st.inside,
                          "seconds": round(seconds, 1)}  # fmt: skip
            print(json.dumps({name: rows[name]}), flush=True)
    return {**info, "products": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scene", choices=["bundled", "mosaic"], default="bundled")
    parser.add_argument("--crop", type=int, default=None)
    parser.add_argument("--overlap", type=int, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--products", nargs="+", default=[
        "true colour", "reconstruction", "reconstruction error", "PCA colour", "k-means classes",
        "NIR from RGB", "similarity"])  # fmt: skip
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    import torch

    warnings.simplefilter("ignore")
    torch.set_num_threads(args.threads)
    result = measure(args.scene, args.crop, args.overlap, args.products)
    print(f"\n{result['scene']}, overlap {result['overlap']} px")
    print(f"{'product':<22}{'ratio':>8}{'seconds':>10}")
    for name, r in result["products"].items():
        print(f"{name:<22}{r['ratio']:>8.3f}{r['seconds']:>10.1f}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
