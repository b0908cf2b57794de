"""``predict`` (a task head over a whole scene) side by side with ``embed`` of the same scene (CPU).

For the bundled Sentinel-2 scene (13 bands, 1942 × 1931 px) and n × n mosaics of it
(``benchmarks/map.py``'s ``write_mosaic``; ``--sizes 2``: 3884 × 3862 px), each case runs in a
fresh process (peak RSS = its own VmHWM; wall and CPU time, the latter robust to other jobs
on a shared machine), alternating, ``--repeats`` times:

- ``embed``: ``embed_to_file(mosaic, "emb.tif", "sentinel2-l1c", demo model)``;
- ``predict``: ``predict_to_file(mosaic, "map.tif", "sentinel2-l1c", task file)``, where the task
  file is in the release's exact key layout (``smarties-v1-vitb-bigearthnets2-finetune
  .safetensors``: encoder + ``head.weight``/``head.bias``) holding the **demo encoder's weights**
  (patch 4, 64-px window, D 192) and a random BigEarthNet-19 fine-tuning head of matching width
  (``Linear(192, 19)``). A ViT-B file has the same code path, but ViT-B over a 3.9k mosaic takes
  hours on two cores; with the demo encoder both commands run the same encoder over the same
  number of windows, so the ratio compares what each adds around the encoder: ``predict`` its
  head, the window-centre interpolation, the class map and a 19-band probability raster;
  ``embed`` its 192-band float32 feature raster.

Measured 2026-12-07 (shared 2-core machine, 1 thread, load average 7-11; one run each):

    scene               embed wall s / CPU s / RSS MiB   predict wall s / CPU s / RSS MiB
    1×1 (1942×1931)        98.2 /  48.9 / 1288              29.7 / 18.0 / 1063
    2×2 (3884×3862)       849.6 / 337.0 / 1370             131.7 / 68.1 / 1057

Both use the default options (``predict``: windows without overlap for a classification head,
batch size "auto"). Targets (issue 27): predict peak RSS <= 1.5 GiB and time <= 1.3 × embed.
Usage (figures and discussion in docs/predictions.md)::

    python benchmarks/predict.py --sizes 2            # 5-15 minutes
    python benchmarks/predict.py --sizes 1 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _measure import peak_rss_bytes  # noqa: E402
from map import write_mosaic  # noqa: E402  (benchmarks/ is not a package)

TASK = "smarties-v1-vitb-bigearthnets2-finetune.safetensors"


def _peak_mib() -> float:
    return peak_rss_bytes() / 2**20


def write_task_file(path: Path) -> Path:
    """The demo encoder in the release's layout plus a random ``Linear(192, 19)`` head."""
    import torch
    from safetensors.torch import save_file

    import smartiesviz
    from smartiesviz.models.checkpoint import to_release_state_dict

    sd = {
        k: v.contiguous()
        for k, v in to_release_state_dict(smartiesviz.load_demo_model()).items()
        if not k.startswith(("decoder", "mask_token"))
    }
    g = torch.Generator().manual_seed(0)
    width = sd["cls_token"].shape[-1]
    sd["head.weight"] = torch.randn(19, width, generator=g) * 0.1
    sd["head.bias"] = torch.zeros(19)
    out = path / TASK
    save_file(sd, str(out))
    return out


def run_case(case: str, scene: str, task: str, cache: str, threads: int) -> dict:
    """In the child process: one measurement."""
    import warnings

    import torch

    warnings.simplefilter("ignore")
    torch.set_num_threads(threads)
    import smartiesviz
    from smartiesviz.predict import embed_to_file
    from smartiesviz.predict.tasks import predict_to_file

    t0, c0 = time.perf_counter(), _cpu_s()
    if case == "embed":
        model = smartiesviz.load_demo_model()
        embed_to_file(scene, Path(cache) / "emb.tif", "sentinel2-l1c", model, progress=False,
                      overwrite=True)  # fmt: skip
    else:
        predict_to_file(scene, Path(cache) / "map.tif", "sentinel2-l1c", task, progress=False,
                        overwrite=True)  # fmt: skip
    out = {
        "case": case,
        "seconds": time.perf_counter() - t0,
        "cpu_seconds": _cpu_s() - c0,
        "peak_rss_mib": round(_peak_mib()),
    }
    if case == "predict":  # what was written (after the measurement)
        import numpy as np
        import rasterio

        with rasterio.open(Path(cache) / "map.tif") as src:
            k = src.read(1)
            out.update(grid=f"{src.height}x{src.width}", window_px=src.tags()["window"],
                       nodata_share=round(float((k == 255).mean()), 4),
                       classes_seen=int(len(np.unique(k[k != 255]))))  # fmt: skip
    return out


def _cpu_s() -> float:
    """CPU time of this process, all threads (GDAL's included): robust to other jobs' load."""
    use = resource.getrusage(resource.RUSAGE_SELF)
    return use.ru_utime + use.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[2])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--child", nargs=4, metavar=("CASE", "SCENE", "TASK", "CACHE"))
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_case(*args.child, args.threads)))
        return
    with tempfile.TemporaryDirectory(prefix="smartiesviz-bench-predict-") as tmp:
        task = write_task_file(Path(tmp))
        for n in args.sizes:
            scene = Path(tmp) / f"mosaic{n}x{n}.tif"
            h, w = write_mosaic(scene, n)
            got: dict[str, list[dict]] = {"embed": [], "predict": []}
            for _ in range(args.repeats):
                for case in ("embed", "predict"):  # alternating: load on the machine hits both
                    cmd = [sys.executable, __file__, "--threads", str(args.threads), "--child",
                           case, str(scene), str(task), tmp]  # fmt: skip
                    res = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
                    if res.returncode:
                        print(res.stderr[-3000:], file=sys.stderr)
                        raise SystemExit(f"case {case} on {n}x{n} failed")
                    got[case].append(json.loads(res.stdout.strip().splitlines()[-1]))
                    print(json.dumps(got[case][-1]), flush=True)
            med = {c: statistics.median(r["seconds"] for r in rows) for c, rows in got.items()}
            cpu = {c: statistics.median(r["cpu_seconds"] for r in rows) for c, rows in got.items()}
            row = {
                "scene": f"{n}x{n} ({h}x{w} px)",
                "embed_s": round(med["embed"], 1),
                "predict_s": round(med["predict"], 1),
                "predict/embed": round(med["predict"] / med["embed"], 3),
                "embed_cpu_s": round(cpu["embed"], 1),
                "predict_cpu_s": round(cpu["predict"], 1),
                "predict/embed_cpu": round(cpu["predict"] / cpu["embed"], 3),
                "embed_rss_mib": max(r["peak_rss_mib"] for r in got["embed"]),
                "predict_rss_mib": max(r["peak_rss_mib"] for r in got["predict"]),
            }
            print(json.dumps(row), flush=True)
            scene.unlink()


if __name__ == "__main__":
    main()
