"""timm names smarties_encoder_vit_*: SMARTIES semantics (bands, release equivalence, refusals).

timm's own model contract on these names: tests/ecosystem/test_timm_contract.py."""

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
    assert list(default.feature_info.out_indices) == [2, 5, 8, 11]  # UPerNet-style default


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
    model = timm.create_model(DEMO_NAME, bands="RGB", num_classes=2, global_pool="avg", pretrained_file="demo")
    assert isinstance(model.norm, torch.nn.Identity) and isinstance(model.fc_norm, torch.nn.LayerNorm)
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 2)
    enc = SmartiesEncoder.from_pretrained("demo", global_pool=True)
    enc.fc_norm.load_state_dict(model.fc_norm.state_dict())  # both fresh: make them equal
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        pre = model.forward_head(model.forward_features(x), pre_logits=True)
        assert torch.allclose(pre, enc(x, sensor_type="RGB"), atol=1e-5)


@pytest.mark.parametrize(
    "bands",
    ["sentinel2-l2a:B04,B03,B02", "B04,B03,B02", ["B04", "B03", "B02"], [(634, 696), (524, 595), (427, 558)]],
)
def test_band_spellings_give_the_same_model(bands: object) -> None:
    """CLI spelling, bare names and wavelength ranges all name Sentinel-2 B04, B03, B02."""
    ref = timm.create_model(DEMO_NAME, bands=["sentinel2-l2a/B04", "sentinel2-l2a/B03", "sentinel2-l2a/B02"],
                            pretrained_file="demo", num_classes=0).eval()  # fmt: skip
    model = timm.create_model(DEMO_NAME, bands=bands, in_chans=3, pretrained_file="demo", num_classes=0).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model(x), ref(x), atol=1e-5)


def test_data_config_follows_the_bands() -> None:
    from timm.data import resolve_data_config

    s2 = resolve_data_config(model=timm.create_model(NAMES[0], img_size=32))
    rgb = resolve_data_config(model=timm.create_model(NAMES[0], bands="sentinel2-l2a:B04,B03,B02", img_size=32))
    assert s2["input_size"] == (12, 32, 32) and rgb["input_size"] == (3, 32, 32)
    assert rgb["mean"] == (s2["mean"][3], s2["mean"][2], s2["mean"][1])  # B04, B03, B02 of B01..B12
    s1 = resolve_data_config(model=timm.create_model(NAMES[0], bands="S1", img_size=32))
    assert len(s1["mean"]) == 2 and s1["mean"][0] < 0  # dB


def test_refusals(release_file: Path) -> None:
    with pytest.raises(ValueError, match="in_chans=5"):
        timm.create_model(NAMES[0], in_chans=5)
    with pytest.raises(ValueError, match="describe 12 channels"):
        timm.create_model(NAMES[0], in_chans=3, bands="S2")
    with pytest.raises(ValueError, match=f"'embed_dim': {D}.*'patch_size': {S}"):
        timm.create_model(NAMES[2], bands="S2", pretrained_file=str(release_file), img_size=IMG)
    model = timm.create_model(NAMES[0], bands="sentinel2-l2a:B04,B03,B02", img_size=32)
    with pytest.raises(AssertionError, match="Input has 4 channels; the model's 3 bands are sentinel2-l2a/B04"):
        model(torch.randn(1, 4, 32, 32))
    with pytest.raises(ValueError, match="NaN or inf"):
        model(torch.full((1, 3, 32, 32), float("nan")))
