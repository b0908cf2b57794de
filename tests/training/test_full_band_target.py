"""Band-subset steps can still reconstruct all of an image's bands (cross-spectral training)."""

from __future__ import annotations

import torch

from smartiesviz.training.engine import pretrain
from smartiesviz.training.steps import PretrainDataset, build_sources


def test_subset_items_carry_the_full_band_target(tiny_cfg):
    cfg = tiny_cfg("data.band_subset_p=1.0", "data.band_subset_min=1", "data.full_band_target=true")
    sources = build_sources(cfg)
    ds = PretrainDataset(cfg, sources, patch_size=8)
    seen = 0
    for step in range(20):
        plan, item = ds.plan(step), ds[(step, 0)]
        if "target_a" not in item:
            continue
        seen += 1
        assert item["target_a"].shape[0] > item["x_a"].shape[0]  # all bands vs the kept subset
        kept = item["target_a"][list(plan.subset_a)]
        torch.testing.assert_close(kept, item["x_a"])  # the input is a subset of the target
    assert seen > 0
    off = PretrainDataset(tiny_cfg("data.band_subset_p=1.0"), sources, patch_size=8)
    assert all("target_a" not in off[(s, 0)] for s in range(20))


def test_training_runs_with_full_band_targets(tiny_cfg):
    cfg = tiny_cfg("train.steps=3", "train.ckpt_every=0", "train.save_final=false",
                   "data.band_subset_p=1.0", "data.full_band_target=true")  # fmt: skip
    losses = pretrain(cfg).losses
    assert len(losses) == 3 and all(torch.isfinite(torch.tensor(v)) for v in losses.values())
