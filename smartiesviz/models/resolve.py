"""Model resolution: the one place that turns "which model?" into a :class:`SmartiesMAE`.

Every entry point that accepts a model (predictions, embeddings, widgets, the CLI) takes the same
argument and passes it through :func:`resolve_model`:

* ``None`` or ``"demo"``: the bundled demo model (:func:`smartiesviz.models.demo.load_demo_model`);
* a path (``str`` / ``os.PathLike``): one of our own checkpoints (safetensors + JSON sidecar written
  by :func:`~smartiesviz.models.checkpoint.save_checkpoint`), or a training run folder holding
  ``model.safetensors``; released SMARTIES files need ``load_pretrained`` into a built model;
* a :class:`SmartiesMAE` instance: returned itself (switched to eval mode).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from smartiesviz.models.checkpoint import load_checkpoint
from smartiesviz.models.demo import load_demo_model
from smartiesviz.models.mae import SmartiesMAE
from smartiesviz.models.tokenizer import SpectrumAwareProjection

__all__ = ["ModelArg", "resolve_model", "model_device", "model_img_size", "find_projection"]

#: What the public API accepts wherever a model is expected.
ModelArg = nn.Module | str | os.PathLike | None

DEMO = "demo"
_RUN_WEIGHTS = "model.safetensors"  # what a training run folder holds


def resolve_model(model: ModelArg = None) -> SmartiesMAE:
    """The model to use, in eval mode.

    Args:
        model: ``None`` or ``"demo"`` (the bundled demo model), a path to a checkpoint written by
            :func:`smartiesviz.save_checkpoint` (or a run folder holding ``model.safetensors``),
            or a :class:`SmartiesMAE` (returned itself, switched to eval mode).

    Returns:
        The :class:`SmartiesMAE`, in eval mode.

    Raises:
        FileNotFoundError: the path does not exist (or the folder holds no ``model.safetensors``).
        smartiesviz.models.checkpoint.CheckpointError: the file is not a smartiesviz checkpoint
            (the message names the file and what to do instead).
        TypeError: any other kind of object.
    """
    if model is None or (isinstance(model, str) and model == DEMO):
        return load_demo_model()
    if isinstance(model, (str, os.PathLike)):
        return _load_path(Path(model))
    if not isinstance(model, SmartiesMAE):
        raise TypeError(
            "model must be a SmartiesMAE, a checkpoint path, 'demo' or None (the demo model); "
            f"got {type(model).__name__}"
        )
    return model.eval()


def _load_path(path: Path) -> SmartiesMAE:
    if path.is_dir():
        if not (path / _RUN_WEIGHTS).is_file():
            raise FileNotFoundError(
                f"model folder {str(path)!r} holds no {_RUN_WEIGHTS}; pass the checkpoint file "
                "itself (a .safetensors written by smartiesviz.save_checkpoint)"
            )
        path = path / _RUN_WEIGHTS
    elif not path.exists():
        raise FileNotFoundError(
            f"checkpoint {str(path)!r} does not exist; pass a .safetensors file written by "
            "smartiesviz.save_checkpoint, 'demo' or None for the demo model"
        )
    return load_checkpoint(path)


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (CPU for a model without parameters)."""
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def model_img_size(model: nn.Module) -> int:
    """The model's default (square) input side in pixels, e.g. 64 for the demo model."""
    size = getattr(model, "img_size", None)
    if size is None:
        raise TypeError(f"{type(model).__name__} has no img_size; expected a SmartiesMAE")
    return int(size[0] if isinstance(size, (tuple, list)) else size)


def find_projection(model: nn.Module) -> SpectrumAwareProjection:
    """The model's :class:`SpectrumAwareProjection` (its tokenizer); a projection is itself."""
    for module in model.modules():
        if isinstance(module, SpectrumAwareProjection):
            return module
    raise TypeError(f"{type(model).__name__} has no SpectrumAwareProjection")
