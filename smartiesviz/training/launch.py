"""Submit ``smartiesviz pretrain`` to Slurm (or run it locally) through submitit.

One Slurm task per GPU. Inside each task, :class:`PretrainJob` exports the torch.distributed
variables from the job environment with ``submitit.helpers.TorchDistributedEnvironment``
(``MASTER_ADDR`` = first node of the allocation, ``MASTER_PORT`` derived from the job id, ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``) and runs the same code path as ``smartiesviz pretrain``.

Archives: ``smartiesviz launch slurm [options] -- embed SCENES --out FOLDER`` (or ``predict``)
submits the same command line as a local run as a submitit **job array**: one single-task job per
share (``--nodes × --gpus-per-node`` shares, or ``--tasks-per-node``), each with
``SMARTIESVIZ_SHARD=i/n`` so :func:`smartiesviz.predict.archive.shard_from_env` gives it its
scenes. A pre-empted share is requeued with the same command and resumes from the manifest.

Pre-emption and time limits: Slurm sends ``SIGUSR1`` ``--signal-delay-s`` seconds before the end
(``SUBMITIT_PREEMPT_SIGNAL=USR1``). The training loop catches it at the next step boundary,
writes a checkpoint on every rank, then hands over to submitit, which calls
:meth:`PretrainJob.checkpoint` (the same command plus ``--resume``) and requeues the job.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
from pathlib import Path
from typing import Any

import submitit
import torch
from submitit.helpers import Checkpointable, DelayedSubmission, TorchDistributedEnvironment

from smartiesviz.errors import UserError
from smartiesviz.training.arguments import pretrain_parser
from smartiesviz.training.config import load_config
from smartiesviz.training.engine import pretrain

# The pre-emption signal asked of Slurm and handled in the job (submitit's default, USR2, is
# replaced: the job's environment gets SUBMITIT_PREEMPT_SIGNAL through the sbatch setup lines).
PREEMPT_SIGNAL = "USR1"


class PretrainJob(Checkpointable):
    """The callable submitit pickles: runs ``smartiesviz pretrain <argv>`` in each task.

    Args:
        argv: the pretrain arguments (``--config FILE [--resume] [overrides]``).
    """

    def __init__(self, argv: list[str]) -> None:
        self.argv = list(argv)

    def __call__(self) -> dict[str, Any]:
        env = submitit.JobEnvironment()
        if env.num_tasks > 1:
            dist_env = TorchDistributedEnvironment().export(overwrite=True)
            print(
                f"task {dist_env.rank}/{dist_env.world_size} on {env.hostname}: "
                f"master {dist_env.master_addr}:{dist_env.master_port}",
                flush=True,
            )
        args = pretrain_parser().parse_args(self.argv)
        cfg = load_config(args.config, args.overrides)
        result = pretrain(cfg, resume=args.resume, overwrite=args.overwrite)
        return {
            "status": result.status,
            "step": result.step,
            "output_dir": str(result.output_dir),
            "weights": str(result.weights) if result.weights else None,
            "last_loss": result.losses[max(result.losses)] if result.losses else None,
        }

    def checkpoint(self, *args: Any, **kwargs: Any) -> DelayedSubmission:
        """Called by submitit on pre-emption/time-out: requeue the same run with ``--resume``
        (never ``--overwrite``: the requeued job continues what this one wrote)."""
        argv = [a for a in self.argv if a != "--overwrite"]
        argv = argv if "--resume" in argv else [*argv, "--resume"]
        return DelayedSubmission(PretrainJob(argv))


#: Commands a job array runs over an archive's scenes (``-- embed ...``).
ARCHIVE_COMMANDS = ("embed", "predict")


class ArchiveJob(Checkpointable):
    """The callable submitit pickles for an archive: ``smartiesviz <argv>`` as share ``shard`` of
    ``shards`` (through ``SMARTIESVIZ_SHARD``); the manifest makes a requeued share resume.

    Args:
        argv: the command and its arguments (``["embed", "scenes.txt", "--out", "DIR", ...]``).
    """

    def __init__(self, argv: list[str]) -> None:
        self.argv = list(argv)

    def __call__(self, shard: int, shards: int) -> dict[str, Any]:
        from smartiesviz.cli import main  # the same entry point as the command line

        os.environ["SMARTIESVIZ_SHARD"] = f"{shard}/{shards}"
        code = main(self.argv)
        status = "completed" if code == 0 else "failed"
        return {"status": status, "exit_code": code, "shard": shard, "shards": shards}

    def checkpoint(self, shard: int, shards: int) -> DelayedSubmission:
        """Requeue the same share (never ``--overwrite``: it resumes what was written)."""
        argv = [a for a in self.argv if a != "--overwrite"]
        return DelayedSubmission(ArchiveJob(argv), shard, shards)


def normalise_archive_args(argv: list[str]) -> list[str]:
    """Check an archive command line (``embed ... --out FOLDER``) parses and names many scenes,
    and make its paths absolute (the jobs may start elsewhere).

    Raises:
        SystemExit: through argparse, for bad arguments. UserError: control characters, or an
        ``--out`` that is a file (a job array needs an output folder).
    """
    from smartiesviz.cli import build_parser  # the command's own parser
    from smartiesviz.predict.archive import is_archive_request

    for a in argv:
        _no_control_characters(a, f"{argv[0]} argument")
    args = build_parser().parse_args(argv)
    single = Path(args.out).suffix.lower() in (".tif", ".tiff", ".zarr")
    if single or not is_archive_request(args.scene, args.out):
        raise UserError(
            f"launch slurm runs {argv[0]} over many scenes: give --out a folder, not {args.out!r}"
        )
    scenes = {a for a in args.scene if not a.startswith("sample:")}
    out: list[str] = []
    for i, a in enumerate(argv):
        prev = argv[i - 1] if i else ""
        if prev == "--out" or (prev == "--checkpoint" and Path(a).exists()) or a in scenes:
            a = os.path.abspath(a)
        elif a.startswith("--out="):
            a = "--out=" + os.path.abspath(a.split("=", 1)[1])
        out.append(a)
    return out


def array_shards(args: argparse.Namespace) -> int:
    """Shares of an archive job array: one per task (``--tasks-per-node``, default one per GPU)
    on each of ``--nodes``."""
    return max(1, args.nodes) * (args.tasks_per_node or max(1, args.gpus_per_node))


def normalise_pretrain_args(argv: list[str]) -> list[str]:
    """Drop a leading ``--``, make ``--config`` absolute and check the config loads.

    Raises:
        SystemExit: through argparse, for missing or bad pretrain arguments.
        ValueError / FileNotFoundError: for a config that does not load.
    """
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise UserError("no pretrain arguments; give them after --, e.g. -- --config demo.yaml")
    for a in argv:  # each is printed in the job's description and pickled for every task
        _no_control_characters(a, "pretrain argument")
    args = pretrain_parser().parse_args(argv)
    load_config(args.config, args.overrides)  # fail here, not after hours in the queue
    out = list(argv)
    for i, a in enumerate(out):
        if a in ("--config", "-c") and i + 1 < len(out):
            out[i + 1] = str(Path(out[i + 1]).resolve())
        elif a.startswith("--config="):
            out[i] = "--config=" + str(Path(a.split("=", 1)[1]).resolve())
    return out


# What may reach an ``#SBATCH`` line (and submitit's own script): no newline, quote or shell
# syntax. Constraints also take Slurm's operators (``a100&ib``, ``[rack1|rack2]*2``).
_NAME = r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}"
SLURM_FIELDS: dict[str, tuple[str, str]] = {
    "job_name": (_NAME, "letters, digits and . _ + -"),
    "partition": (rf"{_NAME}(,{_NAME})*", "names of letters, digits and . _ + -, separated by commas"),
    "account": (_NAME, "letters, digits and . _ + -"),
    "qos": (rf"{_NAME}(,{_NAME})*", "names of letters, digits and . _ + -, separated by commas"),
    "constraint": (r"[A-Za-z0-9_.,:&|*()\[\]-]{1,256}", "features of letters, digits and . _ - joined by & | , * : ( ) [ ]"),
}


def _no_control_characters(value: str, what: str) -> None:
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise UserError(f"{what} {value!r} holds a newline or another control character; remove it")


def check_slurm_fields(args: argparse.Namespace) -> None:
    """Refuse a launch field that could add lines or shell syntax to the job script (one line
    naming the option), before anything reaches submitit."""
    for key, (pattern, allowed) in SLURM_FIELDS.items():
        value = getattr(args, key, None)
        if value is not None and not re.fullmatch(pattern, str(value)):
            option = "--" + key.replace("_", "-")
            raise UserError(f"{option} {str(value)!r} is not allowed: use {allowed}")
    _no_control_characters(str(args.folder), "--folder")
    for key, low in (("time", 1), ("cpus_per_task", 1), ("signal_delay_s", 0), ("max_requeues", 0)):
        if getattr(args, key) < low:
            raise UserError(f"--{key.replace('_', '-')} must be >= {low}, got {getattr(args, key)}")
    if args.mem_gb is not None and not args.mem_gb > 0:
        raise UserError(f"--mem-gb must be > 0, got {args.mem_gb}")


def slurm_parameters(args: argparse.Namespace) -> dict[str, Any]:
    """sbatch parameters (submitit's SlurmExecutor names) from the launch arguments."""
    if args.nodes < 1 or args.gpus_per_node < 0:
        raise UserError(
            f"--nodes must be >= 1 and --gpus-per-node >= 0, got {args.nodes} and {args.gpus_per_node}"
        )
    check_slurm_fields(args)
    tasks = args.tasks_per_node or max(1, args.gpus_per_node)
    params: dict[str, Any] = {
        "job_name": args.job_name,
        "nodes": args.nodes,
        "ntasks_per_node": tasks,
        "cpus_per_task": args.cpus_per_task,
        "time": args.time,
        "signal_delay_s": args.signal_delay_s,
        "setup": [f"export SUBMITIT_PREEMPT_SIGNAL={PREEMPT_SIGNAL}"],
        "additional_parameters": {"signal": f"{PREEMPT_SIGNAL}@{args.signal_delay_s}"},
    }
    if args.gpus_per_node:
        params["gpus_per_node"] = args.gpus_per_node
    for key in ("partition", "account", "qos", "constraint"):
        if getattr(args, key):
            params[key] = getattr(args, key)
    if args.mem_gb:
        params["mem"] = f"{int(args.mem_gb)}GB"
    return params


def _sbatch_flag(key: str, value: Any) -> str:
    key = key.replace("_", "-")
    return f"#SBATCH --{key}" if value is True else f"#SBATCH --{key}={shlex.quote(str(value))}"


def sbatch_script(folder: str | Path, params: dict[str, Any], array: int | None = None) -> str:
    """The sbatch script a submission with these parameters runs (nothing is submitted).

    Written here from the parameters (submitit has no public renderer): one ``#SBATCH`` line per
    parameter, logs at ``<folder>/%j_%t_log.{out,err}`` as submitit names them, the setup lines,
    then ``srun`` of submitit's job entry point. With ``array`` (a job array of that many jobs,
    all running at once) the logs are ``%A_%a_...`` and ``--array=0-<array-1>%<array>``.
    """
    folder = Path(folder).absolute()  # as submitit resolves it on submission
    job = "%A_%a" if array else "%j"
    flags = {k: v for k, v in params.items() if k not in ("setup", "signal_delay_s", "additional_parameters")}
    flags.update(params.get("additional_parameters", {}))
    flags.update(
        output=f"{folder}/{job}_0_log.out", error=f"{folder}/{job}_0_log.err", open_mode="append"
    )
    if array:
        flags["array"] = f"0-{array - 1}%{array}"
    lines = ["#!/bin/bash", "", "# Parameters", *(_sbatch_flag(k, flags[k]) for k in sorted(flags))]
    lines += ["", "# setup", *params.get("setup", [])]
    entry = " ".join([shlex.quote(sys.executable), "-u -m submitit.core._submit", shlex.quote(str(folder))])
    srun = shlex.join(["srun", "--unbuffered", "--output", f"{folder}/{job}_%t_log.out",
                       "--error", f"{folder}/{job}_%t_log.err"])  # fmt: skip
    lines += ["", "# command", "export SUBMITIT_EXECUTOR=slurm", f"{srun} {entry}", ""]
    return "\n".join(lines)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(cannot read {path})"


def _report_logs(job: Any) -> None:
    for k in range(max(1, getattr(job, "num_tasks", 1))):
        paths = job.task(k).paths if hasattr(job, "task") else job.paths
        print(f"  task {k}: stdout {paths.stdout}\n          stderr {paths.stderr}")


def _wait_and_report(job: Any) -> int:
    print(f"waiting for job {job.job_id} ...", flush=True)
    try:
        result = job.result()
    except Exception as err:  # noqa: BLE001 - report whatever the job raised
        print(f"job {job.job_id} FAILED ({job.state}): {err}", file=sys.stderr)
        print(
            f"--- last lines of {job.paths.stderr} ---\n{_tail(job.paths.stderr)}", file=sys.stderr
        )
        return 1
    print(f"job {job.job_id} finished: {result}")
    return 0 if isinstance(result, dict) and result.get("status") == "completed" else 1


def launch_slurm(args: argparse.Namespace) -> int:
    """Implement ``smartiesviz launch slurm`` (see module docstring). Returns an exit code."""
    rest = list(args.pretrain_args)
    rest = rest[1:] if rest[:1] == ["--"] else rest
    if rest[:1] and rest[0] in ARCHIVE_COMMANDS:
        return launch_archive(args, rest)
    argv = normalise_pretrain_args(list(args.pretrain_args))  # errors: one line, exit 2 (cli.main)
    params = slurm_parameters(args)
    folder = Path(args.folder)
    job_cmd = "smartiesviz pretrain " + shlex.join(argv)

    if args.dry_run:
        print(f"# dry run: nothing submitted. Each task runs: {job_cmd}")
        print(f"# job logs would go to {folder}/<job id>_<task>_log.out / .err")
        print(sbatch_script(folder, params))
        return 0

    os.environ["SUBMITIT_PREEMPT_SIGNAL"] = PREEMPT_SIGNAL  # inherited by --local jobs
    if args.local:
        executor = submitit.LocalExecutor(folder=str(folder).replace("%j", "local"))
        tasks = params["ntasks_per_node"]
        executor.update_parameters(
            tasks_per_node=tasks,
            gpus_per_node=args.gpus_per_node if _has_cuda() else 0,
            timeout_min=args.timeout_min,
            signal_delay_s=min(args.signal_delay_s, 30),
        )
    else:
        executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=args.max_requeues)
        executor.update_parameters(**params)
    job = executor.submit(PretrainJob(argv))
    where = "locally" if args.local else "to Slurm"
    print(f"submitted {where}: job {job.job_id} running `{job_cmd}`")
    _report_logs(job)
    if args.local or args.wait:
        return _wait_and_report(job)
    print(f"follow it with: tail -f {job.paths.stdout}")
    return 0


