"""Crash-safe training checkpoints.

A checkpoint is two files in ``<run>/checkpoints/``:

* ``step-00001234.pt``: the training state written with ``torch.save`` (model, optimizer,
  scheduler, grad scaler, per-rank RNG states, data position, config), and
* ``step-00001234.json``: its size and SHA-256, written *after* the ``.pt`` file is complete.

Both are written to a temporary file, flushed, fsync'ed and moved into place with ``os.replace``
(:func:`smartiesviz.outputs.atomic_write_bytes`), so a crash at any moment leaves either the old
files or the new ones; :func:`remove_stale_temporaries` deletes what a killed writer left. The JSON acts as the commit
marker: a ``.pt`` without it (a write that was cut short) or whose bytes do not match it (a
damaged file) is skipped with a message, and :func:`find_latest` falls back to the previous
checkpoint. Loading uses ``torch.load(weights_only=True)`` only.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from smartiesviz.outputs import atomic_write_bytes, remove_stale_partials

FORMAT = "smartiesviz-train-state/1"
_NAME = re.compile(r"^step-(\d{8,})\.(pt|json)$")


def checkpoint_dir(run_dir: str | Path) -> Path:
    """The folder holding a run's checkpoints."""
    return Path(run_dir) / "checkpoints"


def _atomic_write(path: Path, data: bytes) -> None:
    # the package's one atomic writer (temporary ``.NAME.partial-PID`` file, fsync, rename)
    atomic_write_bytes(path, data)


# temporary names of writers before the shared one (``.step-00000012.pt.tmp-PID``)
_OLD_TMP = re.compile(r"^\.step-\d{8,}\.(pt|json)\.tmp-\d+$")


def remove_stale_temporaries(run_dir: str | Path) -> list[Path]:
    """Delete the temporary files that killed checkpoint writers left in a run's checkpoint folder.

    Call it only while holding the run folder (no writer of this run is active). Returns what
    was removed."""
    folder = checkpoint_dir(run_dir)
    removed = remove_stale_partials(folder)
    if folder.is_dir():
        for p in folder.iterdir():
            if _OLD_TMP.match(p.name) and p.is_file():
                p.unlink(missing_ok=True)
                removed.append(p)
    return removed


def save_training_state(
    state: dict[str, Any], run_dir: str | Path, step: int, keep: int = 2
) -> Path:
    """Atomically write ``state`` as the checkpoint of ``step`` and prune old ones.

    Args:
        state: a dict of tensors and plain Python values (see ``engine.Trainer.state_dict``).
        run_dir: the run folder.
        step: the optimizer step the state was taken after.
        keep: number of most recent checkpoints to keep.

    Returns:
        Path of the ``.pt`` file.
    """
    folder = checkpoint_dir(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, "step": step, **state}, buffer)
    data = buffer.getvalue()
    pt = folder / f"step-{step:08d}.pt"
    _atomic_write(pt, data)
    meta = {
        "format": FORMAT,
        "step": step,
        "file": pt.name,
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    _atomic_write(pt.with_suffix(".json"), json.dumps(meta, indent=1).encode())
    _prune(folder, keep)
    return pt


def _steps_on_disk(folder: Path) -> list[int]:
    steps = set()
    if folder.is_dir():
        for p in folder.iterdir():
            m = _NAME.match(p.name)
            if m:
                steps.add(int(m.group(1)))
    return sorted(steps)


def _prune(folder: Path, keep: int) -> None:
    committed = [s for s in _steps_on_disk(folder) if (folder / f"step-{s:08d}.json").exists()]
    for s in committed[:-keep]:
        for suffix in (".json", ".pt"):  # marker first: a half-pruned pair reads as partial
            (folder / f"step-{s:08d}{suffix}").unlink(missing_ok=True)


def verify(pt: Path) -> str | None:
    """Why the checkpoint ``pt`` is unusable, or None when its bytes match its commit marker."""
    meta_path = pt.with_suffix(".json")
    if not pt.exists():
        return f"{pt.name} is missing (only its marker {meta_path.name} exists)"
    if not meta_path.exists():
        return f"{pt.name} has no commit marker {meta_path.name} (the write was cut short)"
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as err:
        return f"its marker {meta_path.name} is unreadable ({err})"
    data = pt.read_bytes()
    if len(data) != meta.get("bytes"):
        return f"{pt.name} holds {len(data)} bytes, its marker says {meta.get('bytes')} (partial write)"
    if hashlib.sha256(data).hexdigest() != meta.get("sha256"):
        return f"{pt.name} does not match the SHA-256 in {meta_path.name} (corrupt)"
    return None


def load_training_state(pt: str | Path) -> dict[str, Any]:
    """Verify and load one checkpoint (``torch.load(weights_only=True)``).

    Raises:
        ValueError: the file is partial, corrupt or not a smartiesviz training state.
    """
    pt = Path(pt)
    problem = verify(pt)
    if problem:
        raise ValueError(f"checkpoint {pt} is unusable: {problem}")
    state = torch.load(pt, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"checkpoint {pt} is not a {FORMAT} file")
    return state


def find_latest(
    run_dir: str | Path, log: Callable[[str], None] = print
) -> tuple[Path, dict[str, Any]] | None:
    """The newest usable checkpoint of a run, skipping partial or corrupt ones with a message.

    Returns:
        ``(path, state)``, or None when the run has no usable checkpoint.
    """
    folder = checkpoint_dir(run_dir)
    for step in reversed(_steps_on_disk(folder)):
        pt = folder / f"step-{step:08d}.pt"
        try:
            return pt, load_training_state(pt)
        except Exception as err:  # noqa: BLE001 - any failure means "try the previous one"
            log(f"skipping checkpoint of step {step}: {err}")
    return None


def capture_rng_state() -> dict[str, Any]:
    """This process's Python, NumPy and torch (CPU and CUDA) RNG states, as tensors and ints."""
    version, mt, gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state = {
        "python": [version, torch.tensor(mt, dtype=torch.int64), gauss],
        "numpy": [
            np_name,
            torch.from_numpy(np_keys.astype(np.int64)),
            int(np_pos),
            int(np_has_gauss),
            float(np_gauss),
        ],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    version, mt, gauss = state["python"]
    random.setstate((version, tuple(int(v) for v in mt.tolist()), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
