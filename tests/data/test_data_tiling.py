"""Tiles with geography, batches, and stitching back into a georeferenced raster."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import rioxarray
import torch
from pyproj import Transformer

from smartiesviz.data import iter_batches, stitch, tile


def test_tiles_cover_the_scene_with_bounds(s2_small):
    ts = tile(s2_small, 64, stride=64)
    h, w = s2_small.shape[1:]  # 200 × 180: the last row/column is shifted inside
    assert [t.row for t in ts[::3]] == [0, 64, 128, 136]
    assert sorted({t.col for t in ts}) == [0, 64, 116]
    assert len(ts) == 4 * 3
    t0 = s2_small.rio.transform()
    to_geo = Transformer.from_crs(s2_small.rio.crs, "EPSG:4326", always_xy=True)
    for t in ts:
        assert ts.values(t).shape == (13, 64, 64)
        left, bottom, right, top = t.bounds
        assert (left, top) == pytest.approx((t0.c + t.col * 10, t0.f - t.row * 10))
        assert (right - left, top - bottom) == pytest.approx((640.0, 640.0))
        lon, lat = to_geo.transform((left + right) / 2, (bottom + top) / 2)
        west, south, east, north = t.bounds_wgs84
        assert west < lon < east and south < lat < north
        assert -77 < lon < -75 and 37 < lat < 38  # EPSG:32618 scene in Virginia
    da = ts.data(ts[5])
    assert da.rio.bounds() == pytest.approx(ts[5].bounds)
    np.testing.assert_array_equal(da.values, ts.values(5))


def test_stitch_round_trip_is_exact(s2_small):
    ts = tile(s2_small, 48, stride=40)  # overlapping tiles and shifted edges
    out = stitch([ts.values(t) for t in ts], ts)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out.values, s2_small.values)
    assert list(out["band"].values) == list(s2_small["band"].values)
    assert out.rio.transform() == s2_small.rio.transform() and out.rio.crs == s2_small.rio.crs
    assert int(out["coverage"].max()) == 4 and int(out["coverage"].min()) == 1
    # a batch tensor (N, C, h, w) works the same
    batch = torch.from_numpy(np.stack([ts.values(t) for t in ts]))
    np.testing.assert_array_equal(stitch(batch, ts).values, s2_small.values)


def test_stitch_coarser_outputs_such_as_patch_embeddings(s2_small):
    ts = tile(s2_small, 32, stride=32, edge="pad")  # 200 × 180 → 7 × 6 tiles, NaN padding
    assert len(ts) == 7 * 6 and ts.values(len(ts) - 1).shape == (13, 32, 32)
    assert np.isnan(ts.values(len(ts) - 1)[:, -1, -1]).all()
    patch = 8  # a "patch token" per 8 × 8 pixels: the block mean of band B04

    def block_mean(x):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN padding blocks
            return np.nanmean(x[3].reshape(4, patch, 4, patch), axis=(1, 3))[None]

    outs = [block_mean(ts.values(t)) for t in ts]
    emb = stitch(outs, ts, bands=["feat"])
    assert emb.shape == (1, 25, 23)  # ceil(200/8), ceil(180/8)
    assert emb.rio.resolution() == pytest.approx((80.0, -80.0))
    assert emb.rio.bounds()[:1] == pytest.approx(s2_small.rio.bounds()[:1])
    b04 = s2_small.sel(band="B04").values
    np.testing.assert_allclose(emb.values[0, 2, 3], b04[16:24, 24:32].mean(), rtol=1e-5)
    shifted = tile(s2_small, 32, stride=32)  # edge="shift": last tiles start at 168 and 148
    with pytest.raises(ValueError, match="not on the output's 8-pixel grid"):
        stitch([block_mean(shifted.values(t)) for t in shifted], shifted)


def test_edges_drop_and_errors(s2_small):
    assert len(tile(s2_small, 64, edge="drop")) == 3 * 2
    with pytest.raises(ValueError, match="smaller than the tile size"):
        tile(s2_small, 256)
    with pytest.raises(ValueError, match="edge='middle'"):
        tile(s2_small, 64, edge="middle")
    ts = tile(s2_small, 64)
    with pytest.raises(ValueError, match="11 outputs for 12 tiles"):
        stitch([ts.values(t) for t in ts][:-1], ts)


def test_iter_batches(s2_small):
    ts = tile(s2_small, 64)
    batches = list(iter_batches(ts, batch_size=5))
    assert [b.x.shape[0] for b in batches] == [5, 5, 2]
    assert isinstance(batches[0].x, torch.Tensor) and batches[0].x.dtype == torch.float32
    assert [t.index for b in batches for t in b.tiles] == list(range(len(ts)))
    np.testing.assert_array_equal(batches[1].x[2].numpy(), ts.values(7))
    assert isinstance(next(iter_batches(ts, 2, as_tensor=False)).x, np.ndarray)


def test_geotiff_of_a_tile_keeps_its_georeference(s2_small, tmp_path):
    ts = tile(s2_small, 64)
    t = ts[4]
    path = tmp_path / "tile.tif"
    ts.data(t).rio.to_raster(path)
    back = rioxarray.open_rasterio(path)
    assert back.rio.crs == s2_small.rio.crs
    assert back.rio.transform() == t.transform
    assert back.rio.bounds() == pytest.approx(t.bounds)
    np.testing.assert_array_equal(back.values, ts.values(t))


def test_full_tiles_are_the_drop_grid_of_tile(s2_small):
    from smartiesviz.data.tiling import full_tiles, tile, tile_values

    rows, cols = full_tiles(200, 180, 64)
    ts = tile(s2_small, 64, edge="drop")
    assert rows * cols == len(ts) == 6
    values = s2_small.values
    for i, t in enumerate(ts):
        np.testing.assert_array_equal(tile_values(values, i, 64), ts.values(t))
    with pytest.raises(ValueError, match="tile 6 out of range"):
        tile_values(values, 6, 64)
