"""``smartiesviz predict``: a scene → a class map (and probabilities) from a released task head.

This module builds the parser only; torch loads when the command runs (fast ``--help``).
"""

from __future__ import annotations

import argparse
from typing import Any

from smartiesviz.errors import UserError
from smartiesviz.predict.cli import (
    SAMPLES,
    add_on_bad,
    batch_size_arg,
    check_device,
    cli_message,
    run_many,
)

HUB_TASKS = "gsumbul/SMARTIES-v1-finetuned-models/smarties-v1-vit{b,l}-<task>"


def register(subparsers: Any) -> None:
    """Add the ``predict`` command."""
    p = subparsers.add_parser(
        "predict",
        help="run a released task head (land-cover classes) over a scene into a class map",
        description=(
            "Run a SMARTIES task file (a released fine-tuned or linear-probe head, e.g. "
            f"{HUB_TASKS}, or a local file in the release's layout) over SCENE in sliding windows "
            "of the head's input size, with bounded memory whatever the scene's size. Writes OUT: "
            "the class band (uint8, colour table, class names in the tags, 255 = no data) and "
            "OUT's stem + '.probabilities.tif': one float32 band per class named by it, both on "
            "the scene's patch grid in its CRS. Classification heads are interpolated between "
            "window centres, segmentation heads (DFC2020) blended across overlaps; multi-label "
            "heads (BigEarthNet) give one probability per label and the class band is the most "
            "probable one. Two-source heads (BigEarthNet-MM) take a co-registered --second scene."
        ),
    )
    p.add_argument(
        "scene",
        nargs="+",
        help="a multi-band GeoTIFF, a folder of band files, or " + " / ".join(SAMPLES)
        + "; or many scenes (several paths, a list file, a glob, a folder of scenes) with --out "
        "a folder (see docs/archive-inference.md)",
    )
    p.add_argument(
        "--sensor", help="registry sensor name of SCENE, e.g. sentinel2-l2a (required for files)"
    )
    p.add_argument(
        "--checkpoint", required=True,
        help=f"a task file: a released name on the Hugging Face Hub ({HUB_TASKS}; see "
        "docs/predictions.md) or a local .safetensors in the release's layout",
    )  # fmt: skip
    p.add_argument(
        "--task",
        help="the task of a local file not named like a released file, e.g. eurosat-finetune",
    )
    p.add_argument("--out", required=True, help="class map path (.tif); probabilities go beside it")
    p.add_argument(
        "--second", help="the second, co-registered scene of a two-source head (S1 or S2)"
    )
    p.add_argument("--second-sensor", help="registry sensor name of --second")
    p.add_argument(
        "--overlap", type=int,
        help="pixels shared by neighbouring windows, a multiple of the patch size (default: 0 for "
        "classification heads, 2 patches for segmentation heads)",
    )  # fmt: skip
    p.add_argument("--batch-size", default="auto", help="windows per batch or 'auto' (default)")
    p.add_argument("--device", help="torch device (default: cpu)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_on_bad(p)
    p.set_defaults(func=run)


def predict_options(args: argparse.Namespace) -> Any:
    """The :class:`~smartiesviz.predict.tasks.PredictOptions` the command line describes."""
    from smartiesviz.predict.tasks import PredictOptions  # lazy: torch and the task heads

    return PredictOptions(
        batch_size=batch_size_arg(args.batch_size),
        overlap=args.overlap,
        device=args.device,
        progress=not args.no_progress,
    )


def run(args: argparse.Namespace) -> int:
    """Predict; user errors re-raised as one-line :class:`UserError` s in command-line spelling."""
    check_device(args)
    from smartiesviz.predict.archive import is_archive_request  # lazy: the archive runner

    if is_archive_request(args.scene, args.out):
        if args.second or args.task:
            raise UserError(
                "--second and --task apply to one scene; many scenes take a released task name"
            )
        return run_many(args, "predict", predict_options)
    try:
        # lazy: the xarray/GDAL stack; keeps `smartiesviz --help` fast
        from smartiesviz.predict.tasks import predict_to_file, probabilities_path

        options = predict_options(args)
        out = predict_to_file(
            args.scene[0], args.out, args.sensor, args.checkpoint, options,
            overwrite=args.overwrite, second=args.second, second_sensor=args.second_sensor,
            task=args.task,
        )  # fmt: skip
    except (ValueError, KeyError) as err:
        raise UserError(cli_message(err).replace("second=, second_sensor=", "")) from err
    print(f"wrote {out} and {probabilities_path(out)}")
    return 0
