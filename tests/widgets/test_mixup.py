import numpy as np
import pytest

from smartiesviz.predict.inference import patch_mask_to_pixels
from smartiesviz.widgets import MixupViewer


@pytest.fixture(scope="module")
def viewer(tiny_model):
    return MixupViewer(model=tiny_model)


def test_no_argument_viewer_shows_a_pair(model):
    v = MixupViewer()
    assert v.error.message == ""
    assert v.recon_a.shape[0] == 12 and v.recon_b.shape[0] == 2  # S2 L2A and S1 keep their bands
    assert all(p.value[:4] == b"\x89PNG" for p in v.panels.values())


@pytest.mark.parametrize("ratio", [0.25, 0.5, 0.8])
def test_mixup_fraction_follows_the_slider(viewer, ratio):
    viewer.ratio.value = ratio
    n = viewer.mixup_mask.numel()
    assert int(viewer.mixup_mask.sum()) == round(n * (1 - ratio))
    assert f"{int(viewer.mixup_mask.sum())}/{n}" in viewer.summary.value


def test_mask_ratio_slider_sets_visible_count(viewer):
    viewer.mask_ratio.value = 0.5
    n = viewer.visible_mask.numel()
    assert int(viewer.visible_mask.sum()) == round(n * 0.5)


def test_new_draw_changes_seed_and_mask(viewer):
    seed, mask = viewer.seed.value, viewer.mixup_mask.clone()
    viewer.new_draw.click()
    assert viewer.seed.value == seed + 1
    assert f"<b>{seed + 1}</b>" in viewer.summary.value
    assert not bool((viewer.mixup_mask == mask).all())
    viewer.seed.value = seed  # same seed, same draw
    assert bool((viewer.mixup_mask == mask).all())


def test_mixed_images_take_each_position_from_its_source(viewer):
    viewer.mode.value = "mirrored"
    layers = viewer._layers()
    from_a = patch_mask_to_pixels(viewer.mixup_mask, viewer.size, viewer.size, viewer.patch)
    ca, cb = layers["a: S2"], layers["b: S1"]
    np.testing.assert_array_equal(layers["a' (mixed)"][from_a], ca[from_a])
    np.testing.assert_array_equal(layers["a' (mixed)"][~from_a], cb[~from_a])
    np.testing.assert_array_equal(layers["b' (mixed)"][from_a], cb[from_a])  # mirror
    np.testing.assert_array_equal(layers["b' (mixed)"][~from_a], ca[~from_a])
    vis = patch_mask_to_pixels(viewer.visible_mask, viewer.size, viewer.size, viewer.patch)
    np.testing.assert_array_equal(layers["a rebuilt (hidden)"][vis], ca[vis])
    np.testing.assert_array_equal(layers["b rebuilt (hidden)"][vis], cb[vis])
    viewer.mode.value = "as-released"
    np.testing.assert_array_equal(viewer._layers()["b' (mixed)"], cb)  # b' stays b
    viewer.mode.value = "mirrored"


def test_figure_reflects_current_draw(viewer, png_of):
    viewer.ratio.value = 0.3
    fig = viewer.figure()
    assert "mixup ratio 0.30" in fig._suptitle.get_text()
    assert len(fig.axes) == len(viewer.names)
    png_of(fig)
