"""Checkpoints: the release's layout, foreign/corrupt files, pos-embed handling, our own format."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

import smartiesviz
from smartiesviz.models.checkpoint import (
    CheckpointError,
    ForeignCheckpointError,
    load_checkpoint,
    remap_release_state_dict,
    save_checkpoint,
    to_release_state_dict,
)
from smartiesviz.models.pos_embed import interpolate_pos_embed, sincos_pos_embed

X = torch.randn(2, 12, 32, 32, generator=torch.Generator().manual_seed(5))


def _write(sd, path):
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    return path


def test_release_layout_names_and_vitb_shapes():
    with torch.device("meta"):
        base = smartiesviz.smarties_vit_base_patch16()
    sd = to_release_state_dict(base)
    assert len(sd) == 318  # the released ViT-B file's tensor count
    assert sd["pos_embed"].shape == (1, 197, 768) and sd["decoder_pos_embed"].shape == (1, 197, 512)
    assert sd["cls_token"].shape == (1, 1, 768) and sd["mask_token"].shape == (1, 1, 512)
    assert sd["spectrum_projection.spectrum_embeds.16.proj.weight"].shape == (768, 256)
    assert sd["decoder_preds.0.weight"].shape == (256, 512)
    assert "blocks.11.attn.qkv.bias" in sd and "decoder_blocks.7.mlp.fc2.weight" in sd
    assert not any(".layers." in k for k in sd)


def test_release_file_loads_with_no_missing_keys_and_same_features(tmp_path, make_model):
    src, dst = make_model(seed=0), make_model(seed=1)
    path = _write(to_release_state_dict(src), tmp_path / "smarties-v1-tiny.safetensors")
    report = smartiesviz.load_pretrained(dst, path)
    assert report.ok and not report.missing and not report.unexpected and not report.mismatched
    assert any("sin-cos" in line for line in report.pos_embed)
    assert dst.pos_embed is None  # verified sin-cos is recomputed, not stored
    torch.testing.assert_close(dst.encode(X, "S2"), src.encode(X, "S2"), rtol=0, atol=0)
    # wrapped/prefixed layouts (DDP, Lightning, torch.compile) and a .pt file
    wrapped = {f"module.model.smarties.{k}": v for k, v in to_release_state_dict(src).items()}
    assert smartiesviz.load_pretrained(make_model(seed=2), wrapped).ok
    torch.save({"model": to_release_state_dict(src)}, tmp_path / "ckpt.pth")
    assert smartiesviz.load_pretrained(make_model(seed=2), tmp_path / "ckpt.pth").ok
    assert (
        remap_release_state_dict(remap_release_state_dict(wrapped)).keys()
        == remap_release_state_dict(wrapped).keys()
    )


def test_encoder_only(tmp_path, make_model):
    src, dst = make_model(seed=0), make_model(seed=1)
    enc = {
        k: v
        for k, v in to_release_state_dict(src).items()
        if not k.startswith(("decoder", "mask_token"))
    }
    enc["head.weight"] = torch.zeros(10, 64)  # a downstream head is skipped, not an error
    with pytest.raises(CheckpointError, match="encoder_only=True"):
        smartiesviz.load_pretrained(dst, enc)
    before = dst.decoder_embed.weight.clone()
    report = smartiesviz.load_pretrained(dst, enc, encoder_only=True)
    assert report.ok and "head.weight" in report.skipped
    assert torch.equal(dst.decoder_embed.weight, before)
    torch.testing.assert_close(dst.encode(X, "S2"), src.encode(X, "S2"), rtol=0, atol=0)
    # a full file into encoder_only skips the decoder
    report = smartiesviz.load_pretrained(
        make_model(seed=3), to_release_state_dict(src), encoder_only=True
    )
    assert "decoder_embed.weight" in report.skipped and report.ok


def test_other_architecture_is_refused_with_a_diff(make_model):
    big = make_model(embed_dim=96, depth=3, num_heads=4)
    with pytest.raises(
        ForeignCheckpointError, match=r"embed_dim 96 in file vs 64 in model; depth 3 in file vs 2"
    ) as err:
        smartiesviz.load_pretrained(make_model(), to_release_state_dict(big))
    assert "smarties_vit_large_patch16" in str(err.value)


def test_foreign_checkpoint_names_offending_keys(make_model):
    foreign = {"conv1.weight": torch.zeros(8, 3, 3, 3), "fc.weight": torch.zeros(10, 8)}
    with pytest.raises(
        ForeignCheckpointError,
        match=r"0 of \d+ model tensors match; first offending keys: conv1.weight, fc.weight",
    ):
        smartiesviz.load_pretrained(make_model(), foreign)
    # strict=False loads what fits and reports the rest
    sd = to_release_state_dict(make_model())
    sd.pop("norm.bias")
    sd["blocks.0.norm1.weight"] = torch.ones(3)
    with pytest.raises(CheckpointError, match="missing"):
        smartiesviz.load_pretrained(make_model(), sd)
    report = smartiesviz.load_pretrained(make_model(), sd, strict=False)
    assert report.missing == ["norm.bias"] and report.mismatched == [
        ("blocks.0.norm1.weight", (3,), (64,))
    ]


def test_corrupt_and_truncated_files(tmp_path, make_model):
    good = _write(to_release_state_dict(make_model()), tmp_path / "good.safetensors")
    (tmp_path / "cut.safetensors").write_bytes(good.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="corrupt, truncated"):
        smartiesviz.load_pretrained(make_model(), tmp_path / "cut.safetensors")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match=r"junk.pt \(23 bytes\)"):
        smartiesviz.load_pretrained(make_model(), tmp_path / "junk.pt")
    with pytest.raises(FileNotFoundError, match="missing.safetensors"):
        smartiesviz.load_pretrained(make_model(), tmp_path / "missing.safetensors")


def test_pos_embed_other_grid_and_learned_tables(make_model):
    src = make_model(seed=0, img_size=48)  # the file's table is 6x6
    dst = make_model(seed=1)  # the model's default grid is 4x4
    report = smartiesviz.load_pretrained(dst, to_release_state_dict(src))
    assert any("6x6" in line for line in report.pos_embed) and dst.pos_embed is None
    for size in (32, 48):  # sin-cos is exact at any grid
        x = torch.randn(1, 12, size, size)
        torch.testing.assert_close(dst.encode(x, "S2"), src.encode(x, "S2"), rtol=0, atol=0)
    # a table that is not sin-cos is kept and resampled bicubically for other grids
    sd = to_release_state_dict(src)
    learned = sd["pos_embed"] + 0.1 * torch.randn_like(sd["pos_embed"])
    sd["pos_embed"] = learned
    with pytest.warns(UserWarning, match="not the fixed sin-cos"):
        smartiesviz.load_pretrained(dst, sd)
    assert torch.equal(dst.pos_embed, learned)
    x = torch.randn(1, 12, 32, 32)
    manual = dst.spectrum_projection(x, "S2") + interpolate_pos_embed(learned, (4, 4))[:, 1:]
    torch.testing.assert_close(dst.encode(x, "S2"), dst.forward_encoder(manual))
    assert not torch.allclose(dst.encode(x, "S2"), src.encode(x, "S2"))
    assert torch.equal(
        sincos_pos_embed(64, 6, 6, cls_token=True), to_release_state_dict(src)["pos_embed"]
    )
    # release downstream behaviour: bicubic resampling of the file's own (6x6 sin-cos) table
    bic = make_model(seed=1, pos_embed_mode="bicubic")
    report = smartiesviz.load_pretrained(bic, to_release_state_dict(src))
    assert torch.equal(bic.pos_embed, to_release_state_dict(src)["pos_embed"])
    ref = bic.spectrum_projection(x, "S2") + interpolate_pos_embed(bic.pos_embed, (4, 4))[:, 1:]
    torch.testing.assert_close(bic.encode(x, "S2"), bic.forward_encoder(ref))
    assert not torch.allclose(
        bic.encode(x, "S2"), src.encode(x, "S2")
    )  # 6x6 resampled != 4x4 sin-cos


def test_save_load_roundtrip_is_bit_identical(tmp_path, make_model):
    model = make_model(seed=0)
    path = save_checkpoint(model, tmp_path / "mine", source="unit test", bands=["S2", "S1"])
    assert path.suffix == ".safetensors"
    info = json.loads(path.with_suffix(".json").read_text())
    assert info["architecture"]["embed_dim"] == 64 and info["metadata"]["source"] == "unit test"
    assert len(info["spectrum"]["layers"]) == 17 and info["spectrum"]["layers"][15] == "microwave_1"
    assert len(info["sha256"]) == 64
    loaded = load_checkpoint(path)
    ref, got = model.state_dict(), loaded.state_dict()
    assert ref.keys() == got.keys() and all(torch.equal(ref[k], got[k]) for k in ref)
    assert torch.equal(loaded.encode(X, "S2"), model.eval().encode(X, "S2"))
    # the architecture also travels in the safetensors header: the sidecar is optional
    path.with_suffix(".json").unlink()
    assert load_checkpoint(path).config == model.config
    with pytest.raises(TypeError, match="JSON"):
        save_checkpoint(model, tmp_path / "bad", when=object())


def test_tampered_file_fails_checksum(tmp_path, make_model):
    path = save_checkpoint(make_model(), tmp_path / "mine.safetensors")
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256"):
        load_checkpoint(path)


def test_checkpoint_info_is_a_typed_record_and_a_view_of_the_sidecar(tmp_path, make_model):
    from smartiesviz.data.holdout import Holdout
    from smartiesviz.models.checkpoint import CheckpointInfo, read_checkpoint_info

    held = {"bigearthnet_pair": {"index": 2, "name": "pair-2"}}
    path = save_checkpoint(make_model(), tmp_path / "m", steps=3, holdout=held)
    info = load_checkpoint(path).checkpoint_info
    assert isinstance(info, CheckpointInfo) and info == read_checkpoint_info(path)
    assert info.arch == "smarties_vit_tiny_patch8" and info.architecture["embed_dim"] == 64
    assert info.to_json() == json.loads(path.with_suffix(".json").read_text())
    assert info["metadata"]["steps"] == 3 and dict(info)["sha256"] == info.sha256
    assert isinstance(info.holdout, Holdout) and info.holdout.pair.name == "pair-2"
    assert info.holdout.to_metadata() == held


def test_demo_holdout_is_a_holdout_record():
    from smartiesviz.data.holdout import Holdout
    from smartiesviz.models.demo import demo_holdout, demo_info

    held = demo_holdout()
    assert isinstance(held, Holdout)
    assert held.scene.y_stop > held.scene.y_start and held.pair is not None
    assert held.to_metadata() == demo_info()["metadata"]["holdout"]
