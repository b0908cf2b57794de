"""Throughput and memory of ``smartiesviz.predict.embed`` on the bundled Sentinel-2 scene (CPU).

Each case runs in its own process so its peak resident memory (``ru_maxrss``) is its own:

- ``demo / streamed``: the demo model over the whole scene, read window by window from a GeoTIFF
  opened lazily (what ``smartiesviz embed SCENE.tif`` does);
- ``demo / streamed, GDAL cache 64 MB``: the same with ``GDAL_CACHEMAX=64`` (GDAL's block cache
  otherwise grows to 5 % of RAM and keeps the blocks it has read);
- ``demo / in-memory cube``: the same from ``data.sentinel2_sample()`` (the scene in RAM);
- ``demo / naive``: normalize the whole scene, cut every tile into one array, then encode
  (the memory a straightforward script needs);
- ``ViT-B / streamed``: ``smarties_vit_base_patch16`` shapes (random weights, 224-px tiles,
  patch 16) on a crop of the scene (``--vitb-crop``; ``0`` = whole scene).

Batch size is ``"auto"`` everywhere. Usage::

    python benchmarks/embed.py                 # defaults: threads = torch default
    python benchmarks/embed.py --threads 1 --vitb-crop 0
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

CASES = ("demo-stream", "demo-stream-gdal64", "demo-inmemory", "demo-naive", "vitb-stream")


def _rss_mb() -> float:
    """Peak resident memory of this process (VmHWM; unlike ru_maxrss, not inherited on exec)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # pragma: no cover


def _current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _model(kind: str):
    import torch

    import smartiesviz

    if kind == "vitb":
        torch.manual_seed(0)
        return smartiesviz.smarties_vit_base_patch16(img_size=224).eval(), "ViT-B/16 (random)"
    try:
        return smartiesviz.load_demo_model(), "demo tiny/4"
    except FileNotFoundError:
        torch.manual_seed(0)
        model = smartiesviz.smarties_vit_tiny_patch4(img_size=64).eval()
        return model, "tiny/4 UNTRAINED (demo weights missing)"


