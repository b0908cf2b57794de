"""Band roles and display composites in the sensor registry (issue 25, item 2).

The built-in sensors are a YAML file read by the users' loader; its content is frozen against a
snapshot of the registry taken before it moved there (``data/registry_snapshot.json``) and the
``smartiesviz sensors`` table (``data/sensors_cli.txt``). A sensor made up in one YAML file gets
true and false colour composites and the map's colour and "NIR from RGB" layers with no code.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

from smartiesviz import render
from smartiesviz.spectrum import sensors as registry
from smartiesviz.spectrum.sensors import (
    BUILTIN_SENSORS_FILE,
    ROLES,
    RoleError,
    get_sensor,
    list_sensors,
    load_sensors_yaml,
)

DATA = Path(__file__).parent / "data"
SNAPSHOT = json.loads((DATA / "registry_snapshot.json").read_text())

# The display tables the code held before the roles (data/display.py), frozen here.
OLD_TRUE_COLOR = {
    "sentinel2-l1c": ("B04", "B03", "B02"),
    "sentinel2-l2a": ("B04", "B03", "B02"),
    "landsat8": ("B4", "B3", "B2"),
    "hls": ("red", "green", "blue"),
    "rgb": ("red", "green", "blue"),
    "planetscope": ("red", "green", "blue"),
    "planetscope-superdove": ("red", "green", "blue"),
}
OLD_FALSE_COLOR = {
    "sentinel2-l1c": ("B08", "B04", "B03"),
    "sentinel2-l2a": ("B08", "B04", "B03"),
    "landsat8": ("B5", "B4", "B3"),
    "hls": ("nir_narrow", "red", "green"),
    "planetscope": ("nir", "red", "green"),
    "planetscope-superdove": ("nir", "red", "green"),
}


@pytest.fixture
def fresh_registry(monkeypatch):
    """An empty registry for the test; the package's is put back afterwards."""
    monkeypatch.setattr(registry, "_SENSORS", OrderedDict())
    monkeypatch.setattr(registry, "_SENSOR_ALIASES", {})


@pytest.fixture
def scratch_registry(monkeypatch):
    """A copy of the package's registry: sensors registered in the test vanish afterwards."""
    monkeypatch.setattr(registry, "_SENSORS", OrderedDict(registry._SENSORS))
    monkeypatch.setattr(registry, "_SENSOR_ALIASES", dict(registry._SENSOR_ALIASES))


def _dump(names: list[str]) -> dict:
    def band(b):
        return {
            **{f.name: getattr(b, f.name) for f in dataclasses.fields(b)},
            "aliases": list(b.aliases),
        }

    sensors = {}
    for name in names:
        s = get_sensor(name)
        sensors[name] = {
            "family": s.family, "resolution_m": s.resolution_m, "aliases": list(s.aliases),
            "description": s.description, "units": s.units, "bands": [band(b) for b in s.bands],
        }  # fmt: skip
    aliases = {k: v for k, v in registry._SENSOR_ALIASES.items() if v in names}
    return {"sensors": sensors, "aliases": dict(sorted(aliases.items()))}


def test_builtin_sensors_come_from_the_yaml_file_unchanged(fresh_registry):
    loaded = load_sensors_yaml(BUILTIN_SENSORS_FILE)  # the users' loader, into an empty registry
    assert [s.name for s in loaded] == list(SNAPSHOT["sensors"])  # names and order
    assert _dump(list_sensors()) == SNAPSHOT  # bands, wavelengths, ranges, aliases, units


def test_package_registry_is_the_yaml_file():
    names = list(SNAPSHOT["sensors"])
    assert list_sensors()[: len(names)] == names
    assert _dump(names) == SNAPSHOT
    assert "_register_builtins" not in vars(registry)  # no second, hand-written definition


