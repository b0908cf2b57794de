"""Band resolution: every band becomes a weight vector over the 17 learned projection layers.

One mechanism serves every case. A band bound to a learned range gets a one-hot vector; any other
band gets a convex combination of two (or the release's configured) learned layers, chosen by a
*scheme*:

``"inverse-distance"`` (default)
    Linear interpolation between the two learned centres that bracket the band's centre λ:
    ``w_lo = (λ_hi − λ) / (λ_hi − λ_lo)``, ``w_hi = 1 − w_lo``: the nearer layer weighs more.
``"log-wavelength"``
    The same in log λ, which behaves across the optical → thermal → microwave gap.
``"as-released"``
    The release's weights over its configured neighbours, ``w_i = |λ − λ_i| / Σ_j |λ − λ_j|``
    (the *farther* layer weighs more); use it to reproduce published numbers.
``"nearest-layer"``
    The paper's naive transfer: the learned layer of the band's family whose range overlaps the
    band and whose centre is nearest; an error if none overlaps.

Brackets are looked for among the learned layers of the band's own family first (Sentinel-2 layers
for multispectral sensors, RGB layers for RGB, Sentinel-1 layers for SAR), then among all layers,
so Landsat-8 B10 (10 895 nm) is bracketed by S2 B12 and S1 VV as in the release. A centre outside
the learned centres is never extrapolated: it is an error naming the band and the covered interval,
unless ``clamp=True`` (nearest end layer, with a warning).
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Literal, Union, get_args

import torch

from smartiesviz.spectrum._names import normalize_name, suggest
from smartiesviz.spectrum.ranges import LEARNED_RANGES, NUM_LAYERS, SPECTRAL_RANGES, SpectralRange
from smartiesviz.spectrum.sensors import Band, Sensor, get_sensor, list_sensors

#: How a band without a learned range of its own is served by the learned layers.
Scheme = Literal["inverse-distance", "log-wavelength", "as-released", "nearest-layer"]
SCHEMES: tuple[str, ...] = get_args(Scheme)
#: What :func:`resolve_bands` does with a band no layer serves (S2 B10).
OnUnsupported = Literal["warn", "drop", "raise", "interpolate"]

BandSpec = Union[str, tuple, Band]  # noqa: UP007 (runtime alias with a forward reference below)
BandsArg = Union[str, Sensor, Sequence[BandSpec], "ResolvedBands"]  # noqa: UP007


class NoLayerError(ValueError):
    """A band that the release gives no projection layer (e.g. Sentinel-2 B10 cirrus)."""


class OutOfSpectrumError(ValueError):
    """A band centre outside the wavelengths the learned layers cover."""


def covered_interval() -> tuple[float, float]:
    """(lowest, highest) learned-layer centre in nm: the interval interpolation can serve."""
    centres = [r.center_nm for r in LEARNED_RANGES]
    return min(centres), max(centres)


#: Sensor whose bands bare band names (``"B04"``) mean when no ``sensor`` is given and it has
#: them: the release's default band set.
DEFAULT_SENSOR = "sentinel2-l2a"
_WAVELENGTHS = re.compile(r"^\s*(\d+(?:\.\d*)?(?:e\d+)?)\s*-\s*(\d+(?:\.\d*)?(?:e\d+)?)\s*(?:nm)?\s*$", re.I)


def parse_bands(spec: str) -> str | list[BandSpec]:
    """The one parser for a band list written as text (command line, YAML, ``bands="..."``).

    ============================================  =============================================
    ``"sentinel2-l2a"``, ``"S2"``                  the sensor's bands (returned as the name)
    ``"sentinel2-l2a:B04,B03,B02"``                bands of one sensor, in this order
    ``"B04,B03,B02"``                              bare band names (see :func:`parse_band`)
    ``"red_2,near_infrared_1"``                    release range names
    ``"landsat8/B10,sentinel2-l2a/B04"``           qualified names, mixed sensors
    ``"650-680nm,780-886"``                        wavelength ranges ``min-max`` in nm
    ============================================  =============================================

    Returns:
        A sensor name, or a list of band specs for :func:`resolve_bands`.
    """
    text = str(spec).strip()
    if not text:
        raise ValueError("empty band list: give a sensor name or comma-separated bands")
    if ":" in text:
        sensor, names = (part.strip() for part in text.split(":", 1))
        get_sensor(sensor)  # names a wrong sensor before its bands
        return [f"{sensor}/{b.strip()}" for b in names.split(",") if b.strip()]
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if len(parts) == 1 and _is_sensor(parts[0]):
        return parts[0]
    return [(float(m[1]), float(m[2])) if (m := _WAVELENGTHS.match(p)) else p for p in parts]


def _is_sensor(name: str) -> bool:
    try:
        get_sensor(name)
    except KeyError:
        return False
    return True


def _near_sensor(suggestion: str) -> bool:
    return suggestion.startswith(" Did you mean")


def _bare_band(name: str) -> Band:
    """A band name without sensor: :data:`DEFAULT_SENSOR`'s band, else the band of every
    registered sensor that has it when they all bind it to the same learned range."""
    try:
        return get_sensor(DEFAULT_SENSOR).band(name)
    except KeyError:
        pass
    hits = []
    for sensor in list_sensors():
        try:
            hits.append(get_sensor(sensor).band(name))
        except KeyError:
            continue
    if hits and len({b.range_name for b in hits}) == 1 and hits[0].range_name is not None:
        return hits[0]
    found = ", ".join(f"'{b.qualified_name}' ({b.range_name or f'{b.min_nm:g}-{b.max_nm:g} nm'})" for b in hits)
    raise KeyError(
        f"band {name!r} is not a release range name nor a {DEFAULT_SENSOR} band"
        + (f", and sensors disagree on it: {found}" if hits else "")
        + (f", nor a sensor (unknown sensor {name!r}.{close})" if _near_sensor(close := suggest(name, list_sensors())) else "")
        + f"; name its sensor ('landsat8/{name}', 'sentinel2-l1c:{name},...'), pass sensor=..., "
        "or give (min_nm, max_nm)"
    )


def parse_band(spec: BandSpec, sensor: str | Sensor | None = None) -> Band:
    """Turn a band spec into a :class:`Band`.

    Args:
        spec: a :class:`Band`; ``"sensor/band"`` (``"landsat8/B10"``); a release range name
            (``"near_infrared_2"``); ``(min_nm, max_nm)`` or ``"min-max nm"`` (``"650-680nm"``);
            a band name of ``sensor``; or a bare band name (``"B04"``): the band of
            :data:`DEFAULT_SENSOR` (Sentinel-2 L2A) when it has one, else of the registered
            sensors that have it when they all bind it to the same learned range (``"VV"``),
            else an error naming them.
        sensor: context for bare band names such as ``"B04"``.
    """
    if isinstance(spec, str) and (m := _WAVELENGTHS.match(spec)):
        spec = (float(m[1]), float(m[2]))
    if isinstance(spec, Band):
        return spec
    if (
        isinstance(spec, tuple | list)
        and len(spec) == 2
        and all(isinstance(v, int | float) for v in spec)
    ):
        lo, hi = float(spec[0]), float(spec[1])
        if not (math.isfinite(lo) and math.isfinite(hi)) or lo <= 0 or lo >= hi:
            raise ValueError(
                f"wavelength range {spec!r}: expected (min_nm, max_nm) with 0 < min_nm < max_nm"
            )
        family = "sar" if lo > 1e6 else "multispectral"
        return Band(f"{lo:g}-{hi:g}nm", lo, hi, None, (lo + hi) / 2, hi - lo, family=family)
    if not isinstance(spec, str):
        raise TypeError(
            f"band spec {spec!r}: expected a name, 'sensor/band', (min_nm, max_nm) or a Band"
        )
    if "/" in spec:
        sensor_name, band_name = spec.split("/", 1)
        return get_sensor(sensor_name).band(band_name)
    if sensor is not None:
        return get_sensor(sensor).band(spec)
    key = normalize_name(spec)
    if key in SPECTRAL_RANGES:
        r = SPECTRAL_RANGES[key]
        return Band(r.name, r.min_nm, r.max_nm, r.name, family=r.family, description=r.label)
    return _bare_band(spec)


def check_scheme(scheme: str) -> Scheme:
    """``scheme`` if it is one of :data:`SCHEMES`, else a ``ValueError`` listing them."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown interpolation scheme {scheme!r}; choose one of {SCHEMES}")
    return scheme  # type: ignore[return-value]


