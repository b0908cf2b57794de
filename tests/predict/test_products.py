"""The map products as one registry (issue 25, item 4) shared by SceneLayers, the map and
``smartiesviz layers``; SceneLayers built on a Scene (item 3)."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import rasterio

from smartiesviz.cli import main
from smartiesviz.errors import UserError
from smartiesviz.predict.map_layers import SceneLayers
from smartiesviz.predict.products import PRODUCTS, Product, available, product
from smartiesviz.spectrum import sensors as registry
from smartiesviz.spectrum.sensors import ROLES, load_sensors_yaml

from .conftest import make_cube

NAMES = ["true colour", "reconstruction", "reconstruction error", "PCA colour",
         "k-means classes", "NIR from RGB"]  # fmt: skip

THREE_BANDS = """
sensors:
  three-cam:
    description: a made-up camera with red, green and blue only
    resolution_m: 2.0
    units: DN
    roles: {blue: b1, green: b2, red: b3}
    bands:
      - {name: b1, center_nm: 490, bandwidth_nm: 60}
      - {name: b2, center_nm: 560, bandwidth_nm: 40}
      - {name: b3, center_nm: 665, bandwidth_nm: 30}
"""


@pytest.fixture
def three_cam(tmp_path, monkeypatch):
    """A made-up sensor without a NIR role, registered for the test only."""
    monkeypatch.setattr(registry, "_SENSORS", OrderedDict(registry._SENSORS))
    monkeypatch.setattr(registry, "_SENSOR_ALIASES", dict(registry._SENSOR_ALIASES))
    (tmp_path / "three-cam.yaml").write_text(THREE_BANDS)
    load_sensors_yaml(tmp_path / "three-cam.yaml")
    return "three-cam"


@pytest.fixture(scope="module")
def crop_tif(tmp_path_factory, s2_rgbn):
    """A 96 × 112 px GeoTIFF of the bundled S2 scene's blue, green, red and NIR bands."""
    crop = s2_rgbn.isel(y=slice(600, 696), x=slice(700, 812)).load()
    path = tmp_path_factory.mktemp("scene") / "crop.tif"
    crop.rio.to_raster(path)
    with rasterio.open(path, "r+") as dst:
        dst.descriptions = tuple(str(b) for b in crop.band.values)
    return path, crop


def test_registry_names_order_kinds_and_roles():
    assert list(PRODUCTS) == NAMES
    assert [p.kind for p in PRODUCTS.values()] == ["rgb", "rgb", "scalar", "rgb", "classes",
                                                   "scalar"]  # fmt: skip
    assert all(p.name == n and callable(p.build) and p.legend for n, p in PRODUCTS.items())
    assert PRODUCTS["NIR from RGB"].needs == ("nir", "red", "green", "blue")
    assert all(set(p.needs) <= set(ROLES) for p in PRODUCTS.values())
    assert product("PCA colour") is PRODUCTS["PCA colour"]
    with pytest.raises(UserError, match="unknown map product 'pca'; choose from 'true colour', "
                       "'reconstruction', .* 'NIR from RGB'"):  # fmt: skip
        product("pca")
    with pytest.raises(ValueError, match="unknown band role"):
        Product("x", "scalar", "x", PRODUCTS["true colour"].build, ("infrared",))


def test_availability_follows_the_sensor_roles_and_the_scene_bands(three_cam):
    assert available("sentinel2-l1c", ["B02", "B03", "B04", "B08"]) == NAMES
    assert available("sentinel2-l1c", ["B02", "B03", "B04"]) == NAMES[:-1]  # no B08 in the scene
    assert available(three_cam, ["b1", "b2", "b3"]) == NAMES[:-1]  # no nir role
    assert available("S1", ["VV", "VH"]) == NAMES[:-1]  # colour products: grey from VV
    reason = PRODUCTS["NIR from RGB"].missing(three_cam, ["b1", "b2", "b3"])
    assert "'three-cam' declares no 'nir' band role" in reason


def _cube(sensor: str, bands: list[str], size: int = 64):
    values = np.random.default_rng(0).uniform(0, 1000, (len(bands), size, size)).astype("float32")
    return make_cube(values, bands, sensor)


def test_scene_layers_refuses_a_product_the_sensor_cannot_have(three_cam, tiny_model, tmp_path):
    store = SceneLayers(_cube(three_cam, ["b1", "b2", "b3"]), tiny_model, cache=tmp_path)
    assert store.names == NAMES[:-1] and store.sensor == three_cam
    with pytest.raises(UserError, match=r"'three-cam' scene cannot have the 'NIR from RGB' layer: "
                       r"it needs the nir, red, green, blue band roles \(sensor 'three-cam' "
                       r"declares no 'nir' band role"):  # fmt: skip
        store.get("NIR from RGB")
    with pytest.raises(UserError, match="unknown map product 'similarity'"):
        store.get("similarity")  # not a product, and not added by the map
    assert not list(tmp_path.rglob("*.tif"))  # refused before anything was computed


