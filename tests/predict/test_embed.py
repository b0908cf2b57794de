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
