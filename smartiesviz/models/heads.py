"""The released SMARTIES task files as models: encoder + the release's head, classes and reducer.

Every fine-tuned file in ``gsumbul/SMARTIES-v1-finetuned-models`` holds the downstream ViT and a
task head (``get_task_head`` in the release; ``../shared/reference/SMARTIES-facts.md``,
"Released task files and their heads"):

==============  ===============================================================  ==============
head            module (keys)                                                    on
==============  ===============================================================  ==============
finetune        ``Linear(k·D, C)`` (``head.weight``, ``head.bias``)               pooled features
linprobe        ``Sequential(BatchNorm1d(k·D, affine=False, eps=1e-6),           pooled features
                Linear(k·D, C))`` (``head.0.running_mean``, ``head.0.running_var``,
                ``head.0.num_batches_tracked``, ``head.1.weight``, ``head.1.bias``)
segmentation    ``Sequential(Conv2d(k·D, C, 1), Upsample(96/14, bilinear))``     ``all_tokens`` map
                (``head.0.weight``, ``head.0.bias``)                              (pre-norm patches)
==============  ===============================================================  ==============

``k`` is the number of sources: each source is encoded separately and the features are
concatenated before the head (BigEarthNet-MM: ``k = 2``). The facts write the linear probe's
width as ``D``; for the multi-modal probe it must be ``2D`` to take the concatenation, so the
width is read from the file and checked against ``k·D``.

Source order of BigEarthNet-MM: S2 then S1, as the release's ``eval_datasets.yaml`` lists them
(``BigEarthNetMM: sources: [BigEarthNetS2, BigEarthNetS1]``); :data:`TASK_SPECS` records it, and
:meth:`TaskModel.forward` takes a mapping by source name so the order cannot be mixed up.
Each source's bands are the release's dataset bands in its input order (``selected_bands`` of
``eval_datasets.yaml``; EuroSAT puts B8A last), and ``stats`` names its normalisation
(:func:`smartiesviz.data.preprocess.release_stats`). Reducer: ``sigmoid`` for BigEarthNet
(multi-label), ``argmax`` otherwise.

Load with :func:`load_task_model` (a Hub name, or a local file with its task named)::

    model = load_task_model("gsumbul/SMARTIES-v1-finetuned-models/smarties-v1-vitb-eurosat-finetune")
    probs = model.predict(x)            # x (B, 12, 224, 224) in model units, bands model.sources[0].bands
    model.classes[int(probs[0])]
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from smartiesviz.models.checkpoint import (
    CheckpointError,
    LoadReport,
    read_state_dict,
    remap_release_state_dict,
)
from smartiesviz.models.classes import CLASS_NAMES
from smartiesviz.models.encoder import SmartiesEncoder
from smartiesviz.models.hub import HubWeights
from smartiesviz.models.resolve import CheckpointArg, CheckpointSource, resolve_checkpoint
from smartiesviz.spectrum.resolve import BandsArg

__all__ = [
    "HeadKind",
    "TaskType",
    "Reducer",
    "TaskSource",
    "TaskSpec",
    "TASK_SPECS",
    "TaskModel",
    "build_head",
    "task_spec",
    "load_task_model",
]

HeadKind = Literal["finetune", "linprobe", "segmentation"]
TaskType = Literal["multi-label", "single-label", "segmentation"]
Reducer = Literal["sigmoid", "argmax"]
#: the release's segmentation upsampling: 14×14 tokens (224 px, patch 16) → 96×96 labels
DFC_UPSAMPLE = 96 / 14
_SUFFIX = ".safetensors"


@dataclass(frozen=True)
class TaskSource:
    """One input source of a task.

    Attributes:
        name: the release's sensor type (``"S2"``, ``"S1"``, ``"RGB"``), the key of
            :meth:`TaskModel.forward`'s mapping.
        bands: the input channels in order (registry names, ``"sentinel2-l2a/B04"``).
        stats: the release's normalisation statistics for the dataset
            (:func:`smartiesviz.data.preprocess.release_stats`).
    """

    name: str
    bands: tuple[str, ...]
    stats: str


@dataclass(frozen=True)
class TaskSpec:
    """What a released task file is for.

    Attributes:
        name: the file stem after ``smarties-v1-vit{b,l}-`` (``"eurosat-finetune"``).
        dataset: ``"BigEarthNet"``, ``"EuroSAT"``, ``"RESISC45"``, ``"DFC2020"``.
        head: :data:`HeadKind`.
        task_type: :data:`TaskType`.
        classes: class names in output order (:mod:`smartiesviz.models.classes`).
        sources: the inputs, encoded separately and concatenated in this order.
        reducer: ``"sigmoid"`` (multi-label probabilities) or ``"argmax"`` (class index).
        upsample: the segmentation head's scale factor (None for classification).
    """

    name: str
    dataset: str
    head: HeadKind
    task_type: TaskType
    classes: tuple[str, ...]
    sources: tuple[TaskSource, ...]
    reducer: Reducer
    upsample: float | None = None

    @property
    def num_classes(self) -> int:
        """``C``."""
        return len(self.classes)

    @property
    def sensors(self) -> tuple[str, ...]:
        """Source names in concatenation order (``("S2", "S1")`` for BigEarthNet-MM)."""
        return tuple(s.name for s in self.sources)


def _bands(sensor: str, names: str) -> tuple[str, ...]:
    return tuple(f"{sensor}/{b}" for b in names.split())


_S2_L2A = "B01 B02 B03 B04 B05 B06 B07 B08 B8A B09 B11 B12"  # the release's "S2": no B10
_BEN_S2 = TaskSource("S2", _bands("sentinel2-l2a", _S2_L2A), "BigEarthNetS2")
_BEN_S1 = TaskSource("S1", _bands("sentinel1-grd", "VV VH"), "BigEarthNetS1")
# EuroSAT's release band list ends with B8A; its selected_bands drop B10 (cirrus)
_EUROSAT = TaskSource(
    "S2", _bands("sentinel2-l2a", "B01 B02 B03 B04 B05 B06 B07 B08 B09 B11 B12 B8A"), "EuroSAT"
)
_RESISC = TaskSource("RGB", _bands("rgb", "red green blue"), "RESISC45")
# DFC2020's release entry lists S2 and S1; selected_bands keep the 12 S2 bands
_DFC = TaskSource("S2", _bands("sentinel2-l2a", _S2_L2A), "DFC2020")


def _spec(name: str, head: HeadKind, dataset: str, *sources: TaskSource) -> TaskSpec:
    multi = dataset == "BigEarthNet"
    task: TaskType = (
        "segmentation" if head == "segmentation" else "multi-label" if multi else "single-label"
    )
    return TaskSpec(
        name, dataset, head, task, CLASS_NAMES[dataset], sources, "sigmoid" if multi else "argmax",
        DFC_UPSAMPLE if head == "segmentation" else None,
    )  # fmt: skip


#: Every released task, by file stem after ``smarties-v1-vit{b,l}-`` (the sizes share a task).
TASK_SPECS: dict[str, TaskSpec] = {
    s.name: s
    for s in (
        _spec("bigearthnets2-finetune", "finetune", "BigEarthNet", _BEN_S2),
        _spec("bigearthnets1-linprobe", "linprobe", "BigEarthNet", _BEN_S1),
        _spec("bigearthnetmm-linprobe", "linprobe", "BigEarthNet", _BEN_S2, _BEN_S1),
        _spec("eurosat-finetune", "finetune", "EuroSAT", _EUROSAT),
        _spec("eurosat-linprobe", "linprobe", "EuroSAT", _EUROSAT),
        _spec("resisc45-finetune", "finetune", "RESISC45", _RESISC),
        _spec("dfc2020-linprobe", "segmentation", "DFC2020", _DFC),
    )
}


def task_spec(name: str | TaskSpec | HubWeights) -> TaskSpec:
    """The :class:`TaskSpec` of a task name, a released file name or a Hub table entry.

    Args:
        name: ``"eurosat-finetune"``, ``"smarties-v1-vitb-eurosat-finetune[.safetensors]"``, a
            :class:`~smartiesviz.models.hub.HubWeights`, or a :class:`TaskSpec` (returned).

    Raises:
        ValueError: an unknown name (the known task names are listed).
    """
    if isinstance(name, TaskSpec):
        return name
    text = name.filename if isinstance(name, HubWeights) else name
    stem = Path(text).name.removesuffix(_SUFFIX).lower()
    for prefix in ("smarties-v1-vitb-", "smarties-v1-vitl-"):
        stem = stem.removeprefix(prefix)
    if stem not in TASK_SPECS:
        raise ValueError(
            f"{text!r} is not a released SMARTIES task; known tasks: {', '.join(TASK_SPECS)} "
            "(or pass a TaskSpec for your own head)"
        )
    return TASK_SPECS[stem]


def build_head(
    kind: HeadKind, in_dim: int, num_classes: int, upsample: float | None = None
) -> nn.Module:
    """The release's head module (parameter names as in its files, without ``head.``).

    Args:
        kind: :data:`HeadKind`.
        in_dim: feature width ``k·D``.
        num_classes: ``C``.
        upsample: segmentation scale factor (default the release's 96/14).
    """
    if kind == "finetune":
        return nn.Linear(in_dim, num_classes)
    if kind == "linprobe":
        return nn.Sequential(
            nn.BatchNorm1d(in_dim, affine=False, eps=1e-6), nn.Linear(in_dim, num_classes)
        )
    if kind == "segmentation":
        return nn.Sequential(
            nn.Conv2d(in_dim, num_classes, kernel_size=1),
            nn.Upsample(scale_factor=upsample or DFC_UPSAMPLE, mode="bilinear"),
        )
    raise ValueError(f"head must be one of finetune, linprobe, segmentation; got {kind!r}")


Inputs = torch.Tensor | Mapping[str, torch.Tensor] | Sequence[torch.Tensor]


class TaskModel(nn.Module):
    """A SMARTIES encoder with a released task head.

    Args:
        encoder: the downstream encoder (CLS after ``norm``, or ``fc_norm`` pooling, as its
            file says).
        head: the head module (:func:`build_head`).
        spec: what the task is (classes, sources, reducer).

    Attributes:
        encoder, head, spec: as given.
        load_report: the encoder's :class:`~smartiesviz.models.checkpoint.LoadReport`, with the
            head's keys among ``loaded``.
        checkpoint_source: where the weights came from (file, Hub commit, sha256), or None.
    """

    def __init__(self, encoder: SmartiesEncoder, head: nn.Module, spec: TaskSpec) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head
        self.spec = spec

    @property
    def task_type(self) -> TaskType:
        """``"multi-label"``, ``"single-label"`` or ``"segmentation"``."""
        return self.spec.task_type

    @property
    def classes(self) -> tuple[str, ...]:
        """Class names in output order."""
        return self.spec.classes

    @property
    def sensors(self) -> tuple[str, ...]:
        """Source names in concatenation order."""
        return self.spec.sensors

    @property
    def sources(self) -> tuple[TaskSource, ...]:
        """Sources with their bands and normalisation statistics."""
        return self.spec.sources

    @property
    def reducer(self) -> Reducer:
        """``"sigmoid"`` or ``"argmax"``."""
        return self.spec.reducer

    @property
    def load_report(self) -> LoadReport | None:
        """The encoder's load report (head keys among ``loaded``)."""
        return self.encoder.load_report

    @property
    def checkpoint_source(self) -> CheckpointSource | None:
        """Where the weights came from, or None for a state dict."""
        return self.encoder.checkpoint_source

    def _pairs(self, x: Inputs, bands: Any) -> list[tuple[torch.Tensor, BandsArg]]:
        """``(tensor, bands)`` per source in :attr:`sensors` order."""
        names = self.sensors
        if isinstance(x, torch.Tensor):
            if len(names) != 1:
                raise ValueError(
                    f"{self.spec.name} takes {len(names)} sources ({', '.join(names)}): pass "
                    f"{{{', '.join(f'{n!r}: x_{n.lower()}' for n in names)}}}"
                )
            return [(x, self.sources[0].bands if bands is None else bands)]
        if isinstance(x, Mapping):
            if set(x) != set(names):
                raise ValueError(f"{self.spec.name} takes sources {list(names)}; got {list(x)}")
            xs = [x[n] for n in names]
        else:
            xs = list(x)
            if len(xs) != len(names):
                raise ValueError(
                    f"{self.spec.name} takes {len(names)} sources {list(names)}; got {len(xs)}"
                )
        if bands is None:
            own = [s.bands for s in self.sources]
        elif isinstance(bands, Mapping):
            own = [bands.get(n, s.bands) for n, s in zip(names, self.sources, strict=True)]
        else:
            raise ValueError("with several sources give bands as a mapping {source name: bands}")
        return list(zip(xs, own, strict=True))

    def features(self, x: Inputs, bands: Any = None) -> torch.Tensor:
        """The head's input: ``(B, k·D)``, or for segmentation the pre-norm token map
        ``(B, k·D, H/S, W/S)``; sources encoded separately, concatenated in :attr:`sensors` order.

        Args:
            x: ``(B, C, H, W)`` in model units (one source); or ``{source name: (B, C_i, H, W)}``
                (or a sequence in :attr:`sensors` order) for a multi-source task.
            bands: the input's bands when they differ from the source's release bands (for
                several sources: ``{source name: bands}``).
        """
        pairs = self._pairs(x, bands)
        dense = self.spec.head == "segmentation"
        if len(pairs) == 1:
            return self.encoder(pairs[0][0], bands=pairs[0][1], all_tokens=dense)
        return self.encoder(pairs, all_tokens=dense)

    def forward(self, x: Inputs, bands: Any = None) -> torch.Tensor:
        """Logits: ``(B, C)``, or ``(B, C, H', W')`` for segmentation (``H' = ⌊H/S · 96/14⌋``).

        Args: see :meth:`features`.
        """
        return self.head(self.features(x, bands))

    def reduce(self, logits: torch.Tensor) -> torch.Tensor:
        """Apply the reducer: sigmoid probabilities ``(B, C)``, or class indices ``(B,)`` /
        ``(B, H', W')``."""
        return torch.sigmoid(logits) if self.reducer == "sigmoid" else logits.argmax(dim=1)

    def dense_logits(self, x: Inputs, bands: Any = None) -> torch.Tensor:
        """Segmentation logits on the token grid: ``(B, C, H/S, W/S)``, the head's 1×1
        convolution before its bilinear upsampling (the upsampled logits interpolate these, so
        each value is the head's logit at its patch's centre). Arguments as :meth:`features`.

        Raises:
            ValueError: the head is not a segmentation head.
        """
        if self.spec.head != "segmentation":
            raise ValueError(f"{self.spec.name} is a {self.spec.head} head: it has no dense logits")
        return self.head[0](self.features(x, bands))

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Class probabilities along dim 1: sigmoid per class for multi-label tasks, else softmax
        (the single label, or the pixel's class, of which ``argmax`` is the release's reducer)."""
        if self.reducer == "sigmoid":
            return torch.sigmoid(logits)
        return torch.softmax(logits, dim=1)

    @torch.no_grad()
    def predict(self, x: Inputs, bands: Any = None) -> torch.Tensor:
        """The reduced output (see :meth:`reduce`) without gradients; arguments as :meth:`features`."""
        return self.reduce(self(x, bands))


def _split_head(
    sd: dict[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """``(encoder tensors, head tensors without the "head." prefix)``."""
    head = {k[len("head.") :]: v for k, v in sd.items() if k.startswith("head.")}
    return {k: v for k, v in sd.items() if not k.startswith(("head.", "head_drop."))}, head


def _head_shape(spec: TaskSpec, head: dict[str, torch.Tensor], source: str) -> tuple[int, int]:
    """``(in_dim, C)`` of a file's head, checked against the task's kind."""
    want = {"finetune": "weight", "linprobe": "1.weight", "segmentation": "0.weight"}[spec.head]
    if want not in head:
        shown = ", ".join(f"head.{k}" for k in head) or "none"
        raise CheckpointError(
            f"{source}: a {spec.head} head ({spec.name}) needs head.{want}; the file's head keys: "
            f"{shown}. Name the task the file was trained for"
        )
    w = head[want]
    return int(w.shape[1]), int(w.shape[0])


def load_task_model(
    name_or_path: CheckpointArg | Mapping[str, torch.Tensor],
    task: str | TaskSpec | None = None,
    *,
    img_size: int | None = None,
    num_heads: int | None = None,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    **kwargs: Any,
) -> TaskModel:
    """A released task file (or your own in its layout) as a :class:`TaskModel` in eval mode.

    Args:
        name_or_path: a Hub name of :data:`~smartiesviz.models.hub.HUB_WEIGHTS` with a head
            (``"gsumbul/SMARTIES-v1-finetuned-models/smarties-v1-vitb-eurosat-finetune"``,
            ``@<revision>``, ``hf://``; served from ``huggingface_hub``'s cache), a local file, or
            a state dict.
        task: the task (:func:`task_spec`: ``"eurosat-finetune"``, a released file name, or a
            :class:`TaskSpec`). Default: the Hub table's entry, or a local file's name when it is
            a released file name.
        img_size: input size (default the file's positional grid: 224 for the release).
        num_heads: attention heads (default ``D / 64``, the release's).
        revision, cache_dir: Hugging Face Hub revision and cache folder.
        **kwargs: other :class:`SmartiesEncoder` arguments (``scheme``).

    Raises:
        ValueError: no task given and none can be read from the name.
        FileNotFoundError: see :func:`~smartiesviz.models.resolve.resolve_checkpoint`.
        CheckpointError: the file has no head of the task's kind, or one of another width or
            class count (both named), or its encoder tensors do not fit.
    """
    src, raw, task = _read_task_file(name_or_path, task, revision, cache_dir)
    spec = _checked_task(task)
    where = str(src) if src else "<state dict>"
    enc_sd, head_sd = _split_head(remap_release_state_dict(raw))
    encoder = SmartiesEncoder.from_pretrained(enc_sd, img_size, num_heads=num_heads, **kwargs)
    head = _load_head(spec, head_sd, encoder.embed_dim, where)
    report = encoder.load_report
    report.source = where
    report.loaded += [f"head.{k}" for k in head_sd]
    report.notes.append(
        f"head: {spec.head} for {spec.dataset} ({spec.name}), {spec.num_classes} classes, loaded"
    )
    if src is not None:
        encoder.checkpoint_source = src
        report.notes.append(f"sha256 {src.sha256}")
    return TaskModel(encoder, head, spec).eval()


def _read_task_file(
    name_or_path: CheckpointArg | Mapping[str, torch.Tensor],
    task: str | TaskSpec | HubWeights | None,
    revision: str | None,
    cache_dir: str | os.PathLike | None,
) -> tuple[CheckpointSource | None, dict[str, torch.Tensor], str | TaskSpec | HubWeights | None]:
    """``(source, state dict, task)``: the source is ``None`` for a state dict; a file's task,
    when not given, is its Hub table entry or its file name."""
    if isinstance(name_or_path, Mapping):
        return None, dict(name_or_path), task
    src = resolve_checkpoint(name_or_path, revision, cache_dir)
    raw = read_state_dict(src.path)
    if task is None:
        task = src.weights or (src.filename or src.path.name)
    return src, raw, task


def _checked_task(task: str | TaskSpec | HubWeights | None) -> TaskSpec:
    """The :class:`TaskSpec` of ``task``; refuses no task and a pretraining file (no head)."""
    if task is None:
        raise ValueError(f"a state dict needs task=...; known tasks: {', '.join(TASK_SPECS)}")
    if isinstance(task, HubWeights) and task.head == "none":
        raise ValueError(
            f"{task.name} is a pretraining file without a task head; use SmartiesEncoder"
        )
    return task_spec(task)


def _load_head(
    spec: TaskSpec, head_sd: dict[str, torch.Tensor], embed_dim: int, where: str
) -> nn.Module:
    """The task's head with the file's head tensors, checked to take ``k·D`` features (``k``
    sources of the encoder's width ``D``) to the task's class count."""
    in_dim, classes = _head_shape(spec, head_sd, where)
    want_dim = embed_dim * len(spec.sources)
    if (in_dim, classes) != (want_dim, spec.num_classes):
        raise CheckpointError(
            f"{where}: the head takes {in_dim} features to {classes} classes; {spec.name} needs "
            f"{want_dim} ({len(spec.sources)} source(s) × D {embed_dim}) to {spec.num_classes}"
        )
    head = build_head(spec.head, in_dim, classes, spec.upsample)
    try:
        head.load_state_dict(head_sd, strict=True)
    except RuntimeError as err:  # missing, unexpected or mis-shaped head keys
        raise CheckpointError(
            f"{where}: the file's head does not fit a {spec.head} head: {err}"
        ) from err
    return head
