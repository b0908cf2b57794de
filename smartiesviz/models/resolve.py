"""Model and checkpoint resolution: the one place that turns "which model?" into weights.

Every entry point that accepts a checkpoint name (``SmartiesEncoder.from_pretrained``,
:func:`~smartiesviz.models.encoder.build_encoder`, predictions, embeddings, widgets,
``smartiesviz embed --checkpoint`` and ``smartiesviz export --checkpoint``) passes it through
:func:`resolve_checkpoint`, which accepts, in this order:

* ``"demo"``: the bundled demo weights;
* an existing local path: a weight file (ours with its JSON sidecar, a released SMARTIES file, an
  encoder-only file, a ``.pt``/``.pth`` state dict) or a training run folder holding
  ``model.safetensors``. A local path wins over a Hub name of the same spelling;
* a released name on the Hugging Face Hub (``"gsumbul/SMARTIES-v1-ViT-B"``, ``@<revision>``,
  ``hf://``; the table is :data:`smartiesviz.models.hub.HUB_WEIGHTS`), fetched through
  ``huggingface_hub``'s cache;
* anything else: one ``FileNotFoundError`` listing the known Hub names.

:func:`resolve_model` then gives a :class:`SmartiesMAE` (what predictions and widgets use):
``None``/``"demo"`` the demo model, one of our checkpoints through
:func:`~smartiesviz.models.checkpoint.load_checkpoint`, a released-layout file through
:func:`~smartiesviz.models.checkpoint.load_pretrained` into the architecture its tensor shapes
describe, or a :class:`SmartiesMAE` instance returned itself (switched to eval mode).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from smartiesviz.models.checkpoint import (
    CheckpointError,
    CheckpointInfo,
    check_architecture,
    infer_architecture,
    load_checkpoint,
    load_pretrained,
    read_state_dict,
    remap_release_state_dict,
)
from smartiesviz.models.demo import demo_weights_path, load_demo_model
from smartiesviz.models.hub import (
    HubWeights,
    check_blob_sha256,
    hub_download,
    parse_hub_name,
    task_head_note,
)
from smartiesviz.models.mae import SmartiesMAE
from smartiesviz.models.protocol import SmartiesModel
from smartiesviz.models.state_dict import read_safetensors_header
from smartiesviz.models.tokenizer import SpectrumAwareProjection
from smartiesviz.outputs import check_input_file, file_sha256

__all__ = [
    "ModelArg",
    "CheckpointArg",
    "CheckpointSource",
    "resolve_checkpoint",
    "resolve_model",
    "load_released_mae",
    "model_device",
    "model_img_size",
    "find_projection",
]

#: What the public API accepts wherever a model is expected.
ModelArg = nn.Module | str | os.PathLike | None
#: What the public API accepts wherever a checkpoint is named.
CheckpointArg = str | os.PathLike

DEMO = "demo"
_RUN_WEIGHTS = "model.safetensors"  # what a training run folder holds
#: the release's decoder heads (width 512); the shapes of a file do not reveal them
_RELEASE_DECODER_HEADS = 16


@dataclass(frozen=True)
class CheckpointSource:
    """Where a checkpoint's weights came from (recorded on the model that loads them).

    Attributes:
        name: the name as given (``"gsumbul/SMARTIES-v1-ViT-B"``, a path, ``"demo"``).
        path: the local file read (for the Hub: the file in the Hugging Face cache).
        kind: ``"demo"``, ``"file"``, ``"run"`` (a run folder's ``model.safetensors``) or ``"hub"``.
        sha256: hex sha256 of the file's bytes.
        repo_id, filename, revision, commit: for the Hub, the repository, the file, the revision
            asked for (``""``: the default branch) and the commit the cache served.
        weights: the :data:`~smartiesviz.models.hub.HUB_WEIGHTS` entry (task, head), if any.
    """

    name: str
    path: Path
    kind: Literal["demo", "file", "run", "hub"]
    sha256: str
    repo_id: str = ""
    filename: str = ""
    revision: str = ""
    commit: str = ""
    weights: HubWeights | None = None

    def __str__(self) -> str:
        """``hf://<repo>@<commit>/<file>`` for the Hub (a reproducible name), else the path."""
        if self.kind == "hub":
            return f"hf://{self.repo_id}@{self.commit or self.revision or 'main'}/{self.filename}"
        return str(self.path)


@lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime_ns: int) -> str:  # keyed on size and time: edits rehash
    return file_sha256(path)


