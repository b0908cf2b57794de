"""The widgets' scenes: one simulated-RGB partner (training's), model-ready sample scenes."""

import numpy as np

from smartiesviz.widgets import samples


def test_rgb_sample_is_the_training_simulated_rgb():
    from smartiesviz import data
    from smartiesviz.data.transforms import simulate_rgb, simulated_rgb_partner

    scene = samples.load_scene("rgb")
    expected = data.normalize(simulate_rgb(data.sentinel2_sample()), "rgb")
    assert scene.sensor == "rgb" and scene.specs == ("rgb/red", "rgb/green", "rgb/blue")
    np.testing.assert_array_equal(scene.values, expected.values)
    np.testing.assert_array_equal(scene.values, simulated_rgb_partner(data.sentinel2_sample()).values)


def test_pair_rgb_partner_is_the_training_simulated_rgb():
    from smartiesviz import data
    from smartiesviz.data.transforms import simulate_rgb

    pair = samples.bigearthnet_pairs()[1]
    x, specs = samples.pair_rgb_tensor(1, pair.s2.sizes["y"])
    expected = data.normalize(simulate_rgb(pair.s2), "rgb").values
    assert specs == ["rgb/red", "rgb/green", "rgb/blue"]
    np.testing.assert_allclose(x[0].numpy(), expected, rtol=1e-6)
    # not the S2-normalised B04/B03/B02 relabelled as RGB (the old drift)
    s2, s2_specs, _, _ = samples.pair_tensors(1, pair.s2.sizes["y"])
    idx = [s2_specs.index(f"sentinel2-l2a/{b}") for b in ("B04", "B03", "B02")]
    assert not np.allclose(x[0].numpy(), s2[0, idx].numpy(), atol=1e-2)


def test_sample_scenes_are_in_model_units_with_tokenizable_bands():
    s2 = samples.load_scene("sentinel2")
    assert s2.units == "model" and s2.name == "sentinel2"
    assert len(s2.specs) == 12 and "sentinel2-l1c/B10" not in s2.specs
    assert s2.crs is not None and s2.bounds[2] > s2.bounds[0]
