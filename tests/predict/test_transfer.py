import numpy as np
import pytest
import torch

from smartiesviz import layer_weights
from smartiesviz.models.tokenizer import patchify
from smartiesviz.predict.transfer import (
    INTERPOLATION_SCHEMES,
    compare_sensors,
    landsat8_bands,
    matched_bands,
    scheme_weights,
    thermal_comparison,
)

B12_LAYER, VV_LAYER = 14, 15


@pytest.mark.parametrize("scheme", INTERPOLATION_SCHEMES)
def test_tirs_tokens_follow_the_interpolation_scheme(tiny_model, scheme):
    rb = landsat8_bands(scheme)
    assert rb.names == ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B10", "B11"]
    for name in ("B10", "B11"):
        torch.testing.assert_close(
            rb.weights[rb.names.index(name)], layer_weights(f"landsat8/{name}", scheme)
        )
    # OLI B2 has no learned range: the nearest learned layer serves it alone
    assert (rb.weights[1] > 0).sum() == 1
    torch.manual_seed(0)
    x = torch.randn(2, 9, 16, 16)
    proj = tiny_model.spectrum_projection
    with torch.no_grad():
        emb = proj.band_embeddings(x, rb)  # (B, N, C, D)
        p10 = patchify(x[:, 7:8], 8)[:, :, 0]  # B10 patches (B, N, S²)
        per_layer = {i: proj.layers[i](p10) for i in (B12_LAYER, VV_LAYER)}
    w = rb.weights[7]
    expected = w[B12_LAYER] * per_layer[B12_LAYER] + w[VV_LAYER] * per_layer[VV_LAYER]
    torch.testing.assert_close(emb[:, :, 7], expected, rtol=1e-4, atol=1e-5)
    # what each scheme says: inverse-distance ≈ S2 B12 layer, as-released ≈ S1 VV layer
    nearest = {"inverse-distance": B12_LAYER, "as-released": VV_LAYER}.get(scheme)
    if nearest is not None:
        cos = torch.nn.functional.cosine_similarity(emb[:, :, 7], per_layer[nearest], dim=-1)
        assert cos.min() > 0.999
    else:  # log-wavelength: a real mix of both
        assert 0.1 < float(w[VV_LAYER]) < 0.3 and 0.7 < float(w[B12_LAYER]) < 0.9


def test_scheme_weights_table():
    table = scheme_weights("landsat8/B10")
    assert set(table) == set(INTERPOLATION_SCHEMES)
    assert table["as-released"]["microwave_1"] > 0.99
    assert table["inverse-distance"]["short_wave_infrared_4"] > 0.99


def test_matched_bands_pair_the_same_spectral_ranges():
    pairs = {b: a for a, b, _ in matched_bands("sentinel2-l1c", "landsat8")}
    assert pairs["B2"] == "B02" and pairs["B3"] == "B03" and pairs["B4"] == "B04"
    assert pairs["B5"] == "B8A" and pairs["B6"] == "B11" and pairs["B7"] == "B12"
    assert "B10" not in pairs and "B9" not in pairs  # no S2 thermal; cirrus has no layer


@pytest.fixture(scope="module")
def l8():
    from smartiesviz import data

    return data.landsat8_sample(bands=["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B10", "B11"])


def test_thermal_comparison_mechanics(tiny_model, l8):
    res = thermal_comparison(l8, tiny_model, max_tiles=4)
    assert [r["scheme"] for r in res.rows] == list(INTERPOLATION_SCHEMES) and res.tiles == 4
    for r in res.rows:
        assert all(np.isfinite(float(v)) for k, v in r.items() if k != "scheme")
        assert r["token_shift"] > 0 and -1 <= r["pooled_cosine"] <= 1
    shifts = [r["token_shift"] for r in res.rows]
    assert len(set(np.round(shifts, 6))) == 3  # the schemes give different tokens
    assert "inverse-distance" in res.table()


def test_compare_sensors_mechanics(tiny_model, l8, s2_rgbn):
    res = compare_sensors(s2_rgbn, l8, tiny_model, max_tiles=6)
    assert [(a, b) for a, b, _ in res.pairs] == [("B02", "B2"), ("B03", "B3"), ("B04", "B4")]
    assert res.tiles == 6 and 0 <= res.sensor_accuracy <= 1
    assert -1 <= res.centroid_cosine <= 1 and res.within_nn_a <= 1
