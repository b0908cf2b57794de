"""SMARTIES fine-tuned with TorchGeo's Lightning ClassificationTask on TorchGeo's EuroSAT class."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("torchgeo", reason="needs the torchgeo extra: pip install smartiesviz[torchgeo]")
from lightning.pytorch import Trainer  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402
from torchgeo.datasets import EuroSAT  # noqa: E402

from smartiesviz.integrations.torchgeo import (  # noqa: E402
    EUROSAT_BANDS,
    SmartiesClassificationTask,
    SmartiesNormalize,
    SmartiesWeights,
    eurosat_bands,
    write_eurosat_layout,
)
from smartiesviz.models.encoder import SmartiesEncoder  # noqa: E402
from tests.ecosystem.conftest import demo_encoder_name  # noqa: E402

BANDS = tuple(b for b in EUROSAT_BANDS if b != "B10")  # B10 has no SMARTIES layer


pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")


@pytest.fixture
def eurosat_root(tmp_path: Path) -> Path:
    """Tiny synthetic EuroSAT folder: class 'bright' is brighter in every band."""
    rng = np.random.default_rng(0)
    labels = np.arange(20) % 2
    images = rng.integers(300, 1500, size=(20, 13, 32, 32)) + (1 - labels[:, None, None, None]) * 1500
    return write_eurosat_layout(tmp_path / "eurosat", images.astype(np.uint16), labels, ["bright", "dark"])


def test_eurosat_layout_reads_with_torchgeo(eurosat_root: Path) -> None:
    ds = EuroSAT(eurosat_root, split="train", bands=BANDS)
    assert len(ds) == 16 and len(EuroSAT(eurosat_root, split="val", bands=BANDS)) == 4
    sample = ds[0]
    assert sample["image"].shape == (12, 32, 32) and int(sample["label"]) in (0, 1)
    with pytest.raises(ValueError, match="sorted"):
        write_eurosat_layout(eurosat_root, np.zeros((1, 13, 8, 8), np.uint16), [0], ["z", "a"])


def _loader(root: Path, split: str) -> DataLoader:
    norm = SmartiesNormalize(BANDS, "sentinel2-l1c")
    return DataLoader(EuroSAT(root, split=split, bands=BANDS, transforms=norm), batch_size=4, shuffle=False)


@pytest.mark.parametrize("freeze", [True, False], ids=["linear-probe", "full-finetune"])
def test_classification_task_trains(eurosat_root: Path, tmp_path: Path, freeze: bool) -> None:
    torch.manual_seed(0)
    task = SmartiesClassificationTask(
        model=SmartiesWeights.DEMO.meta["model"], weights=SmartiesWeights.DEMO,
        bands=eurosat_bands(BANDS), img_size=32, num_classes=2, lr=1e-3, freeze_backbone=freeze,
    )  # fmt: skip
    assert task.hparams["in_channels"] == 12 and task.hparams["bands"] == eurosat_bands(BANDS)
    demo = SmartiesEncoder.from_pretrained("demo", img_size=32)
    enc_before = {k: v.clone() for k, v in task.model.encoder.state_dict().items()}
    assert torch.equal(enc_before["blocks.0.attn.qkv.weight"], demo.state_dict()["blocks.0.attn.qkv.weight"])
    head_before = task.model.head.weight.clone()
    trainer = Trainer(
        max_epochs=1, limit_train_batches=3, limit_val_batches=1, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's few-workers / small-batch hints
        trainer.fit(task, _loader(eurosat_root, "train"), _loader(eurosat_root, "val"))
    assert trainer.global_step == 3
    assert "val_loss" in trainer.callback_metrics and "train_OverallAccuracy" in trainer.callback_metrics
    assert not torch.equal(task.model.head.weight, head_before)
    enc_after = task.model.encoder.state_dict()
    changed = not torch.equal(enc_after["blocks.0.attn.qkv.weight"], enc_before["blocks.0.attn.qkv.weight"])
    assert changed is not freeze


def test_weights_entries() -> None:
    meta = SmartiesWeights.VITB_V1.meta
    assert meta["model"] == "smarties_encoder_vit_base_patch16" and meta["file"] == "smarties-v1-vitb.safetensors"
    assert {"bands", "license", "sha256", "normalization", "publication", "repo"} <= set(meta)
    with pytest.raises(FileNotFoundError, match="downloads nothing"):
        SmartiesWeights.VITL_V1.get_state_dict()
    sd = SmartiesWeights.DEMO.get_state_dict()
    assert sd["cls_token"].shape == (1, 1, 192)
    assert SmartiesWeights.DEMO.meta["model"] == demo_encoder_name()  # the entry names the file's shape
    with pytest.raises(ValueError, match="in_channels=3"):
        SmartiesClassificationTask(model="smarties_encoder_vit_tiny_patch8", bands="S2", in_channels=3, num_classes=2)