def layer_weights(
    band: BandSpec,
    scheme: Scheme = "inverse-distance",
    *,
    sensor: str | None = None,
    clamp: bool = False,
) -> torch.Tensor:
    """Weights of a band over the learned projection layers.

    Args:
        band: a range name, ``"sensor/band"``, ``(min_nm, max_nm)`` or a :class:`Band`.
        scheme: one of :data:`SCHEMES` (ignored for bands bound to a learned range).
        clamp: serve an out-of-spectrum centre by the nearest end layer (with a warning)
            instead of raising.

    Returns:
        float32 tensor of shape ``(17,)`` that sums to 1 (one-hot for a learned range).

    Raises:
        NoLayerError: the band's release range has no layer (S2 B10, Landsat-8 B9).
        OutOfSpectrumError: the centre is outside the learned centres (and ``clamp`` is off).
    """
    check_scheme(scheme)
    return torch.tensor(_weights(parse_band(band, sensor), scheme, clamp), dtype=torch.float32)


def _weights(band: Band, scheme: Scheme, clamp: bool) -> tuple[float, ...]:
    """Layer weights of a parsed band (``scheme`` already checked by the caller)."""
    r = band.spectral_range
    if r is not None and r.learned:
        return _one_hot(r.layer)
    if r is not None and not r.interpolated:
        raise NoLayerError(
            f"band {band.qualified_name!r} ({r.min_nm:g}–{r.max_nm:g} nm, range {r.name!r}) has no projection "
            "layer in the release; drop it, or resolve it from its centre with on_unsupported='interpolate'"
        )
    lam = band.model_center_nm
    if scheme == "nearest-layer":
        return _one_hot(_nearest_overlapping(band))
    lo_c, hi_c = covered_interval()
    if not lo_c <= lam <= hi_c:
        msg = (
            f"band {band.qualified_name!r} has centre {lam:g} nm, outside the pretraining spectrum "
            f"covered by the learned layers' centres [{lo_c:g}, {hi_c:g}] nm; SMARTIES does not extrapolate"
        )
        if not clamp:
            raise OutOfSpectrumError(msg + " (pass clamp=True to use the nearest end layer)")
        end = min(LEARNED_RANGES, key=lambda s: abs(math.log(s.center_nm) - math.log(lam)))
        warnings.warn(msg + f"; clamped to layer {end.layer} ({end.name})", stacklevel=3)
        return _one_hot(end.layer)
    if scheme == "as-released":
        neighbours = (
            r.neighbours if r is not None else tuple(x.layer for x in _bracket(lam, band.family))
        )
        dist = [abs(lam - LEARNED_RANGES[i].center_nm) for i in neighbours]
        total = sum(dist)
        w = [0.0] * NUM_LAYERS
        for i, d in zip(neighbours, dist, strict=True):
            w[i] += d / total if total > 0 else 1.0 / len(neighbours)
        return tuple(w)
    lo, hi = _bracket(lam, band.family)
    if lo.layer == hi.layer:
        return _one_hot(lo.layer)
    f = math.log if scheme == "log-wavelength" else float
    t = (f(lam) - f(lo.center_nm)) / (f(hi.center_nm) - f(lo.center_nm))
    w = [0.0] * NUM_LAYERS
    w[lo.layer] += 1.0 - t
    w[hi.layer] += t
    return tuple(w)


