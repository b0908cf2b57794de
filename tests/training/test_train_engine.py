"""Single-process loop, signals, resume exactness (in-process and after a hard kill)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from smartiesviz.training import checkpointing as ckpt
from smartiesviz.training.engine import lr_factor, pretrain
from smartiesviz.training.steps import GlobalBatchSampler, PretrainDataset, build_sources, plan_step


def test_a_few_steps_write_logs_checkpoints_and_weights(tiny_cfg, read_losses):
    cfg = tiny_cfg("train.steps=4", "train.ckpt_every=2")
    result = pretrain(cfg)
    assert result.status == "completed" and result.step == 4
    losses = read_losses(result.output_dir)
    assert sorted(losses) == [1, 2, 3, 4]
    assert all(0 < v < 10 for v in losses.values())
    assert (result.output_dir / "tensorboard").is_dir()
    assert any((result.output_dir / "tensorboard").iterdir())
    assert [p.name for p in sorted(ckpt.checkpoint_dir(result.output_dir).glob("*.pt"))] == [
        "step-00000002.pt",
        "step-00000004.pt",
    ]
    from smartiesviz.models.checkpoint import load_checkpoint

    model = load_checkpoint(result.weights)
    assert model.img_size == cfg.model.img_size
    assert model.checkpoint_info["metadata"]["steps"] == 4


def test_training_reduces_the_loss(tiny_cfg):
    cfg = tiny_cfg("train.steps=30", "train.ckpt_every=0", "train.save_final=false",
                   "data.sources=[{kind: synthetic, channels: 4}]", "data.band_subset_p=0.0")  # fmt: skip
    losses = list(pretrain(cfg).losses.values())
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5


def test_warmup_then_cosine():
    f = [lr_factor(s, 100, 10, 0.1) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(f[9:], f[10:]))  # non-increasing after warmup
    assert f[-1] == pytest.approx(0.1, abs=2e-3)


def test_global_batch_is_sharded_contiguously_and_plans_agree(tiny_cfg):
    cfg = tiny_cfg()
    shards = [list(GlobalBatchSampler(3, 5, 8, r, 2)) for r in range(2)]
    assert shards[0][0] == [(3, i) for i in range(4)] and shards[1][0] == [
        (3, i) for i in range(4, 8)
    ]
    with pytest.raises(ValueError, match="divisible"):
        GlobalBatchSampler(0, 1, 6, 0, 4)
    sources = build_sources(cfg)
    ds = PretrainDataset(cfg, sources, patch_size=8)
    a, b = ds[(7, 3)], ds[(7, 3)]
    assert all(torch.equal(a[k], b[k]) for k in a)  # items are pure functions of (step, index)
    assert int(a["visible_mask"].sum()) == round(ds.num_patches * 0.25)
    plans = {plan_step(0, s, sources, [1.0, 1.0], cfg.data) for s in range(40)}
    assert {p.role for p in plans} >= {"pair", "a", "b"}
    assert any(len(p.subset_a) < len(sources[p.source].bands_a) for p in plans if p.role == "a")


def _kill_self_at(step_to_kill: int, sig: int):
    def on_step(step: int, loss: float) -> None:
        if step == step_to_kill:
            os.kill(os.getpid(), sig)

    return on_step


def test_signal_checkpoints_then_resume_repeats_uninterrupted_losses(tiny_cfg, read_losses):
    full = pretrain(tiny_cfg("train.steps=8", "train.ckpt_every=0", out="full")).losses
    cfg = tiny_cfg("train.steps=8", "train.ckpt_every=0", out="cut")
    cut = pretrain(cfg, on_step=_kill_self_at(3, signal.SIGUSR1))
    assert cut.status == "interrupted" and cut.step == 3 and cut.signal == "SIGUSR1"
    assert (ckpt.checkpoint_dir(cfg.train.output_dir) / "step-00000003.json").exists()
    resumed = pretrain(cfg, resume=True)
    assert resumed.status == "completed"
    assert sorted(resumed.losses) == [4, 5, 6, 7, 8]
    assert all(resumed.losses[s] == full[s] for s in resumed.losses)  # exact, not approximate
    assert read_losses(cfg.train.output_dir) == full  # the CSV holds the whole curve once


def test_hard_kill_then_resume_from_periodic_checkpoint(
    tiny_cfg, tiny_config_path, tmp_path, read_losses
):
    steps = 200
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "smartiesviz.cli", "pretrain", "--config", str(tiny_config_path),
           f"train.output_dir={out}", f"train.steps={steps}", "train.ckpt_every=3", "train.save_final=false"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            # any committed checkpoint from step 6 on: step 6's own pair lives ~0.1 s before
            # pruning removes it, so a poll that waited for that exact file could miss it
            markers = ckpt.checkpoint_dir(out).glob("step-*.json")
            if any(int(m.stem.removeprefix("step-")) >= 6 for m in markers):
                break
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.05)
        proc.kill()  # SIGKILL: no handler runs, no final checkpoint
    finally:
        proc.wait()
    cut_at = max(read_losses(out))
    assert cut_at < steps
    cfg = tiny_cfg(
        f"train.steps={steps}", "train.ckpt_every=3", "train.save_final=false", out="killed"
    )
    resumed = pretrain(cfg, resume=True)
    start = min(resumed.losses) - 1
    assert start % 3 == 0 and start >= 6
    ref_cfg = tiny_cfg(
        f"train.steps={steps}", "train.ckpt_every=0", "train.save_final=false", out="ref"
    )
    full = pretrain(ref_cfg, on_step=_kill_self_at(start + 4, signal.SIGTERM)).losses  # stop early
    assert all(resumed.losses[s] == full[s] for s in range(start + 1, start + 5))


def test_curriculum_steps_use_plain_first_source_images(tiny_cfg):
    cfg = tiny_cfg("data.curriculum_steps=5", "data.band_subset_p=1.0")
    sources = build_sources(cfg)
    early = [plan_step(0, s, sources, [1.0, 1.0], cfg.data) for s in range(5)]
    assert all(p.source == 0 and p.role == "a" and len(p.subset_a) == 4 for p in early)
    later = [plan_step(0, s, sources, [1.0, 1.0], cfg.data) for s in range(5, 45)]
    assert {p.source for p in later} == {0, 1} and any(len(p.subset_a) < 4 for p in later)
