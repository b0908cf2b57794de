"""Scenes: one record (cube, sensor, bands, geography) opened from a cube, a file, a folder or a
sample; the one sensor lookup."""

from __future__ import annotations

import numpy as np
import pytest

from smartiesviz.data.scene import Scene, open_scene


def test_open_scene_from_cube_file_and_folder_agree(s2_small, tmp_path):
    cube = s2_small.sel(band=["B02", "B03", "B04", "B08"])
    path = tmp_path / "scene.tif"
    cube.assign_attrs(long_name=tuple(cube.band.values.tolist())).rio.to_raster(path)
    folder = tmp_path / "bands"
    folder.mkdir()
    for b in cube.band.values:
        cube.sel(band=[b]).rio.to_raster(folder / f"scene_{b}.tif")
    scenes = [
        open_scene(cube),
        open_scene(path, sensor="sentinel2-l1c"),
        open_scene(folder, sensor="sentinel2-l1c"),
    ]
    for s in scenes:
        assert s.sensor == "sentinel2-l1c"
        assert s.bands == ("B02", "B03", "B04", "B08")
        assert s.crs == cube.rio.crs and s.shape == (200, 180)
        assert s.bounds == pytest.approx(scenes[0].bounds)
        np.testing.assert_array_equal(s.values, cube.values.astype(np.float32))
    assert scenes[1].name == "scene.tif"


def test_missing_path_and_unknown_source_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.tif"):
        open_scene(tmp_path / "nothere.tif", sensor="landsat8")
    with pytest.raises(TypeError, match="cannot open a scene from int"):
        open_scene(3)
    with pytest.raises(ValueError, match="bundled BigEarthNet pairs are 0.."):
        open_scene("bigearthnet:99")


def test_select_and_for_model(s2_small):
    scene = open_scene(s2_small, bands=["b4", "B10", "B8"])
    assert scene.bands == ("B04", "B10", "B08")
    model = scene.for_model()
    assert model.units == "model" and model.bands == ("B04", "B08")  # B10 has no layer
    assert model.specs == ("sentinel2-l1c/B04", "sentinel2-l1c/B08")


def test_scene_record_checks_its_parts(s2_small):
    with pytest.raises(ValueError, match="dims"):
        Scene.from_cube(s2_small.isel(band=0))
    s = Scene.from_cube(s2_small)
    with pytest.raises(ValueError, match="2 band specs for 13 bands"):
        Scene(s.cube, s.sensor, s.bands, s.crs, s.transform, s.bounds, specs=("a", "b"))


def test_one_sensor_lookup(s2_small):
    from smartiesviz.data.bands import cube_sensor

    assert cube_sensor(s2_small) == "sentinel2-l1c"
    assert cube_sensor(s2_small, "S2-L1C") == "sentinel2-l1c"
    assert cube_sensor(s2_small.assign_attrs(sensor=None), default="landsat8") == "landsat8"
    with pytest.raises(ValueError, match="no sensor given"):
        cube_sensor(s2_small.assign_attrs(sensor=None))
    with pytest.raises(ValueError, match="unknown sensor 'nope'"):
        cube_sensor(s2_small, "nope")
