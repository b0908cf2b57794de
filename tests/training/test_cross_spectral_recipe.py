"""The demo v2 recipe's options: visible-only subsets, small subsets, S1 oversampling (``p_b``) and
its random gain (``b_level_shift``), the extra losses on lacking bands (visible patches) and kept
bands (hidden patches), and continued training from saved weights."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from smartiesviz.models.checkpoint import save_checkpoint
from smartiesviz.training.engine import build_model, init_weights, pretrain, target_band_loss
from smartiesviz.training.steps import VISIBLE_BANDS, PretrainDataset, StepPlan, build_sources


def _plans(cfg, steps: int = 40):
    sources = build_sources(cfg)
    ds = PretrainDataset(cfg, sources, patch_size=8)
    return sources, [ds.plan(s) for s in range(steps)]


def test_visible_subset_keeps_exactly_the_visible_trio(tiny_cfg):
    sources, plans = _plans(tiny_cfg("data.visible_subset_p=1.0", "data.full_band_target=true"))
    for plan in plans:
        src = sources[plan.source]
        first = src.bands_b if plan.role == "b" else src.bands_a
        names = [first[i].split("/")[-1] for i in plan.subset_a]
        if plan.role == "b":  # S1 has no visible bands: the usual subset rule applies
            assert not set(names) & set(VISIBLE_BANDS)
        else:
            assert sorted(names) == sorted(VISIBLE_BANDS), names
    # off (the default) draws nothing extra: the plans are those of a config without the key
    _, default = _plans(tiny_cfg())
    _, zero = _plans(tiny_cfg("data.visible_subset_p=0.0"))
    assert default == zero


def test_visible_plus_keeps_the_trio_and_one_to_three_other_bands(tiny_cfg):
    sources, plans = _plans(tiny_cfg("data.visible_plus_p=1.0"), 60)
    extras = set()
    for plan in plans:
        src = sources[plan.source]
        if plan.role == "b":
            continue
        names = {src.bands_a[i].split("/")[-1] for i in plan.subset_a}
        assert set(VISIBLE_BANDS) <= names, names
        extras.add(len(names) - 3)
    assert extras == {1, 2, 3}  # the 6-band source allows up to 3 others, the 4-band one 1
    with pytest.raises(ValueError, match="data.visible_plus_p"):
        tiny_cfg("data.visible_subset_p=0.6", "data.visible_plus_p=0.6")


def test_band_subset_max_bounds_the_subset_size(tiny_cfg):
    cfg = tiny_cfg("data.band_subset_p=1.0", "data.band_subset_min=1", "data.band_subset_max=2")
    _, plans = _plans(cfg)
    sizes = {len(p.subset_a) for p in plans}
    assert sizes <= {1, 2} and sizes == {1, 2}
    with pytest.raises(ValueError, match="data.band_subset_max"):
        tiny_cfg("data.band_subset_min=3", "data.band_subset_max=2")


def test_p_b_sets_the_share_of_single_steps_that_train_image_b(tiny_cfg):
    only_b = tiny_cfg("data.sources.0.p_single=1.0", "data.sources.0.p_b=1.0")
    only_a = tiny_cfg("data.sources.0.p_single=1.0", "data.sources.0.p_b=0.0")
    roles_b = {p.role for p in _plans(only_b, 60)[1] if p.source == 0}
    roles_a = {p.role for p in _plans(only_a, 60)[1] if p.source == 0}
    assert roles_b == {"b"} and roles_a == {"a"}
    with pytest.raises(ValueError, match="p_b"):
        tiny_cfg("data.sources.0.p_b=1.5")


def test_b_level_shift_offsets_every_band_of_image_b_by_one_draw(tiny_cfg):
    keys = [(step, i) for step in range(6) for i in range(2)]
    pair_only = ("data.sources.0.p_single=0.0", "data.sources.1.weight=1e-9")

    def items(*extra):
        cfg = tiny_cfg(*pair_only, *extra)
        ds = PretrainDataset(cfg, build_sources(cfg), patch_size=8)
        return [ds[k] for k in keys]

    plain, shifted = items(), items("data.sources.0.b_level_shift=0.5")
    offsets = []
    for p, q in zip(plain, shifted, strict=True):
        torch.testing.assert_close(q["x_a"], p["x_a"])  # image a untouched
        d = q["x_b"] - p["x_b"]
        torch.testing.assert_close(d, torch.full_like(d, float(d.flatten()[0])))  # one offset
        offsets.append(float(d.flatten()[0]))
    assert all(abs(o) <= 0.5 for o in offsets) and len({round(o, 6) for o in offsets}) > 1
    with pytest.raises(ValueError, match="b_level_shift"):
        tiny_cfg("data.sources.0.b_level_shift=-0.1")


def test_target_band_loss_scores_lacking_bands_on_visible_and_kept_bands_on_hidden_patches(
    tiny_cfg,
):
    cfg = tiny_cfg()
    model = build_model(cfg.model).eval()
    g = torch.Generator().manual_seed(0)
    target = torch.randn(2, 4, 32, 32, generator=g)
    bands = [f"sentinel2-l2a/{b}" for b in ("B02", "B03", "B04", "B08")]
    visible = torch.zeros(2, 16, dtype=torch.bool)
    visible[:, :4] = True
    subset = (0, 1, 2)
    out = model(target[:, list(subset)], [bands[i] for i in subset], visible_mask=visible,
                target_a=target, target_bands_a=bands)  # fmt: skip
    plan = StepPlan(0, "a", subset, None)
    got = target_band_loss(model, out, {"target_a": target}, plan, visible, "lacking")
    # by hand: squared error of channel 3 (B08, not in the input), averaged over visible patches
    err = F.avg_pool2d((out.recon_a[:, 3:] - target[:, 3:]) ** 2, 8).flatten(1)  # (B, 16)
    torch.testing.assert_close(got, err[visible].mean())
    kept = target_band_loss(model, out, {"target_a": target}, plan, ~visible, "kept")
    # channels 0-2 (the input's), averaged over bands x pixels of each hidden patch
    err3 = F.avg_pool2d(((out.recon_a[:, :3] - target[:, :3]) ** 2).mean(1, keepdim=True), 8)
    torch.testing.assert_close(kept, err3.flatten(1)[~visible].mean())
    assert target_band_loss(model, out, {}, plan, visible, "lacking") is None  # no full target


def test_training_with_the_extra_target_losses_changes_the_loss(tiny_cfg):
    common = ("train.steps=2", "train.ckpt_every=0", "train.save_final=false",
              "data.visible_subset_p=1.0", "data.full_band_target=true")  # fmt: skip
    plain = pretrain(tiny_cfg(*common, out="plain")).losses
    scored = pretrain(tiny_cfg(*common, "train.visible_target_weight=1.0", out="scored")).losses
    assert all(torch.isfinite(torch.tensor(v)) for v in scored.values())
    assert scored[1] > plain[1]  # the same step 1, plus a non-negative extra term
    kept = pretrain(tiny_cfg(*common, "train.kept_band_weight=1.0", out="kept")).losses
    assert kept[1] > plain[1]
    with pytest.raises(ValueError, match="kept_band_weight"):
        tiny_cfg("train.kept_band_weight=-1")


def test_model_init_starts_from_saved_weights(tiny_cfg, tmp_path):
    cfg = tiny_cfg()
    donor = build_model(cfg.model)
    path = save_checkpoint(donor, tmp_path / "donor.safetensors")
    torch.manual_seed(123)
    model = build_model(cfg.model)
    init_weights(model, str(path))
    for k, v in donor.state_dict().items():
        torch.testing.assert_close(model.state_dict()[k], v)
    run = pretrain(tiny_cfg("train.steps=1", "train.ckpt_every=0", f"model.init={path}"))
    assert run.status == "completed"
    other = tiny_cfg()
    other.model.kwargs = {**cfg.model.kwargs, "embed_dim": 48}
    with pytest.raises(ValueError, match="model.init"):
        init_weights(build_model(other.model), str(path))
    with pytest.raises(FileNotFoundError, match="model.init"):
        init_weights(model, str(tmp_path / "missing.safetensors"))
