"""TorchGeo's own ClassificationTask fine-tunes SMARTIES on a TorchGeo EuroSAT folder, in Python
and through `torchgeo fit --config` with the shipped YAML."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("torchgeo", reason="needs the torchgeo extra: pip install smartiesviz[torchgeo]")
from lightning.pytorch import Trainer  # noqa: E402
from torchgeo.main import main as torchgeo_main  # noqa: E402
from torchgeo.trainers import ClassificationTask  # noqa: E402

import smartiesviz.integrations.torchgeo as tg  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
CONFIG = Path(tg.__file__).parent / "configs" / "torchgeo-eurosat.yaml"


@pytest.fixture
def eurosat_root(tmp_path: Path) -> Path:
    """EuroSAT folder, 64 px tiles: class 'bright' is brighter in every band."""
    rng = np.random.default_rng(0)
    labels = np.arange(10) % 2
    images = rng.integers(300, 1500, size=(10, 13, 64, 64)) + (1 - labels[:, None, None, None]) * 1500
    return tg.write_eurosat_layout(tmp_path / "eurosat", images.astype(np.uint16), labels, ["bright", "dark"])


def test_classification_task_fine_tunes(eurosat_root: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    task = ClassificationTask(model=tg.SmartiesWeights.DEMO.meta["model"], weights=tg.SmartiesWeights.DEMO,
                              in_channels=12, num_classes=2, lr=1e-3)  # fmt: skip
    dm = tg.SmartiesEuroSATDataModule(root=eurosat_root, batch_size=2)
    qkv = task.model.blocks[0].attn.qkv.weight.detach().clone()
    losses: list[float] = []

    class Record(torch.nn.Module):  # the loss of each step, as TorchGeo computes it
        def forward(self, *args: torch.Tensor) -> torch.Tensor:
            loss = torch.nn.functional.cross_entropy(*args)
            losses.append(loss.item())
            return loss

    task.criterion = Record()
    trainer = Trainer(max_epochs=2, limit_train_batches=4, limit_val_batches=1, accelerator="cpu", logger=False,
                      enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                      default_root_dir=tmp_path, num_sanity_val_steps=0)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's few-workers / small-batch hints
        trainer.fit(task, datamodule=dm)
    assert trainer.global_step == 8 and task.model.bands.names == list(tg.EUROSAT_SMARTIES_BANDS)
    assert not torch.equal(task.model.blocks[0].attn.qkv.weight, qkv)  # the backbone was tuned
    train = losses[:4] + losses[5:9]  # epoch 1, epoch 2 (a validation step after each)
    assert len(losses) == 10 and np.mean(train[-4:]) < np.mean(train[:4])
    assert np.isfinite(trainer.callback_metrics["val_loss"].item())


def test_torchgeo_fit_with_shipped_config(eurosat_root: Path, tmp_path: Path) -> None:
    args = ["fit", "--config", str(CONFIG), f"--data.init_args.root={eurosat_root}",
            f"--trainer.default_root_dir={tmp_path / 'run'}", "--trainer.accelerator=cpu",
            "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1",
            "--trainer.enable_progress_bar=false", "--data.init_args.batch_size=2"]  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torchgeo_main(args)
    assert (tmp_path / "run" / "config.yaml").is_file()  # LightningCLI ran to the end of fit
