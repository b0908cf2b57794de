"""Atomic checkpoints: interrupted writes and damaged files never cost the previous checkpoint."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from smartiesviz.training import checkpointing as ckpt
from smartiesviz.training.engine import pretrain


def _state(v: float) -> dict:
    return {"model": {"w": torch.full((4,), v)}, "note": "x"}


def test_round_trip_and_pruning(tmp_path):
    for step in (1, 2, 3):
        ckpt.save_training_state(_state(step), tmp_path, step, keep=2)
    names = sorted(p.name for p in ckpt.checkpoint_dir(tmp_path).iterdir())
    assert names == [
        "step-00000002.json",
        "step-00000002.pt",
        "step-00000003.json",
        "step-00000003.pt",
    ]
    path, state = ckpt.find_latest(tmp_path)
    assert path.name == "step-00000003.pt" and state["step"] == 3
    assert torch.equal(state["model"]["w"], torch.full((4,), 3.0))


def test_write_interrupted_mid_file_leaves_previous_usable(tmp_path, monkeypatch):
    ckpt.save_training_state(_state(1.0), tmp_path, 10)
    real_write = ckpt._atomic_write

    def crash_half_way(path, data):
        if path.suffix == ".pt":
            tmp = path.with_name(f".{path.name}.tmp-crash")
            tmp.write_bytes(data[: len(data) // 2])  # the process dies here
            raise KeyboardInterrupt("killed during checkpoint write")
        real_write(path, data)

    monkeypatch.setattr(ckpt, "_atomic_write", crash_half_way)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_training_state(_state(2.0), tmp_path, 20)
    monkeypatch.setattr(ckpt, "_atomic_write", real_write)
    path, state = ckpt.find_latest(tmp_path)
    assert path.name == "step-00000010.pt" and torch.equal(state["model"]["w"], torch.ones(4))


def test_data_file_without_commit_marker_is_skipped(tmp_path, capsys, monkeypatch):
    ckpt.save_training_state(_state(1.0), tmp_path, 10)
    real_write = ckpt._atomic_write

    def die_before_marker(path, data):
        if path.suffix == ".json":
            raise KeyboardInterrupt("killed between data file and marker")
        real_write(path, data)

    monkeypatch.setattr(ckpt, "_atomic_write", die_before_marker)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_training_state(_state(2.0), tmp_path, 20)
    monkeypatch.setattr(ckpt, "_atomic_write", real_write)
    assert (ckpt.checkpoint_dir(tmp_path) / "step-00000020.pt").exists()
    path, _ = ckpt.find_latest(tmp_path)
    assert path.name == "step-00000010.pt"
    assert "skipping checkpoint of step 20" in capsys.readouterr().out


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_corrupt_newest_checkpoint_is_skipped_with_a_message(tmp_path, damage):
    ckpt.save_training_state(_state(1.0), tmp_path, 10)
    ckpt.save_training_state(_state(2.0), tmp_path, 20)
    pt = ckpt.checkpoint_dir(tmp_path) / "step-00000020.pt"
    data = bytearray(pt.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
    else:
        data = data[: len(data) // 3]
    pt.write_bytes(bytes(data))
    messages = []
    path, state = ckpt.find_latest(tmp_path, log=messages.append)
    assert path.name == "step-00000010.pt"
    assert len(messages) == 1 and "step 20" in messages[0]
    assert ("corrupt" if damage == "flip" else "partial") in messages[0]
    with pytest.raises(ValueError, match="unusable"):
        ckpt.load_training_state(pt)


def test_rng_states_round_trip():
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    state = ckpt.capture_rng_state()
    expected = (random.random(), np.random.rand(), torch.rand(1))
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    ckpt.restore_rng_state(state)
    assert (random.random(), np.random.rand()) == expected[:2] and torch.equal(
        torch.rand(1), expected[2]
    )


def test_resume_skips_a_corrupt_checkpoint_and_continues_exactly(tiny_cfg, capsys):
    full = pretrain(
        tiny_cfg("train.steps=6", "train.ckpt_every=0", "train.save_final=false", out="full")
    ).losses
    cfg = tiny_cfg(
        "train.steps=6", "train.ckpt_every=2", "train.save_final=false", "train.keep_checkpoints=5"
    )
    pretrain(cfg)
    folder = ckpt.checkpoint_dir(cfg.train.output_dir)
    (folder / "step-00000006.pt").write_bytes(b"garbage")  # damaged final checkpoint
    (folder / "step-00000004.pt").write_bytes((folder / "step-00000004.pt").read_bytes()[:100])
    resumed = pretrain(cfg, resume=True)
    out = capsys.readouterr().out
    assert "skipping checkpoint of step 6" in out and "skipping checkpoint of step 4" in out
    assert sorted(resumed.losses) == [3, 4, 5, 6]
    assert all(resumed.losses[s] == full[s] for s in resumed.losses)
