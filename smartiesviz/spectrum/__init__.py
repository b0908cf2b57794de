"""Spectrum registry: spectral ranges, sensors and their bands, and band → layer resolution.

Ranges and sensors load eagerly (pure Python); band → layer resolution and the conventions of
other models build torch tensors, so their names load on first use: looking up a sensor or a band
name (the data readers, the CLI) does not import torch.
"""

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
    Band,
    Sensor,
    get_sensor,
    list_sensors,
    load_sensors_yaml,
    register_sensor,
)

__all__ = [
    "LEARNED_RANGES",
    "NUM_LAYERS",
    "SCHEMES",
    "SPECTRAL_RANGES",
    "Band",
    "NoLayerError",
    "OutOfSpectrumError",
    "ResolvedBands",
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

_LAZY: dict[str, str] = {
    **dict.fromkeys(
        ("SCHEMES", "NoLayerError", "OutOfSpectrumError", "ResolvedBands", "covered_interval",
         "layer_weights", "parse_band", "resolve_bands"),
        "resolve",
    ),
    **dict.fromkeys(("to_copernicus_fm", "to_dofa", "to_panopticon"), "conventions"),
}  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f"smartiesviz.spectrum.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'smartiesviz.spectrum' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*__all__, "ranges", "sensors", "resolve", "conventions"})


if TYPE_CHECKING:  # pragma: no cover
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