def _one_hot(i: int) -> tuple[float, ...]:
    return tuple(1.0 if j == i else 0.0 for j in range(NUM_LAYERS))


def _bracket(lam: float, family: str) -> tuple[SpectralRange, SpectralRange]:
    """The learned ranges whose centres bracket ``lam``, preferring ``family`` on each side."""

    def side(pick_below: bool) -> SpectralRange:
        ok = (lambda c: c <= lam) if pick_below else (lambda c: c >= lam)
        for pool in ([r for r in LEARNED_RANGES if r.family == family], list(LEARNED_RANGES)):
            cands = [r for r in pool if ok(r.center_nm)]
            if cands:  # nearest centre; ties (VV/VH share a centre) go to the lower layer index
                return min(cands, key=lambda r: (abs(r.center_nm - lam), r.layer))
        raise AssertionError("unreachable: lam checked against covered_interval")

    return side(True), side(False)


def _nearest_overlapping(band: Band) -> int:
    lo, hi = band.min_nm, band.max_nm
    pool = [
        r for r in LEARNED_RANGES if r.family == band.family and r.min_nm < hi and lo < r.max_nm
    ]
    if not pool:
        raise OutOfSpectrumError(
            f"band {band.qualified_name!r} ({lo:g}–{hi:g} nm) overlaps no learned {band.family} range, so "
            "'nearest-layer' cannot serve it; use an interpolation scheme"
        )
    return min(pool, key=lambda r: (abs(r.center_nm - band.model_center_nm), r.layer)).layer


