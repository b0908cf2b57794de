"""Hostile and surprising inputs to scenes, predictions and widgets: each gets a clear message."""

from __future__ import annotations

import warnings

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def tiny_model():
    import smartiesviz

    torch.manual_seed(0)
    return smartiesviz.smarties_vit_tiny_patch8(img_size=64).eval()


@pytest.fixture(scope="module")
def l8_cube():
    from smartiesviz import data

    return data.landsat8_sample().isel(y=slice(100, 228), x=slice(100, 228))


def test_a_sample_cannot_be_relabelled_as_another_sensor():
    from smartiesviz.data.scene import open_scene
    from smartiesviz.errors import UserError

    with pytest.raises(UserError, match="sample 'sentinel2' is 'sentinel2-l1c' data; sensor "
                       "'landsat8' does not match and cannot relabel it"):  # fmt: skip
        open_scene("sample:sentinel2", sensor="landsat8")
    # naming the sample's own sensor (any alias) is fine
    assert open_scene("sentinel2", sensor="S2-L1C").sensor == "sentinel2-l1c"


def test_sentinel2_family_name_warns_which_product_it_means():
    from smartiesviz.data import samples
    from smartiesviz.data.bands import SensorChoiceWarning
    from smartiesviz.data.scene import open_scene

    s2 = samples.bigearthnet_pairs()[0].s2
    with pytest.warns(SensorChoiceWarning, match="'sentinel2' is taken as 'sentinel2-l2a'") as rec:
        scene = open_scene(s2, sensor="sentinel2")
    assert scene.sensor == "sentinel2-l2a"
    assert "sentinel2-l1c" in str(rec[0].message)  # the alternative is named
    with warnings.catch_warnings():
        warnings.simplefilter("error", SensorChoiceWarning)
        open_scene(s2, sensor="sentinel2-l2a")  # the exact name is silent


def test_unknown_band_names_the_cube_bands(l8_cube):
    from smartiesviz.data.scene import open_scene

    with pytest.raises(ValueError, match=r"band\(s\) \['B99'\] are not in the cube; it has bands"):
        open_scene(l8_cube, bands=["B4", "B99"])


def test_unnormalized_array_given_as_model_units_warns(tiny_model):
    from smartiesviz.data.preprocess import UnnormalizedWarning
    from smartiesviz.widgets import ReconstructionExplorer

    dn = np.random.default_rng(0).uniform(0, 10000, (3, 64, 64)).astype(np.float32)
    with pytest.warns(UnnormalizedWarning, match="looks like raw DN or reflectance"):
        ReconstructionExplorer(scene=dn, bands=["rgb/red", "rgb/green", "rgb/blue"],
                               model=tiny_model)  # fmt: skip


def test_nodata_in_a_user_cube_is_reported(l8_cube, tiny_model):
    from smartiesviz.data.preprocess import NodataWarning
    from smartiesviz.widgets import ReconstructionExplorer

    holey = l8_cube.astype("float32").copy()
    holey[:, :10, :10] = np.nan
    with pytest.warns(NodataWarning):
        e = ReconstructionExplorer(scene=holey, model=tiny_model, stats="data")
    assert e.error.message == ""


def test_reconstruction_explorer_accepts_the_stats_it_advises(l8_cube, tiny_model):
    from smartiesviz.widgets import ReconstructionExplorer

    with pytest.warns(UserWarning, match="pass stats='data' to silence"):
        ReconstructionExplorer(scene=l8_cube, model=tiny_model)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*no released statistics.*")
        e = ReconstructionExplorer(scene=l8_cube, model=tiny_model, stats="data")
    assert e.error.message == ""
    assert e.x.shape == (10, 64, 64)


def test_bandlab_works_on_a_user_cube(l8_cube, tiny_model):
    from smartiesviz.render import band_label
    from smartiesviz.widgets import BandLab

    lab = BandLab(l8_cube, model=tiny_model)
    assert lab.error.message == "", lab.error.message
    assert [band_label(b) for b in lab.full_bands][:4] == ["B1", "B2", "B3", "B4"]
    assert lab.x.shape == (1, 10, 64, 64)
    lab.active.value = lab.active.value[1:]  # drop a band: the lab still answers
    assert lab.error.message == ""
    assert lab.token_similarity.shape == (lab.grid, lab.grid)
