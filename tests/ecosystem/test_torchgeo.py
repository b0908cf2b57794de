"""SMARTIES through TorchGeo's own contracts: WeightsEnum entries, ClassificationTask loading,
the EuroSAT band order (B8A last) and the release's normalisation."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("torchgeo", reason="needs the torchgeo extra: pip install smartiesviz[torchgeo]")
import timm  # noqa: E402
from torchgeo.datasets import EuroSAT  # noqa: E402
from torchgeo.models import get_model_weights, get_weight  # noqa: E402
from torchgeo.trainers import ClassificationTask  # noqa: E402

from smartiesviz.data.preprocess import normalize_array  # noqa: E402
from smartiesviz.integrations.torchgeo import (  # noqa: E402
    EUROSAT_SMARTIES_BANDS,
    S2_L2A_BANDS,
    SmartiesClassificationTask,
    SmartiesEuroSATDataModule,
    SmartiesNormalize,
    SmartiesWeights,
    bind_bands,
    eurosat_bands,
    write_eurosat_layout,
)
from tests.ecosystem.conftest import demo_encoder_name  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
MODEL = SmartiesWeights.DEMO.meta["model"]
#: EuroSAT's order with B8A moved next to B08 (the Sentinel-2 L2A position)
SWAPPED = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")


@pytest.fixture
def eurosat_root(tmp_path: Path) -> Path:
    """Tiny EuroSAT folder (64 px, as EuroSAT): class 'bright' is brighter in every band."""
    rng = np.random.default_rng(0)
    labels = np.arange(10) % 2
    images = rng.integers(300, 1500, size=(10, 13, 64, 64)) + (1 - labels[:, None, None, None]) * 1500
    return write_eurosat_layout(tmp_path / "eurosat", images.astype(np.uint16), labels, ["bright", "dark"])


def _task(**kwargs: object) -> ClassificationTask:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # TorchGeo warns when it drops a checkpoint tensor
        return ClassificationTask(model=MODEL, weights=SmartiesWeights.DEMO, num_classes=2, **kwargs)


def test_eurosat_layout_reads_with_torchgeo(eurosat_root: Path) -> None:
    ds = EuroSAT(eurosat_root, split="train", bands=EUROSAT_SMARTIES_BANDS)
    assert len(ds) == 8 and len(EuroSAT(eurosat_root, split="val", bands=EUROSAT_SMARTIES_BANDS)) == 2
    assert ds[0]["image"].shape == (12, 64, 64) and int(ds[0]["label"]) in (0, 1)
    assert EuroSAT.all_band_names[-1] == "B8A"  # the order this module's constants assume
    with pytest.raises(ValueError, match="sorted"):
        write_eurosat_layout(eurosat_root, np.zeros((1, 13, 8, 8), np.uint16), [0], ["z", "a"])


def test_weights_entry_contract() -> None:
    entry = SmartiesWeights.DEMO
    assert get_weight("SmartiesWeights.DEMO") is entry  # what a YAML `weights:` string resolves to
    assert get_model_weights(MODEL) is SmartiesWeights and MODEL == demo_encoder_name()
    assert entry.meta["bands"] == list(S2_L2A_BANDS) and entry.meta["in_chans"] == len(S2_L2A_BANDS)
    assert SmartiesWeights.VITB_V1.meta["hf_hub_id"] == "gsumbul/SMARTIES-v1-ViT-B"
    # transforms: the release's normalisation (clip included) of the entry's bands
    x = torch.rand(2, 12, 8, 8) * 6000
    want = normalize_array(x, entry.meta["bands"], "sentinel2-l2a")
    torch.testing.assert_close(entry.transforms(x), want)
    torch.testing.assert_close(entry.transforms({"image": x, "label": 1})["image"], want)
    # state dict: the timm model's own keys (no head)
    sd = entry.get_state_dict(progress=True)
    own = timm.create_model(MODEL, num_classes=0).state_dict()
    assert set(sd) == set(own) and all(sd[k].shape == own[k].shape for k in sd)


def test_torchgeo_classification_task_loads_smarties_weights() -> None:
    task = _task(in_channels=12)  # no warning: TorchGeo dropped no tensor
    sd = SmartiesWeights.DEMO.get_state_dict()
    got = task.model.state_dict()
    assert all(torch.equal(got[k], v) for k, v in sd.items())  # strict=False would hide a miss
    assert task.model.head.out_features == 2
    # TorchGeo passes only in_channels: 12 Sentinel-2 channels come in two orders, so the model
    # refuses to run until the data names its bands (issue 26: never a silent order)
    with pytest.raises(AssertionError, match=r"channel count alone.*B8A last"):
        task(torch.randn(2, 12, 64, 64))
    bind_bands(task, "sentinel2-l2a")
    assert task(torch.randn(2, 12, 64, 64)).shape == (2, 2)


def test_semantic_segmentation_task_dpt() -> None:
    """TorchGeo's SemanticSegmentationTask with smp's DPT on the ``tu-`` timm encoder. Its other
    decoders (UNet, UPerNet, ...) need a downsampling pyramid, which a plain ViT has not; and it
    loads ``weights`` strictly into smp's encoder wrapper (keys ``model.*``), so the weights go in
    through the wrapped timm model."""
    from torchgeo.trainers import SemanticSegmentationTask

    kwargs = dict(model="dpt", backbone=f"tu-{MODEL}", in_channels=12, num_classes=2)
    with pytest.raises(RuntimeError, match="model.cls_token"):
        SemanticSegmentationTask(weights=SmartiesWeights.DEMO, **kwargs)
    task = SemanticSegmentationTask(**kwargs)
    vit = task.model.encoder.model
    missing, unexpected = vit.load_state_dict(SmartiesWeights.DEMO.get_state_dict(), strict=False)
    assert not unexpected and all(k.startswith("head") for k in missing)
    bind_bands(task, eurosat_bands(SWAPPED))
    assert vit.bands.names == list(SWAPPED)
    with torch.no_grad():
        assert task(torch.randn(1, 12, 64, 64)).shape == (1, 2, 64, 64)


@pytest.mark.parametrize("order", [EUROSAT_SMARTIES_BANDS, SWAPPED], ids=["eurosat-b8a-last", "b8a-swapped"])
def test_band_order_comes_from_the_dataset(eurosat_root: Path, order: tuple[str, ...]) -> None:
    task = _task(in_channels=12)
    dm = SmartiesEuroSATDataModule(root=eurosat_root, bands=order, batch_size=2)
    dm.trainer = type("T", (), {"lightning_module": task})()  # what Trainer attaches before setup
    dm.setup("fit")
    assert task.model.bands.names == list(order)  # the dataset's order, not the count's default
    batch = dm.aug(next(iter(dm.train_dataloader())))
    # the same pixels with the channels in the other order, through a model bound to that order
    other = SWAPPED if order == EUROSAT_SMARTIES_BANDS else EUROSAT_SMARTIES_BANDS
    perm = [order.index(b) for b in other]
    task.eval()
    with torch.no_grad():
        want = task(batch["image"])
        bind_bands(task, eurosat_bands(other))
        torch.testing.assert_close(task(batch["image"][:, perm]), want)
        assert not torch.allclose(task(batch["image"]), want, atol=1e-3)  # the order matters


def test_band_order_errors_name_both_orders(eurosat_root: Path) -> None:
    with pytest.raises(ValueError, match=r"sentinel2-l2a.*B8A, B09, B11, B12\].*EuroSAT.*B12, B8A\]"):
        SmartiesClassificationTask(model=MODEL, in_channels=12, num_classes=2)  # count only: ambiguous
    task = SmartiesClassificationTask(model=MODEL, weights=SmartiesWeights.DEMO, num_classes=2,
                                      bands=eurosat_bands(SWAPPED))  # fmt: skip
    assert task.hparams["in_channels"] == 12
    dm = SmartiesEuroSATDataModule(root=eurosat_root, bands=EUROSAT_SMARTIES_BANDS)
    dm.trainer = type("T", (), {"lightning_module": task})()
    with pytest.raises(ValueError, match=r"B08', 'sentinel2-l1c/B8A'.*B12', 'sentinel2-l1c/B8A'\]"):
        dm.setup("fit")
    with pytest.raises(ValueError, match="set in_channels: 12"):
        bind_bands(ClassificationTask(model=MODEL, in_channels=3, num_classes=2), eurosat_bands(SWAPPED))


def test_normalize_module_matches_release(eurosat_root: Path) -> None:
    norm = SmartiesNormalize(EUROSAT_SMARTIES_BANDS, "sentinel2-l1c", "EuroSAT")
    x = EuroSAT(eurosat_root, bands=EUROSAT_SMARTIES_BANDS)[0]["image"]
    torch.testing.assert_close(norm(x), normalize_array(x, EUROSAT_SMARTIES_BANDS, "sentinel2-l1c", "EuroSAT"))
    with pytest.raises(ValueError, match="13 channels"):
        norm(torch.zeros(13, 4, 4))
