"""torch's process-wide settings, and a guard that keeps other libraries from changing them.

Importing smartiesviz changes nothing global. Some libraries we integrate with do: TerraTorch 1.2
calls ``torch.set_float32_matmul_precision("medium")`` when it is imported, which makes every fp32
matmul of the whole session run in bf16 on CPUs that have it (results drift by 0.1-0.6 %).
Adapters import such libraries inside :func:`preserved`, which puts the settings back as they were.

``snapshot()`` is also what the test suite's guard compares before and after every test.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch


def snapshot() -> dict[str, Any]:
    """The process-wide torch settings a library could change, by name."""
    state: dict[str, Any] = {
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "num_threads": torch.get_num_threads(),
        "default_dtype": torch.get_default_dtype(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "deterministic_warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
        "grad_enabled": torch.is_grad_enabled(),
        "anomaly_detection": torch.is_anomaly_enabled(),
        "cudnn.benchmark": torch.backends.cudnn.benchmark,
        "cudnn.deterministic": torch.backends.cudnn.deterministic,
        "cudnn.allow_tf32": torch.backends.cudnn.allow_tf32,
        "cuda.matmul.allow_tf32": torch.backends.cuda.matmul.allow_tf32,
    }
    return state


def restore(state: dict[str, Any]) -> list[str]:
    """Put back every setting of ``state`` that differs now; returns the names put back."""
    now = snapshot()
    changed = [k for k, v in state.items() if now.get(k) != v]
    setters = {
        "float32_matmul_precision": torch.set_float32_matmul_precision,
        "num_threads": torch.set_num_threads,
        "default_dtype": torch.set_default_dtype,
        "grad_enabled": torch.set_grad_enabled,
        "anomaly_detection": torch.set_anomaly_enabled,
    }
    for key in changed:
        value = state[key]
        if key in setters:
            setters[key](value)
        elif key in ("deterministic_algorithms", "deterministic_warn_only"):
            torch.use_deterministic_algorithms(
                state["deterministic_algorithms"], warn_only=state["deterministic_warn_only"]
            )
        elif key.startswith("cudnn."):
            setattr(torch.backends.cudnn, key.split(".", 1)[1], value)
        elif key == "cuda.matmul.allow_tf32":
            torch.backends.cuda.matmul.allow_tf32 = value
    return changed


@contextmanager
def preserved() -> Iterator[None]:
    """Run a block (typically a third-party import) and undo what it changed in torch's global
    settings and in the warnings filters."""
    state = snapshot()
    filters = list(warnings.filters)
    try:
        yield
    finally:
        restore(state)
        warnings.filters[:] = filters
        warnings._filters_mutated()  # type: ignore[attr-defined]  # invalidate the cache
