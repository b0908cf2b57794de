"""Command-line arguments of ``pretrain``, ``launch slurm``, ``stats`` and ``shards build``.

Shared by the CLI (:mod:`smartiesviz.training.cli`) and the submitit job
(:mod:`smartiesviz.training.launch`), which re-parses the pretrain arguments in each task. Imports
only argparse, so building the ``smartiesviz`` parser stays fast.
"""

from __future__ import annotations

import argparse


def add_pretrain_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``pretrain`` (shared with the submitit job, which re-parses them)."""
    parser.add_argument(
        "--config", "-c", required=True, help="YAML config (see training/configs/demo.yaml)"
    )
    _add_flags(
        parser,
        {
            "--resume": "continue from the newest usable checkpoint in train.output_dir "
            "(corrupt or partial ones are skipped)",
            "--overwrite": "replace the run that train.output_dir holds "
            "(its checkpoints, logs and weights)",
            "--print-config": "print the resolved config as YAML and exit",
        },
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="dotted config overrides, e.g. train.steps=100 optim.base_lr=3e-4 "
        "data.sources.0.weight=2",
    )


def pretrain_parser() -> argparse.ArgumentParser:
    """A standalone parser for the pretrain arguments."""
    parser = argparse.ArgumentParser(prog="smartiesviz pretrain")
    add_pretrain_arguments(parser)
    return parser


def add_slurm_arguments(s: argparse.ArgumentParser) -> None:
    """Arguments of ``launch slurm``."""
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
    _add_flags(
        s,
        {
            "--dry-run": "print the sbatch script and exit; submit nothing",
            "--local": "run with submitit's LocalExecutor on this machine and wait",
            "--wait": "wait for a Slurm job and report its result",
        },
    )
    s.add_argument(
        "--timeout-min", type=float, default=60.0, help="--local: kill the job after this long"
    )
    s.add_argument(
        "pretrain_args",
        nargs=argparse.REMAINDER,
        help="arguments of `smartiesviz pretrain`, after --",
    )


def add_data_config_arguments(parser: argparse.ArgumentParser) -> None:
    """``--config FILE [overrides]``: the pretraining config whose ``data.sources`` are read."""
    parser.add_argument("--config", "-c", required=True, help="pretraining YAML config")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted config overrides")


def _add_flags(parser: argparse.ArgumentParser, flags: dict[str, str]) -> None:
    """On/off options (``store_true``), in the given order: ``--flag`` → its help text."""
    for flag, text in flags.items():
        parser.add_argument(flag, action="store_true", help=text)
