"""``smartiesviz embed`` over an archive of 12 scenes at 1 and 2 processes (``torchrun``, CPU).

Writes 12 synthetic scenes (4 each of Sentinel-2 L2A, Landsat-8 and Sentinel-1, ``--size`` px
square GeoTIFFs with band names) into a temporary folder, then runs, for each process count,

    torchrun --standalone --nproc_per_node N -m smartiesviz.cli embed scenes.txt --out OUT \
        --checkpoint demo --no-progress

with ``OMP_NUM_THREADS=1`` (one thread per process), sampling every process's RSS (psutil) while
it runs. Reported per process count: wall time of the command (with start-up), the time of the
scene loop (the slowest rank's, from the ranks' summary lines), scenes/s and patches/s over that
loop, and each rank's peak RSS. Also checks the outputs of every run are byte-identical.

Usage::

    python benchmarks/archive.py                 # 12 scenes of 256 px, 1 and 2 processes
    python benchmarks/archive.py --procs 1 2 4 --size 512
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SUMMARY = re.compile(r"rank (\d+)/(\d+): (\d+) done.*?; (\d+) patches in ([\d.]+) s")


def write_archive(root: Path, size: int) -> Path:
    """12 scenes (4 per sensor) and ``scenes.txt``; returns the list file."""
    sys.path.insert(0, str(REPO))
    from tests.predict_archive.conftest import write_scene

    lines = []
    for i, sensor in enumerate(["sentinel2-l2a", "landsat8", "sentinel1-grd"] * 4):
        path = root / "scenes" / f"{sensor}_{i:02d}.tif"
        path.parent.mkdir(exist_ok=True)
        write_scene(path, sensor, i, shape=(size, size), origin=(400_000.0 + 10 * size * i, 5e6))
        lines.append(str(path))
    listing = root / "scenes.txt"
    listing.write_text("\n".join(lines) + "\n")
    return listing


def run(listing: Path, out: Path, procs: int) -> dict:
    """One archive run under torchrun; RSS of every process sampled every 50 ms."""
    import psutil

    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TMPDIR=str(out.parent))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={procs}", "-m", "smartiesviz.cli", "embed", str(listing),
           "--out", str(out), "--checkpoint", "demo", "--no-progress"]  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=env, cwd=REPO)  # fmt: skip
    peak: dict[int, int] = {}
    parent = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            for child in parent.children(recursive=True):
                if "smartiesviz.cli" in " ".join(child.cmdline()):
                    peak[child.pid] = max(peak.get(child.pid, 0), child.memory_info().rss)
        except psutil.Error:
            pass
        time.sleep(0.05)
    wall = time.perf_counter() - start
    stdout = proc.stdout.read()
    if proc.returncode:
        raise SystemExit(f"torchrun failed ({proc.returncode}):\n{stdout}")
    ranks = [tuple(map(float, m.groups())) for m in SUMMARY.finditer(stdout)]
    loop = max(r[4] for r in ranks)
    patches = sum(r[3] for r in ranks)
    scenes = sum(r[2] for r in ranks)
    return {
        "processes": procs,
        "wall_s": round(wall, 1),
        "loop_s": round(loop, 1),
        "scenes_per_s": round(scenes / loop, 2),
        "patches_per_s": round(patches / loop, 1),
        "peak_rss_mib_per_process": sorted(round(v / 2**20) for v in peak.values()),
        "sha256": hashlib.sha256(
            b"".join(p.read_bytes() for p in sorted(out.glob("*.tif")))
        ).hexdigest()[:16],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--size", type=int, default=256, help="scene side in pixels")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="archive-bench-"))
    try:
        listing = write_archive(root, args.size)
        results = [run(listing, root / f"out{n}", n) for n in args.procs]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    for r in results:
        print(json.dumps(r))
    same = len({r["sha256"] for r in results}) == 1
    print(f"outputs byte-identical across process counts: {same}")


if __name__ == "__main__":
    main()
