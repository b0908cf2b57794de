"""The held-out scorer: its ratio, oracle and interpolation references on predictors we can reason about."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from smartiesviz.training.evaluate import interpolate_visible_means, masked_recon_score


class _Predictor:
    """Stands in for a SmartiesMAE: returns ``fill(x, pixel_visible)`` as the reconstruction."""

    def __init__(self, patch: int, fill) -> None:
        self.patch_size = patch
        self.fill = fill

    def __call__(self, x, bands, visible_mask, mask_ratio):
        b, _, h, w = x.shape
        s = self.patch_size
        pix = F.interpolate(visible_mask.reshape(b, 1, h // s, w // s).float(), scale_factor=s)
        return SimpleNamespace(recon_a=self.fill(x, pix))


def _visible_mean(x: torch.Tensor, pix: torch.Tensor) -> torch.Tensor:
    return ((x * pix).sum((-2, -1), keepdim=True) / pix.sum((-2, -1), keepdim=True)).expand_as(x)


def _smooth(n: int, size: int, seed: int, cells: int = 3) -> torch.Tensor:
    """Two-band fields varying over ``size / cells`` pixels (bicubic upsampling of noise)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(n, 2, cells, cells, generator=g)
    return F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)


def test_ratio_is_zero_for_the_truth_and_one_for_the_baseline() -> None:
    x = _smooth(6, 64, 0)
    perfect = masked_recon_score(_Predictor(8, lambda x, pix: x), x, ["a", "b"])
    baseline = masked_recon_score(_Predictor(8, _visible_mean), x, ["a", "b"])
    assert perfect.ratio == 0.0 and perfect.images == 6
    assert abs(baseline.ratio - 1.0) < 1e-6
    # the references do not depend on the predictor
    assert perfect.oracle_se == baseline.oracle_se and perfect.interp_se == baseline.interp_se
    assert 0.0 < perfect.oracle_ratio < perfect.interp_ratio < 1.0  # smooth fields interpolate well
    # 75 % of the 64 patches hidden: 48 patches of 64 px, 2 bands, 6 images
    assert perfect.pixels == 48 * 64 * 2 * 6


def test_interpolation_reproduces_constants_and_symmetric_ramps() -> None:
    x = torch.full((1, 3, 32, 32), 2.5)
    visible = torch.rand(1, 4, 4) < 0.5
    visible[0, 0, 0] = True
    out = interpolate_visible_means(F.avg_pool2d(x, 8), visible)
    assert torch.allclose(out, torch.full((1, 3, 4, 4), 2.5))
    with pytest.raises(ValueError, match=r"visible must be \(B, h, w\) = \(1, 4, 4\).*got \(1, 4, 5\)"):
        interpolate_visible_means(F.avg_pool2d(x, 8), torch.ones(1, 4, 5))
    ramp = torch.arange(80.0).repeat(80, 1)[None, None]  # rises along x, patch means 2, 7, 12, ...
    visible = torch.ones(1, 16, 16, dtype=torch.bool)
    visible[0, 8, 8] = False  # interior: its neighbours (4 patches each way) are symmetric
    out = interpolate_visible_means(F.avg_pool2d(ramp, 5), visible)  # pixels 40:45 are patch (8, 8)
    assert abs(float(out[0, 0, 8, 8]) - 42.0) < 1e-4


def test_smaller_patches_make_interpolation_easier() -> None:
    # why the interpolation column exists: ratios compare across models of one patch size only
    x = _smooth(8, 64, 1)
    coarse = masked_recon_score(_Predictor(8, _visible_mean), x, ["a", "b"])
    fine = masked_recon_score(_Predictor(4, _visible_mean), x, ["a", "b"])
    assert fine.interp_ratio < 0.8 * coarse.interp_ratio
    assert fine.oracle_ratio < coarse.oracle_ratio