def test_sensors_command_prints_the_same_table(capsys):
    from smartiesviz.spectrum.cli import run

    names = list(SNAPSHOT["sensors"])
    assert run(argparse.Namespace(sensor=None, scheme="inverse-distance")) == 0
    out = capsys.readouterr().out
    tables = out.split("\n\n")
    # the spectrum table and the built-in sensors (sensors registered by other tests follow)
    expected = (DATA / "sensors_cli.txt").read_text().split("\n\n")
    assert tables[: 2 + len(names)] == expected[: 2 + len(names)]


@pytest.mark.parametrize("name", list(SNAPSHOT["sensors"]))
def test_builtin_composites_are_the_old_display_tables(name):
    sensor = get_sensor(name)
    for kind, table in (("true_colour", OLD_TRUE_COLOR), ("false_colour", OLD_FALSE_COLOR)):
        if name in table:
            assert sensor.composite(kind).channels == table[name]
        else:
            with pytest.raises(RoleError, match=f"has no '{kind}' composite"):
                sensor.composite(kind)
    assert set(sensor.band_roles) <= set(ROLES)


def test_roles_of_builtin_sensors():
    s2, l8, s1 = get_sensor("S2"), get_sensor("landsat8"), get_sensor("S1")
    assert (s2.role("nir").name, s2.role("swir1").name, l8.role("pan").name) == ("B08", "B11", "B8")
    assert l8.role("thermal").name == "B10" and get_sensor("hls").role("nir").name == "nir_narrow"
    assert s1.composite("sar").channels == ("VV", "VH", ("VV", "VH"))
    with pytest.raises(RoleError, match=r"'rgb' declares no 'nir' band role .*red: red"):
        get_sensor("rgb").role("nir")
    # positions follow the image's own names and order, aliases included
    false_colour = s2.composite("false_colour").channels
    assert s2.positions(["B8", "blue", "B03", "B4"], false_colour) == [0, 3, 2]
    with pytest.raises(RoleError, match="band 'B08' of sensor 'sentinel2-l2a' is not among"):
        s2.positions(["B02", "B03", "B04"], [s2.role("nir").name])


def test_bad_roles_and_composites_are_refused(tmp_path, scratch_registry):
    def load(body: str):
        path = tmp_path / "bad.yaml"
        path.write_text("sensors:\n  bad-cam:\n    bands:\n      - {name: a, min_nm: 500, max_nm: 600}\n"
                        "      - {name: b, min_nm: 600, max_nm: 700}\n" + body)  # fmt: skip
        return load_sensors_yaml(path, overwrite=True)

    with pytest.raises(ValueError, match="unknown band role 'infrared'; roles are coastal"):
        load("    roles: {infrared: a}\n")
    with pytest.raises(ValueError, match="role 'red'.* has no band 'c'"):
        load("    roles: {red: c}\n")
    with pytest.raises(ValueError, match="composite 'x': give three channels"):
        load("    composites: {x: [a, b]}\n")
    with pytest.raises(RoleError, match="'nir' is neither a band nor a declared role"):
        load("    composites: {x: [a, b, nir]}\n")
    with pytest.raises(ValueError, match="unknown keys \\['role'\\]"):
        load("    role: {red: a}\n")
    (cam,) = load("    roles: {red: b, green: a}\n    composites: {diff: [red, green, b - a]}\n")
    assert cam.composite("diff").channels == ("b", "a", ("b", "a"))
    with pytest.raises(RoleError, match="no 'true_colour' composite: it declares no 'blue'"):
        cam.composite("true_colour")


MADE_UP = """
sensors:
  my-cam:
    description: a made-up five-band camera
    resolution_m: 2.0
    units: DN
    roles: {blue: c1, green: c2, red: c4, nir: c5}
    bands:
      - {name: c1, center_nm: 490, bandwidth_nm: 60}
      - {name: c2, center_nm: 560, bandwidth_nm: 40}
      - {name: c3, center_nm: 610, bandwidth_nm: 20}
      - {name: c4, center_nm: 665, bandwidth_nm: 30}
      - {name: c5, center_nm: 840, bandwidth_nm: 60}
"""


