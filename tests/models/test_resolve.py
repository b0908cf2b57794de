"""Model resolution: demo, checkpoint paths, run folders, instances, and the errors for the rest."""

from __future__ import annotations

import pytest
import torch

from smartiesviz.models.checkpoint import CheckpointError, save_checkpoint
from smartiesviz.models.mae import SmartiesMAE
from smartiesviz.models.resolve import find_projection, model_device, model_img_size, resolve_model
from smartiesviz.models.tokenizer import SpectrumAwareProjection


def test_none_and_demo_give_the_demo_model():
    for arg in (None, "demo"):
        model = resolve_model(arg)
        assert isinstance(model, SmartiesMAE) and not model.training
        assert model_img_size(model) == 64 and model.patch_size == 4
        assert model.checkpoint_info["metadata"]["holdout"]


def test_instance_is_returned_itself_in_eval_mode(model):
    model.train()
    assert resolve_model(model) is model
    assert not model.training


def test_checkpoint_path_and_run_folder(model, tmp_path):
    path = save_checkpoint(model, tmp_path / "run" / "model", note="x")
    x = torch.randn(1, 12, 32, 32)
    for arg in (path, str(path), tmp_path / "run"):
        loaded = resolve_model(arg)
        assert isinstance(loaded, SmartiesMAE) and not loaded.training
        assert loaded.checkpoint_info["metadata"] == {"note": "x"}
        torch.testing.assert_close(
            loaded.cls_features(x, "sentinel2-l2a"), model.eval().cls_features(x, "sentinel2-l2a")
        )


def test_missing_path_names_it(tmp_path):
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(FileNotFoundError, match="nope.safetensors.*does not exist"):
        resolve_model(missing)
    with pytest.raises(FileNotFoundError, match="holds no model.safetensors"):
        resolve_model(tmp_path)


def test_a_file_that_is_not_a_checkpoint_is_refused_naming_it(tmp_path):
    bad = tmp_path / "notes.safetensors"
    bad.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="notes.safetensors"):
        resolve_model(bad)


def test_other_objects_are_a_type_error():
    with pytest.raises(TypeError, match="SmartiesMAE, a checkpoint path, 'demo' or None.*Linear"):
        resolve_model(torch.nn.Linear(2, 2))
    with pytest.raises(TypeError, match="got int"):
        resolve_model(3)


def test_device_img_size_and_projection(model):
    assert model_device(model) == torch.device("cpu")
    assert model_device(torch.nn.Identity()) == torch.device("cpu")
    assert model_img_size(model) == 32
    assert find_projection(model) is model.spectrum_projection
    proj = SpectrumAwareProjection(16, 8)
    assert find_projection(proj) is proj
    with pytest.raises(TypeError, match="no SpectrumAwareProjection"):
        find_projection(torch.nn.Linear(2, 2))
    with pytest.raises(TypeError, match="no img_size"):
        model_img_size(torch.nn.Linear(2, 2))