def _file_sha256(path: Path) -> str:
    st = path.stat()
    return _sha256(str(path.resolve()), st.st_size, st.st_mtime_ns)


def resolve_checkpoint(
    checkpoint: CheckpointArg,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> CheckpointSource:
    """The local file a checkpoint name stands for, with its sha256 (see the module docstring).

    Args:
        checkpoint: ``"demo"``, a file, a run folder, or a Hub name
            (``"gsumbul/SMARTIES-v1-ViT-B"``, ``"gsumbul/SMARTIES-v1-finetuned-models/
            smarties-v1-vitb-eurosat-finetune"``, ``"<repo>@<revision>"``, ``"hf://..."``).
        revision: Hub branch, tag or commit (for Hub names without ``@<revision>``).
        cache_dir: Hugging Face cache folder (default: ``HF_HUB_CACHE``).

    Returns:
        :class:`CheckpointSource`.

    Raises:
        FileNotFoundError: no such file or folder and no known Hub name (lists the known
            names); a run folder without ``model.safetensors``; a Hub file neither cached nor
            reachable (offline).
        UserError: the path is a FIFO, device or other special file (refused before reading).
    """
    name = os.fspath(checkpoint)
    if name == DEMO:
        path = demo_weights_path()
        return CheckpointSource(name, path, "demo", _file_sha256(path))
    path = Path(name).expanduser()
    if os.path.lexists(path):
        kind: Literal["file", "run"] = "file"
        if path.is_dir():
            if not (path / _RUN_WEIGHTS).is_file():
                raise FileNotFoundError(
                    f"model folder {name!r} holds no {_RUN_WEIGHTS}; pass the checkpoint file "
                    "itself (a .safetensors written by smartiesviz.save_checkpoint or a released file)"
                )
            path, kind = path / _RUN_WEIGHTS, "run"
        check_input_file(path, "checkpoint")  # a FIFO would block the hash below
        return CheckpointSource(name, path, kind, _file_sha256(path))
    hub = parse_hub_name(name, revision)
    if hub is None:
        raise FileNotFoundError(
            f"checkpoint {name!r} does not exist; pass a .safetensors file written by "
            "smartiesviz.save_checkpoint or a released SMARTIES file, a training run folder, "
            "'demo' (or None) for the demo model, or a Hub name such as 'gsumbul/SMARTIES-v1-ViT-B'"
        )
    cached, commit = hub_download(hub, cache_dir)
    sha = _file_sha256(cached)
    check_blob_sha256(cached, sha)
    return CheckpointSource(
        name, cached, "hub", sha, hub.repo_id, hub.filename, hub.revision or "", commit,
        hub.weights,
    )  # fmt: skip


def resolve_model(
    model: ModelArg = None,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> SmartiesMAE:
    """The model to use, in eval mode.

    Args:
        model: ``None`` or ``"demo"`` (the bundled demo model); a checkpoint name
            (:func:`resolve_checkpoint`: our checkpoint, a run folder, a released-layout file, a
            Hub name); or a :class:`SmartiesMAE` (returned itself, switched to eval mode).
        revision: Hub revision (for Hub names).
        cache_dir: Hugging Face cache folder.

    Returns:
        The :class:`SmartiesMAE`, in eval mode; loaded from a name it has ``checkpoint_source``
        (:class:`CheckpointSource`, with the file's sha256) and ``checkpoint_info``.

    Raises:
        FileNotFoundError: see :func:`resolve_checkpoint`.
        smartiesviz.models.checkpoint.CheckpointError: the file is neither one of our
            checkpoints nor a SMARTIES state dict (the message names the file).
        TypeError: any other kind of object.
    """
    if model is None or (isinstance(model, str) and model == DEMO):
        return load_demo_model()
    if isinstance(model, (str, os.PathLike)):
        source = resolve_checkpoint(model, revision, cache_dir)
        loaded = load_checkpoint(source.path) if _is_ours(source.path) else load_released_mae(source)
        loaded.checkpoint_source = source
        return loaded
    if not isinstance(model, SmartiesMAE):
        raise TypeError(
            "model must be a SmartiesMAE, a checkpoint path, 'demo' or None (the demo model); "
            f"got {type(model).__name__}"
        )
    return model.eval()


def _is_ours(path: Path) -> bool:
    """A checkpoint written by ``save_checkpoint``: a JSON sidecar, or our header config."""
    if path.with_suffix(".json").is_file():
        return True
    if path.suffix != ".safetensors":
        return False
    return "config" in read_safetensors_header(path)[1]


def load_released_mae(source: CheckpointSource) -> SmartiesMAE:
    """A :class:`SmartiesMAE` shaped as a released-layout file's tensors say, loaded strictly.

    The architecture comes from the shapes (width, depth, patch size, layers, positional grid
    → ``img_size``); heads are ``D / 64`` (the release's ViT-B 12, ViT-L 16) and the decoder's
    the release's 16. A file without a decoder (fine-tuned or encoder-only) gets a zero-depth
    random decoder: its features are right, its reconstructions are not (``model.load_report``
    says so). Task heads (``head.*``) are dropped and listed in ``load_report.skipped``.

    Raises:
        CheckpointError: not a SMARTIES state dict, or any encoder tensor missing or mis-shaped.
    """
    raw = read_state_dict(source.path)
    arch = infer_architecture(remap_release_state_dict(raw))
    need = ("embed_dim", "depth", "patch_size", "num_layers")
    if any(k not in arch for k in need):
        raise CheckpointError(
            f"{source.name} is neither a smartiesviz checkpoint nor a SMARTIES state dict: could "
            f"not read {', '.join(k for k in need if k not in arch)} from its tensors (first keys: "
            f"{', '.join(list(raw)[:6])})"
        )
    has_decoder = "decoder_embed_dim" in arch
    dec_dim = arch.get("decoder_embed_dim", _RELEASE_DECODER_HEADS)
    grid = arch.get("grid")
    config = check_architecture(
        dict(
            img_size=grid[0] * arch["patch_size"] if grid else 224,
            patch_size=arch["patch_size"], embed_dim=arch["embed_dim"], depth=arch["depth"],
            num_heads=max(1, arch["embed_dim"] // 64), mlp_ratio=float(arch.get("mlp_ratio", 4.0)),
            num_layers=arch["num_layers"], decoder_embed_dim=dec_dim,
            decoder_depth=arch.get("decoder_depth", 0),
            decoder_num_heads=_RELEASE_DECODER_HEADS if dec_dim % _RELEASE_DECODER_HEADS == 0 else 1,
        ),  # fmt: skip
        source.name,
    )
    model = SmartiesMAE(**config)
    report = load_pretrained(model, raw, strict=True, encoder_only=not has_decoder)
    report.source = str(source)
    if note := task_head_note(report.skipped, source.weights):
        report.notes.append(note)
    if not has_decoder:
        report.notes.append("decoder: none in the file (random, zero depth): reconstructions are not meaningful")
    model.load_report = report
    model.checkpoint_path = source.path  # save_checkpoint will not write over it
    weights = source.weights
    model.checkpoint_info = CheckpointInfo(
        arch=weights.architecture if weights else "",
        architecture=config,
        metadata={"source": str(source), **({"task": weights.task} if weights else {})},
        sha256=source.sha256,
        file=source.path.name,
    )
    return model.eval()


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (CPU for a model without parameters)."""
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def model_img_size(model: nn.Module) -> int:
    """The model's default (square) input side in pixels, e.g. 64 for the demo model."""
    if not isinstance(model, SmartiesModel):
        raise TypeError(
            f"{type(model).__name__} has no img_size: not a SMARTIES model (expected a SmartiesMAE "
            "or SmartiesEncoder)"
        )
    return int(model.img_size)


def find_projection(model: nn.Module) -> SpectrumAwareProjection:
    """The model's :class:`SpectrumAwareProjection` (its tokenizer); a projection is itself."""
    for module in model.modules():
        if isinstance(module, SpectrumAwareProjection):
            return module
    raise TypeError(f"{type(model).__name__} has no SpectrumAwareProjection")
