"""SmartiesEncoder against a reference built here from the released-layout facts.

Reference (SMARTIES-facts.md, "Tokenization", "Released checkpoint layout", "Downstream use"):
each band's S×S patch (row-major) through its range's Linear(S², D); token = 12 × mean over the
bands; + fixed 2-D sin-cos (CLS row zero); CLS prepended; timm Blocks (mlp_ratio 4, qkv_bias,
LayerNorm eps 1e-6); CLS after the final norm, or the patch tokens after the last block (before
the norm) as (B, D, H/S, W/S).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from timm.models.vision_transformer import Block

from smartiesviz.models.checkpoint import CheckpointError, save_checkpoint
from smartiesviz.models.encoder import SmartiesEncoder
from smartiesviz.models.mae import SmartiesMAE
from tests.ecosystem.conftest import DEPTH, HEADS, IMG, D, S, release_state_dict

# release layer index of each band, in the release's sensor band order
S2_LAYERS = [0, 1, 4, 6, 7, 8, 10, 9, 11, 12, 13, 14]  # B01 B02 B03 B04 B05 B06 B07 B08 B8A B09 B11 B12
S1_LAYERS = [15, 16]
RGB_LAYERS = [5, 3, 2]
RANGE_NAMES = ["red_2", "near_infrared_1", "short_wave_infrared_4", "microwave_1"]
RANGE_LAYERS = [6, 9, 14, 15]


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a - b).abs().max() / b.abs().max()).detach())


def reference(
    sd: dict[str, torch.Tensor], x: torch.Tensor, layers: list[int], pos: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The release's downstream computation, written out: returns (CLS (B, D), map (B, D, h, w))."""
    b, c, h, w = x.shape
    gh, gw = h // S, w // S
    patches = x.reshape(b, c, gh, S, gw, S).permute(0, 2, 4, 1, 3, 5).reshape(b, gh * gw, c, S * S)
    emb = torch.stack(
        [
            F.linear(
                patches[:, :, i],
                sd[f"spectrum_projection.spectrum_embeds.{layer}.proj.weight"],
                sd[f"spectrum_projection.spectrum_embeds.{layer}.proj.bias"],
            )
            for i, layer in enumerate(layers)
        ],
        dim=2,
    )  # (B, N, C, D)
    tokens = 12 * emb.mean(dim=2)
    pos = sd["pos_embed"] if pos is None else pos
    tokens = tokens + pos[:, 1:]
    cls = (sd["cls_token"] + pos[:, :1]).expand(b, -1, -1)
    hidden = torch.cat([cls, tokens], dim=1)
    for i in range(DEPTH):
        blk = Block(D, HEADS, 4.0, qkv_bias=True, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6))
        blk.load_state_dict({k[len(f"blocks.{i}.") :]: v for k, v in sd.items() if k.startswith(f"blocks.{i}.")})
        hidden = blk.eval()(hidden)
    out = F.layer_norm(hidden, (D,), sd["norm.weight"], sd["norm.bias"], eps=1e-6)
    return out[:, 0], hidden[:, 1:].transpose(1, 2).reshape(b, D, gh, gw)


@pytest.fixture
def encoder(release_file: Path) -> SmartiesEncoder:
    return SmartiesEncoder.from_pretrained(release_file)


def test_release_file_loads_encoder_and_drops_decoder(encoder: SmartiesEncoder, release_sd) -> None:
    report = encoder.load_report
    assert encoder.config["embed_dim"] == D and encoder.config["depth"] == DEPTH
    assert encoder.config["patch_size"] == S and encoder.config["num_heads"] == HEADS
    assert encoder.img_size == IMG
    assert "mask_token" in report.skipped and "decoder_pos_embed" in report.skipped
    assert any(k.startswith("decoder_blocks.") for k in report.skipped)
    assert not report.missing and not report.unexpected
    n_encoder = sum(1 for k in release_sd if not k.startswith(("decoder", "mask_token")))
    assert len(report.loaded) == n_encoder


