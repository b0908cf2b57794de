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


def test_embed_cli_refuses_to_overwrite_and_explains_in_cli_terms(tmp_path, scene_tif, capsys):
    path, _ = scene_tif
    out = tmp_path / "o.tif"
    out.write_bytes(b"keep me")
    args = ["embed", str(path), "--sensor", "sentinel2-l1c", "--out", str(out), "--no-progress"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "already exists; pass --overwrite to replace it" in err and "overwrite=True" not in err
    assert out.read_bytes() == b"keep me"
    assert main([*args[:-1], "--batch-size", "0"]) == 2
    assert "--batch-size must be a positive integer" in capsys.readouterr().err
    assert main(["embed", str(path), "--out", str(tmp_path / "n.tif")]) == 2
    assert "give its sensor" in capsys.readouterr().err


def test_embed_cli_keeps_a_samples_sensor(tmp_path, capsys):
    out = tmp_path / "o.tif"
    code = main(["embed", "sample:sentinel2", "--sensor", "landsat8", "--out", str(out)])
    assert code == 2 and "does not match" in capsys.readouterr().err
    assert not out.exists()


def test_cli_message_uses_option_spelling():
    from smartiesviz.predict.cli import cli_message

    msg = cli_message(ValueError("3 bands; pass bands=[...] with 3 names or sensor=..."))
    assert msg == "3 bands; pass --bands NAME ... with 3 names or --sensor NAME"
