"""``smartiesviz pretrain`` and ``smartiesviz launch`` commands.

``smartiesviz pretrain --config FILE [--resume] [key.sub=value ...]`` trains in this process; the
same command runs under ``torchrun --nproc_per_node N -m smartiesviz.cli pretrain ...`` (DDP).

``smartiesviz launch slurm --nodes N --gpus-per-node G [--dry-run | --local] -- <pretrain args>``
submits the pretrain command through submitit (see :mod:`smartiesviz.training.launch`).
"""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any


def add_pretrain_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``pretrain`` (shared with the submitit job, which re-parses them)."""
    parser.add_argument(
        "--config", "-c", required=True, help="YAML config (see training/configs/demo.yaml)"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue from the newest usable checkpoint in train.output_dir (corrupt or partial ones are skipped)",
    )
    parser.add_argument(
        "--print-config", action="store_true", help="print the resolved config as YAML and exit"
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="dotted config overrides, e.g. train.steps=100 optim.base_lr=3e-4 data.sources.0.weight=2",
    )


def pretrain_parser() -> argparse.ArgumentParser:
    """A standalone parser for the pretrain arguments."""
    parser = argparse.ArgumentParser(prog="smartiesviz pretrain")
    add_pretrain_arguments(parser)
    return parser


def run_pretrain(args: argparse.Namespace) -> int:
    """Load the config, train, and map the outcome to an exit code (128+signal if interrupted)."""
    import yaml

    from smartiesviz.training.config import load_config
    from smartiesviz.training.engine import pretrain

    cfg = load_config(args.config, args.overrides)  # bad config: one `error:` line (cli.main)
    if args.print_config:
        print(yaml.safe_dump(cfg.to_dict(), sort_keys=False), end="")
        return 0
    result = pretrain(cfg, resume=args.resume)
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
    from smartiesviz.training.launch import launch_slurm

    return launch_slurm(args)


def register(subparsers: Any) -> None:
    """Add the ``pretrain`` and ``launch`` commands to the ``smartiesviz`` parser."""
    p = subparsers.add_parser(
        "pretrain",
        help="pretrain a SMARTIES MAE from a YAML config (single process or under torchrun)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_pretrain_arguments(p)
    p.set_defaults(func=run_pretrain)

    launch = subparsers.add_parser(
        "launch", help="submit pretraining to a cluster (Slurm via submitit)"
    )
    targets = launch.add_subparsers(dest="target", metavar="TARGET", required=True)
    s = targets.add_parser(
        "slurm",
        help="submit `smartiesviz pretrain` as a Slurm job through submitit",
        usage="smartiesviz launch slurm --nodes N --gpus-per-node G [options] -- --config FILE [overrides]",
    )
    s.add_argument("--nodes", type=int, default=1, help="number of nodes (default 1)")
    s.add_argument("--gpus-per-node", type=int, default=1, help="GPUs per node; one task per GPU")
    s.add_argument(
        "--tasks-per-node",
        type=int,
        default=None,
        help="tasks per node (default: --gpus-per-node, at least 1)",
    )
    s.add_argument("--cpus-per-task", type=int, default=8)
    s.add_argument("--mem-gb", type=float, default=None, help="memory per node in GB")
    s.add_argument("--time", type=int, default=24 * 60, help="time limit in minutes (default 1440)")
    s.add_argument("--partition", default=None)
    s.add_argument("--account", default=None)
    s.add_argument("--qos", default=None)
    s.add_argument("--constraint", default=None)
    s.add_argument("--job-name", default="smartiesviz-pretrain")
    s.add_argument(
        "--folder", default="runs/slurm/%j", help="submitit log/pickle folder (%%j = job id)"
    )
    s.add_argument(
        "--signal-delay-s", type=int, default=120, help="seconds of warning before the time limit"
    )
    s.add_argument(
        "--max-requeues", type=int, default=3, help="pre-emptions/time-outs to requeue after"
    )
    s.add_argument(
        "--dry-run", action="store_true", help="print the sbatch script and exit; submit nothing"
    )
    s.add_argument(
        "--local",
        action="store_true",
        help="run with submitit's LocalExecutor on this machine and wait",
    )
    s.add_argument("--wait", action="store_true", help="wait for a Slurm job and report its result")
    s.add_argument(
        "--timeout-min", type=float, default=60.0, help="--local: kill the job after this long"
    )
    s.add_argument(
        "pretrain_args",
        nargs=argparse.REMAINDER,
        help="arguments of `smartiesviz pretrain`, after --",
    )
    s.set_defaults(func=_launch)