def worker(case: str, scene_tif: str, vitb_crop: int, threads: int | None) -> dict:
    import numpy as np
    import torch

    from smartiesviz import data
    from smartiesviz.predict import embed
    from smartiesviz.predict.embed import EmbeddingJob
    from smartiesviz.predict.embed import open_source as read_scene

    if threads:
        torch.set_num_threads(threads)
    model, label = _model("vitb" if case.startswith("vitb") else "demo")
    # import every library the run touches first, so the difference below is data, not code
    import rasterio  # noqa: F401
    import rioxarray  # noqa: F401
    import tqdm.auto  # noqa: F401

    import smartiesviz.data.preprocess  # noqa: F401
    import smartiesviz.data.readers  # noqa: F401
    import smartiesviz.data.samples  # noqa: F401

    rss_ready = _current_rss_mb()
    t0 = time.perf_counter()
    if case == "demo-inmemory":
        cube = data.sentinel2_sample()
    else:
        cube = read_scene(scene_tif, "sentinel2-l1c")
        cube = getattr(cube, "cube", cube)  # a Scene since issue 25 (a cube before: old trees)
    if case == "vitb-stream" and vitb_crop:
        cube = cube.isel(y=slice(0, vitb_crop), x=slice(0, vitb_crop))
    t_read = time.perf_counter() - t0
    h, w = cube.sizes["y"], cube.sizes["x"]
    import warnings

    warnings.simplefilter("ignore")
    job = EmbeddingJob(cube, "sentinel2-l1c", model)
    batch = job.batch_size
    t0 = time.perf_counter()
    if case == "demo-naive":
        x = np.asarray(data.normalize(job.cube, "sentinel2-l1c").values)  # whole scene
        t = job.tile_size
        hh, ww = -(-h // t) * t, -(-w // t) * t
        x = np.pad(x, ((0, 0), (0, hh - h), (0, ww - w)), mode="symmetric")
        tiles = x.reshape(x.shape[0], hh // t, t, ww // t, t).transpose(1, 3, 0, 2, 4)
        tiles = torch.from_numpy(np.ascontiguousarray(tiles.reshape(-1, x.shape[0], t, t)))
        outs = []
        with torch.no_grad():
            for chunk in torch.split(tiles, batch):
                outs.append(model.encode(chunk, job.band_specs))
        n_patches = sum(o.shape[0] * (o.shape[1] - 1) for o in outs)
    else:
        e = embed(cube, "sentinel2-l1c", model, progress=False)
        n_patches = int(e.sizes["y"] * e.sizes["x"])
    seconds = time.perf_counter() - t0
    return {
        "case": case,
        "model": label,
        "scene": f"{h}x{w}",
        "bands": len(job.band_specs),
        "tile": job.tile_size,
        "batch": batch,
        "threads": torch.get_num_threads(),
        "patches": n_patches,
        "seconds": round(seconds, 2),
        "patches_per_s": round(n_patches / seconds, 1),
        "read_s": round(t_read, 2),
        "rss_ready_mb": round(rss_ready),
        "peak_rss_mb": round(_rss_mb()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's)"
    )
    parser.add_argument("--vitb-crop", type=int, default=896, help="ViT-B scene crop, px (0 = all)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--scene", help=argparse.SUPPRESS)
    parser.add_argument("--write-scene", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write_scene:
        _write_scene(args.write_scene)
        return
    if args.worker:
        print(json.dumps(worker(args.worker, args.scene, args.vitb_crop, args.threads)))
        return

    with tempfile.TemporaryDirectory() as tmp:
        scene = os.path.join(tmp, "s2_scene.tif")
        t0 = time.perf_counter()
        # in a child process, so this (parent) process stays small
        subprocess.run([sys.executable, __file__, "--write-scene", scene], check=True)
        print(f"wrote the S2 scene as a GeoTIFF in {time.perf_counter() - t0:.1f} s: {scene}")
        rows = []
        for case in args.cases:
            cmd = [sys.executable, __file__, "--worker", case, "--scene", scene,
                   "--vitb-crop", str(args.vitb_crop)]  # fmt: skip
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            env = dict(os.environ, **({"GDAL_CACHEMAX": "64"} if case.endswith("gdal64") else {}))
            out = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
            if out.returncode:
                print(f"{case} failed:\n{out.stderr[-2000:]}")
                continue
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"  done: {case}", flush=True)
    keys = ["case", "model", "scene", "bands", "tile", "batch", "threads", "patches", "seconds",
            "patches_per_s", "rss_ready_mb", "peak_rss_mb"]  # fmt: skip
    widths = {k: max(len(k), *(len(str(r[k])) for r in rows)) for k in keys}
    print("  ".join(k.ljust(widths[k]) for k in keys))
    for r in rows:
        print("  ".join(str(r[k]).ljust(widths[k]) for k in keys))
    base = {r["case"]: r for r in rows}
    if "demo-stream" in base:
        s = base["demo-stream"]
        for other in ("demo-stream-gdal64", "demo-inmemory", "demo-naive"):
            if other in base:
                o = base[other]
                print(
                    f"peak RSS above the loaded model: streamed {s['peak_rss_mb'] - s['rss_ready_mb']} MB"
                    f" vs {other} {o['peak_rss_mb'] - o['rss_ready_mb']} MB"
                )
    print("(scene in RAM as float32: 13 x 1942 x 1931 x 4 B = 195 MB)")


def _write_scene(path: str) -> None:
    import rasterio

    from smartiesviz import data

    cube = data.sentinel2_sample()
    cube.rio.to_raster(path, tiled=True, blockxsize=256, blockysize=256)
    with rasterio.open(path, "r+") as dst:
        dst.descriptions = tuple(str(b) for b in cube.band.values)


if __name__ == "__main__":
    main()
