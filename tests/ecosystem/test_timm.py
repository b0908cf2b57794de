"""timm names smarties_encoder_vit_*: classifier and features_only models."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch

import smartiesviz.models  # noqa: F401  (registers the names)
from smartiesviz.models.encoder import SmartiesEncoder
from tests.ecosystem.conftest import IMG, D, S, demo_encoder_name

DEMO_NAME = demo_encoder_name()
NAMES = [
    "smarties_encoder_vit_tiny_patch8",
    "smarties_encoder_vit_small_patch16",
    "smarties_encoder_vit_base_patch16",
    "smarties_encoder_vit_large_patch16",
    "smarties_encoder_vit_tiny_patch4",
]


def test_all_names_are_registered() -> None:
    assert set(NAMES) <= set(timm.list_models("smarties_encoder_*"))


def test_classifier_logits_and_timm_interface() -> None:
    model = timm.create_model(NAMES[0], bands="sentinel2-l2a", num_classes=5, img_size=64).eval()
    x = torch.randn(2, 12, 64, 64)
    with torch.no_grad():
        logits = model(x)
        feats = model.forward_features(x)
        assert torch.allclose(model.forward_head(feats), logits)
        pre = model.forward_head(feats, pre_logits=True)
    assert logits.shape == (2, 5) and feats.shape == (2, 1 + 64, 192) and pre.shape == (2, 192)
    assert model.get_classifier().out_features == 5
    model.reset_classifier(3)
    assert model(x).shape == (2, 3)


def test_features_only_maps_and_feature_info() -> None:
    model = timm.create_model(NAMES[0], bands=[f"sentinel2-l2a/{b}" for b in ("B04", "B03", "B02", "B08")], features_only=True,
                              out_indices=(1, 3), img_size=32).eval()  # fmt: skip
    assert model.feature_info.channels() == [192, 192]
    assert model.feature_info.reduction() == [8, 8]
    with torch.no_grad():
        maps = model(torch.randn(2, 4, 32, 32))
    assert [tuple(m.shape) for m in maps] == [(2, 192, 4, 4)] * 2
    default = timm.create_model(NAMES[1], bands="S1", features_only=True, img_size=32)
    assert default.out_indices == (2, 5, 8, 11)


def test_features_match_the_encoder_token_map(release_file: Path) -> None:
    feats = timm.create_model(
        DEMO_NAME, bands="S2", features_only=True, pretrained_file="demo",
        out_indices=[-1],
    ).eval()  # fmt: skip
    enc = SmartiesEncoder.from_pretrained("demo")
    x = torch.randn(1, 12, 64, 64)
    with torch.no_grad():
        assert torch.allclose(feats(x)[0], enc(x, sensor_type="S2", all_tokens=True), atol=1e-5)


def test_pretrained_file_gives_the_encoder_cls() -> None:
    model = timm.create_model(DEMO_NAME, in_chans=2, num_classes=4, pretrained_file="demo").eval()
    enc = SmartiesEncoder.from_pretrained("demo")
    x = torch.randn(2, 2, 64, 64)
    with torch.no_grad():
        pre = model.forward_head(model.forward_features(x), pre_logits=True)
        assert torch.allclose(pre, enc(x, sensor_type="S1"), atol=1e-5)


def test_a_file_of_another_shape_names_the_fitting_variant() -> None:
    tiny = ("smarties_encoder_vit_tiny_patch4", "smarties_encoder_vit_tiny_patch8")
    other = next(name for name in tiny if name != DEMO_NAME)
    with pytest.raises(ValueError, match=f"holds a .* encoder but {other} is .*; use {DEMO_NAME}"):
        timm.create_model(other, in_chans=2, pretrained_file="demo")


def test_avg_pool_classifier(release_file: Path) -> None:
    model = timm.create_model(NAMES[0], bands="RGB", num_classes=2, global_pool="avg", img_size=64)
    assert isinstance(model.encoder.norm, torch.nn.Identity)
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 2)


def test_refusals(release_file: Path) -> None:
    with pytest.raises(ValueError, match="never downloads"):
        timm.create_model(NAMES[2], pretrained=True, bands="S2")
    with pytest.raises(ValueError, match="global_pool must be one of 'token', 'avg'; got 'max'"):
        timm.create_model(NAMES[0], bands="S1", global_pool="max")
    with pytest.raises(ValueError, match="in_chans=5"):
        timm.create_model(NAMES[0], in_chans=5)
    with pytest.raises(ValueError, match="describe 12 channels"):
        timm.create_model(NAMES[0], in_chans=3, bands="S2")
    with pytest.raises(ValueError, match=f"'embed_dim': {D}.*'patch_size': {S}"):
        timm.create_model(NAMES[2], bands="S2", pretrained_file=str(release_file), img_size=IMG)
