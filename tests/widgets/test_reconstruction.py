import numpy as np
import pytest

from smartiesviz.widgets import ReconstructionExplorer
from smartiesviz.widgets import _common as C


@pytest.fixture(scope="module")
def explorer(tiny_model):
    return ReconstructionExplorer(model=tiny_model)


def test_no_argument_explorer_uses_sentinel2(model):
    e = ReconstructionExplorer()
    assert e.error.message == ""
    assert e.sample.value == "sentinel2"
    assert len(e.bands) == 12  # L1C without B10 (no layer)
    assert e.recon.shape == e.x.shape


@pytest.mark.parametrize(
    ("sample", "n_bands"), [("sentinel1", 2), ("landsat8", 10), ("rgb", 3), ("sentinel2", 12)]
)
def test_works_for_each_sensor(explorer, sample, n_bands):
    explorer.sample.value = sample
    assert explorer.error.message == ""
    assert explorer.recon.shape == (n_bands, explorer.size, explorer.size)
    assert explorer.band_mse.shape == (n_bands,)
    assert np.isfinite(explorer.band_mse).all()


def test_mask_ratio_slider_and_redraw(explorer):
    explorer.mask_ratio.value = 0.5
    n = explorer.visible.numel()
    assert int(explorer.visible.sum()) == round(n * 0.5)
    before, seed = explorer.visible.clone(), explorer.seed.value
    explorer.redraw.click()
    assert explorer.seed.value == seed + 1
    assert not bool((explorer.visible == before).all())


def test_pasted_panel_keeps_visible_input_and_error_is_hidden_only(explorer):
    layers = explorer._layers()
    vis = C.patch_mask_to_pixels(explorer.visible, explorer.size, explorer.size, explorer.patch)
    np.testing.assert_array_equal(layers["pasted"][vis], layers["input"][vis])
    assert (layers["error (hidden)"][vis] == 0).all()
    assert layers["error (hidden)"][~vis].max() > 0


def test_band_selector_changes_panels_not_the_mask(explorer):
    explorer.sample.value = "sentinel2"
    composite_png, mask = explorer.panels["input"].value, explorer.visible.clone()
    explorer.band.value = explorer.band.options[5]
    assert explorer.panels["input"].value != composite_png
    assert bool((explorer.visible == mask).all())
    i = [C.band_short(b) for b in explorer.bands].index(explorer.band.value)
    np.testing.assert_allclose(
        explorer._layers()["error (hidden)"].sum(),
        ((explorer.recon[i] - explorer.x[i]) ** 2)[
            ~C.patch_mask_to_pixels(explorer.visible, explorer.size, explorer.size, explorer.patch)
        ].sum(),
        rtol=1e-5,
    )


def test_tile_slider_changes_input(explorer):
    x0 = explorer.x.copy()
    explorer.tile.value = 0 if explorer.tile.value else 1
    assert not np.array_equal(explorer.x, x0)


def test_user_array_with_wrong_band_count_shows_error(tiny_model):
    img = np.zeros((5, 64, 64), np.float32)
    e = ReconstructionExplorer(image=img, sensor="sentinel2-l2a", model=tiny_model)
    assert "5 channels but 12 bands" in e.error.message
    assert e.error.layout.display is None


def test_user_array_works_with_any_checkpointed_model(tiny_model):
    rng = np.random.default_rng(0)
    img = rng.normal(size=(3, 64, 64)).astype(np.float32)
    e = ReconstructionExplorer(
        image=img, bands=["rgb/red", "rgb/green", "rgb/blue"], model=tiny_model
    )
    assert e.error.message == ""
    assert e.recon.shape == (3, 64, 64)


def test_figure(explorer, png_of):
    explorer.mask_ratio.value = 0.75
    fig = explorer.figure()
    assert "mask ratio 0.75" in fig._suptitle.get_text()
    png_of(fig)
