"""The loop's side channels: the run folder (one run at a time, no silent replacement), stop
signals caught at step boundaries, and rank-0 logs (CSV, TensorBoard, a tqdm bar with images/s)."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from smartiesviz.errors import UserError
from smartiesviz.outputs import atomic_path, remove_stale_partials
from smartiesviz.training.checkpointing import remove_stale_temporaries

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no run-folder lock
    fcntl = None

STOP_SIGNALS = ("SIGTERM", "SIGUSR1")
#: What a run writes into its folder (removed by ``--overwrite``); the first four mark a run.
RUN_FILES = ("checkpoints", "metrics.csv", "config.yaml", "model.safetensors", "model.json",
             "tensorboard", "skipped-entries.txt")  # fmt: skip
#: The lock file held (``flock``) by the run writing a folder; it holds that run's pid.
LOCK_NAME = ".smartiesviz-run.lock"


# ----------------------------------------------------------------------------- run folder
def _holds_run(out: Path) -> list[str]:
    """The files of ``out`` that show it holds a run."""
    found = [n for n in ("metrics.csv", "config.yaml", "model.safetensors") if (out / n).exists()]
    ckpts = out / "checkpoints"
    if ckpts.is_dir() and any(p.name.startswith("step-") for p in ckpts.iterdir()):
        found.insert(0, "checkpoints/")
    return found


def _lock(out: Path) -> int:
    """Take the folder's lock (non-blocking); a UserError naming the holder's pid if taken."""
    path = out / LOCK_NAME
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise UserError(
                f"run folder {str(out)!r} is in use by another pretrain (pid {holder}); wait for "
                "it to end or choose another train.output_dir"
            ) from None
        try:  # the holder removes the file when it ends: lock the file that is there now
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            return fd
        os.close(fd)


@contextmanager
def claim_run_folder(out: Path, resume: bool = False, overwrite: bool = False) -> Iterator[None]:
    """Hold the run folder ``out`` for one run (rank 0), as a context manager.

    Takes a ``flock`` on ``out/.smartiesviz-run.lock`` (a second run on the folder fails at once,
    naming the holder's pid; the kernel releases it if the process dies), refuses a folder that
    holds another run unless ``resume`` (continue it) or ``overwrite`` (its files are removed
    first), and deletes the temporary files that killed writers left there.
    """
    if resume and overwrite:
        raise UserError("--resume continues the run in train.output_dir and --overwrite replaces "
                        "it: give only one")  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    fd = _lock(out) if fcntl is not None else None
    try:
        found = _holds_run(out)
        if found and not resume and not overwrite:
            raise UserError(
                f"train.output_dir {str(out)!r} holds another run ({', '.join(found)}); pass "
                "--resume to continue it or --overwrite to replace it, or choose another folder"
            )
        if overwrite:
            for name in RUN_FILES:
                p = out / name
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p)
                else:
                    p.unlink(missing_ok=True)
        remove_stale_partials(out)
        remove_stale_temporaries(out)
        yield
    finally:
        if fd is not None:
            (out / LOCK_NAME).unlink(missing_ok=True)  # still locked: see _lock
            os.close(fd)


# ----------------------------------------------------------------------------- signals
class StopSignals:
    """Records SIGTERM/SIGUSR1 (and submitit's preemption signal) instead of dying mid-step.

    The loop polls :attr:`received` at step boundaries; after saving a checkpoint it calls
    :meth:`chain`, which hands the signal to the handler that was installed before (submitit's
    checkpoint-and-requeue), if any.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is not threading.main_thread():
            return self  # signal handlers can only be installed from the main thread
        names = list(STOP_SIGNALS)
        if os.environ.get("SUBMITIT_EXECUTOR"):
            names.append("SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"))
        for name in dict.fromkeys(names):
            sig = getattr(signal, name, None)
            if sig is not None:
                self._previous[sig] = signal.signal(sig, self._record)
        return self

    def _record(self, signum: int, frame: Any) -> None:
        self.received = signum

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def chain(self) -> None:
        """Call the previously installed handler of the received signal (if it is a function)."""
        prev = self._previous.get(self.received) if self.received is not None else None
        if callable(prev):
            prev(self.received, None)


# ----------------------------------------------------------------------------- logging
class RunLogger:
    """Rank-0 CSV + TensorBoard + tqdm; every method is a no-op on other ranks."""

    FIELDS = (
        "step",
        "epoch",
        "loss",
        "lr",
        "img_per_s",
        "source",
        "role",
        "n_bands_a",
        "elapsed_s",
    )

    def __init__(self, out: Path, enabled: bool, total: int, start: int, progress: bool) -> None:
        self.enabled = enabled
        self.bar = None
        self.writer = None
        if not enabled:
            return
        out.mkdir(parents=True, exist_ok=True)
        path = out / "metrics.csv"
        kept = _rows_up_to(path, start)  # a resumed run rewrites the steps after its checkpoint
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:  # a kill keeps the old rows
            rows = csv.DictWriter(f, fieldnames=self.FIELDS)
            rows.writeheader()
            rows.writerows(kept)
        self._csv = open(path, "a", newline="")  # noqa: SIM115 - closed in close()
        self._rows = csv.DictWriter(self._csv, fieldnames=self.FIELDS)
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(out / "tensorboard"), purge_step=start + 1)
        except ImportError as err:  # pragma: no cover - tensorboard is a dependency
            print(f"TensorBoard logging disabled: {err}", file=sys.stderr)
        if progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=total, initial=start, desc="pretrain", unit="step", dynamic_ncols=True
            )

    def log(self, row: dict[str, Any], to_file: bool) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(
                loss=f"{row['loss']:.4f}", img_s=f"{row['img_per_s']:.1f}", refresh=False
            )
        if to_file:
            self._rows.writerow(row)
            self._csv.flush()
            if self.writer is not None:
                step = row["step"]
                self.writer.add_scalar("train/loss", row["loss"], step)
                self.writer.add_scalar("train/lr", row["lr"], step)
                self.writer.add_scalar("train/img_per_s", row["img_per_s"], step)

    def message(self, text: str) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(text)
        else:
            print(text, flush=True)

    def close(self) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.close()
        self._csv.close()




def _rows_up_to(path: Path, step: int) -> list[dict[str, str]]:
    """The rows of an existing ``metrics.csv`` up to ``step`` (none when it does not exist)."""
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [r for r in csv.DictReader(f) if r.get("step", "").isdigit() and int(r["step"]) <= step]
