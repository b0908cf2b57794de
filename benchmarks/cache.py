"""What verifying the sample cache costs: a warm load of the full Sentinel-2 cube, side by side.

The cube entry (13 × 1942 × 1931 float32, ~195 MB ``values.npy`` + grid JSON) is built once in a
temporary cache; then, median of ``repeats``:

- ``check (stat only)``: :func:`check_entry` on a stable entry, the normal warm path;
- ``check (sha256)``: the same with every file hashed (what a process pays once after a file
  changed, or right after a build);
- ``read (np.load)``: reading the cube itself, for scale.

Run: ``PYTHONPATH=. python benchmarks/cache.py``
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time


def main(repeats: int = 3) -> None:
    with tempfile.TemporaryDirectory(prefix="smartiesviz-bench-cache-") as root:
        os.environ["SMARTIESVIZ_CACHE"] = root
        from smartiesviz.data import cache, samples

        samples.clear_cache()
        samples.sentinel2_sample()
        (entry,) = (cache.cache_dir() / samples.CUBES).iterdir()
        racy = cache.RACY_NS
        times: dict[str, list[float]] = {"check (stat only)": [], "check (sha256)": [],
                                         "read (np.load)": []}  # fmt: skip
        for _ in range(repeats):
            cache.RACY_NS = 0  # stable: as if built long ago
            t0 = time.perf_counter()
            assert cache.check_entry(entry) == []
            times["check (stat only)"].append(time.perf_counter() - t0)
            cache.RACY_NS = 1 << 62  # never stable: every file is hashed
            t0 = time.perf_counter()
            assert cache.check_entry(entry) == []
            times["check (sha256)"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            samples._read_cube(entry)
            times["read (np.load)"].append(time.perf_counter() - t0)
        cache.RACY_NS = racy
        size = sum(p.stat().st_size for p in entry.iterdir()) / 1e6
        print(f"S2 cube cache entry, {size:.0f} MB, median of {repeats}:")
        base = statistics.median(times["read (np.load)"])
        for name, values in times.items():
            ms = 1e3 * statistics.median(values)
            print(f"  {name:<18} {ms:9.2f} ms   {ms / (1e3 * base):6.3f} x read")
        samples.clear_cache()


if __name__ == "__main__":
    main()
