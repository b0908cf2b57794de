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
    layer = SceneLayers(crop, tiny_model, cache=tmp_path).get("NIR from RGB")
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
    from smartiesviz.data.scene import open_scene

    folder.mkdir()
    cube.rio.to_raster(folder / "scene.tif", tiled=True)
    with rasterio.open(folder / "scene.tif", "r+") as dst:
        dst.descriptions = tuple(str(b) for b in cube.band.values)
    store = SceneLayers(open_scene(folder / "scene.tif", "sentinel2-l1c"), model, cache=folder)
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


def _embeddings_tif(path, d, ny, nx, seed=0):
    """A random ``(d, ny, nx)`` embeddings GeoTIFF laid out as ``embed_to_file`` writes it, with
    two masked (NaN) patches."""
    from affine import Affine

    from smartiesviz.predict import rasterfile

    values = np.random.default_rng(seed).normal(1.0, 1.0, (d, ny, nx)).astype("float32")
    values[:, 3, 5] = np.nan
    values[:, ny - 1, nx - 1] = np.nan
    profile = rasterfile.geotiff_profile(ny, nx, d, "float32", "EPSG:32618",
                                         Affine(80, 0, 500_000, 0, -80, 4_000_000), float("nan"))  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(values)
    return values


def test_streamed_similarity_equals_the_direct_computation(tmp_path, monkeypatch):
    from smartiesviz.predict import similarity

    monkeypatch.setattr(similarity, "BLOCK_VALUES", 3_000)  # many strips and band chunks
    values = _embeddings_tif(tmp_path / "emb.tif", 24, 70, 45)
    flat = values.reshape(24, -1).astype(np.float64)
    ok = np.isfinite(flat).all(0)
    mean = flat[:, ok].mean(1)
    np.testing.assert_allclose(similarity.mean_embedding(tmp_path / "emb.tif"), mean, rtol=1e-6)
    e = flat - mean[:, None]
    q = e[:, 10 * 45 + 20] / np.linalg.norm(e[:, 10 * 45 + 20])
    want = ((q @ e) / np.linalg.norm(e, axis=0)).reshape(70, 45)
    got = similarity.cosine_map(tmp_path / "emb.tif", values[:, 10, 20], mean)
    np.testing.assert_allclose(got.values, want, atol=1e-6)  # NaN where masked, in both
    assert np.isnan(got.values[3, 5]) and got.values[10, 20] == pytest.approx(1.0)
    blocks = list(similarity.row_blocks(tmp_path / "emb.tif"))
    assert max(b.size for _, b in blocks) <= 3_000 + 24 * 45  # bounded: at least one row
    np.testing.assert_array_equal(np.concatenate([b for _, b in blocks], 1), values)


def _similarity_peak(path, values) -> int:
    from smartiesviz.predict import similarity

    tracemalloc.start()
    try:
        similarity.cosine_map(path, values[:, 1, 1], similarity.mean_embedding(path))
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_similarity_memory_is_the_output_grid_not_the_embeddings(tmp_path, monkeypatch):
    from smartiesviz.predict import similarity

    monkeypatch.setattr(similarity, "BLOCK_VALUES", 20_000)
    small = _similarity_peak(tmp_path / "s.tif", _embeddings_tif(tmp_path / "s.tif", 32, 64, 64))
    big = _similarity_peak(tmp_path / "b.tif", _embeddings_tif(tmp_path / "b.tif", 32, 256, 256))
    # a few float64 per patch (output, dot products, norms); reading all 32 features of a
    # 64-row strip at once (as before) grew by ~12 MB here
    assert big - small < 64 * (256**2 - 64**2), (small, big)
