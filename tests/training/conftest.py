"""Shared fixtures: the tiny synthetic config (seconds per run) and helpers to read run logs."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from smartiesviz.training.config import load_config

TINY = Path(__file__).resolve().parents[2] / "smartiesviz" / "training" / "configs" / "tiny.yaml"


@pytest.fixture
def tiny_config_path() -> Path:
    return TINY


@pytest.fixture
def tiny_cfg(tmp_path):
    def make(*overrides: str, out: str = "run"):
        return load_config(TINY, [f"train.output_dir={tmp_path / out}", *overrides])

    return make


def _read_losses(run_dir: Path) -> dict[int, float]:
    with open(Path(run_dir) / "metrics.csv") as f:
        return {int(r["step"]): float(r["loss"]) for r in csv.DictReader(f)}


@pytest.fixture
def read_losses():
    """``read_losses(run_dir)`` → ``{step: loss}`` from a run's metrics.csv."""
    return _read_losses
