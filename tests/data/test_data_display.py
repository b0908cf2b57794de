"""Display composites: band choice and percentile stretch."""

from __future__ import annotations

import numpy as np
import pytest

from smartiesviz.data import composite, false_color, normalize, sar_composite, stretch, true_color


def test_stretch_maps_percentiles_to_the_ends():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 100, 3)).astype(np.float32)
    x[0, 0, 0] = np.nan
    out = stretch(x, (2, 98))
    assert out.dtype == np.uint8 and out.shape == x.shape
    for c in range(3):
        assert np.mean(out[..., c] == 255) == pytest.approx(0.02, abs=0.005)
        assert np.mean(out[..., c] == 0) == pytest.approx(0.02, abs=0.005)
    assert out[0, 0, 0] == 0
    f = stretch(x, dtype="float")
    assert f.dtype == np.float32 and 0 <= f.min() and f.max() <= 1
    with pytest.raises(ValueError, match="dtype='int'"):
        stretch(x, dtype="int")


def test_true_and_false_colour_pick_the_right_bands(s2_small, l8_scene):
    tc = true_color(s2_small)
    assert tc.shape == (200, 180, 3) and tc.dtype == np.uint8
    np.testing.assert_array_equal(tc, composite(s2_small, ["B4", "B3", "B2"]))
    red = stretch(s2_small.sel(band="B04").values)
    np.testing.assert_array_equal(tc[..., 0], red)
    fc = false_color(s2_small)
    np.testing.assert_array_equal(fc[..., 0], stretch(s2_small.sel(band="B08").values))
    # the same picture in model units (a monotonic per-band transform) up to clipping ties
    assert np.mean(true_color(normalize(s2_small)) == tc) > 0.95
    l8 = true_color(l8_scene.isel(y=slice(0, 50), x=slice(0, 60)))
    np.testing.assert_array_equal(l8[..., 2], stretch(l8_scene.sel(band="B2").values[:50, :60]))
    with pytest.raises(ValueError, match="band 'B05' is not in the cube"):
        composite(s2_small.sel(band=["B02", "B03", "B04"]), ["B05", "B03", "B02"])


def test_sar_composite(ben_pairs):
    s1 = ben_pairs[0].s1
    img = sar_composite(s1, dtype="float")
    vv, vh = s1.sel(band="VV").values, s1.sel(band="VH").values
    np.testing.assert_allclose(img[..., 2], stretch(vv - vh, dtype="float"), atol=1e-6)
    np.testing.assert_allclose(img[..., 0], stretch(vv, dtype="float"), atol=1e-6)
    lin = s1.copy()
    lin.attrs["units"] = "linear"
    with pytest.raises(ValueError, match="needs VV/VH in dB"):
        sar_composite(lin)
    with pytest.raises(ValueError, match="no true-colour bands known for 'sentinel1-grd'"):
        true_color(s1)
