"""Issue 28 item 8 "Your own RGB": an 8-bit RGB export of the WHOLE bundled Sentinel-2 scene,
reprojected to EPSG:4326 with a no-data border, against the same ground read natively.

The file is made as a user's export looks: B04/B03/B02 DN, one global 2–98 % stretch over the
three bands to 1–255 (uint8), reprojected (bilinear) to EPSG:4326 with ``nodata=0``, written to a
temp folder and opened with ``open_scene(path, sensor="rgb")`` (``stats="auto"``). The native
reference is the same reflectance (B04, B03, B02 / 10000, NaN outside) warped to the same grid and
read as ``sentinel2-l1c``. Every 64-px tile that is fully valid in both is scored with the demo
model's masked reconstruction (``masked_recon_score``, 75 % hidden, tile ``i`` seeded with ``i``,
so both inputs get the same masks). Printed: the whole-file ratio of the 8-bit file and of the
native bands (sum of squared errors over all tiles / the visible-mean baseline's), their quotient
(acceptance: ≤ 1.10), the same on the held-out top block only, and per-tile quotient quantiles.

    python benchmarks/own_rgb.py                 # 200 of the ~800 valid tiles, a regular subsample (~1 min)
    python benchmarks/own_rgb.py --max-tiles 0   # every valid tile (~4 min on 2 cores)
    python benchmarks/own_rgb.py --ceiling       # also the simulated RGB partner (an upper bound)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
import torch
from rasterio.warp import Resampling, calculate_default_transform, reproject

import smartiesviz
from smartiesviz import data
from smartiesviz.data.readers import make_cube
from smartiesviz.data.scene import open_scene
from smartiesviz.data.transforms import simulated_rgb_partner
from smartiesviz.models.demo import demo_holdout
from smartiesviz.training.evaluate import masked_recon_score

SIZE = 64
S2_RGB = ("B04", "B03", "B02")


def make_files(folder: Path) -> tuple[Path, object, np.ndarray, np.ndarray]:
    """The 8-bit file, the native cube on its grid, the valid mask and each pixel's source row."""
    scene = data.sentinel2_sample().sel(band=list(S2_RGB))
    v = scene.values
    c, h0, w0 = v.shape
    lo, hi = np.percentile(v, (2, 98))
    u8 = np.clip(np.round((v - lo) / (hi - lo) * 254 + 1), 1, 255).astype(np.uint8)
    crs, src_tr = scene.rio.crs, scene.rio.transform()
    tr, w, h = calculate_default_transform(crs, "EPSG:4326", w0, h0, *scene.rio.bounds())

    def warp(a: np.ndarray, nodata: float, resampling=Resampling.bilinear) -> np.ndarray:
        out = np.full((a.shape[0], h, w), nodata, a.dtype)
        reproject(a, out, src_transform=src_tr, src_crs=crs, dst_transform=tr, dst_crs="EPSG:4326",
                  resampling=resampling, src_nodata=None if np.isnan(nodata) else nodata,
                  dst_nodata=nodata)  # fmt: skip
        return out

    rgb8 = warp(u8, 0)
    path = folder / "my_rgb.tif"
    with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=3, dtype="uint8",
                       crs="EPSG:4326", transform=tr, nodata=0) as dst:  # fmt: skip
        dst.write(rgb8)
    refl = warp((v / 10000).astype(np.float32), np.float32(np.nan))
    native = make_cube(refl, tr, "EPSG:4326", list(S2_RGB), {"sensor": "sentinel2-l1c", "units": "reflectance"})  # fmt: skip
    rows = np.broadcast_to(np.arange(h0, dtype=np.float32)[:, None], (h0, w0))[None]
    src_row = warp(np.ascontiguousarray(rows), np.float32(np.nan), Resampling.nearest)[0]
    valid = ~(rgb8 == 0).any(0) & np.isfinite(refl).all(0)
    return path, native, valid, src_row