@dataclass(frozen=True, eq=False)
class ResolvedBands:
    """The bands of an input, resolved to layer weights.

    Attributes:
        bands: the kept bands, in channel order.
        weights: ``(C_kept, 17)`` float32, each row summing to 1.
        keep: indices of the input channels that are used (``len(keep) == C_kept``).
        n_input: number of channels the input must have.
        dropped: names of input bands that were dropped (no layer).
        used_layers: layer indices with a non-zero weight for at least one band (sorted).
        scheme: the interpolation scheme used.
    """

    bands: tuple[Band, ...]
    weights: torch.Tensor
    keep: tuple[int, ...]
    n_input: int
    dropped: tuple[str, ...]
    used_layers: tuple[int, ...]
    scheme: str

    @property
    def names(self) -> list[str]:
        return [b.name for b in self.bands]

    @property
    def qualified_names(self) -> list[str]:
        return [b.qualified_name for b in self.bands]

    @property
    def all_kept(self) -> bool:
        return len(self.keep) == self.n_input

    def __len__(self) -> int:
        return len(self.bands)

    def __repr__(self) -> str:
        extra = f", dropped={list(self.dropped)}" if self.dropped else ""
        return f"ResolvedBands({self.qualified_names}, scheme={self.scheme!r}{extra})"


def resolve_bands(
    bands: BandsArg,
    scheme: Scheme | Mapping[str, Scheme] = "inverse-distance",
    *,
    sensor: str | None = None,
    on_unsupported: OnUnsupported = "warn",
    clamp: bool = False,
) -> ResolvedBands:
    """Resolve the bands of an input image to layer weights.

    Args:
        bands: a sensor name (all its bands, in order), a list of band specs (see
            :func:`parse_band`), a band list as text (``"sentinel2-l2a:B04,B03,B02"``,
            ``"B04,B03,B02"``, ``"650-680nm,VV"``; see :func:`parse_bands`), or an already
            resolved :class:`ResolvedBands` (returned as is).
        scheme: a scheme for every band, or a mapping ``band name → scheme`` (others use
            ``"inverse-distance"``).
        sensor: context for bare band names in a list (``["B04", "B03", "B02"]``).
        on_unsupported: for bands without any layer (S2 B10): ``"warn"`` (drop with a warning),
            ``"drop"`` (silently), ``"raise"``, or ``"interpolate"`` (resolve from the centre).
        clamp: see :func:`layer_weights`.
    """
    if isinstance(bands, ResolvedBands):
        return bands
    for sch in scheme.values() if isinstance(scheme, Mapping) else (scheme,):
        check_scheme(sch)
    if on_unsupported not in get_args(OnUnsupported):
        raise ValueError(
            f"on_unsupported={on_unsupported!r}; expected 'warn', 'drop', 'raise' or 'interpolate'"
        )
    if isinstance(bands, str):
        bands = parse_bands(bands)
    if isinstance(bands, Sensor):
        specs: tuple = tuple(bands.bands)
    elif isinstance(bands, str):
        specs = tuple(get_sensor(bands).bands)
    else:
        specs = tuple(tuple(b) if isinstance(b, list) else b for b in bands)
    if not specs:
        raise ValueError("empty band list: an image needs at least one band")
    scheme_items = tuple(sorted(scheme.items())) if isinstance(scheme, Mapping) else scheme
    rb = _resolve_cached(specs, scheme_items, sensor, on_unsupported, clamp)
    if rb.dropped and on_unsupported == "warn":
        warnings.warn(
            f"dropping band(s) {list(rb.dropped)}: the release has no projection layer for them "
            "(pass on_unsupported='drop' to silence, or 'interpolate' to keep them)",
            stacklevel=2,
        )
    return rb


@lru_cache(maxsize=512)
def _resolve_cached(specs, scheme_items, sensor, on_unsupported, clamp) -> ResolvedBands:
    per_band = dict(scheme_items) if isinstance(scheme_items, tuple) else None
    kept, rows, keep, dropped = [], [], [], []
    for i, spec in enumerate(specs):
        band = parse_band(spec, sensor)
        scheme = (
            (per_band.get(band.name, "inverse-distance")) if per_band is not None else scheme_items
        )
        try:
            w = _weights(band, scheme, clamp)
        except NoLayerError:
            if on_unsupported == "raise":
                raise
            if on_unsupported != "interpolate":
                dropped.append(band.qualified_name)
                continue

            w = _weights(replace(band, range_name=None), scheme, clamp)
        kept.append(band)
        rows.append(w)
        keep.append(i)
    if not kept:
        raise ValueError(f"none of the bands {[str(s) for s in specs]} has a projection layer")
    weights = torch.tensor(rows, dtype=torch.float32)
    used = tuple(int(j) for j in torch.nonzero(weights.sum(0) > 0).flatten())
    return ResolvedBands(
        tuple(kept),
        weights,
        tuple(keep),
        len(specs),
        tuple(dropped),
        used,
        scheme_items if isinstance(scheme_items, str) else "per-band",
    )