def launch_archive(args: argparse.Namespace, argv: list[str]) -> int:
    """``launch slurm -- embed|predict ...``: the command as a submitit job array (see the module
    docstring); ``--local`` runs the shares as local processes and waits."""
    argv = normalise_archive_args(argv)
    shards = array_shards(args)
    if args.job_name == "smartiesviz-pretrain":  # the pretrain default: name the command instead
        args.job_name = f"smartiesviz-{argv[0]}"
    params = slurm_parameters(args)
    params.update(nodes=1, ntasks_per_node=1)  # one single-task job per share
    if args.gpus_per_node:
        params["gpus_per_node"] = 1
    folder = Path(args.folder)
    job_cmd = "smartiesviz " + shlex.join(argv)
    if args.dry_run:
        print(f"# dry run: nothing submitted. A job array of {shards} jobs; job i of them runs "
              f"SMARTIESVIZ_SHARD=i/{shards} {job_cmd}")  # fmt: skip
        print(f"# job logs would go to {folder}/<array job id>_<index>_0_log.out / .err")
        print(sbatch_script(folder, params, array=shards))
        return 0
    os.environ["SUBMITIT_PREEMPT_SIGNAL"] = PREEMPT_SIGNAL
    if args.local:
        executor = submitit.LocalExecutor(folder=str(folder).replace("%j", "local"))
        executor.update_parameters(
            tasks_per_node=1, gpus_per_node=1 if args.gpus_per_node and _has_cuda() else 0,
            timeout_min=args.timeout_min, signal_delay_s=min(args.signal_delay_s, 30),
        )  # fmt: skip
    else:
        executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=args.max_requeues)
        executor.update_parameters(**params, array_parallelism=shards)
    jobs = executor.map_array(ArchiveJob(argv), range(shards), [shards] * shards)
    where = "locally" if args.local else "to Slurm"
    print(f"submitted {where}: {shards} jobs ({jobs[0].job_id.split('_')[0]}) running `{job_cmd}`")
    if args.local or args.wait:
        return max(_wait_and_report(job) for job in jobs)
    print(f"follow them with: tail -f {jobs[0].paths.stdout}")
    return 0


def _has_cuda() -> bool:
    return torch.cuda.is_available()
