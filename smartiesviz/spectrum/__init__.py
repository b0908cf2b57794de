"""Spectrum registry: spectral ranges, sensors, their bands and band roles, and band → layer
resolution."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from smartiesviz.spectrum.ranges import (
    LEARNED_RANGES,
    NUM_LAYERS,
    SPECTRAL_RANGES,
    SpectralRange,
    get_range,
    load_release_spectrum,
    register_range,
)
from smartiesviz.spectrum.sensors import (
    DEFAULT_COMPOSITES,
    ROLES,
    Band,
    Composite,
    Role,
    RoleError,
    Sensor,
    get_sensor,
    list_sensors,
    load_sensors_yaml,
    register_sensor,
)

__all__ = [
    "DEFAULT_COMPOSITES",
    "LEARNED_RANGES",
    "NUM_LAYERS",
    "ROLES",
    "SCHEMES",
    "SPECTRAL_RANGES",
    "Band",
    "Composite",
    "NoLayerError",
    "OutOfSpectrumError",
    "ResolvedBands",
    "Role",
    "RoleError",
    "Sensor",
    "SpectralRange",
    "covered_interval",
    "get_range",
    "get_sensor",
    "layer_weights",
    "list_sensors",
    "load_release_spectrum",
    "load_sensors_yaml",
    "parse_band",
    "register_range",
    "register_sensor",
    "resolve_bands",
    "to_copernicus_fm",
    "to_dofa",
    "to_panopticon",
]

# resolve.py and conventions.py import torch: loaded on first use (PEP 562) so that the
# `smartiesviz sensors` parser, which imports this package, keeps `--help` fast.
_TORCH_MODULES = {
    "smartiesviz.spectrum.conventions": ("to_copernicus_fm", "to_dofa", "to_panopticon"),
    "smartiesviz.spectrum.resolve": (
        "SCHEMES",
        "NoLayerError",
        "OutOfSpectrumError",
        "ResolvedBands",
        "covered_interval",
        "layer_weights",
        "parse_band",
        "resolve_bands",
    ),
}
_LAZY = {name: module for module, names in _TORCH_MODULES.items() for name in names}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if f"smartiesviz.spectrum.{name}" in _TORCH_MODULES:
        return importlib.import_module(f"smartiesviz.spectrum.{name}")
    raise AttributeError(f"module 'smartiesviz.spectrum' has no attribute {name!r}")


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from smartiesviz.spectrum.conventions import to_copernicus_fm, to_dofa, to_panopticon
    from smartiesviz.spectrum.resolve import (
        SCHEMES,
        NoLayerError,
        OutOfSpectrumError,
        ResolvedBands,
        covered_interval,
        layer_weights,
        parse_band,
        resolve_bands,
    )
