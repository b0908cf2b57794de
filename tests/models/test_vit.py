"""The one encoder (models/vit.py): one table, one trunk, one token-normalisation choice."""

from __future__ import annotations

import pytest
import torch

from smartiesviz.models import factories
from smartiesviz.models.encoder import ENCODER_ARCHS, SmartiesEncoder
from smartiesviz.models.encoder_timm import _ARCHS as TIMM_ARCHS
from smartiesviz.models.mae import SmartiesMAE
from smartiesviz.models.vit import ENCODER_KEYS, VIT_ARCHS, ViTEncoder


def test_one_table_drives_factories_encoder_and_timm_names() -> None:
    for name, arch in VIT_ARCHS.items():
        assert ENCODER_ARCHS[name] == {k: arch[k] for k in ENCODER_KEYS}
        timm_arch = TIMM_ARCHS[f"smarties_encoder_{name}"]
        assert timm_arch == {k: arch[k] for k in ENCODER_KEYS if k != "img_size"}
    with torch.device("meta"):  # shapes only: no memory, no init cost
        mae = factories.smarties_vit_small_patch16()
    want = VIT_ARCHS["vit_small_patch16"]
    assert {k: mae.config[k] for k in want} == want


def test_mae_and_encoder_share_the_trunk_and_its_outputs() -> None:
    torch.manual_seed(0)
    shape = dict(img_size=16, patch_size=4, embed_dim=32, depth=3, num_heads=2)
    mae = SmartiesMAE(**shape, decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2).eval()
    enc = SmartiesEncoder(**shape).eval()
    enc.load_state_dict({k: v for k, v in mae.state_dict().items() if k in enc.state_dict()},
                        strict=False)  # fmt: skip
    assert isinstance(mae, ViTEncoder) and isinstance(enc, ViTEncoder)
    x = torch.randn(2, 2, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        for token_norm in ("pre-norm", "post-norm"):
            m = mae.patch_feature_map(x, "S1", token_norm)
            dense = enc(x, sensor_type="S1", all_tokens=True, token_norm=token_norm)
            torch.testing.assert_close(dense, m)
            maps = enc.intermediate_maps(x, "S1", [0, 2], token_norm)
            assert len(maps) == 2 and maps[0].shape == (2, 32, 4, 4)
            torch.testing.assert_close(maps[-1], m)  # the last block's map is the dense output
        torch.testing.assert_close(enc.cls_features(x, "S1"), mae.cls_features(x, "S1"))
        assert not torch.allclose(maps[0], maps[1])


def test_token_norm_is_checked_and_needs_a_final_norm() -> None:
    enc = SmartiesEncoder(img_size=16, patch_size=4, embed_dim=16, depth=1, num_heads=2)
    x = torch.randn(1, 2, 16, 16)
    with pytest.raises(ValueError, match="must be one of 'pre-norm', 'post-norm'; got 'pre'"):
        enc.patch_feature_map(x, "S1", token_norm="pre")
    with pytest.raises(ValueError, match=r"block indices \[1\] out of range 0..0"):
        enc.intermediate_maps(x, "S1", [1])
    pooled = SmartiesEncoder(img_size=16, patch_size=4, embed_dim=16, depth=1, num_heads=2,
                             global_pool=True)  # fmt: skip
    assert pooled.patch_feature_map(x, "S1").shape == (1, 16, 4, 4)  # pre-norm: fine
    with pytest.raises(ValueError, match="global_pool=True pools through fc_norm"):
        pooled(x, sensor_type="S1", all_tokens=True, token_norm="post-norm")
