import numpy as np
import pytest

from smartiesviz.predict import (
    cross_spectral_prediction,
    embed,
    kmeans_map,
    linear_probe,
    pca_map,
    probe_map,
    reconstruction_error_map,
)


@pytest.fixture(scope="module")
def emb(tiny_model, synthetic_cube):
    return embed(synthetic_cube, model=tiny_model, normalize=False, progress=False)


def test_kmeans_map_is_deterministic_and_georeferenced(emb):
    a, b = kmeans_map(emb, 5, seed=3), kmeans_map(emb, 5, seed=3)
    np.testing.assert_array_equal(a.values, b.values)
    assert a.shape == emb.shape[1:] and a.rio.crs == emb.rio.crs
    assert a.rio.transform() == emb.rio.transform()
    counts = np.bincount(a.values.ravel(), minlength=5)
    assert (np.diff(counts) <= 0).all() and counts.min() > 0  # renumbered by size
    with pytest.raises(ValueError, match="n_clusters"):
        kmeans_map(emb, 10_000)


def test_pca_map_is_deterministic_and_finds_the_dominant_direction(emb):
    a, b = pca_map(emb, seed=1), pca_map(emb, seed=1)
    np.testing.assert_array_equal(a.values, b.values)
    assert list(a.band.values) == ["pc1", "pc2", "pc3"] and a.rio.crs == emb.rio.crs
    assert 0 <= a.values.min() and a.values.max() <= 1
    # plant a strong signal along one feature direction: pc1 must follow it
    planted = emb.copy()
    signal = np.linspace(-1, 1, emb.sizes["x"])[None, :].repeat(emb.sizes["y"], 0)
    # "strong" relative to the tokens' own spread (pre-norm tokens are ~20x post-norm ones)
    total_std = float(np.sqrt(emb.values.reshape(emb.shape[0], -1).var(axis=1).sum()))
    planted.values[7] += 5 * total_std * signal
    pc1 = pca_map(planted).sel(band="pc1").values
    assert abs(np.corrcoef(pc1.ravel(), signal.ravel())[0, 1]) > 0.95


def test_reconstruction_error_map_is_seeded_and_batch_independent(tiny_model, synthetic_cube):
    kw = dict(model=tiny_model, normalize=False, progress=False, seed=4, tile_size=32)
    a = reconstruction_error_map(synthetic_cube, batch_size=5, **kw)
    assert a.shape == (12, 15) and np.isfinite(a.values).all() and (a.values > 0).all()
    assert a.attrs["mask_ratio"] == 0.75
    per_band = reconstruction_error_map(synthetic_cube, per_band=True, batch_size=16, **kw)
    assert per_band.shape == (12, 12, 15)
    # same masks whatever the batch size: the band mean reproduces the map
    np.testing.assert_allclose(per_band.mean("band").values, a.values, rtol=1e-4)


def test_cross_spectral_prediction_shapes_and_scores(tiny_model, synthetic_cube):
    res = cross_spectral_prediction(
        synthetic_cube, ["B08", "B11"], inputs=["B04", "B03", "B02"], model=tiny_model,
        normalize=False, progress=False,
    )  # fmt: skip
    assert res.prediction.shape == (2, 90, 115)
    assert res.prediction.rio.transform() == synthetic_cube.rio.transform()
    sc = res.scores["sentinel2-l2a/B08"]
    assert sc["pixels"] == 90 * 115  # mirrored padding is not scored
    assert sc["mse_ratio"] == pytest.approx(sc["mse"] / sc["baseline_mse"])
    with pytest.raises(ValueError, match="also inputs"):
        cross_spectral_prediction(synthetic_cube, ["B08"], model=tiny_model, normalize=False)


def test_probe_map_patch_and_tile_level(tiny_model, synthetic_cube, emb):
    rows = emb.values.reshape(emb.shape[0], -1).T
    labels = np.where(synthetic_cube.values[0, ::8, ::8].ravel() > 0, "high", "low")
    probe = linear_probe(rows, labels)
    m = probe_map(probe, embeddings=emb)
    assert m.shape == emb.shape[1:] and m.attrs["classes"] == "high,low"
    assert (m.values.ravel() == (probe.predict(rows) == "low")).all()
    from_cube = probe_map(probe, cube=synthetic_cube, model=tiny_model, normalize=False,
                          progress=False)  # fmt: skip
    np.testing.assert_array_equal(from_cube.values, m.values)
    proba = probe_map(probe, embeddings=emb, proba=True)
    assert proba.shape == (2, *emb.shape[1:])
    # tile level: one prediction per 64-px tile, on the tile grid
    import torch

    v = synthetic_cube.values[:, :64]
    right = np.pad(v[:, :, 64:], ((0, 0), (0, 0), (0, 128 - v.shape[2])), mode="symmetric")
    tiles = torch.from_numpy(np.stack([v[:, :, :64], right]))  # the first two tiles, as streamed
    cls = tiny_model.cls_features(tiles, "sentinel2-l2a").detach().numpy()
    tile_probe = linear_probe(cls, ["a", "b"])
    tm = probe_map(tile_probe, cube=synthetic_cube, level="cls", model=tiny_model,
                   normalize=False, progress=False)  # fmt: skip
    assert tm.shape == (2, 2)
    assert tm.rio.transform().a == synthetic_cube.rio.transform().a * 64
    np.testing.assert_array_equal(tm.values[0], [0, 1])


def test_probe_map_with_a_segmentation_head_is_pixel_level(emb):
    from smartiesviz.predict.probes import fit_segmentation_head

    f = emb.values[None, :, :8, :8]
    mask = np.zeros((1, 64, 64), int)
    mask[:, :, 32:] = 1
    head = fit_segmentation_head(f, mask, patch_size=8, epochs=5)
    m = probe_map(head, embeddings=emb)
    assert m.shape == (12 * 8, 15 * 8) and m.rio.crs == emb.rio.crs
    assert m.rio.transform().a == emb.rio.transform().a / 8
    # same logits away from the crop edge (bilinear upsampling looks half a patch across it)
    np.testing.assert_array_equal(m.values[:60, :60], head.predict(f)[0][:60, :60])
