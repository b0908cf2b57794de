"""`smartiesviz embed` on a GeoTIFF cut from the bundled Sentinel-2 scene."""

import math

import numpy as np
import pytest
import rasterio

from smartiesviz.cli import main


@pytest.fixture(scope="module")
def scene_tif(tmp_path_factory, s2_rgbn):
    crop = s2_rgbn.isel(y=slice(0, 150), x=slice(0, 203))
    path = tmp_path_factory.mktemp("scene") / "s2_crop.tif"
    crop.rio.to_raster(path)
    with rasterio.open(path, "r+") as dst:
        dst.descriptions = tuple(str(b) for b in crop.band.values)
    return path, crop


def test_embed_cli_writes_georeferenced_patch_grid(tmp_path, scene_tif, tiny_model_path, capsys):
    path, crop = scene_tif
    out = tmp_path / "emb.tif"
    code = main(["embed", str(path), "--sensor", "sentinel2-l1c", "--checkpoint",
                 str(tiny_model_path), "--out", str(out), "--no-progress"])  # fmt: skip
    assert code == 0 and "wrote" in capsys.readouterr().out
    with rasterio.open(out) as src:
        assert src.crs == crop.rio.crs
        t, ts = src.transform, crop.rio.transform()
        assert (t.a, t.e, t.c, t.f) == pytest.approx((ts.a * 8, ts.e * 8, ts.c, ts.f))
        assert (src.height, src.width) == (math.ceil(150 / 8), math.ceil(203 / 8))
        assert src.count == 192 and src.dtypes[0] == "float32"
        values = src.read()
    from smartiesviz.predict import embed

    direct = embed(crop, model=str(tiny_model_path), progress=False)
    np.testing.assert_allclose(values, direct.values, rtol=1e-4, atol=1e-5)


def test_embed_cli_reports_bad_input(tmp_path, scene_tif, capsys):
    path, _ = scene_tif
    assert main(["embed", str(tmp_path / "missing.tif"), "--sensor", "S2", "--out", "x.tif"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert (
        main(["embed", str(path), "--sensor", "sentinel2-l1c", "--out", str(tmp_path / "x.png")])
        == 2
    )
    assert ".tif" in capsys.readouterr().err
