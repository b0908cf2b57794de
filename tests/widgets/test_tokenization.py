import numpy as np
import pytest
import torch

import smartiesviz
from smartiesviz.widgets import TokenizationExplorer


@pytest.fixture(scope="module")
def explorer(tiny_model):
    return TokenizationExplorer(model=tiny_model)


def test_token_is_scale_times_mean_and_matches_the_model(explorer, tiny_model):
    assert explorer.error.message == ""
    np.testing.assert_allclose(explorer.token, 12 * explorer.mean, rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        tokens = tiny_model.spectrum_projection(explorer.x, explorer.bands)[0]
    np.testing.assert_allclose(explorer.token, tokens[explorer.position].numpy(), atol=1e-5)


def test_band_embeddings_match_a_per_band_reference(explorer, tiny_model):
    layers = tiny_model.spectrum_projection.layers
    for c, band in enumerate(explorer.bands):
        w = smartiesviz.layer_weights(band)
        p = torch.as_tensor(explorer.patch_pixels[c]).reshape(-1)
        with torch.no_grad():
            ref = sum(float(w[i]) * layers[i](p) for i in range(17) if w[i] > 0)
        np.testing.assert_allclose(explorer.band_embeddings[c], ref.numpy(), atol=1e-5)


def test_patch_sliders_move_the_patch(explorer, png_of):
    explorer.patch_row.value, explorer.patch_col.value = 0, 0
    first = explorer.token.copy()
    explorer.patch_col.value = 3
    assert explorer.position == 3
    assert not np.allclose(first, explorer.token)
    s = explorer.patch
    np.testing.assert_array_equal(
        explorer.patch_pixels, explorer.x[0, :, :s, 3 * s : 4 * s].numpy()
    )
    png_of(explorer.figure())


def test_interpolated_band_label_shows_the_mix(tiny_model):
    e = TokenizationExplorer("landsat8", model=tiny_model)
    labels = [e.band_label(i) for i in range(len(e.bands))]
    b10 = next(lab for lab in labels if lab.startswith("B10"))
    assert "L14" in b10 and "L15" in b10 and "+" in b10


def test_bad_user_image_shows_error_panel(tiny_model):
    img = np.zeros((3, 64, 64), np.float32)
    img[0, 0, 0] = np.nan
    e = TokenizationExplorer(
        scene=img, bands=["rgb/red", "rgb/green", "rgb/blue"], model=tiny_model
    )
    assert "NaN" in e.error.message
    assert e.token is None