def _geotiff(path: Path, values: np.ndarray) -> Path:
    import rasterio
    from affine import Affine

    c, h, w = values.shape
    with rasterio.open(path, "w", driver="GTiff", height=h, width=w, count=c, dtype="float32",
                       crs="EPSG:32632", transform=Affine(2, 0, 500_000, 0, -2, 5_000_000)) as dst:  # fmt: skip
        dst.write(values)
    return path


def test_a_sensor_from_one_yaml_file_gets_colour_and_nir_layers(tmp_path, scratch_registry):
    import smartiesviz
    from smartiesviz.data import composite, false_color, true_color
    from smartiesviz.predict.embed import open_source
    from smartiesviz.predict.map_layers import SceneLayers

    (tmp_path / "my-cam.yaml").write_text(MADE_UP)
    load_sensors_yaml(tmp_path / "my-cam.yaml")  # all it takes: no code below names a band
    values = np.random.default_rng(0).uniform(0, 1000, (5, 32, 32)).astype(np.float32)
    values += np.arange(5, dtype=np.float32)[:, None, None] * 2000  # each band its own range
    cube = open_source(_geotiff(tmp_path / "scene.tif", values), "my-cam").cube
    assert [str(b) for b in cube.band.values] == ["c1", "c2", "c3", "c4", "c5"]

    # display composites: the declared bands, not the first three
    np.testing.assert_array_equal(true_color(cube), composite(cube, ["c4", "c2", "c1"]))
    np.testing.assert_array_equal(false_color(cube), composite(cube, ["c5", "c4", "c2"]))
    assert render.rgb_channels(["c1", "c2", "c3", "c4", "c5"]) == [3, 1, 0]

    # the map offers the colour and "NIR from RGB" products (the model only enters the cache key)
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = smartiesviz.smarties_vit_tiny_patch4(img_size=32).eval()
    store = SceneLayers(cube, model, cache=tmp_path / "cache")
    assert {"true colour", "NIR from RGB"} <= set(store.names)
    layer = store.get("true colour")  # no model work: the scene's own bands
    assert "c4/c2/c1" in layer.legend

    import rasterio

    with rasterio.open(layer.path) as src:
        red = src.read(1)
    lo, hi = np.percentile(values[3], [2, 98])
    expected = np.clip((values[3] - lo) * (255 / (hi - lo)), 0, 255).astype(np.uint8)
    assert np.abs(red.astype(int) - expected).max() <= 1  # layer's red channel is band c4


def test_scene_without_the_roles_is_not_offered_nir(tmp_path, scratch_registry):
    import smartiesviz
    from smartiesviz.predict.map_layers import SceneLayers, nir_from_rgb_bands, rgb_indices

    assert nir_from_rgb_bands(["B02", "B03", "B04"], "S2") is None  # the scene lacks B08
    assert nir_from_rgb_bands(["red", "green", "blue"], "rgb") is None  # the sensor lacks nir
    assert nir_from_rgb_bands(["B2", "B3", "B4", "B5", "B8"], "landsat8") == [
        "B5",
        "B4",
        "B3",
        "B2",
    ]
    assert rgb_indices(["VV", "VH"], "S1") == [0, 0, 0]  # no true colour: first band, grey
    (tmp_path / "my-cam.yaml").write_text(MADE_UP.replace(", nir: c5", ""))
    load_sensors_yaml(tmp_path / "my-cam.yaml")
    cube = _cube(np.zeros((5, 16, 16), np.float32), "my-cam")
    store = SceneLayers(cube, smartiesviz.smarties_vit_tiny_patch4(img_size=32),
                        cache=tmp_path / "cache")  # fmt: skip
    assert "true colour" in store.names and "NIR from RGB" not in store.names


def _cube(values: np.ndarray, sensor: str):
    import rioxarray  # noqa: F401  (registers .rio)
    import xarray as xr

    c, h, w = values.shape
    da = xr.DataArray(values, dims=("band", "y", "x"),
                      coords={"band": get_sensor(sensor).band_names[:c], "y": 5e6 - 2 * np.arange(h),
                              "x": 5e5 + 2 * np.arange(w)}, attrs={"sensor": sensor})  # fmt: skip
    return da.rio.write_crs("EPSG:32632")
