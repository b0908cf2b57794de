import numpy as np
import pytest

from smartiesviz.widgets import BandLab


@pytest.fixture(scope="module")
def lab(tiny_model):
    return BandLab(model=tiny_model)


def test_full_band_input_has_no_drift(lab):
    assert lab.error.message == ""
    assert len(lab.config) == 12
    np.testing.assert_allclose(lab.token_similarity, 1.0, atol=1e-5)
    assert abs(lab.drift["pooled"]) < 1e-5
    np.testing.assert_allclose(lab.probe_full, lab.probe_edit, atol=1e-6)


def test_dropping_bands_changes_tokens_and_embedding(lab):
    lab.active.value = tuple(range(6))
    assert [ch for ch, _ in lab.config] == list(range(6))
    assert "dropped" in lab.config_html.value
    assert lab.token_similarity.mean() < 0.999
    assert lab.drift["pooled"] > 1e-4
    lab.reset.click()
    assert abs(lab.drift["pooled"]) < 1e-5


def test_swap_and_replace(lab):
    lab.swap_a.value, lab.swap_b.value = 1, 7  # B02 data labelled as B08 and vice versa
    lab.swap.click()
    assert lab.config[1][1].endswith("B08") and lab.config[7][1].endswith("B02")
    assert lab.drift["pooled"] > 1e-4
    lab.reset.click()
    lab.replace_which.value = 3
    lab.replace_min.value, lab.replace_max.value = 1100.0, 1250.0
    lab.replace.click()
    assert lab.config[3][1] == (1100.0, 1250.0)
    assert lab.error.message == ""
    assert lab.drift["pooled"] > 0


def test_out_of_spectrum_replacement_is_refused(lab):
    lab.reset.click()
    lab.replace_min.value, lab.replace_max.value = 100.0, 200.0
    lab.replace.click()
    assert "outside the pretraining spectrum" in lab.error.message
    assert all(spec == full for (_, spec), full in zip(lab.config, lab.full_bands))


def test_dropping_every_band_is_refused(lab):
    lab.reset.click()
    lab.active.value = ()
    assert "at least one band" in lab.error.message
    assert len(lab.active.value) == 12


def test_cross_sensor_consistency_maps(lab, png_of):
    assert set(lab.consistency) == {"S2 vs S1", "S2 vs RGB (sim.)", "S1 vs RGB (sim.)"}
    for m in lab.consistency.values():
        assert m.shape == (lab.grid, lab.grid)
        assert np.all(np.abs(m) <= 1 + 1e-5)
    enc = {k: v.copy() for k, v in lab.consistency.items()}
    lab.level.value = "tokens"
    assert not np.allclose(enc["S2 vs S1"], lab.consistency["S2 vs S1"])
    png_of(lab.figure())
