"""smartiesviz: a notebook-first toolkit for SMARTIES, the spectrum-aware multi-sensor foundation model.

The top level exports are loaded lazily (PEP 562) so ``import smartiesviz`` stays fast and never
imports torch, plotting or Jupyter until a name that needs them is used.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

from smartiesviz._version import __version__

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    # spectrum
    "SPECTRAL_RANGES": "smartiesviz.spectrum",
    "SpectralRange": "smartiesviz.spectrum",
    "Band": "smartiesviz.spectrum",
    "Sensor": "smartiesviz.spectrum",
    "get_sensor": "smartiesviz.spectrum",
    "list_sensors": "smartiesviz.spectrum",
    "register_sensor": "smartiesviz.spectrum",
    "layer_weights": "smartiesviz.spectrum",
    "resolve_bands": "smartiesviz.spectrum",
    "ResolvedBands": "smartiesviz.spectrum",
    # models
    "SpectrumAwareProjection": "smartiesviz.models.tokenizer",
    "SpectrumAwareReprojection": "smartiesviz.models.tokenizer",
    "cross_sensor_mixup": "smartiesviz.models.mixup",
    "random_masking": "smartiesviz.models.mixup",
    "SmartiesMAE": "smartiesviz.models.mae",
    "smarties_vit_tiny_patch8": "smartiesviz.models.factories",
    "smarties_vit_tiny_patch4": "smartiesviz.models.factories",
    "smarties_vit_small_patch16": "smartiesviz.models.factories",
    "smarties_vit_base_patch16": "smartiesviz.models.factories",
    "smarties_vit_large_patch16": "smartiesviz.models.factories",
    "load_pretrained": "smartiesviz.models.checkpoint",
    "save_checkpoint": "smartiesviz.models.checkpoint",
    "load_checkpoint": "smartiesviz.models.checkpoint",
    "load_demo_model": "smartiesviz.models.demo",
    "resolve_model": "smartiesviz.models.resolve",
    "SmartiesEncoder": "smartiesviz.models.encoder",
}
_SUBMODULES = {"spectrum", "models", "data", "training", "predict", "widgets", "cli"}

__all__ = sorted([*_EXPORTS, *_SUBMODULES, "__version__"])


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        module = importlib.import_module(f"smartiesviz.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'smartiesviz' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__


# `import timm, smartiesviz`: timm (and so torch) is loaded already, so registering the timm names
# smarties_encoder_vit_* costs nothing here; otherwise `import smartiesviz.models` registers them.
if hasattr(sys.modules.get("timm"), "create_model"):
    importlib.import_module("smartiesviz.models")


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from smartiesviz.models.checkpoint import load_checkpoint, load_pretrained, save_checkpoint
    from smartiesviz.models.demo import load_demo_model
    from smartiesviz.models.factories import (
        smarties_vit_base_patch16,
        smarties_vit_large_patch16,
        smarties_vit_small_patch16,
        smarties_vit_tiny_patch4,
        smarties_vit_tiny_patch8,
    )
    from smartiesviz.models.mae import SmartiesMAE
    from smartiesviz.models.mixup import cross_sensor_mixup, random_masking
    from smartiesviz.models.resolve import resolve_model
    from smartiesviz.models.tokenizer import SpectrumAwareProjection, SpectrumAwareReprojection
    from smartiesviz.spectrum import (
        SPECTRAL_RANGES,
        Band,
        ResolvedBands,
        Sensor,
        SpectralRange,
        get_sensor,
        layer_weights,
        list_sensors,
        register_sensor,
        resolve_bands,
    )
