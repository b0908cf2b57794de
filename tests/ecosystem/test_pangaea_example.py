"""examples/pangaea_encoder.py: the PANGAEA-bench encoder wrapper, exercised without PANGAEA installed
(its stand-in base class has PANGAEA's constructor and warning contract)."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from smartiesviz.integrations.benchmark_bands import benchmark_bands
from smartiesviz.models.demo import demo_weights_path
from smartiesviz.models.encoder import SmartiesEncoder

EXAMPLE = Path(__file__).parents[2] / "examples" / "pangaea_encoder.py"
OPTICAL = ["B2", "B3", "B4", "B8A", "B11", "B12"]  # PANGAEA's HLS Burn Scars bands


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("pangaea_encoder_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_band_names() -> None:
    assert benchmark_bands(["B4", "B8A", "B10", "VV", "VH", "NIR_NARROW"]) == [
        "sentinel2-l2a/B04", "sentinel2-l2a/B8A", "sentinel2-l1c/B10", "sentinel1-grd/VV",
        "sentinel1-grd/VH", "hls/nir_narrow",
    ]  # fmt: skip
    assert benchmark_bands(["B1", "B9"], sensor="landsat8") == ["landsat8/B1", "landsat8/B9"]
    with pytest.raises(ValueError, match="ratio"):
        benchmark_bands(["VV_VH"])
    with pytest.raises(ValueError, match="neither a band of sentinel2-l2a"):
        benchmark_bands(["B13"])


def test_wrapper_loads_and_returns_the_encoders_maps(example, tmp_path: Path, caplog) -> None:
    bands = {"optical": OPTICAL, "sar": ["VV", "VH"]}
    enc = example.SmartiesPangaeaEncoder(
        str(demo_weights_path()), bands, input_size=32, output_layers=[1, 3], output_dim=192,
        variant="vit_tiny_patch4",
    )  # fmt: skip
    assert enc.output_dim == [192, 192] and enc.bands[:2] == ["sentinel2-l2a/B02", "sentinel2-l2a/B03"]
    logger = logging.getLogger("pangaea-test")
    with caplog.at_level(logging.WARNING, logger="pangaea-test"):
        enc.load_encoder_weights(logger)
    assert not caplog.records  # every encoder tensor found in the file
    demo = SmartiesEncoder.from_pretrained("demo", img_size=32)
    assert torch.equal(enc.encoder.state_dict()["blocks.2.attn.qkv.weight"], demo.state_dict()["blocks.2.attn.qkv.weight"])

    g = torch.Generator().manual_seed(0)
    x = {"optical": torch.randn(2, 6, 32, 32, generator=g), "sar": torch.randn(2, 2, 32, 32, generator=g)}
    with torch.no_grad():
        maps = enc(x)
        ref = demo(torch.cat([x["optical"], x["sar"]], 1), bands=enc.bands, all_tokens=True)
    assert [tuple(m.shape) for m in maps] == [(2, 192, 8, 8)] * 2
    torch.testing.assert_close(maps[-1], ref)  # block 3 is the last: the release's all_tokens

    sd = load_file(str(demo_weights_path()))
    key = next(k for k in sd if k.endswith("blocks.0.norm1.weight"))
    del sd[key]
    save_file(sd, str(tmp_path / "partial.safetensors"))
    enc.encoder_weights = str(tmp_path / "partial.safetensors")
    with caplog.at_level(logging.WARNING, logger="pangaea-test"):
        enc.load_encoder_weights(logger)
    assert "Missing parameters" in caplog.text and "blocks.0.norm1.weight" in caplog.text
