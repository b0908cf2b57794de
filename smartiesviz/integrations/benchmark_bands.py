"""Band names of other frameworks and benchmarks → SMARTIES bands, and their release statistics.

Benchmarks name bands their own way: TerraTorch uses ``HLSBands`` members (``BLUE``,
``NIR_NARROW``, ``SWIR_1``, ...), PANGAEA and GEO-Bench Sentinel-2 numbers without the zero
(``B4``, ``B8A``) and ``VV``/``VH`` for Sentinel-1. :func:`benchmark_bands` turns such a list into
qualified band specs (``"hls/blue"``, ``"sentinel2-l2a/B04"``, ``"sentinel1-grd/VV"``) that every
``bands=`` argument of smartiesviz accepts, in the same order. :func:`release_means_stds` gives the
per-band mean and std that frameworks with a plain ``(x - mean) / std`` step (TerraTorch's
``means``/``stds``) need to reproduce the release's preprocessing.

This module imports no torch and no framework; HLSBands members are read by their ``.value``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from enum import Enum

from smartiesviz.data.bands import resolve_sensor
from smartiesviz.data.preprocess import has_released_stats, release_stats
from smartiesviz.errors import UserError

__all__ = ["TERRATORCH_BANDS", "band_release_stats", "benchmark_bands", "release_means_stds"]

#: TerraTorch's ``HLSBands`` / ``OpticalBands`` / ``SARBands`` values → our bands. The six HLS
#: bands (harmonised to Sentinel-2 MSI) use the ``hls`` sensor; the Sentinel-2-only ones its S2
#: band; CIRRUS (no SMARTIES layer) is kept so that it is named and dropped, never misplaced.
TERRATORCH_BANDS: dict[str, str] = {
    "COASTAL_AEROSOL": "hls/coastal_aerosol",
    "BLUE": "hls/blue",
    "GREEN": "hls/green",
    "RED": "hls/red",
    "RED_EDGE_1": "sentinel2-l2a/B05",
    "RED_EDGE_2": "sentinel2-l2a/B06",
    "RED_EDGE_3": "sentinel2-l2a/B07",
    "NIR_BROAD": "sentinel2-l2a/B08",
    "NIR_NARROW": "hls/nir_narrow",
    "SWIR_1": "hls/swir1",
    "SWIR_2": "hls/swir2",
    "WATER_VAPOR": "sentinel2-l2a/B09",
    "CIRRUS": "sentinel2-l1c/B10",
    "THERMAL_INFRARED_1": "landsat8/B10",
    "THERMAL_INFRARED_2": "landsat8/B11",
    "VV": "sentinel1-grd/VV",
    "VH": "sentinel1-grd/VH",
    "ASC_VV": "sentinel1-grd/VV",
    "ASC_VH": "sentinel1-grd/VH",
    "DSC_VV": "sentinel1-grd/VV",
    "DSC_VH": "sentinel1-grd/VH",
}
#: benchmark names with no SMARTIES band (a ratio is not a band)
_NO_BAND = {"VV_VH": "VV_VH is a ratio of two SAR bands, not a band", "VV-VH": "VV-VH is a ratio"}


def _one(name: object, sensor: str) -> str:
    text = str(name.value if isinstance(name, Enum) else name).strip()
    key = text.upper()
    if "/" in text:
        return text  # already ours: "sensor/band"
    if key in _NO_BAND:
        raise UserError(f"band {text!r}: {_NO_BAND[key]}; SMARTIES has no layer for it")
    if text in TERRATORCH_BANDS:  # TerraTorch's own spelling (exact case) wins
        return TERRATORCH_BANDS[text]
    s = resolve_sensor(sensor)
    try:
        return f"{s.name}/{s.band(text).name}"  # the sensor's own names and aliases: B4 → B04
    except (KeyError, ValueError):
        pass
    if key in TERRATORCH_BANDS:
        return TERRATORCH_BANDS[key]
    if s.name == "sentinel2-l2a" and key == "B10":
        return "sentinel2-l1c/B10"  # cirrus: Level-1C only (and no SMARTIES layer)
    raise UserError(
        f"band {text!r} is neither a band of {s.name} ({', '.join(b.name for b in s.bands)}) nor a "
        f"TerraTorch band name ({', '.join(TERRATORCH_BANDS)}); give 'sensor/band' to be explicit"
    )


def benchmark_bands(names: Iterable[object], sensor: str = "sentinel2-l2a") -> list[str]:
    """Qualified SMARTIES band specs for a benchmark's band names, order kept.

    A TerraTorch ``HLSBands``/``SARBands`` value (an enum member or its exact string:
    ``NIR_NARROW``, ``BLUE``, ``VV``) maps through :data:`TERRATORCH_BANDS`; any other name is a
    band of ``sensor`` (registry names and aliases, case-insensitive: ``B4`` ≡ ``B04``, ``B8A``,
    ``blue``), else a TerraTorch name in another case; ``"sensor/band"`` passes through.

    Args:
        names: band names (strings or enum members), in channel order.
        sensor: the sensor plain band numbers belong to (``"sentinel2-l2a"``; ``"landsat8"`` for
            Landsat ``B1``..``B11``; ``"sentinel1-grd"`` for SAR). Sentinel-2 ``B10`` (cirrus)
            resolves to Level-1C.

    Returns:
        e.g. ``["sentinel2-l2a/B04", "sentinel2-l2a/B8A", "sentinel1-grd/VV", "hls/swir1"]``.

    Raises:
        UserError: a name matches nothing (the message lists what would), or has no band.
    """
    if isinstance(names, str | Enum):
        names = [names]
    out = [_one(n, sensor) for n in names]
    if not out:
        raise UserError("no band names given")
    return out


def band_release_stats(spec: str) -> Mapping[str, float]:
    """The release's ``{"p1", "p99", "mean", "std"}`` for one qualified band (``"sentinel2-l2a/B04"``,
    ``"hls/blue"``: its Sentinel-2 L2A twin, same layer and units).

    Raises:
        UserError: the release has no statistics for the band's sensor (Landsat-8, PlanetScope).
    """
    entry, band = _stats_band(spec)
    return release_stats(entry).lookup(band, entry)


def _stats_band(spec: str) -> tuple[str, str]:
    """``(sensor with released statistics, band)`` for a qualified spec; ``hls`` bands use their
    Sentinel-2 L2A twin (same SMARTIES layer, same reflectance × 10000 units)."""
    if "/" not in spec:
        raise UserError(f"{spec!r} is not a 'sensor/band' name; statistics are kept per sensor band")
    sensor_name, band_name = spec.split("/", 1)
    sensor = resolve_sensor(sensor_name)
    band = sensor.band(band_name)
    if has_released_stats(sensor.name):
        return sensor.name, band.name
    twins = [b for b in resolve_sensor("sentinel2-l2a").bands if b.range_name == band.range_name]
    if sensor.name == "hls" and twins:
        return "sentinel2-l2a", twins[0].name
    raise UserError(
        f"no released statistics for {spec}; the release has them for Sentinel-2 (L1C, L2A), "
        "Sentinel-1 GRD and RGB (compute your own with smartiesviz.data.preprocess.compute_stats)"
    )


def release_means_stds(
    names: Sequence[object], sensor: str = "sentinel2-l2a"
) -> tuple[list[float], list[float]]:
    """Per-band ``means``, ``stds`` (input units) so that ``(x - mean) / std`` is the release's
    preprocessing up to its clipping.

    The release computes ``((x - p1) / (p99 - p1) - m) / s`` after clipping the middle term to
    ``[0, 1]``; without the clip that is ``(x - mean) / std`` with ``mean = p1 + m·(p99 - p1)``
    and ``std = s·(p99 - p1)``. Inside ``[p1, p99]`` (98 % of the release's pixels) the two are
    equal; outside, the affine form extends linearly where the release saturates.

    Args:
        names: band names as :func:`benchmark_bands` takes them (``BLUE``, ``B4``, ``VV``, ...).
        sensor: see :func:`benchmark_bands`.

    Returns:
        ``(means, stds)``, one float per band, in input units (DN = reflectance × 10000 for
        Sentinel-2 and HLS, dB for Sentinel-1, 0–255 for RGB).
    """
    means: list[float] = []
    stds: list[float] = []
    for spec in benchmark_bands(names, sensor):
        st = band_release_stats(spec)
        span = float(st["p99"]) - float(st["p1"])
        means.append(float(st["p1"]) + float(st["mean"]) * span)
        stds.append(float(st["std"]) * span)
    return means, stds