def test_vit_b_depths_have_318_tensors(tmp_path: Path) -> None:
    sd = release_state_dict(dim=32, depth=12, dec_depth=8)
    assert len(sd) == 318
    path = tmp_path / "b.safetensors"
    save_file(sd, str(path))
    enc = SmartiesEncoder.from_pretrained(path, num_heads=2)
    assert enc.depth == 12 and enc.embed_dim == 32


@pytest.mark.parametrize(
    ("sensor_type", "layers"), [("S2", S2_LAYERS), ("S1", S1_LAYERS), ("RGB", RGB_LAYERS)]
)
def test_cls_with_sensor_type_equals_reference(encoder, release_sd, sensor_type, layers) -> None:
    x = torch.randn(2, len(layers), IMG, IMG, generator=torch.Generator().manual_seed(1))
    ref_cls, _ = reference(release_sd, x, layers)
    with torch.no_grad():
        got = encoder(x, sensor_type=sensor_type)
    assert got.shape == (2, D)
    assert rel(got, ref_cls) < 1e-4


def test_cls_with_range_name_bands_equals_reference(encoder, release_sd) -> None:
    x = torch.randn(3, len(RANGE_NAMES), IMG, IMG, generator=torch.Generator().manual_seed(2))
    ref_cls, _ = reference(release_sd, x, RANGE_LAYERS)
    with torch.no_grad():
        got = encoder(x, bands=RANGE_NAMES)
    assert rel(got, ref_cls) < 1e-4


def test_all_tokens_map_is_pre_norm_patch_tokens(encoder, release_sd) -> None:
    x = torch.randn(2, 12, IMG, IMG, generator=torch.Generator().manual_seed(3))
    _, ref_map = reference(release_sd, x, S2_LAYERS)
    with torch.no_grad():
        got = encoder(x, sensor_type="S2", all_tokens=True)
    assert got.shape == (2, D, IMG // S, IMG // S)
    assert rel(got, ref_map) < 1e-4
    # after the norm it would differ: the map is not the MAE's normalized tokens
    normed = F.layer_norm(ref_map.flatten(2).transpose(1, 2), (D,), release_sd["norm.weight"],
                          release_sd["norm.bias"], eps=1e-6)  # fmt: skip
    assert rel(got.flatten(2).transpose(1, 2), normed) > 0.05


def test_other_img_size_resamples_the_file_table_bicubically(release_file, release_sd) -> None:
    enc = SmartiesEncoder.from_pretrained(release_file, img_size=2 * IMG)
    g = IMG // S
    grid = release_sd["pos_embed"][:, 1:].reshape(1, g, g, D).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(2 * g, 2 * g), mode="bicubic", align_corners=False)
    pos = torch.cat([release_sd["pos_embed"][:, :1], grid.permute(0, 2, 3, 1).reshape(1, -1, D)], 1)
    x = torch.randn(2, 2, 2 * IMG, 2 * IMG, generator=torch.Generator().manual_seed(4))
    ref_cls, ref_map = reference(release_sd, x, S1_LAYERS, pos)
    with torch.no_grad():
        assert rel(enc(x, sensor_type="S1"), ref_cls) < 1e-4
        assert rel(enc(x, sensor_type="S1", all_tokens=True), ref_map) < 1e-4


def test_global_pool_is_fc_norm_of_patch_mean(release_file, release_sd) -> None:
    enc = SmartiesEncoder.from_pretrained(release_file, global_pool=True)
    assert "norm.weight" in enc.load_report.skipped
    x = torch.randn(2, 12, IMG, IMG, generator=torch.Generator().manual_seed(5))
    _, ref_map = reference(release_sd, x, S2_LAYERS)
    ref = F.layer_norm(ref_map.flatten(2).mean(-1), (D,), eps=1e-6)  # fresh fc_norm: (1, 0)
    with torch.no_grad():
        assert rel(enc(x, sensor_type="S2"), ref) < 1e-4


