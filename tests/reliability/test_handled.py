"""Hostile inputs that were already handled well (issue 15): kept that way, message asserted."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import smartiesviz as sv

REPO = Path(__file__).resolve().parents[2]


def test_unknown_band_suggests_close_names():
    with pytest.raises(KeyError, match=r"has no band 'B99'\. Did you mean 'B09'\?"):
        sv.resolve_bands(["sentinel2-l2a/B99"])


def test_unknown_sensor_on_the_command_line_is_one_line():
    proc = subprocess.run(
        [sys.executable, "-m", "smartiesviz.cli", "sensors", "sentinal2"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("error: unknown sensor 'sentinal2'. Did you mean 'sentinel2-l2a'")
    assert proc.stderr.count("\n") == 1


@pytest.fixture(scope="module")
def tok():
    return sv.SpectrumAwareProjection(embed_dim=16, patch_size=8)


def test_band_count_mismatch_lists_the_bands(tok):
    with pytest.raises(ValueError, match=r"5 channels but 12 bands were given \(B01, B02"):
        tok(torch.zeros(1, 5, 64, 64), "sentinel2-l2a")


def test_size_mismatch_suggests_valid_sizes(tok):
    with pytest.raises(ValueError, match=r"60×60 is not divisible by the patch size 8.*56×56 or 64×64"):
        tok(torch.zeros(1, 12, 60, 60), "sentinel2-l2a")


def test_nan_input_names_the_band(tok):
    x = torch.zeros(1, 12, 64, 64)
    x[0, 3, 5, 5] = float("nan")
    with pytest.raises(ValueError, match="B04: 1"):
        tok(x, "sentinel2-l2a")


class _Payload:
    """Pickles as a call of ``os.system``: running it would create the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def evil_pt(tmp_path) -> tuple[Path, Path]:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"model": _Payload(marker)}, path)
    return path, marker


def test_malicious_pickle_refused_as_weights(evil_pt):
    from smartiesviz.models.checkpoint import CheckpointError, read_state_dict

    path, marker = evil_pt
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(CheckpointError, match="evil.pt"):
        read_state_dict(path)
    model = sv.smarties_vit_tiny_patch8(img_size=32)
    with pytest.raises(CheckpointError):
        sv.load_pretrained(model, path)
    assert not marker.exists()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest  # the file is left as it was


def test_malicious_pickle_refused_as_training_state(evil_pt):
    import pickle

    from smartiesviz.training.checkpointing import load_training_state

    path, marker = evil_pt
    data = path.read_bytes()  # a commit marker that matches: only the unpickler can refuse it
    meta = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    path.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        load_training_state(path)
    assert not marker.exists()


def test_malicious_checkpoint_on_the_command_line(evil_pt, tmp_path):
    path, marker = evil_pt
    out = tmp_path / "emb.tif"
    proc = subprocess.run(
        [sys.executable, "-m", "smartiesviz.cli", "embed", "sample:sentinel2", "--sensor",
         "sentinel2-l1c", "--checkpoint", str(path), "--out", str(out), "--no-progress"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: ") and "evil.pt" in proc.stderr
    assert not marker.exists() and not out.exists()
