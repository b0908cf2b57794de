import numpy as np
import pytest

from smartiesviz.predict.inference import patch_mask_to_pixels
from smartiesviz.render import band_label
from smartiesviz.widgets import ReconstructionExplorer, samples


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


def test_reconstruction_panel_keeps_visible_input_and_error_is_hidden_only(explorer):
    layers = explorer._layers()
    vis = patch_mask_to_pixels(explorer.visible, explorer.size, explorer.size, explorer.patch)
    np.testing.assert_array_equal(layers["reconstruction"][vis], layers["input"][vis])
    assert (layers["error (hidden)"][vis] == 0).all()
    assert layers["error (hidden)"][~vis].max() > 0


def test_band_selector_changes_panels_not_the_mask(explorer):
    explorer.sample.value = "sentinel2"
    composite_png, mask = explorer.panels["input"].value, explorer.visible.clone()
    explorer.band.value = explorer.band.options[5]
    assert explorer.panels["input"].value != composite_png
    assert bool((explorer.visible == mask).all())
    i = [band_label(b) for b in explorer.bands].index(explorer.band.value)
    np.testing.assert_allclose(
        explorer._layers()["error (hidden)"].sum(),
        ((explorer.recon[i] - explorer.x[i]) ** 2)[
            ~patch_mask_to_pixels(explorer.visible, explorer.size, explorer.size, explorer.patch)
        ].sum(),
        rtol=1e-5,
    )


def test_tile_slider_changes_input(explorer):
    x0 = explorer.x.copy()
    explorer.tile.value = 0 if explorer.tile.value else 1
    assert not np.array_equal(explorer.x, x0)


def test_user_array_with_wrong_band_count_shows_error(tiny_model):
    img = np.zeros((5, 64, 64), np.float32)
    e = ReconstructionExplorer(scene=img, sensor="sentinel2-l2a", model=tiny_model)
    assert "5 channels but 12 bands" in e.error.message
    assert e.error.layout.display is None


def test_user_array_works_with_any_checkpointed_model(tiny_model):
    rng = np.random.default_rng(0)
    img = rng.normal(size=(3, 64, 64)).astype(np.float32)
    e = ReconstructionExplorer(
        scene=img, bands=["rgb/red", "rgb/green", "rgb/blue"], model=tiny_model
    )
    assert e.error.message == ""
    assert e.recon.shape == (3, 64, 64)


def test_figure(explorer, png_of):
    explorer.mask_ratio.value = 0.75
    fig = explorer.figure()
    assert "mask ratio 0.75" in fig._suptitle.get_text()
    png_of(fig)


def test_loads_a_saved_checkpoint_by_path(tiny_model, tmp_path):
    import smartiesviz

    path = tmp_path / "tiny.safetensors"
    smartiesviz.save_checkpoint(tiny_model, path)
    e = ReconstructionExplorer("rgb", model=str(path), seed=3)
    ref = ReconstructionExplorer("rgb", model=tiny_model, seed=3)
    assert e.error.message == ""
    np.testing.assert_allclose(e.recon, ref.recon, atol=1e-6)


def test_rejects_a_non_model():
    with pytest.raises(TypeError, match="SmartiesMAE, a checkpoint path"):
        ReconstructionExplorer(model=42)


