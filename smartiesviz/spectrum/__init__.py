"""Spectrum registry: spectral ranges, sensors and their bands, and band → layer resolution."""

from smartiesviz.spectrum.conventions import to_copernicus_fm, to_dofa, to_panopticon
from smartiesviz.spectrum.ranges import (
    LEARNED_RANGES,
    NUM_LAYERS,
    SPECTRAL_RANGES,
    SpectralRange,
    get_range,
    load_release_spectrum,
    register_range,
)
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
