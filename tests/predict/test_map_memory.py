"""Map layers stream the scene: same values as the in-memory computation, memory bounded by a
block rather than the scene."""

import tracemalloc

import numpy as np
import pytest
import rasterio

from smartiesviz.predict import cross_spectral_prediction
from smartiesviz.predict.map_layers import SceneLayers


def _crop(cube, size):
    return cube.isel(y=slice(600, 600 + size), x=slice(700, 700 + size)).load()


def test_nir_from_rgb_layer_equals_the_in_memory_prediction(s2_rgbn, tiny_model, tmp_path):
    crop = _crop(s2_rgbn, 256)
    layer = SceneLayers(crop, "sentinel2-l1c", tiny_model, cache=tmp_path).get("NIR from RGB")
    ref = cross_spectral_prediction(crop, ["B08"], inputs=["B04", "B03", "B02"],
                                    sensor="sentinel2-l1c", model=tiny_model, progress=False)  # fmt: skip
    want = ref.prediction.values[0]
    with rasterio.open(layer.path) as src:
        got = src.read(1)
        assert (src.height, src.width) == want.shape
        assert src.transform == crop.rio.transform(recalc=True)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert (layer.vmin, layer.vmax) == pytest.approx(tuple(np.nanpercentile(want, [2, 98])))
    (score,) = ref.scores.values()  # the one target band's scores
    ratio = score["mse_ratio"]
    assert f"baseline = {ratio:.2f}" in layer.legend


def _nir_peak(cube, model, folder) -> int:
    """Peak bytes traced (numpy allocations) while the NIR-from-RGB layer of ``cube``, written to
    a GeoTIFF and opened lazily as the map does, is computed."""
    from smartiesviz.predict.embed import open_source

    folder.mkdir()
    cube.rio.to_raster(folder / "scene.tif", tiled=True)
    with rasterio.open(folder / "scene.tif", "r+") as dst:
        dst.descriptions = tuple(str(b) for b in cube.band.values)
    store = SceneLayers(open_source(folder / "scene.tif", "sentinel2-l1c"), "sentinel2-l1c", model,
                        cache=folder)  # fmt: skip
    tracemalloc.start()
    try:
        store.get("NIR from RGB")
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_nir_from_rgb_memory_does_not_grow_with_the_scene(s2_rgbn, tiny_model, tmp_path):
    small = _nir_peak(_crop(s2_rgbn, 512), tiny_model, tmp_path / "small")
    big = _nir_peak(_crop(s2_rgbn, 1024), tiny_model, tmp_path / "big")
    # holding the layer in memory (as before) grew the peak by at least its size: 3 MiB here
    grown_layer = (1024**2 - 512**2) * 4
    assert big - small < grown_layer / 2, (small, big)
