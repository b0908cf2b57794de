"""``smartiesviz pretrain``, ``launch``, ``stats`` and ``shards`` commands.

``smartiesviz pretrain --config FILE [--resume] [key.sub=value ...]`` trains in this process; the
same command runs under ``torchrun --nproc_per_node N -m smartiesviz.cli pretrain ...`` (DDP).

``smartiesviz launch slurm --nodes N --gpus-per-node G [--dry-run | --local] -- <pretrain args>``
submits the pretrain command through submitit (see :mod:`smartiesviz.training.launch`);
``smartiesviz launch slurm [options] -- embed SCENES --out FOLDER`` (or ``predict``) submits that
command over an archive as a submitit job array, one share of the scenes per job.

``smartiesviz stats --config FILE --out STATS.yaml`` computes per-sensor, per-band statistics of the
config's data sources (use them with ``data.stats: STATS.yaml``); ``smartiesviz shards build
--config FILE --out DIR`` writes the sources as tar shards (use them with ``{kind: shards}``).

This module builds parsers only; each command imports torch when it runs (fast ``--help``).
"""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any

import yaml

from smartiesviz.training.arguments import (
    add_data_config_arguments,
    add_pretrain_arguments,
    add_slurm_arguments,
)
from smartiesviz.training.config import load_config

PRETRAIN_HELP = """\
Pretrain a SMARTIES MAE from a YAML config, in this process:
  smartiesviz pretrain --config FILE [--resume] [key.sub=value ...]
or on several GPUs (DDP):
  torchrun --nproc_per_node N -m smartiesviz.cli pretrain --config FILE [key.sub=value ...]
Data sources: bundled samples, your pair or image lists, or shards (smartiesviz shards build).
"""


def run_pretrain(args: argparse.Namespace) -> int:
    """Load the config, train, and map the outcome to an exit code (128+signal if interrupted)."""
    from smartiesviz.training.engine import pretrain  # torch: imported when the command runs

    cfg = load_config(args.config, args.overrides)
    if args.print_config:
        print(yaml.safe_dump(cfg.to_dict(), sort_keys=False), end="")
        return 0
    result = pretrain(cfg, resume=args.resume, overwrite=args.overwrite)
    if result.status == "interrupted":
        print(
            f"interrupted by {result.signal} at step {result.step}; continue with --resume "
            f"(checkpoints in {result.output_dir / 'checkpoints'})",
            file=sys.stderr,
        )
        return 128 + int(getattr(signal, result.signal or "SIGTERM"))
    print(f"done: {result.step} steps; run folder {result.output_dir}")
    return 0


def _launch(args: argparse.Namespace) -> int:
    from smartiesviz.training.launch import launch_slurm  # submitit: optional, heavy

    return launch_slurm(args)


def _stats(args: argparse.Namespace) -> int:
    from smartiesviz.data.stats import source_inputs, write_stats  # torch via the data readers

    cfg = load_config(args.config, args.overrides)
    inputs = [args.config, *source_inputs(cfg.data.sources)]
    path = write_stats(cfg.data.sources, args.out, bins=args.bins, inputs=inputs, overwrite=args.overwrite)
    print(f"statistics written to {path}; use them with data.stats={path}")
    return 0


def _shards(args: argparse.Namespace) -> int:
    from smartiesviz.data.archives import build_shards  # torch via the data readers

    cfg = load_config(args.config, args.overrides)
    index = build_shards(cfg.data.sources, args.out, shard_size=args.shard_size)
    print(f"shards written; index {index}; train on them with data.sources=[{{kind: shards, path: {index.parent}}}]")
    return 0


def register(subparsers: Any) -> None:
    """Add the ``pretrain``, ``launch``, ``stats`` and ``shards`` commands."""
    p = subparsers.add_parser(
        "pretrain",
        help="pretrain a SMARTIES MAE from a YAML config (single process or under torchrun)",
        description=PRETRAIN_HELP,  # plain text: the module docstring is reST
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_pretrain_arguments(p)
    p.set_defaults(func=run_pretrain)

    launch = subparsers.add_parser(
        "launch", help="submit pretraining or an archive's embed/predict to Slurm (submitit)"
    )
    targets = launch.add_subparsers(dest="target", metavar="TARGET", required=True)
    s = targets.add_parser(
        "slurm",
        help="submit `smartiesviz pretrain` as a Slurm job, or `embed`/`predict` over many "
        "scenes as a job array, through submitit",
        usage="smartiesviz launch slurm --nodes N --gpus-per-node G [options] -- --config FILE "
        "[overrides]\n       smartiesviz launch slurm --nodes N --gpus-per-node G [options] -- "
        "embed SCENES --out FOLDER [embed options]",
    )
    add_slurm_arguments(s)
    s.set_defaults(func=_launch)

    st = subparsers.add_parser(
        "stats",
        help="per-sensor, per-band p1/p99/mean/std of a config's data sources (streaming)",
        description="Streams every image of the config's data.sources once per pass (3 passes: range, "
        "histogram, clipped moments) with bounded memory; p1/p99 are read from a fixed-bin histogram "
        "(error at most one bin width, written to the file). Use the result with data.stats=FILE.",
    )
    add_data_config_arguments(st)
    st.add_argument("--out", required=True, help="output YAML file")
    st.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    st.add_argument("--bins", type=int, default=4096, help="histogram bins per band (default 4096)")
    st.set_defaults(func=_stats)

    sh = subparsers.add_parser("shards", help="write a config's data sources as tar shards")
    actions = sh.add_subparsers(dest="action", metavar="ACTION", required=True)
    b = actions.add_parser(
        "build",
        help="write WebDataset-style tar shards with a SHA-256 per shard and an index",
        description="Reads every entry of the config's data.sources (pairs/images lists) and writes "
        "shard-NNNNNN.tar files plus index.json into --out. Train on them with {kind: shards, path: DIR}.",
    )
    add_data_config_arguments(b)
    b.add_argument("--out", required=True, help="output folder (created)")
    b.add_argument("--shard-size", type=int, default=1000, help="samples per shard (default 1000)")
    b.set_defaults(func=_shards)
