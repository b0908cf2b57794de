"""The user's own files: complex dtypes, FIFOs, band names of another sensor, a missing sensor,
and an 8-bit RGB export with a no-data border (issue 28, part F)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine

from smartiesviz import data
from smartiesviz.cli import main as cli
from smartiesviz.data.readers import make_cube, read_geotiff
from smartiesviz.data.scene import open_scene
from smartiesviz.errors import UserError
from smartiesviz.outputs import file_sha256

TRANSFORM = Affine(10.0, 0, 500_000, 0, -10.0, 4_000_000)


def _write(path, values, descriptions=None, nodata=None, crs="EPSG:32618", transform=TRANSFORM):
    c, h, w = values.shape
    with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=c,
                       dtype=values.dtype, crs=crs, transform=transform, nodata=nodata) as dst:  # fmt: skip
        dst.write(values)
        for i, d in enumerate(descriptions or []):
            dst.set_band_description(i + 1, d)
    return path


def _embed(capsys, *args):
    rc = cli(["embed", *map(str, args), "--no-progress"])
    return rc, capsys.readouterr().err


def test_complex_rasters_are_refused_naming_file_dtype_and_fix(tmp_path, capsys):
    z = (np.ones((2, 8, 8)) + 1j * np.ones((2, 8, 8))).astype(np.complex64)
    path = _write(tmp_path / "slc.tif", z)
    folder = tmp_path / "bands"
    folder.mkdir()
    _write(folder / "s1_VV.tif", z[:1])
    _write(folder / "s1_VH.tif", np.ones((1, 8, 8), np.float32))
    for call in (lambda: read_geotiff(path, sensor="S1"), lambda: open_scene(path, "S1"),
                 lambda: read_geotiff(folder)):  # fmt: skip
        with pytest.raises(UserError, match=r"holds complex64 bands .* convert it first"):
            call()
    rc, err = _embed(capsys, path, "--sensor", "S1", "--out", tmp_path / "e.tif")
    assert rc == 2 and "slc.tif" in err and "complex64" in err and "dB" in err
    assert not (tmp_path / "e.tif").exists()


@pytest.mark.timeout(20)
def test_fifos_are_refused_before_opening(tmp_path, capsys):
    fifo = tmp_path / "scene.tif"
    os.mkfifo(fifo)
    folder = tmp_path / "bands"
    folder.mkdir()
    _write(folder / "s2_B03.tif", np.ones((1, 8, 8), np.uint16))
    os.mkfifo(folder / "s2_B04.tif")
    calls = (
        lambda: read_geotiff(fifo, sensor="rgb"),
        lambda: open_scene(fifo, sensor="rgb"),
        lambda: read_geotiff(folder, sensor="sentinel2-l2a"),
        lambda: open_scene(folder, sensor="sentinel2-l2a"),
        lambda: data.readers.read_band_files({"B04": folder / "s2_B04.tif"}, "sentinel2-l2a"),
    )
    for call in calls:
        with pytest.raises(UserError, match=r"\.tif' is a FIFO \(named pipe\), not a regular file"):
            call()
    rc, err = _embed(capsys, fifo, "--sensor", "rgb", "--out", tmp_path / "e.tif")
    assert rc == 2 and "is a FIFO" in err


def test_sentinel2_band_names_are_not_read_as_landsat8(tmp_path, capsys):
    values = np.arange(4 * 8 * 8, dtype=np.uint16).reshape(4, 8, 8)
    path = _write(tmp_path / "s2.tif", values, ["B02", "B03", "B04", "B08"])
    before = file_sha256(path)
    pattern = (r"s2\.tif: its bands are named B02, B03, B04, B08 and they are sentinel2-l1c / "
               r"sentinel2-l2a band names; 'landsat8' would read B02 as B2, .*B08 as B8 \(bands "
               r"of 'landsat8': B1, B2, .*B11\)\. The likely sensor is sentinel2-l1c or "
               r"sentinel2-l2a: pass --sensor sentinel2-l1c")  # fmt: skip
    for call in (lambda: read_geotiff(path, sensor="landsat8"),
                 lambda: open_scene(path, sensor="landsat8")):  # fmt: skip
        with pytest.raises(UserError, match=pattern):
            call()
    rc, err = _embed(capsys, path, "--sensor", "landsat8", "--out", tmp_path / "e.tif")
    assert rc == 2 and "likely sensor is sentinel2" in err and "B08 as B8" in err
    # the right sensor reads them; a user who insists names every band in order
    assert open_scene(path, sensor="sentinel2-l2a").bands == ("B02", "B03", "B04", "B08")
    named = open_scene(path, sensor="landsat8", bands=["B2", "B3", "B4", "B5"])
    assert named.bands == ("B2", "B3", "B4", "B5")
    # positional reading only without band names
    plain = _write(tmp_path / "plain.tif", values)
    assert read_geotiff(plain, "landsat8", bands=["B2", "B3", "B4", "B5"]).sizes["band"] == 4
    assert file_sha256(path) == before


def test_missing_sensor_message_names_the_option_and_fits_the_file(tmp_path, capsys):
    cases = [
        (np.ones((3, 8, 8), np.uint8), "rgb"),
        (np.ones((2, 8, 8), np.float32), "sentinel1-grd"),
        (np.ones((12, 8, 8), np.uint16), "sentinel2-l2a"),
        (np.ones((13, 8, 8), np.uint16), "sentinel2-l1c"),
        (np.ones((4, 8, 8), np.uint16), "planetscope"),
    ]
    for i, (values, sensor) in enumerate(cases):
        path = _write(tmp_path / f"f{i}.tif", values)
        for call in (read_geotiff, open_scene):
            with pytest.raises(ValueError) as info:
                call(path)
            msg = str(info.value)
            assert f"--sensor {sensor} " in msg and f"sensor={sensor!r}" in msg, msg
            assert sensor == "sentinel2-l2a" or "sentinel2-l2a" not in msg, msg
    rc, err = _embed(capsys, tmp_path / "f0.tif", "--out", tmp_path / "e.tif")
    assert rc == 2 and "give its sensor" in err and "--sensor rgb" in err
    five = _write(tmp_path / "five.tif", np.ones((5, 8, 8), np.uint16))
    with pytest.raises(ValueError, match=r"--sensor NAME .*sensor='NAME' .*no registered sensor "
                       r"has 5 bands.*registered sensors: sentinel2-l1c"):  # fmt: skip
        open_scene(five)


def _rgb8_and_native(tmp_path):
    """An 8-bit RGB export of a held-out area of the S2 sample (global 2–98 % stretch),
    reprojected to EPSG:4326 with a no-data border (nodata=0), and the same area's reflectance
    warped to the same grid."""
    from rasterio.warp import Resampling, calculate_default_transform, reproject

    crop = (
        data.sentinel2_sample()
        .sel(band=["B04", "B03", "B02"])
        .isel(y=slice(100, 356), x=slice(700, 1212))
    )
    v = crop.values
    lo, hi = np.percentile(v, (2, 98))
    u8 = np.clip(np.round((v - lo) / (hi - lo) * 254 + 1), 1, 255).astype(np.uint8)
    tr, w, h = calculate_default_transform(crop.rio.crs, "EPSG:4326", 512, 256, *crop.rio.bounds())

    def warp(a, nodata):
        out = np.full((3, h, w), nodata, a.dtype)
        reproject(a, out, src_transform=crop.rio.transform(), src_crs=crop.rio.crs,
                  dst_transform=tr, dst_crs="EPSG:4326", resampling=Resampling.bilinear,
                  src_nodata=None if np.isnan(nodata) else nodata, dst_nodata=nodata)  # fmt: skip
        return out

    rgb8 = warp(u8, 0)
    path = _write(tmp_path / "my_rgb.tif", rgb8, nodata=0, crs="EPSG:4326", transform=tr)
    refl = warp((v / 10000).astype(np.float32), np.float32(np.nan))
    native = make_cube(refl, tr, "EPSG:4326", ["B04", "B03", "B02"],
                       {"sensor": "sentinel2-l1c", "units": "reflectance"})  # fmt: skip
    return path, native, ~(rgb8 == 0).any(0)


def test_8bit_rgb_with_nodata_border_reconstructs_like_the_native_bands(tmp_path):
    import smartiesviz
    from smartiesviz.training.evaluate import masked_recon_score

    path, native, valid = _rgb8_and_native(tmp_path)
    assert 0 < (~valid).sum() and valid.any()  # a real no-data border
    scene = open_scene(path, sensor="rgb")
    with pytest.warns(data.preprocess.NodataWarning):
        model_units = scene.for_model()
    z = model_units.values
    # nodata: out of the statistics (p1 is the valid pixels' low end, not the 0 fill), filled
    # with 0 for the model, masked in displays
    assert model_units.cube.attrs["stats"] == "RGB, 8-bit image range"
    assert all(p1 >= 1 for p1 in model_units.cube["stats_p1"].values)  # 1 % are nodata
    assert np.array_equal(model_units.cube["valid"].values, valid)
    assert np.all(z[:, ~valid] == 0) and np.isfinite(z).all()
    # the export's contrast stretch is undone: the valid pixels reach the model with the per-band
    # mean/spread of the simulated RGB the demo was trained on (not the export's 3x wider one)
    target = np.array([data.preprocess.SIMULATED_RGB_Z[b] for b in ("red", "green", "blue")])
    np.testing.assert_allclose(z[:, valid].mean(1), target[:, 0], atol=0.03)
    np.testing.assert_allclose(z[:, valid].std(1), target[:, 1], atol=0.03)
    rgb = data.true_color(model_units.cube)
    assert rgb[~valid].max() == 0 and rgb[valid].mean() > 60
    nan_rgb = np.where(valid[..., None], rgb / 255.0, np.nan)
    assert (smartiesviz.render.to_rgba8(nan_rgb)[..., 3] == np.where(valid, 255, 0)).all()

    size = 64
    tiles = [(r, c) for r in range(0, z.shape[1] - size + 1, size)
             for c in range(0, z.shape[2] - size + 1, size) if valid[r : r + size, c : c + size].all()]  # fmt: skip
    assert len(tiles) >= 12

    def ratio(x, bands):
        x = torch.from_numpy(np.stack([x[:, r : r + size, c : c + size] for r, c in tiles]))
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with torch.no_grad():
                return masked_recon_score(model, x, bands, seed=0).ratio
        finally:
            torch.set_num_threads(threads)

    model = smartiesviz.load_demo_model()
    own = ratio(z, list(model_units.specs))
    ref = ratio(open_scene(native).for_model().values, [f"sentinel2-l1c/{b}" for b in ("B04", "B03", "B02")])  # fmt: skip
    print(f"\nmasked-reconstruction ratio: 8-bit RGB file {own:.3f}, native S2 bands {ref:.3f}, "
          f"{own / ref:.3f}")  # fmt: skip
    assert own / ref < 1.10