def test_multi_source_concatenates_features(encoder) -> None:
    g = torch.Generator().manual_seed(6)
    s2, s1 = torch.randn(2, 12, IMG, IMG, generator=g), torch.randn(2, 2, IMG, IMG, generator=g)
    with torch.no_grad():
        both = encoder([(s2, "S2"), (s1, "S1")])
        maps = encoder([(s2, "S2"), (s1, "S1")], all_tokens=True)
        expect = torch.cat([encoder(s2, sensor_type="S2"), encoder(s1, sensor_type="S1")], 1)
    assert both.shape == (2, 2 * D) and torch.allclose(both, expect)
    assert maps.shape == (2, 2 * D, IMG // S, IMG // S)


def test_bad_arguments_are_refused(encoder) -> None:
    x = torch.randn(1, 12, IMG, IMG)
    with pytest.raises(ValueError, match="exactly one"):
        encoder(x)
    with pytest.raises(ValueError, match="exactly one"):
        encoder(x, sensor_type="S2", bands="S2")
    with pytest.raises(ValueError, match="sensor_type must be one of"):
        encoder(x, sensor_type="landsat8")
    with pytest.raises(ValueError, match="channels"):
        encoder(x, sensor_type="S1")


def test_matches_mae_encode_and_fuse_on_same_weights(tmp_path: Path) -> None:
    torch.manual_seed(0)
    mae = SmartiesMAE(img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=2,
                      decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=2).eval()  # fmt: skip
    path = save_checkpoint(mae, tmp_path / "ours.safetensors")
    enc = SmartiesEncoder.from_pretrained(path)  # our format: heads from the sidecar
    assert enc.config["num_heads"] == 2 and enc.img_size == 32
    g = torch.Generator().manual_seed(7)
    x, x1 = torch.randn(2, 12, 32, 32, generator=g), torch.randn(2, 2, 32, 32, generator=g)
    mask = torch.rand(2, 16, generator=g) < 0.5
    with torch.no_grad():
        assert rel(enc(x, sensor_type="S2"), mae.encode(x, "sentinel2-l2a")[:, 0]) < 1e-5
        fused = mae.fuse_features(x, "S2", x1, "S1", method="mixup", mixup_mask=mask)
        assert rel(enc.mixup_features(x, "S2", x1, "S1", mixup_mask=mask), fused) < 1e-5


def test_demo_and_encoder_only_files(tmp_path: Path) -> None:
    demo = SmartiesEncoder.from_pretrained("demo")
    assert demo.img_size == 64 and demo.patch_size == 4
    only = tmp_path / "encoder.safetensors"
    save_file({k: v.contiguous() for k, v in demo.state_dict().items()}, str(only))
    again = SmartiesEncoder.from_pretrained(only)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(again(x, sensor_type="RGB"), demo(x, sensor_type="RGB"))


def test_pt_file_loads_weights_only_and_pickles_are_refused(tmp_path: Path, release_sd) -> None:
    pt = tmp_path / "release.pth"
    torch.save({"model": release_sd}, pt)
    assert SmartiesEncoder.from_pretrained(pt).embed_dim == D
    evil = tmp_path / "evil.pt"
    torch.save({"model": release_sd, "obj": Path("x")}, evil)  # not loadable with weights_only
    with pytest.raises(CheckpointError):
        SmartiesEncoder.from_pretrained(evil)


def test_non_finite_weights_are_named(tmp_path: Path, release_sd) -> None:
    bad = dict(release_sd)
    bad["blocks.1.mlp.fc1.weight"] = bad["blocks.1.mlp.fc1.weight"].clone()
    bad["blocks.1.mlp.fc1.weight"][0, 0] = float("nan")
    path = tmp_path / "nan.safetensors"
    save_file(bad, str(path))
    with pytest.raises(CheckpointError, match=r"blocks\.1\.mlp\.fc1\.weight"):
        SmartiesEncoder.from_pretrained(path)


def test_foreign_or_incomplete_files_are_refused(tmp_path: Path, release_sd) -> None:
    path = tmp_path / "foreign.safetensors"
    save_file({"conv1.weight": torch.zeros(3, 3)}, str(path))
    with pytest.raises(CheckpointError, match="not a SMARTIES encoder"):
        SmartiesEncoder.from_pretrained(path)
    partial_sd = {k: v for k, v in release_sd.items() if k != "blocks.0.attn.qkv.weight"}
    with pytest.raises(CheckpointError, match=r"blocks\.0\.attn\.qkv\.weight"):
        SmartiesEncoder.from_pretrained(partial_sd)
