"""Shared measuring helpers for the benchmarks: median wall time and peak extra memory on CPU.

Peak memory on CPU: each measured call runs in a fresh subprocess with glibc's mmap threshold
pinned (``MALLOC_MMAP_THRESHOLD_``), so every large tensor is its own mapping and goes back to the
OS when freed. The child warms up with one call, records its resident set size, resets the kernel's
peak counter (``/proc/self/clear_refs``, VmHWM), makes the measured call and reads the new peak.
The difference is the extra memory that call needed at its peak, library start-up excluded.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable


def median_time(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in seconds."""
    return median_times({"fn": fn}, repeats, warmup)["fn"]


def median_times(
    fns: dict[str, Callable[[], object]], repeats: int = 5, warmup: int = 1
) -> dict[str, float]:
    """Median wall time of each function, measured round-robin so that load from other processes
    affects every variant alike (side-by-side in one run)."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def current_rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    """Peak RSS since the last :func:`reset_peak_rss` (VmHWM), in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reset_peak_rss() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def measure_in_subprocess(script: str, variant: str, extra_args: list[str] | None = None) -> dict:
    """Run ``python script --measure-memory VARIANT`` and parse the JSON it prints last."""
    cmd = [sys.executable, script, "--measure-memory", variant, *(extra_args or [])]
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def report_memory(fn: Callable[[], object]) -> None:
    """In the child: measure extra peak memory of one ``fn()`` call and print it as JSON."""
    import gc

    fn()  # warm-up: library start-up and thread pools are not the call's memory
    gc.collect()
    base = current_rss_bytes()
    reset_peak_rss()
    fn()
    print(json.dumps({"extra_peak_mib": (peak_rss_bytes() - base) / 2**20}))
