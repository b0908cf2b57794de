"""Hostile inputs to the model layer (issue 15): each is refused or warned about by name."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

from smartiesviz.models.checkpoint import (
    CheckpointError,
    ForeignCheckpointError,
    NonFiniteWeightsError,
    load_checkpoint,
    load_pretrained,
    save_checkpoint,
    to_release_state_dict,
)
from smartiesviz.models.factories import smarties_vit_tiny_patch8
from smartiesviz.models.resolve import resolve_model
from smartiesviz.models.tokenizer import SpectrumAwareProjection

S2 = "sentinel2-l2a"


def tiny(seed: int = 0, **kwargs):
    torch.manual_seed(seed)
    kw = dict(img_size=16, embed_dim=32, depth=1, num_heads=2, decoder_embed_dim=16,
              decoder_depth=1, decoder_num_heads=2)  # fmt: skip
    return smarties_vit_tiny_patch8(**{**kw, **kwargs})


# ---------------------------------------------------------------------- weights
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_by_load_pretrained_naming_the_keys(bad):
    sd = to_release_state_dict(tiny())
    sd["blocks.0.attn.qkv.weight"] = sd["blocks.0.attn.qkv.weight"].clone()
    sd["blocks.0.attn.qkv.weight"][0, 0] = bad
    sd["norm.bias"] = torch.full_like(sd["norm.bias"], bad)
    for strict in (True, False):
        with pytest.raises(NonFiniteWeightsError, match="NaN or infinite") as err:
            load_pretrained(tiny(seed=1), sd, strict=strict)
        assert "blocks.0.attn.qkv.weight" in str(err.value) and "norm.bias" in str(err.value)
        assert err.value.keys == ["blocks.0.attn.qkv.weight", "norm.bias"]
        assert err.value.report.ok is False
    # the model was left untouched
    target = tiny(seed=1)
    with pytest.raises(NonFiniteWeightsError):
        load_pretrained(target, sd)
    assert torch.isfinite(target.blocks[0].attn.qkv.weight).all()


def test_non_finite_weights_are_refused_by_load_checkpoint_and_resolve_model(tmp_path):
    model = tiny()
    with torch.no_grad():
        model.decoder_pred.layers[3].bias[0] = float("nan")
    path = save_checkpoint(model, tmp_path / "diverged")
    for load in (load_checkpoint, resolve_model):
        with pytest.raises(NonFiniteWeightsError, match=r"diverged.safetensors.*decoder_pred"):
            load(path)


def test_a_broken_sidecar_is_named(tmp_path):
    path = save_checkpoint(tiny(), tmp_path / "run")
    sidecar = path.with_suffix(".json")
    sidecar.write_text(sidecar.read_text()[:40])
    with pytest.raises(CheckpointError, match=r"sidecar .*run\.json is not valid JSON"):
        load_checkpoint(path)
    sidecar.write_text(json.dumps(["not", "an", "object"]))
    with pytest.raises(CheckpointError, match=r"run\.json is not a smartiesviz checkpoint sidecar"):
        load_checkpoint(path)
    assert issubclass(CheckpointError, ValueError)  # the CLI prints it as one `error:` line


def test_a_changed_architecture_is_reported_by_key(tmp_path):
    sd = to_release_state_dict(tiny(embed_dim=48))
    with pytest.raises(ForeignCheckpointError, match="embed_dim 48 in file vs 32 in model"):
        load_pretrained(tiny(), sd)
    path = save_checkpoint(tiny(), tmp_path / "m")
    info = json.loads(path.with_suffix(".json").read_text())
    info["architecture"]["depth"] = 2
    path.with_suffix(".json").write_text(json.dumps(info))
    with pytest.raises(CheckpointError, match=r"does not match its recorded architecture.*blocks\.1"):
        load_checkpoint(path)


# ---------------------------------------------------------------------- inputs
def test_huge_finite_input_is_refused_not_turned_into_nan():
    model = tiny().eval()
    x = torch.randn(1, 12, 16, 16)
    x[0, 3, 2, 2] = 3e38  # finite, but its square (and the old check's sum) overflows
    with pytest.raises(ValueError, match=r"beyond ±1e\+15.*B04: \|x\| up to 3e\+38"):
        model.cls_features(x, S2)
    with pytest.raises(ValueError, match=r"B04: \|x\| up to 3e\+38.*smartiesviz.data.normalize"):
        model(x, S2)
    x[0, 3, 2, 2] = -1e20
    with pytest.raises(ValueError, match=r"B04: \|x\| up to 1e\+20"):
        model.cls_features(x, S2)


def test_nan_and_inf_are_counted_per_band():
    proj = SpectrumAwareProjection(16, 8)
    x = torch.randn(2, 3, 8, 8)
    x[0, 0, 0, :3] = float("nan")
    x[1, 2, 1, 1] = float("-inf")
    with pytest.raises(ValueError, match=r"NaN or inf.*B04: 3 NaN or inf; B02: 1 NaN or inf\)"):
        proj(x, ["S2/B04", "S2/B03", "S2/B02"])


def test_a_repeated_band_is_refused_naming_it():
    proj = SpectrumAwareProjection(16, 8)
    x = torch.randn(1, 3, 8, 8)
    with pytest.raises(ValueError, match=r"sentinel2-l2a/B04 appear more often.*pass each band once"):
        proj(x, ["S2/B04", "S2/B03", "S2/B04"])
    with pytest.raises(ValueError, match=r"B04 appear more often"):
        tiny()(torch.randn(1, 3, 16, 16), ["S2/B04", "S2/B04", "S2/B03"])
    # the release's tiling (every band equally often) leaves the token unchanged and is accepted
    tiled = proj(x.repeat(1, 2, 1, 1), ["S2/B04", "S2/B03", "S2/B02"] * 2)
    torch.testing.assert_close(tiled, proj(x, ["S2/B04", "S2/B03", "S2/B02"]))


@pytest.mark.parametrize("bands", [12, 3.5, None, b"S2", {"S2": 1}])
def test_a_non_band_argument_says_what_a_band_spec_is(bands):
    proj = SpectrumAwareProjection(16, 8)
    with pytest.raises(TypeError, match=r"bands must be a sensor name \('sentinel2-l2a'\), a list "):
        proj(torch.randn(1, 12, 8, 8), bands)
    with pytest.raises(TypeError, match=f"got {type(bands).__name__}"):
        proj(torch.randn(1, 12, 8, 8), bands)


def test_raw_digital_numbers_warn_once_naming_the_magnitude():
    proj = SpectrumAwareProjection(16, 8)
    normalized = torch.randn(2, 12, 16, 16)
    dn = torch.rand(2, 12, 16, 16) * 10000
    dn[0, 7, 0, 0] = 12345.0  # B08 holds the largest value
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        proj(normalized, S2)  # normalized units: silent
    with pytest.warns(UserWarning, match=r"reach 1\.234e\+04 \(band B08\).*smartiesviz\.data\.normalize"):
        proj(dn, S2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        proj(dn, S2)  # once per projection


def test_value_checks_can_be_switched_off():
    proj = SpectrumAwareProjection(16, 8)
    proj.check_finite = False
    x = torch.full((1, 1, 8, 8), 5000.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert proj(x, ["S2/B04"]).shape == (1, 1, 16)