def test_first_tile_lies_in_the_models_held_out_block():
    import smartiesviz

    model = smartiesviz.smarties_vit_tiny_patch8(img_size=64).eval()
    block = {"x_start": 650, "x_stop": 1300, "y_start": 1200, "y_stop": 1942}
    model.checkpoint_info = {"metadata": {"holdout": {"sentinel2_sample": block}}}
    scene = samples.load_scene("sentinel2")
    rows, cols = samples.tile_grid(scene, 64)
    r, c = divmod(samples.default_tile(scene, 64, model), cols)
    assert block["y_start"] <= r * 64 and (r + 1) * 64 <= block["y_stop"]
    assert block["x_start"] <= c * 64 and (c + 1) * 64 <= block["x_stop"]
    assert (
        samples.default_tile(scene, 64, smartiesviz.smarties_vit_tiny_patch8(img_size=64))
        == (rows // 2) * cols + cols // 2
    )


def test_switching_sample_runs_the_model_once(explorer, tiny_model):
    calls = []
    handle = tiny_model.register_forward_hook(lambda *a: calls.append(1))
    try:
        explorer.sample.value = "rgb" if explorer.sample.value != "rgb" else "sentinel1"
    finally:
        handle.remove()
    assert explorer.error.message == ""
    assert len(calls) == 1


def test_user_dataarray_in_physical_units(tiny_model):
    from smartiesviz import data

    cube = data.landsat8_sample().isel(y=slice(100, 228), x=slice(100, 228))
    e = ReconstructionExplorer(scene=cube, model=tiny_model)
    assert e.error.message == ""
    assert e.sample.value == "custom"
    assert e.tile.max == 3  # 2 × 2 tiles of 64 px
    assert [band_label(b) for b in e.bands] == [
        "B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B10", "B11"
    ]  # fmt: skip
    assert e.progress.busy_count >= 1  # loading showed the progress bar
    assert e.progress.layout.display == "none"  # and hid it afterwards


def test_drawn_reconstruction_marks_visible_patches_and_never_shows_their_decoder_output(explorer):
    from smartiesviz.render import VISIBLE_DIM, display_rgb

    explorer.sample.value = "sentinel2"
    explorer.band.value = "composite"
    explorer.mask_ratio.value = 0.5
    drawn = explorer._panels()["reconstruction"]
    vis = patch_mask_to_pixels(explorer.visible, explorer.size, explorer.size, explorer.patch)
    inp = display_rgb(explorer.x, explorer.bands, ref=explorer.x)
    raw = display_rgb(explorer.recon, explorer.bands, ref=explorer.x)
    p = explorer.patch
    inner = np.zeros_like(vis)  # patch interiors (outlines excluded)
    for r in range(0, explorer.size, p):
        for c in range(0, explorer.size, p):
            inner[r + 1 : r + p - 1, c + 1 : c + p - 1] = True
    # visible patches: the input, dimmed; never the decoder's output there
    np.testing.assert_allclose(drawn[vis & inner], VISIBLE_DIM * inp[vis & inner], rtol=1e-5)
    assert not np.allclose(drawn[vis & inner], raw[vis & inner], atol=1e-3)
    # hidden patches: the reconstruction
    np.testing.assert_allclose(drawn[~vis], raw[~vis], rtol=1e-5)
    # visible patches are outlined in white
    edge = vis & ~inner
    assert np.all(drawn[edge] == 1.0)


def test_scene_argument_takes_a_file_a_scene_a_sample_and_the_older_spellings(tiny_model, tmp_path):
    from smartiesviz import data
    from smartiesviz.data.scene import open_scene

    cube = data.landsat8_sample().isel(y=slice(100, 164), x=slice(100, 164))
    path = tmp_path / "l8.tif"
    cube.rio.to_raster(path)
    from_file = ReconstructionExplorer(path, tiny_model, sensor="landsat8")
    from_scene = ReconstructionExplorer(open_scene(cube, "landsat8"), tiny_model)
    assert from_file.error.message == from_scene.error.message == ""
    assert from_file.sample.value == from_scene.sample.value == "custom"
    np.testing.assert_allclose(from_file.x, from_scene.x, atol=1e-5)  # the same pixels
    assert ReconstructionExplorer("sample:rgb", tiny_model).sample.value == "rgb"
    with pytest.warns(FutureWarning, match="scene="):
        old = ReconstructionExplorer(model=tiny_model, sample="landsat8")
    assert old.sample.value == "landsat8"
    with pytest.raises(TypeError, match="imagee"):
        ReconstructionExplorer(model=tiny_model, imagee=cube)
    missing = ReconstructionExplorer("sentinel3", tiny_model)  # neither a sample nor a file
    assert "'sentinel3' does not exist" in missing.error.message
