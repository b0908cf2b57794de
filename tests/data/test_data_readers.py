"""Readers: multi-band GeoTIFFs, folders of single-band files, xarray cubes; clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import xarray as xr
from affine import Affine

from smartiesviz.data import from_xarray, read_geotiff

CRS = "EPSG:32633"


def _write(path, data, res=10.0, descriptions=None, nodata=None, origin=(500000.0, 5000000.0)):
    data = np.asarray(data)
    if data.ndim == 2:
        data = data[None]
    transform = Affine(res, 0, origin[0], 0, -res, origin[1])
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=data.shape[2],
        height=data.shape[1],
        count=data.shape[0],
        dtype=data.dtype,
        crs=CRS,
        transform=transform,
        nodata=nodata,
    ) as dst:
        dst.write(data)
        for i, d in enumerate(descriptions or []):
            dst.set_band_description(i + 1, d)
    return transform


def _ramp(c, h, w, dtype=np.uint16):
    return (np.arange(c * h * w).reshape(c, h, w) % 5000 + 100).astype(dtype)


def test_multiband_with_descriptions(tmp_path):
    data = _ramp(4, 8, 6)
    transform = _write(tmp_path / "s2.tif", data, descriptions=["B04", "B03", "B02", "B8"])
    with pytest.raises(ValueError, match="fit several sensors .*sentinel2-l1c.*sentinel2-l2a"):
        read_geotiff(tmp_path / "s2.tif")
    cube = read_geotiff(tmp_path / "s2.tif", sensor="S2")
    assert list(cube["band"].values) == ["B04", "B03", "B02", "B08"]
    assert cube.attrs["sensor"] == "sentinel2-l2a" and cube.attrs["units"] == "DN"
    assert cube.rio.transform() == transform and cube.rio.crs.to_string() == CRS
    np.testing.assert_array_equal(cube.values, data)
    sub = read_geotiff(tmp_path / "s2.tif", sensor="sentinel2-l2a", bands=["b08", "B4"])
    np.testing.assert_array_equal(sub.values, data[[3, 0]])
    with pytest.raises(
        ValueError, match=r"band\(s\) \['B11'\] are not in s2.tif; it holds B04, B03, B02, B08"
    ):
        read_geotiff(tmp_path / "s2.tif", sensor="sentinel2-l2a", bands=["B11"])


def test_multiband_without_descriptions(tmp_path):
    data = np.stack([np.full((5, 5), -12.0, np.float32), np.full((5, 5), -20.0, np.float32)])
    _write(tmp_path / "s1.tif", data)
    cube = read_geotiff(tmp_path / "s1.tif", sensor="sentinel1-grd")
    assert list(cube["band"].values) == ["VV", "VH"] and cube.attrs["units"] == "dB"
    named = read_geotiff(tmp_path / "s1.tif", bands=["VH", "VV"])  # names the file's bands
    assert named.attrs["sensor"] == "sentinel1-grd" and list(named["band"].values) == ["VH", "VV"]
    with pytest.raises(ValueError, match="2 bands without descriptions; pass sensor"):
        read_geotiff(tmp_path / "s1.tif")
    with pytest.raises(ValueError, match="has 2 bands without descriptions and sensor 'rgb' has 3"):
        read_geotiff(tmp_path / "s1.tif", sensor="rgb")


def test_nodata_becomes_nan(tmp_path):
    data = _ramp(3, 4, 4)
    data[1, 2, 2] = 0
    _write(tmp_path / "rgb.tif", data, descriptions=["red", "green", "blue"], nodata=0)
    cube = read_geotiff(tmp_path / "rgb.tif")
    assert cube.attrs["sensor"] == "rgb" and cube.attrs["nodata"] == 0
    assert np.isnan(cube.values[1, 2, 2]) and np.isfinite(cube.values).sum() == data.size - 1


def test_folder_of_single_band_files_mixed_resolutions(tmp_path):
    folder = tmp_path / "scene"
    folder.mkdir()
    b04 = _ramp(1, 12, 12)[0]
    _write(folder / "T33_20200101_B04_10m.tif", b04)
    _write(folder / "T33_20200101_B8A.tif", np.full((6, 6), 3000, np.uint16), res=20.0)
    _write(
        folder / "T33_20200101_B01.tif",
        np.arange(4, dtype=np.float32).reshape(2, 2) * 100,
        res=60.0,
    )
    _write(folder / "T33_20200101_SCL.tif", np.zeros((6, 6), np.uint8), res=20.0)  # not a band
    cube = read_geotiff(folder, sensor="sentinel2-l2a")
    assert list(cube["band"].values) == ["B01", "B04", "B8A"]
    assert cube.shape == (3, 12, 12) and cube.attrs["resolution"] == 10.0
    np.testing.assert_array_equal(cube.sel(band="B04").values, b04)
    np.testing.assert_array_equal(cube.sel(band="B8A").values, 3000)  # bilinear of a constant
    assert "bilinear (B01, B8A)" in cube.attrs["resampling"]
    b01 = cube.sel(band="B01").values  # bilinear: values between the 60 m pixels' values
    assert b01.min() >= 0 and b01.max() <= 300 and len(np.unique(b01)) > 4
    with pytest.raises(
        ValueError,
        match=r"unknown band\(s\) \['B13'\] for sensor 'sentinel2-l2a'; known bands: B01, B02",
    ):
        read_geotiff(folder, sensor="sentinel2-l2a", bands=["B13"])
    with pytest.raises(
        ValueError, match=r"\['B05'\] of 'sentinel2-l2a' not found; found: B01, B04, B8A"
    ):
        read_geotiff(folder, sensor="sentinel2-l2a", bands=["B05"])


def test_folder_sensor_inference_and_errors(tmp_path):
    s1 = tmp_path / "s1"
    s1.mkdir()
    _write(s1 / "patch_VV.tif", np.full((4, 4), -10.0, np.float32))
    _write(s1 / "patch_VH.tif", np.full((4, 4), -18.0, np.float32))
    cube = read_geotiff(s1)
    assert cube.attrs["sensor"] == "sentinel1-grd" and list(cube["band"].values) == ["VV", "VH"]
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="holds no raster files"):
        read_geotiff(empty)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_geotiff(tmp_path / "missing.tif")
    with pytest.raises(ValueError, match="no file name names a band of 'rgb'"):
        read_geotiff(s1, sensor="rgb")
    with pytest.raises(
        ValueError, match="unknown sensor 'sentinel7'; registered sensors: sentinel2-l1c"
    ):
        read_geotiff(s1, sensor="sentinel7")


def test_from_xarray(s2_small):
    raw = xr.DataArray(np.ones((3, 4, 5), np.float32), dims=("channel", "lat", "lon"))
    cube = from_xarray(raw, "sentinel2-l2a", bands=["b4", "B3", "near_infrared_1"])
    assert cube.dims == ("band", "y", "x") and list(cube["band"].values) == ["B04", "B03", "B08"]
    assert cube.attrs["sensor"] == "sentinel2-l2a" and cube.attrs["units"] == "DN"
    unnamed = from_xarray(xr.DataArray(np.zeros((2, 3, 3)), dims=("band", "y", "x")), "S1")
    assert list(unnamed["band"].values) == ["VV", "VH"] and unnamed.attrs["units"] == "dB"
    with pytest.raises(
        ValueError,
        match=r"unknown band\(s\) \['B13'\] for sensor 'sentinel2-l2a'; known bands: B01",
    ):
        from_xarray(raw, "sentinel2-l2a", bands=["B13", "B03", "B02"])
    with pytest.raises(ValueError, match="cannot tell which dims"):
        from_xarray(xr.DataArray(np.ones((3, 4, 5)), dims=("a", "b", "c")), "rgb")
    with pytest.raises(ValueError, match="3 unnamed bands and 'sentinel1-grd' has 2"):
        from_xarray(xr.DataArray(np.ones((3, 4, 5)), dims=("band", "y", "x")), "sentinel1-grd")
    # a georeferenced cube keeps CRS and picks up its resolution
    relabelled = from_xarray(
        s2_small.sel(band=["B02"]).assign_coords(band=["blue_1"]), "sentinel2-l1c"
    )
    assert list(relabelled["band"].values) == ["B02"] and relabelled.rio.crs == s2_small.rio.crs
    assert relabelled.attrs["resolution"] == 10.0
