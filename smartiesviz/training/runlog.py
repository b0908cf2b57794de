"""The loop's side channels: stop signals caught at step boundaries, and rank-0 logs (CSV,
TensorBoard, a tqdm bar with images/s)."""

from __future__ import annotations

import csv
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

STOP_SIGNALS = ("SIGTERM", "SIGUSR1")


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
        self._csv = open(path, "w", newline="")  # noqa: SIM115 - closed in close()
        self._rows = csv.DictWriter(self._csv, fieldnames=self.FIELDS)
        self._rows.writeheader()
        self._rows.writerows(kept)
        self._csv.flush()
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
