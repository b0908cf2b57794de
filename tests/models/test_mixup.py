"""Cross-sensor mixup, random masking and the sin-cos positional tables."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import smartiesviz
from smartiesviz.models.mixup import (
    check_visible_mask,
    cross_sensor_mixup,
    gather_tokens,
    random_masking,
    random_mixup_mask,
)
from smartiesviz.models.pos_embed import interpolate_pos_embed, sincos_pos_embed


def _tokens(b=4, n=20, d=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, n, d, generator=g), torch.randn(b, n, d, generator=g)


@pytest.mark.parametrize(
    "n,ratio", [(20, 0.5), (49, 0.5), (196, 0.3), (7, 0.75), (16, 0.0), (16, 1.0)]
)
def test_mirror_property_and_exact_fraction(n, ratio):
    a, b = _tokens(n=n)
    ma, mb, mask = smartiesviz.cross_sensor_mixup(
        a, b, ratio, generator=torch.Generator().manual_seed(3)
    )
    assert mask.shape == (4, n) and mask.dtype == torch.bool
    assert (mask.sum(1) == round(n * (1 - ratio))).all()
    torch.testing.assert_close(ma + mb, a + b)  # every position of a and b appears exactly once
    m = mask[..., None]
    assert torch.equal(ma, torch.where(m, a, b)) and torch.equal(mb, torch.where(m, b, a))


def test_masks_differ_per_sample_and_follow_the_generator():
    m1 = random_mixup_mask(8, 50, 0.5, torch.Generator().manual_seed(0))
    m2 = random_mixup_mask(8, 50, 0.5, torch.Generator().manual_seed(0))
    m3 = random_mixup_mask(8, 50, 0.5, torch.Generator().manual_seed(1))
    assert torch.equal(m1, m2) and not torch.equal(m1, m3)
    assert len({tuple(r.tolist()) for r in m1}) == 8


def test_as_released_keeps_b():
    a, b = _tokens()
    ma, mb, mask = cross_sensor_mixup(a, b, mode="as-released")
    assert mb is b
    assert torch.equal(ma, torch.where(mask[..., None], a, b))


def test_explicit_mixup_mask_and_errors():
    a, b = _tokens(b=2, n=5)
    mask = torch.tensor([[1, 0, 1, 1, 1], [0, 0, 0, 0, 1]], dtype=torch.bool)  # any count is fine
    ma, _, out = cross_sensor_mixup(a, b, mask=mask)
    assert out is mask and torch.equal(ma[1, 4], a[1, 4]) and torch.equal(ma[1, 0], b[1, 0])
    with pytest.raises(ValueError, match=r"shape \(2, 4\), expected \(B, N\) = \(2, 5\)"):
        cross_sensor_mixup(a, b, mask=mask[:, :4])
    with pytest.raises(TypeError, match="bool"):
        cross_sensor_mixup(a, b, mask=mask.float())
    with pytest.raises(ValueError, match="same shape"):
        cross_sensor_mixup(a, b[:, :4])
    with pytest.raises(ValueError, match="mirrored"):
        cross_sensor_mixup(a, b, mode="paper")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        cross_sensor_mixup(a, b, ratio=1.5)


def test_random_masking_gathers_visible_tokens_and_restores_order():
    x, _ = _tokens(n=36)
    res = smartiesviz.random_masking(x, 0.75, torch.Generator().manual_seed(0))
    assert res.visible.shape == (4, 9, 6)
    assert (res.visible_mask.sum(1) == 9).all()
    for i in range(4):
        pos = torch.nonzero(res.visible_mask[i]).flatten()
        assert torch.equal(res.ids_keep[i], pos)
        assert torch.equal(res.visible[i], x[i, pos])
    # unshuffle: [visible, hidden] gathered with ids_restore gives position order back
    hidden = torch.stack([x[i, ~res.visible_mask[i]] for i in range(4)])
    restored = torch.gather(
        torch.cat([res.visible, hidden], 1), 1, res.ids_restore[..., None].expand(-1, -1, 6)
    )
    assert torch.equal(restored, x)


def test_explicit_visible_mask_needs_equal_counts():
    x, _ = _tokens(b=2, n=4)
    ok = torch.tensor([[1, 0, 1, 0], [0, 1, 1, 0]], dtype=torch.bool)
    assert check_visible_mask(ok, 2, 4) == 2
    assert torch.equal(random_masking(x, visible_mask=ok).visible[1], x[1, 1:3])
    bad = torch.tensor([[1, 0, 1, 0], [0, 1, 1, 1]], dtype=torch.bool)
    with pytest.raises(ValueError, match=r"same number of positions.*\[2, 3\]"):
        random_masking(x, visible_mask=bad)


def _mae_sincos_reference(dim, gh, gw):
    """Independent numpy transcription of MAE's get_2d_sincos_pos_embed (generalised to gh x gw)."""

    def one_d(d, pos):
        omega = 1.0 / 10000 ** (np.arange(d // 2, dtype=np.float64) / (d / 2.0))
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    grid = np.stack(
        np.meshgrid(np.arange(gw, dtype=np.float32), np.arange(gh, dtype=np.float32)), 0
    )
    emb = np.concatenate([one_d(dim // 2, grid[0]), one_d(dim // 2, grid[1])], axis=1)
    return np.concatenate([np.zeros([1, dim]), emb], axis=0).astype(np.float32)


@pytest.mark.parametrize("dim,gh,gw", [(768, 14, 14), (32, 3, 5)])
def test_sincos_equals_mae_reference(dim, gh, gw):
    ours = sincos_pos_embed(dim, gh, gw, cls_token=True)[0]
    assert torch.equal(ours, torch.from_numpy(_mae_sincos_reference(dim, gh, gw)))


def test_interpolate_pos_embed():
    table = sincos_pos_embed(16, 4, 4, cls_token=True)
    assert interpolate_pos_embed(table, (4, 4)) is table
    up = interpolate_pos_embed(table, (6, 3))
    assert up.shape == (1, 1 + 18, 16) and torch.equal(up[:, 0], table[:, 0])
    const = torch.full((1, 17, 16), 2.5)
    torch.testing.assert_close(interpolate_pos_embed(const, (7, 7)), torch.full((1, 50, 16), 2.5))
    with pytest.raises(ValueError, match="square"):
        interpolate_pos_embed(torch.zeros(1, 1 + 12, 16), (3, 3))


def test_random_masking_groups_share_one_mask_per_sample():
    x, _ = _tokens(b=6, n=16)  # two groups of three samples (a' then b')
    one = random_masking(x[:3], 0.5, torch.Generator().manual_seed(2))
    res = random_masking(x, 0.5, torch.Generator().manual_seed(2), groups=2)
    assert torch.equal(res.visible_mask, one.visible_mask) and res.visible_mask.shape == (3, 16)
    assert torch.equal(res.ids_keep, one.ids_keep.repeat(2, 1))
    assert torch.equal(res.visible[3:], gather_tokens(x[3:], one.ids_keep))
    with pytest.raises(ValueError, match="5 token rows do not split into 2"):
        random_masking(x[:5], groups=2)