def test_scene_layers_take_a_scene_or_a_cube_with_the_same_cache_key(tiny_model, tmp_path):
    from smartiesviz.data.scene import open_scene

    cube = _cube("sentinel2-l1c", ["B02", "B03", "B04", "B08"])
    scene = open_scene(cube)
    by_scene, by_cube = SceneLayers(scene, tiny_model, tmp_path), SceneLayers(cube, tiny_model,
                                                                              tmp_path)  # fmt: skip
    assert by_scene.scene is scene and by_cube.scene.cube is cube
    assert by_scene.key == by_cube.key and by_scene.folder == by_cube.folder
    assert (by_cube.sensor, by_cube.bands) == ("sentinel2-l1c", ["B02", "B03", "B04", "B08"])
    assert by_cube.names == NAMES


def test_layers_list(crop_tif, capsys):
    path, _ = crop_tif
    assert main(["layers", str(path), "--sensor", "sentinel2-l1c", "--list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "products of 'crop.tif' (sentinel2-l1c, bands B02, B03, B04, B08):"
    assert [line[2:22].rstrip() for line in out[1:]] == NAMES  # in menu order, aligned
    assert out[5].split(None, 3)[2:] == ["classes", "k-means classes of the patch embeddings"]
    # a scene without the roles: the product is listed as not available, with the reason
    assert main(["layers", str(path), "--list"]) == 2  # a file's sensor must be given
    assert "give its sensor" in capsys.readouterr().err
    assert main(["layers", "sample:bigearthnet-s1:0", "--list"]) == 0
    out = capsys.readouterr().out
    assert "not available:\n  NIR from RGB: needs the nir, red, green, blue band roles" in out


def test_layers_writes_a_product_and_refuses_to_overwrite(crop_tif, tiny_model_path, tmp_path,
                                                          capsys):  # fmt: skip
    path, crop = crop_tif
    out, cache = tmp_path / "tc.tif", tmp_path / "cache"
    args = ["layers", str(path), "true colour", "--sensor", "sentinel2-l1c", "--checkpoint",
            str(tiny_model_path), "--cache", str(cache), "--out", str(out)]  # fmt: skip
    assert main(args) == 0 and f"wrote {out}" in capsys.readouterr().out
    with rasterio.open(out) as src:
        assert (src.count, src.dtypes[0]) == (4, "uint8") and src.crs == crop.rio.crs
        assert src.transform == crop.rio.transform(recalc=True)
        red = src.read(1).astype(int)
    b04 = crop.sel(band="B04").values
    lo, hi = np.percentile(b04, [2, 98])
    assert np.abs(red - np.clip((b04 - lo) * (255 / (hi - lo)), 0, 255).astype(int)).max() <= 1
    (cached,) = cache.rglob("true-colour-*.tif")  # computed through the map's cache
    assert cached.read_bytes() == out.read_bytes()

    before = out.read_bytes()
    assert main(args) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0 and out.read_bytes() == before
    assert main([*args[:-1], str(path), "--overwrite"]) == 2  # never over its input
    assert "is an input of this job" in capsys.readouterr().err
    assert main([*args[:2], "truecolour", *args[3:]]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: unknown map product 'truecolour'; choose "
                                               "from 'true colour'")  # fmt: skip


def test_map_pca_and_kmeans_layers_are_pca_map_and_kmeans_map(crop_tif, tiny_model, tmp_path):
    """One home for each fit: the map's layers equal the in-memory maps of the same embeddings."""
    import rioxarray

    from smartiesviz.data.scene import open_scene
    from smartiesviz.predict.maps import kmeans_map, pca_map
    from smartiesviz.predict.products import rgba8

    _, crop = crop_tif
    store = SceneLayers(open_scene(crop, "sentinel2-l1c"), tiny_model, tmp_path)
    emb = rioxarray.open_rasterio(store.embeddings()).rename(band="feature").load()
    assert np.isfinite(emb.values).all()  # (every patch valid: both fits see the same rows)
    with rasterio.open(store.get("k-means classes").path) as src:
        classes = src.read(1)
    expected = kmeans_map(emb, n_clusters=6, seed=0, n_init=2).values
    np.testing.assert_array_equal(classes, expected)
    assert len(np.unique(classes)) > 1
    with rasterio.open(store.get("PCA colour").path) as src:
        rgba = src.read()
    pcs = pca_map(emb, 3, stretch=(2.0, 98.0)).values
    np.testing.assert_array_equal(rgba, rgba8(pcs, np.zeros(3), np.ones(3)))
