"""SMARTIES + UPerNet through TerraTorch's backbone registry, EncoderDecoderFactory and `terratorch fit`
with the shipped YAML; TerraTorch's band names; means/stds from the release's statistics."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
import yaml

# find_spec, not importorskip: importing terratorch bare would lower torch's matmul precision for
# the whole run; our adapter imports it with torch's global settings kept (issue 28)
if importlib.util.find_spec("terratorch") is None:
    pytest.skip("needs the terratorch extra: pip install smartiesviz[terratorch]", allow_module_level=True)
import smartiesviz.integrations.terratorch as tt  # noqa: E402  (before terratorch itself)

# isort: split
from terratorch.cli_tools import build_lightning_cli  # noqa: E402
from terratorch.datasets.utils import HLSBands  # noqa: E402
from terratorch.models import EncoderDecoderFactory  # noqa: E402
from terratorch.registry import BACKBONE_REGISTRY, TERRATORCH_BACKBONE_REGISTRY  # noqa: E402

import smartiesviz.integrations  # noqa: E402
from smartiesviz.data.preprocess import normalize_array, release_stats  # noqa: E402
from smartiesviz.models.encoder import SmartiesEncoder  # noqa: E402
from smartiesviz.torch_globals import preserved  # noqa: E402
from smartiesviz.yamlfile import load_yaml  # noqa: E402
from tests.ecosystem.conftest import demo_encoder_name  # noqa: E402

CONFIG = Path(tt.__file__).parent / "configs" / "terratorch-segmentation.yaml"


def test_backbones_are_registered() -> None:
    for name in tt.BACKBONES:
        assert name in BACKBONE_REGISTRY
    backbone = BACKBONE_REGISTRY.build("smarties_encoder_vit_tiny_patch8", bands="S1", img_size=32)
    assert backbone.out_channels == [192] * 4
    with pytest.raises(ValueError, match="no released weights.*smarties_encoder_vit_base_patch16"):
        BACKBONE_REGISTRY.build("smarties_encoder_vit_tiny_patch8", bands="S1", pretrained=True)


def test_backbone_maps_are_the_shared_encoder_maps_with_their_token_norm() -> None:
    demo = SmartiesEncoder.from_pretrained("demo", img_size=32)
    x = torch.randn(2, 2, 32, 32, generator=torch.Generator().manual_seed(0))
    for token_norm in ("pre-norm", "post-norm"):
        net = tt.build_backbone(demo_encoder_name(), bands="S1", pretrained_file="demo",
                                img_size=32, token_norm=token_norm).eval()  # fmt: skip
        assert net.token_norm == token_norm
        with torch.no_grad():
            got = net(x)
            want = demo.intermediate_maps(x, "S1", net.feature_info.out_indices, token_norm)
        assert len(got) == len(want) == 4
        for g, w in zip(got, want, strict=True):
            torch.testing.assert_close(g, w, atol=1e-4, rtol=1e-4)
        with torch.no_grad():  # the last block's map: pre-norm, it is the release's all_tokens
            last = demo(x, sensor_type="S1", all_tokens=True, token_norm=token_norm)
        torch.testing.assert_close(want[-1], last)
    with pytest.raises(ValueError, match="token_norm must be one of"):
        tt.build_backbone(demo_encoder_name(), bands="S1", token_norm="normed")


def test_upernet_forward_backward_with_demo_weights() -> None:
    torch.manual_seed(0)
    model = EncoderDecoderFactory().build_model(
        task="segmentation",
        backbone=demo_encoder_name(),
        backbone_bands="sentinel2-l2a",
        backbone_pretrained_file="demo",
        necks=[{"name": "LearnedInterpolateToPyramidal"}],
        decoder="UperNetDecoder",
        decoder_channels=32,
        num_classes=3,
    )
    demo = SmartiesEncoder.from_pretrained("demo").state_dict()["blocks.3.mlp.fc2.weight"]
    assert torch.equal(_param(model.encoder, "blocks.3.mlp.fc2.weight"), demo)
    x = torch.randn(2, 12, 64, 64)
    y = torch.randint(0, 3, (2, 64, 64))
    out = model(x).output
    assert out.shape == (2, 3, 64, 64)
    loss = torch.nn.functional.cross_entropy(out, y)
    loss.backward()
    grad = _param(model.encoder, "blocks.1.mlp.fc2.weight").grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert _param(model.encoder, "layers.0.weight").grad.abs().sum() > 0  # S2 B01 layer trained
    s1 = _param(model.encoder, "layers.15.weight").grad  # S1 VV layer: unused by S2 input
    assert s1 is None or not s1.any()


def _param(module: torch.nn.Module, suffix: str) -> torch.Tensor:
    """The one parameter whose name ends with ``suffix`` (the backbone's nesting is timm's)."""
    found = [p for n, p in module.named_parameters() if n == suffix or n.endswith("." + suffix)]
    assert len(found) == 1, f"{len(found)} parameters end with {suffix}"
    return found[0]


def test_terratorch_band_names_are_the_sentinel2_bands_they_denote() -> None:
    names = ["BLUE", "GREEN", "RED", "NIR_NARROW", "SWIR_1", "SWIR_2"]
    s2 = ["sentinel2-l2a/B02", "sentinel2-l2a/B03", "sentinel2-l2a/B04", "sentinel2-l2a/B8A",
          "sentinel2-l2a/B11", "sentinel2-l2a/B12"]  # fmt: skip
    x = torch.randn(1, 6, 32, 32, generator=torch.Generator().manual_seed(0))

    def features(bands) -> torch.Tensor:
        torch.manual_seed(0)
        net = BACKBONE_REGISTRY.build(demo_encoder_name(), bands=bands, pretrained_file="demo", img_size=32)
        with torch.no_grad():
            return net.eval()(x)[-1]

    ref = features(s2)
    assert torch.allclose(features(names), ref, atol=1e-5)  # same layers as S2 B02..B12
    assert torch.allclose(features([HLSBands[n] for n in names]), ref, atol=1e-5)  # enum members
    assert not torch.allclose(features(names[::-1]), ref, atol=1e-3)  # order matters
    assert tt.terratorch_bands(["RED_EDGE_1", "NIR_BROAD", "VV", "red_2"]) == [
        "sentinel2-l2a/B05", "sentinel2-l2a/B08", "sentinel1-grd/VV", "red_2"
    ]  # fmt: skip


def test_release_means_stds_are_the_release_preprocessing_and_in_the_yaml() -> None:
    names = ["BLUE", "GREEN", "RED", "NIR_NARROW", "SWIR_1", "SWIR_2"]
    means, stds = tt.release_means_stds(names)
    st = release_stats("sentinel2-l2a")
    raw = np.array([[100.0, 900.0, 2500.0]] * 6)[..., None]  # (C, 3, 1) DN inside [p1, p99]
    ours = (raw - np.array(means)[:, None, None]) / np.array(stds)[:, None, None]
    release = normalize_array(raw, ["B02", "B03", "B04", "B8A", "B11", "B12"], "sentinel2-l2a")
    np.testing.assert_allclose(ours, release, rtol=1e-5, atol=1e-5)
    assert means[0] == pytest.approx(st.bands["B02"]["p1"] + st.bands["B02"]["mean"] * (
        st.bands["B02"]["p99"] - st.bands["B02"]["p1"]))  # fmt: skip
    config = load_yaml(CONFIG, "config")["data"]["init_args"]
    assert config["dataset_bands"] == names
    np.testing.assert_allclose(config["means"], means, atol=1e-3)
    np.testing.assert_allclose(config["stds"], stds, atol=1e-3)


def _write_tiles(folder: Path, n: int, rng: np.random.Generator) -> None:
    folder.mkdir(parents=True)
    profile = dict(driver="GTiff", width=32, height=32, dtype="int16")
    for i in range(n):
        img = rng.integers(0, 4000, (6, 32, 32)).astype("int16")  # HLS reflectance x 10000
        with rasterio.open(folder / f"tile{i}_merged.tif", "w", count=6, **profile) as f:
            f.write(img)
        with rasterio.open(folder / f"tile{i}.mask.tif", "w", count=1, **profile) as f:
            f.write((img[3:4] > 2000).astype("int16"))


def test_terratorch_fit_one_epoch_from_the_shipped_yaml(tmp_path: Path, monkeypatch) -> None:
    """`terratorch fit --config` (TerraTorch's own CLI) with the shipped YAML, the backbones found
    through the config alone: our module is unloaded and our names taken out of the registry."""
    config = load_yaml(CONFIG, "config")
    assert config["model"]["class_path"] == "smartiesviz.integrations.terratorch.SemanticSegmentationTask"
    assert "custom_modules_path" not in config
    config["model"]["init_args"]["model_args"].update(
        backbone=demo_encoder_name(), backbone_pretrained_file="demo", backbone_img_size=32,
        decoder_channels=16,
    )  # fmt: skip
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    rng = np.random.default_rng(0)
    _write_tiles(tmp_path / "train", 2, rng)
    _write_tiles(tmp_path / "val", 2, rng)
    args = ["fit", "--config", str(tmp_path / "config.yaml")]
    for split, folder in (("train", "train"), ("val", "val"), ("test", "val")):
        args += [f"--data.init_args.{split}_data_root={tmp_path / folder}",
                 f"--data.init_args.{split}_label_data_root={tmp_path / folder}"]  # fmt: skip
    args += ["--data.init_args.batch_size=2", "--data.init_args.num_workers=0",
             "--trainer.accelerator=cpu", "--trainer.max_epochs=1", "--trainer.logger=false",
             "--trainer.limit_train_batches=1", "--trainer.limit_val_batches=1",
             "--trainer.enable_checkpointing=false", "--trainer.enable_progress_bar=false",
             "--trainer.enable_model_summary=false", f"--trainer.default_root_dir={tmp_path / 'run'}"]  # fmt: skip

    monkeypatch.delitem(sys.modules, tt.__name__)  # the config's class_path must import it again
    ours = {k: v for k, v in TERRATORCH_BACKBONE_REGISTRY._registry.items() if k not in tt.BACKBONES}
    monkeypatch.setattr(TERRATORCH_BACKBONE_REGISTRY, "_registry", ours)
    monkeypatch.setattr(smartiesviz.integrations, "terratorch", tt)  # put back afterwards
    monkeypatch.setattr(sys, "argv", ["terratorch"])
    monkeypatch.chdir(tmp_path)
    environ = dict(os.environ)  # TerraTorch's CLI sets GDAL variables, Lightning its seed
    try:
        with preserved():  # Lightning's Trainer may touch cudnn flags
            cli = build_lightning_cli(args=args)
    finally:
        os.environ.clear()
        os.environ.update(environ)
    assert demo_encoder_name() in TERRATORCH_BACKBONE_REGISTRY  # registered by the config's import
    assert cli.trainer.current_epoch == 1 and cli.trainer.global_step == 1
    assert torch.isfinite(cli.trainer.callback_metrics["train/loss"])
    demo = SmartiesEncoder.from_pretrained("demo").state_dict()["blocks.3.mlp.fc2.weight"]
    trained = _param(cli.model.model.encoder, "blocks.3.mlp.fc2.weight")
    assert trained.shape == demo.shape and not torch.equal(trained, demo)  # demo weights, then a step
