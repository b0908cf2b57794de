import math

import numpy as np
import pytest
import torch

from smartiesviz.predict import embed
from smartiesviz.predict.embed import auto_batch_size


def test_embed_grid_crs_and_values_match_direct_encoding(tiny_model, synthetic_cube):
    e = embed(synthetic_cube, model=tiny_model, normalize=False, progress=False)
    d = tiny_model.embed_dim
    assert e.dims == ("feature", "y", "x")
    assert e.shape == (d, math.ceil(90 / 8), math.ceil(115 / 8))
    assert e.rio.crs == synthetic_cube.rio.crs
    t, ts = e.rio.transform(), synthetic_cube.rio.transform()
    assert (t.a, t.e, t.c, t.f) == (ts.a * 8, ts.e * 8, ts.c, ts.f)
    # the first tile equals the model's own encoding of those pixels
    x = torch.from_numpy(synthetic_cube.values[:, :64, :64].copy())[None]
    with torch.no_grad():
        ref = tiny_model.patch_feature_map(
            x, [f"sentinel2-l2a/{b}" for b in synthetic_cube.band.values]
        )
    np.testing.assert_allclose(e.values[:, :8, :8], ref[0].numpy(), rtol=1e-4, atol=1e-4)


def test_embed_does_not_depend_on_batch_size(tiny_model, synthetic_cube):
    a = embed(synthetic_cube, model=tiny_model, normalize=False, progress=False, batch_size=1)
    b = embed(synthetic_cube, model=tiny_model, normalize=False, progress=False, batch_size=7)
    np.testing.assert_allclose(a.values, b.values, rtol=1e-4, atol=1e-5)


def test_embed_band_subset_and_errors(tiny_model, synthetic_cube):
    e = embed(
        synthetic_cube, model=tiny_model, bands=["b4", "B3", "B2"], normalize=False, progress=False
    )
    assert e.attrs["bands"] == "sentinel2-l2a/B04,sentinel2-l2a/B03,sentinel2-l2a/B02"
    with pytest.raises(ValueError, match="not in the cube"):
        embed(synthetic_cube, model=tiny_model, bands=["B10"], normalize=False, progress=False)
    with pytest.raises(ValueError, match="no sensor given"):
        embed(synthetic_cube.assign_attrs(sensor=None), model=tiny_model, normalize=False)
    with pytest.raises(ValueError, match="multiple of the patch size"):
        embed(synthetic_cube, model=tiny_model, tile_size=60, normalize=False)
    with pytest.raises(TypeError, match="SmartiesMAE"):
        embed(synthetic_cube, model=object(), normalize=False)


def test_auto_batch_size_follows_the_budget(tiny_model):
    small = auto_batch_size(tiny_model, 64, 12, "cpu", budget_bytes=2**20)
    large = auto_batch_size(tiny_model, 64, 12, "cpu", budget_bytes=2**30)
    assert 1 <= small < large <= 32
    assert auto_batch_size(tiny_model, 64, 12, "cpu", budget_bytes=1) == 1


def test_embed_to_file_rejects_unknown_formats_and_explains_zarr(
    tiny_model, synthetic_cube, tmp_path
):
    from smartiesviz.predict import embed_to_file

    with pytest.raises(ValueError, match=r"\.tif/\.tiff"):
        embed_to_file(synthetic_cube, tmp_path / "out.nc", model=tiny_model, normalize=False)
    try:
        import zarr  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install zarr"):
            embed_to_file(synthetic_cube, tmp_path / "out.zarr", model=tiny_model, normalize=False)
    else:
        out = embed_to_file(synthetic_cube, tmp_path / "out.zarr", model=tiny_model,
                            normalize=False, progress=False)  # fmt: skip
        import xarray as xr

        assert xr.open_zarr(out)["embedding"].shape[0] == tiny_model.embed_dim


def test_options_are_one_typed_record_and_batch_size_zero_is_explained(tiny_model, synthetic_cube):
    from smartiesviz.predict.embed import EmbedOptions

    with pytest.raises(ValueError, match="batch size must be a positive integer"):
        embed(synthetic_cube, model=tiny_model, normalize=False, batch_size=0)
    with pytest.raises(TypeError, match="unknown embed option"):
        embed(synthetic_cube, model=tiny_model, batchsize=4)
    opts = EmbedOptions(batch_size=3, normalize=False, progress=False)
    a = embed(synthetic_cube, model=tiny_model, options=opts)
    b = embed(synthetic_cube, model=tiny_model, options=opts, batch_size=5)
    np.testing.assert_allclose(a.values, b.values, rtol=1e-4, atol=1e-5)


def test_nodata_patches_are_masked_not_filled(tiny_model, synthetic_cube):
    holed = synthetic_cube.copy(data=synthetic_cube.values.copy())
    holed.values[:, 16:40, 24:48] = np.nan  # patch rows 2-4, cols 3-5 entirely nodata
    e = embed(holed, model=tiny_model, normalize=False, progress=False)
    assert np.isnan(e.values[:, 2:5, 3:6]).all()
    assert np.isfinite(e.values[:, :2]).all() and np.isfinite(e.values[:, 6:]).all()


def test_embed_to_file_streams_the_same_values_with_a_mask(tiny_model, synthetic_cube, tmp_path):
    import rasterio

    from smartiesviz.predict import embed_to_file

    holed = synthetic_cube.copy(data=synthetic_cube.values.copy())
    holed.values[:, :16, :16] = np.nan
    out = embed_to_file(holed, tmp_path / "e.tif", model=tiny_model, normalize=False,
                        progress=False, batch_size=2)  # fmt: skip
    direct = embed(holed, model=tiny_model, normalize=False, progress=False)
    with rasterio.open(out) as src:
        values = src.read()
        assert np.isnan(src.nodata) and src.crs == synthetic_cube.rio.crs
        assert src.read_masks(1)[:2, :2].max() == 0 and src.read_masks(1)[3:, 3:].min() == 255
    np.testing.assert_allclose(values, direct.values, rtol=1e-4, atol=1e-5)
    assert [p.name for p in tmp_path.iterdir()] == ["e.tif"]  # no temporary file left
    with pytest.raises(ValueError, match="already exists; pass --overwrite"):
        embed_to_file(holed, out, model=tiny_model, normalize=False)
    embed_to_file(holed, out, model=tiny_model, normalize=False, progress=False, overwrite=True)


def test_embed_to_file_warns_about_a_missing_crs(tiny_model, synthetic_cube, tmp_path):
    from smartiesviz.predict import embed_to_file

    src = tmp_path / "nocrs.tif"
    import rasterio

    with rasterio.open(src, "w", driver="GTiff", height=90, width=115, count=12,
                       dtype="float32") as dst:  # fmt: skip
        dst.write(synthetic_cube.values)
        dst.descriptions = tuple(str(b) for b in synthetic_cube.band.values)
    with pytest.warns(UserWarning, match=r"nocrs\.tif has no CRS"):
        embed_to_file(src, tmp_path / "o.tif", "sentinel2-l2a", tiny_model, normalize=False,
                      progress=False)  # fmt: skip
