"""Widget responsiveness on CPU: time from a control change to the updated output.

Prints, side by side in one run (round-robin medians, so machine load hits every case alike):

* ReconstructionExplorer: mask-ratio slider, re-draw button, tile slider, band selector;
* MixupViewer: mixup-ratio slider, new-draw button;
* also TokenizationExplorer (patch slider), BandLab (drop/add bands), SpectrumExplorer (sensor
  choice; outside a kernel, so without the HoloViews re-render);
* MapExplorer: layer build time for the bundled Sentinel-2 scene (all layers, per layer).

Target: ≤ 200 ms median per interaction with the demo model on CPU. "Updated output" means the
model has run and every live panel holds its new PNG (the widgets' live views are PNG images, so
nothing is left to do but send them to the browser).

    python benchmarks/widgets.py [--repeats 15] [--map-window full|ROW,COL,H,W] [--map-threads 1,default]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import matplotlib

matplotlib.use("Agg")
sys.path.insert(0, os.path.dirname(__file__))

from _measure import median_times  # noqa: E402


def _cycler(values):
    state = {"i": 0}

    def nxt():
        state["i"] += 1
        return values[state["i"] % len(values)]

    return nxt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument(
        "--checkpoint", default=None, help="a saved checkpoint to use instead of the demo model"
    )
    ap.add_argument("--map-window", default="full", help="'full' or ROW,COL,H,W of the S2 scene")
    ap.add_argument(
        "--map-threads",
        default="1",
        help="comma-separated torch threads for the map build, each a number or 'default'",
    )
    args = ap.parse_args()

    import torch

    from smartiesviz.widgets import (
        BandLab,
        MapExplorer,
        MixupViewer,
        ReconstructionExplorer,
        SpectrumExplorer,
        TokenizationExplorer,
    )
    from smartiesviz.widgets.samples import resolve_widget_model as resolve_model

    warnings.simplefilter("ignore")
    t0 = time.perf_counter()
    model = resolve_model(args.checkpoint)
    kind = getattr(model, "arch_name", type(model).__name__)
    info = getattr(model, "checkpoint_info", None)
    kind += (
        f" ({args.checkpoint or 'demo weights'})" if info else " (UNTRAINED: demo weights missing)"
    )
    print(
        f"model: {kind}, img_size {model.img_size}, patch {model.patch_size}; "
        f"torch threads {torch.get_num_threads()}; load {time.perf_counter() - t0:.2f} s"
    )

    t0 = time.perf_counter()
    rec = ReconstructionExplorer(model=model)
    t_rec = time.perf_counter() - t0
    t0 = time.perf_counter()
    mix = MixupViewer(model=model)
    t_mix = time.perf_counter() - t0
    print(
        f"first build (sample loading + normalization, cached afterwards): "
        f"ReconstructionExplorer {t_rec:.2f} s, MixupViewer {t_mix:.2f} s"
    )

    ratios, mixes = _cycler([0.5, 0.75, 0.9]), _cycler([0.3, 0.5, 0.7])
    tiles = _cycler([rec.tile.value, max(rec.tile.value - 1, 0)])
    bands = _cycler(list(rec.band.options))

    def set_ratio():
        rec.mask_ratio.value = ratios()

    def set_tile():
        rec.tile.value = tiles()

    def set_band():
        rec.band.value = bands()

    def set_mix():
        mix.ratio.value = mixes()

    tok, lab, spec = TokenizationExplorer(model=model), BandLab(model=model), SpectrumExplorer()
    cols = _cycler([0, 3, 5])
    subsets = _cycler([tuple(range(6)), tuple(range(12)), (0, 2, 4, 6, 8)])
    sensors = _cycler(["sentinel2-l2a", "sentinel1-grd", "landsat8"])

    def set_patch():
        tok.patch_col.value = cols()

    def set_bands():
        lab.active.value = subsets()

    def set_sensor():
        spec.sensor.value = sensors()

    cases = {
        "reconstruction: mask-ratio slider": set_ratio,
        "reconstruction: re-draw button": rec.redraw.click,
        "reconstruction: tile slider": set_tile,
        "reconstruction: band selector": set_band,
        "mixup: ratio slider": set_mix,
        "mixup: new-draw button": mix.new_draw.click,
        "tokenization: patch slider": set_patch,
        "band lab: drop/add bands": set_bands,
        "spectrum: sensor choice (static part)": set_sensor,
    }
    res = median_times(cases, repeats=args.repeats, warmup=2)
    assert not rec.error.message and not mix.error.message, (rec.error.message, mix.error.message)
    print(
        f"\n{'interaction (median of ' + str(args.repeats) + ')':<42}{'ms':>8}{'/ 200 ms target':>17}"
    )
    for name, sec in res.items():
        print(f"{name:<42}{sec * 1e3:>8.1f}{sec / 0.2:>16.2f}×")

    window = (
        None if args.map_window == "full" else tuple(int(v) for v in args.map_window.split(","))
    )
    for setting in args.map_threads.split(","):
        threads = None if setting == "default" else int(setting)
        t0 = time.perf_counter()
        m = MapExplorer(model=model, window=window, threads=threads)
        total = time.perf_counter() - t0
        if m.error.message:
            print("map build failed:", m.error.message)
            return
        _, h, w = m.scene.values.shape
        print(
            f"\nMapExplorer, Sentinel-2 scene {'window ' + args.map_window if window else 'full'} "
            f"({h}×{w} px, {m.rows * m.cols} tiles of {m.size} px, torch threads "
            f"{threads or torch.get_num_threads()}): total {total:.2f} s"
        )
        for name, sec in m.build_times.items():
            print(f"  {name:<32}{sec:>8.2f} s")


if __name__ == "__main__":
    main()