def per_tile(model, x: np.ndarray, tiles, bands) -> np.ndarray:
    """``(T, 2)`` model and baseline squared errors of each tile (tile ``i``: seed ``i``)."""
    out = np.zeros((len(tiles), 2))
    with torch.no_grad():
        for i, (r, c) in enumerate(tiles):
            t = torch.from_numpy(np.ascontiguousarray(x[None, :, r : r + SIZE, c : c + SIZE]))
            s = masked_recon_score(model, t, bands, seed=i)
            out[i] = s.model_se, s.baseline_se
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-tiles", type=int, default=200, help="regular subsample (0: all ~800)")
    ap.add_argument("--ceiling", action="store_true", help="also score the simulated RGB partner")
    args = ap.parse_args()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        path, native, valid, src_row = make_files(Path(tmp))
        own = open_scene(path, sensor="rgb").for_model()
        z_own = np.asarray(own.values, np.float32)
        own_bands = list(own.specs)
        print(f"file {path.name}: {valid.shape[1]}x{valid.shape[0]} px, {100 * (~valid).mean():.1f} % no-data; "
              f"stats {own.cube.attrs['stats']!r}: p1 {own.cube['stats_p1'].values.round(1)}, "
              f"p99 {own.cube['stats_p99'].values.round(1)}, mean {own.cube['stats_mean'].values.round(3)}, "
              f"std {own.cube['stats_std'].values.round(3)}")  # fmt: skip
    z_nat = np.asarray(open_scene(native).for_model().values, np.float32)
    nat_bands = [f"sentinel2-l1c/{b}" for b in S2_RGB]
    h, w = valid.shape
    tiles = [(r, c) for r in range(0, h - SIZE + 1, SIZE) for c in range(0, w - SIZE + 1, SIZE)
             if valid[r : r + SIZE, c : c + SIZE].all()]  # fmt: skip
    n_all = len(tiles)
    if args.max_tiles and n_all > args.max_tiles:
        tiles = [tiles[i] for i in np.linspace(0, n_all - 1, args.max_tiles).round().astype(int)]
    held_stop = demo_holdout().scene.y_stop
    held = np.array([np.nanmax(src_row[r : r + SIZE, c : c + SIZE]) < held_stop for r, c in tiles])
    model = smartiesviz.load_demo_model()
    threads = torch.get_num_threads()
    torch.set_num_threads(min(2, threads))
    try:
        e_own = per_tile(model, z_own, tiles, own_bands)
        e_nat = per_tile(model, z_nat, tiles, nat_bands)
    finally:
        torch.set_num_threads(threads)
    if args.ceiling:
        dn = native.copy(data=np.nan_to_num(native.values) * 10000)
        dn.attrs["units"] = "DN"
        with torch.no_grad():
            e_sim = per_tile(model, simulated_rgb_partner(dn).values, tiles, own_bands)
    print(
        f"{len(tiles)} of {n_all} fully valid {SIZE}-px tiles ({held.sum()} in the held-out block)"
    )
    for name, sel in (
        ("whole file", slice(None)),
        ("held-out block", held),
        ("trained area", ~held),
    ):
        o = e_own[sel].sum(0)
        n = e_nat[sel].sum(0)
        if n[1] == 0:
            continue
        ro, rn = o[0] / o[1], n[0] / n[1]
        print(f"{name:15s} ratio: 8-bit RGB {ro:.3f}, native S2 {rn:.3f}, quotient {ro / rn:.3f}")
    if args.ceiling:
        r = e_sim.sum(0)
        print(
            f"ceiling: the simulated RGB partner (fixed 0–3000 DN scale, what the demo trained on) "
            f"{r[0] / r[1]:.3f}, quotient {r[0] / r[1] / (e_nat.sum(0)[0] / e_nat.sum(0)[1]):.3f}"
        )
    q = (e_own[:, 0] / e_own[:, 1]) / (e_nat[:, 0] / e_nat[:, 1])
    qs = np.quantile(q, (0.05, 0.25, 0.5, 0.75, 0.95))
    print("per-tile quotient quantiles 5/25/50/75/95 %: " + " ".join(f"{v:.2f}" for v in qs))
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
