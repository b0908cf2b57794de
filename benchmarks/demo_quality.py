"""Masked-reconstruction quality of the demo model on its held-out data.

Prints, for each held-out set, the ratio of the model's masked-reconstruction MSE (75 % of patches
hidden, normalized units) to the MSE of predicting each band's mean over the visible patches,
next to its target (``smartiesviz.training.evaluate.TARGETS``: ≤ 0.40 full-band S2, ≤ 0.75 S2 at
30 m, ≤ 0.85 every S2 subset of 3–6 bands and S1), then NIR (B08) decoded from B04/B03/B02 alone
(``cross_spectral_prediction``, visible and masked mode) against each 64-px tile's true NIR mean
(``mse_ratio``; target < 0.9 in visible mode on the whole held-out block; ``--no-nir`` skips it).
Exits 0 when every target is met.

    python benchmarks/demo_quality.py                       # the shipped weights
    python benchmarks/demo_quality.py --weights run/model.safetensors
    python benchmarks/demo_quality.py --run runs/demo       # newest training checkpoint of a run
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch


def model_from_run(run: Path) -> tuple[torch.nn.Module, dict]:
    """The model of a run's newest checkpoint (or its final weights) and the run's hold-out."""
    from smartiesviz.data.holdout import Holdout
    from smartiesviz.training import checkpointing as ckpt
    from smartiesviz.training.config import config_from_dict
    from smartiesviz.training.engine import build_model
    from smartiesviz.training.steps import build_source

    found = ckpt.find_latest(run)
    if found is None:
        raise SystemExit(f"no usable checkpoint in {run}")
    path, state = found
    cfg = config_from_dict(state["config"])
    model = build_model(cfg.model)
    model.load_state_dict(state["model"])
    holdout = Holdout()
    for src in cfg.data.sources:
        if src.kind in ("s2_scene", "bigearthnet"):
            holdout = holdout.merged(build_source(src, cfg.data).holdout)
    print(f"run checkpoint {path} (step {state['step']})")
    return model, holdout


def nir_from_rgb(model: torch.nn.Module, holdout: Any) -> tuple[list[str], float]:
    """NIR (B08) from B04/B03/B02 on the held-out data, as ``tests/predict/test_quality.py``
    measures it: the test's 256 × 960 crop of the held-out block, the whole block and the held-out
    BigEarthNet pair's S2; ``mse_ratio`` below 1 beats each tile's true NIR mean.

    Returns:
        The printable lines and the visible-mode ``mse_ratio`` on the whole block (the target's).
    """
    from smartiesviz import data
    from smartiesviz.data.holdout import Holdout
    from smartiesviz.predict import cross_spectral_prediction

    held = holdout if isinstance(holdout, Holdout) else Holdout.from_metadata(holdout)
    scene = data.sentinel2_sample(bands=["B02", "B03", "B04", "B08"])
    block = scene.isel(y=held.scene.rows, x=held.scene.cols)
    pairs = data.bigearthnet_pairs()
    names = [p.name for p in pairs]
    pair = pairs[names.index(held.pair.name)]
    whole = f"S2 block, whole {block.sizes['y']}x{block.sizes['x']}"
    cubes = {"S2 block, test crop 256x960": block.isel(y=slice(0, 256), x=slice(0, 960)),
             whole: block,
             "BigEarthNet S2 (held-out pair)": pair.s2}  # fmt: skip
    lines = [f"{'NIR (B08) from B04/B03/B02':44s} {'visible':>8s} {'masked':>8s}   (mse_ratio vs tile mean)"]
    visible = {}
    for name, cube in cubes.items():
        ratios = []
        for mode in ("visible", "masked"):
            res = cross_spectral_prediction(cube, ["B08"], inputs=["B04", "B03", "B02"],
                                            model=model, progress=False, mode=mode)  # fmt: skip
            ratios.append(next(iter(res.scores.values()))["mse_ratio"])
        lines.append(f"{name:44s} {ratios[0]:8.3f} {ratios[1]:8.3f}")
        visible[name] = ratios[0]
    return lines, visible[whole]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--weights", type=Path, help="a save_checkpoint .safetensors file (default: shipped demo)"
    )
    parser.add_argument(
        "--run", type=Path, help="a training run folder (uses its newest checkpoint)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-nir", action="store_true", help="skip the NIR-from-RGB figures")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from smartiesviz.training.evaluate import (
        NIR_FROM_RGB_TARGET,
        TARGETS,
        evaluate_demo,
        summary_lines,
    )

    if args.run is not None:
        model, holdout = model_from_run(args.run)
    else:
        from smartiesviz.models.checkpoint import load_checkpoint
        from smartiesviz.models.demo import demo_weights_path

        path = args.weights or demo_weights_path()
        model = load_checkpoint(path)
        holdout = model.checkpoint_info["metadata"]["holdout"]
        print(f"weights {path}")
    t0 = time.perf_counter()
    results = evaluate_demo(model, holdout, seed=args.seed)
    print("\n".join(summary_lines(results)))
    missing = [k for k in TARGETS if k not in results]
    ok = not missing and all(
        (results[k][1] if k == "s2_subsets_worst" else results[k]).ratio <= v
        for k, v in TARGETS.items()
    )
    if not args.no_nir:
        lines, nir = nir_from_rgb(model, holdout)
        print("\n".join(lines))
        print(f"NIR from RGB, visible mode, whole held-out block: {nir:.3f} "
              f"(target < {NIR_FROM_RGB_TARGET})")  # fmt: skip
        ok = ok and nir < NIR_FROM_RGB_TARGET
    print(f"all targets met: {ok}   (evaluation took {time.perf_counter() - t0:.1f} s)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
