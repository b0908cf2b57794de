"""Sensors and their bands.

A :class:`Band` carries two kinds of wavelength facts, kept apart on purpose:

* ``min_nm``/``max_nm`` and ``range_name``: how the model sees the band. For the release's own
  sensors (Sentinel-2, Sentinel-1, RGB) the interval *is* the release's range (what the checkpoints
  were trained with); for other sensors it is the instrument's published band edges, and
  ``range_name`` optionally binds the band to a release range whose layer(s) serve it.
* ``instrument_center_nm``/``instrument_bandwidth_nm``: the agency's published figures, used for
  display and for placing new bands. They never change how a band is tokenized.

Both are frozen fields: replacing one (``dataclasses.replace``) never changes the other.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from smartiesviz.spectrum._names import normalize_name, suggest
from smartiesviz.spectrum.ranges import SPECTRAL_RANGES, SpectralRange, get_range
from smartiesviz.yamlfile import load_yaml


@dataclass(frozen=True)
class Band:
    """One band of a sensor (or a free-standing band given by wavelength).

    Attributes:
        name: band name as the sensor's documents spell it (``"B8A"``, ``"VV"``, ``"red"``).
        min_nm, max_nm: the band's interval in nm (see the module docstring for which one).
        range_name: the release range serving this band, or ``None`` (then the band is resolved
            from its centre by an interpolation scheme).
        instrument_center_nm, instrument_bandwidth_nm: the instrument's published figures.
        resolution_m: native ground sampling distance in metres.
        aliases: other accepted names (matched case-insensitively).
        sensor: name of the sensor this band belongs to, if any.
        family: ``"multispectral"``, ``"rgb"`` or ``"sar"``: which learned layers are preferred
            when the band is interpolated.
    """

    name: str
    min_nm: float
    max_nm: float
    range_name: str | None = None
    instrument_center_nm: float | None = None
    instrument_bandwidth_nm: float | None = None
    resolution_m: float | None = None
    aliases: tuple[str, ...] = ()
    sensor: str | None = None
    family: str = "multispectral"
    description: str = ""

    def __post_init__(self) -> None:
        if not self.min_nm < self.max_nm:
            raise ValueError(
                f"band {self.qualified_name!r}: min_nm ({self.min_nm}) must be below max_nm ({self.max_nm})"
            )
        if self.range_name is not None and self.range_name not in SPECTRAL_RANGES:
            raise ValueError(
                f"band {self.qualified_name!r}: unknown range_name {self.range_name!r}"
            )

    @property
    def qualified_name(self) -> str:
        return f"{self.sensor}/{self.name}" if self.sensor else self.name

    @property
    def center_nm(self) -> float:
        """Centre of ``min_nm``–``max_nm``."""
        return (self.min_nm + self.max_nm) / 2

    @property
    def spectral_range(self) -> SpectralRange | None:
        """The release range serving this band, if it is bound to one."""
        return SPECTRAL_RANGES[self.range_name] if self.range_name else None

    @property
    def model_center_nm(self) -> float:
        """The centre used for interpolation: the bound release range's centre if any (so
        published numbers reproduce), else this band's own centre."""
        r = self.spectral_range
        return r.center_nm if r is not None else self.center_nm

    @property
    def instrument_range(self) -> tuple[float, float]:
        """Published (min, max) in nm from centre ± bandwidth/2; the band interval if unknown."""
        if self.instrument_center_nm is None or self.instrument_bandwidth_nm is None:
            return (self.min_nm, self.max_nm)
        half = self.instrument_bandwidth_nm / 2
        return (self.instrument_center_nm - half, self.instrument_center_nm + half)

    def matches(self, name: str) -> bool:
        key = normalize_name(name)
        return key in self._keys()

    def _keys(self) -> set[str]:
        keys = {normalize_name(self.name), *(normalize_name(a) for a in self.aliases)}
        if self.range_name:
            keys.add(normalize_name(self.range_name))
        return keys


@dataclass(frozen=True)
class Sensor:
    """A sensor: an ordered tuple of bands and a native resolution.

    Attributes:
        name: registry name, e.g. ``"sentinel2-l2a"``.
        bands: ordered bands (the channel order images of this sensor are expected in).
        family: ``"multispectral"``, ``"rgb"`` or ``"sar"``.
        resolution_m: native resolution in metres (the finest band's).
        aliases: other names, e.g. the release's Hugging Face ``sensor_type`` (``"S2"``).
    """

    name: str
    bands: tuple[Band, ...]
    family: str = "multispectral"
    resolution_m: float | None = None
    aliases: tuple[str, ...] = ()
    description: str = ""
    units: str = "reflectance"
    _index: dict[str, int] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.bands:
            raise ValueError(f"sensor {self.name!r} has no bands")
        for i, band in enumerate(self.bands):
            for key in band._keys():
                if key in self._index and self._index[key] != i:
                    raise ValueError(
                        f"sensor {self.name!r}: name {key!r} refers to both {self.bands[self._index[key]].name!r} and {band.name!r}"
                    )
                self._index[key] = i

    @property
    def band_names(self) -> list[str]:
        return [b.name for b in self.bands]

    def __len__(self) -> int:
        return len(self.bands)

    def index(self, name: str) -> int:
        """Position of a band given by name or alias (case-insensitive)."""
        key = normalize_name(name)
        if key not in self._index:
            hint = suggest(key, self.band_names)
            if "Known:" not in hint:
                hint += f" Its bands: {', '.join(self.band_names)}."
            raise KeyError(f"sensor {self.name!r} has no band {name!r}.{hint}")
        return self._index[key]

    def band(self, name: str) -> Band:
        """The band called ``name`` (or one of its aliases)."""
        return self.bands[self.index(name)]

    def select(self, names: Iterable[str]) -> list[Band]:
        return [self.band(n) for n in names]


_SENSORS: OrderedDict[str, Sensor] = OrderedDict()
_SENSOR_ALIASES: dict[str, str] = {}


def register_sensor(
    sensor: Sensor | str,
    bands: Sequence[Band | Mapping[str, Any]] | None = None,
    *,
    overwrite: bool = False,
    **kwargs: Any,
) -> Sensor:
    """Add a sensor to the registry.

    Either pass a :class:`Sensor`, or a name with its bands given as :class:`Band` objects or
    mappings (``{"name": "B1", "min_nm": 433, "max_nm": 453}``; optional ``range``, ``center_nm``,
    ``bandwidth_nm``, ``resolution_m``, ``aliases``)::

        register_sensor("my-cam", [{"name": "nir", "min_nm": 800, "max_nm": 880}], resolution_m=2)

    Bands with no ``range`` are tokenized by interpolation between learned layers.
    """
    if isinstance(sensor, str):
        if not bands:
            raise ValueError(f"register_sensor({sensor!r}): give the sensor's bands")
        family = kwargs.get("family", "multispectral")
        built = tuple(
            _band_from_mapping(b, sensor, family) if isinstance(b, Mapping) else b for b in bands
        )
        built = tuple(b if b.sensor == sensor else _rebind(b, sensor) for b in built)
        sensor = Sensor(name=sensor, bands=built, **kwargs)
    key = normalize_name(sensor.name)
    taken = key in _SENSOR_ALIASES and _SENSOR_ALIASES[key] != sensor.name
    if (sensor.name in _SENSORS or taken) and not overwrite:
        raise ValueError(
            f"sensor {sensor.name!r} is already registered; pass overwrite=True to replace it"
        )
    _SENSORS[sensor.name] = sensor
    for alias in (sensor.name, *sensor.aliases):
        _SENSOR_ALIASES[normalize_name(alias)] = sensor.name
    return sensor


def _rebind(band: Band, sensor: str) -> Band:
    return replace(band, sensor=sensor)


def _band_from_mapping(entry: Mapping[str, Any], sensor: str, family: str) -> Band:
    entry = dict(entry)
    unknown = set(entry) - {
        "name",
        "min_nm",
        "max_nm",
        "range",
        "center_nm",
        "bandwidth_nm",
        "resolution_m",
        "aliases",
        "family",
        "description",
    }
    if unknown or "name" not in entry:
        raise ValueError(
            f"sensor {sensor!r}: band entry {entry} has unknown keys {sorted(unknown)} or no 'name'"
        )
    range_name = entry.get("range")
    lo, hi = entry.get("min_nm"), entry.get("max_nm")
    center, width = entry.get("center_nm"), entry.get("bandwidth_nm")
    if lo is None or hi is None:
        if range_name:
            r = get_range(range_name)
            lo, hi = r.min_nm, r.max_nm
        elif center is not None and width is not None:
            lo, hi = center - width / 2, center + width / 2
        else:
            raise ValueError(
                f"sensor {sensor!r}, band {entry['name']!r}: give min_nm and max_nm, or center_nm and bandwidth_nm, or a range"
            )
    return Band(
        name=str(entry["name"]),
        min_nm=float(lo),
        max_nm=float(hi),
        range_name=get_range(range_name).name if range_name else None,
        instrument_center_nm=None if center is None else float(center),
        instrument_bandwidth_nm=None if width is None else float(width),
        resolution_m=entry.get("resolution_m"),
        aliases=tuple(entry.get("aliases", ())),
        sensor=sensor,
        family=entry.get("family", family),
        description=entry.get("description", ""),
    )


def get_sensor(name: str | Sensor) -> Sensor:
    """A registered sensor by name or alias (``"sentinel2-l2a"``, ``"S2"``, ``"landsat8"``, ...)."""
    if isinstance(name, Sensor):
        return name
    key = normalize_name(name)
    if key not in _SENSOR_ALIASES:
        raise KeyError(f"unknown sensor {name!r}.{suggest(key, list(_SENSORS))}")
    return _SENSORS[_SENSOR_ALIASES[key]]


def list_sensors() -> list[str]:
    """Names of all registered sensors, in registration order."""
    return list(_SENSORS)


def load_sensors_yaml(path: str | Path, *, overwrite: bool = False) -> list[Sensor]:
    """Register the sensors described in a YAML file and return them.

    Format::

        sensors:
          my-drone:
            family: multispectral
            resolution_m: 0.1
            bands:
              - {name: green, center_nm: 560, bandwidth_nm: 20}
              - {name: nir, min_nm: 820, max_nm: 860}
              - {name: red, range: red_2}        # use a release range's layer directly
    """
    raw = load_yaml(Path(path), "sensors file") or {}  # size, alias and duplicate-key checks
    if not isinstance(raw, dict) or not isinstance(raw.get("sensors"), dict):
        got = f"keys {sorted(map(str, raw))}" if isinstance(raw, dict) else type(raw).__name__
        raise ValueError(f"{path}: expected a top-level 'sensors:' mapping (got {got})")
    out = []
    for name, spec in raw["sensors"].items():
        spec = dict(spec)
        bands = spec.pop("bands", None)
        aliases = tuple(spec.pop("aliases", ()))
        out.append(register_sensor(name, bands, aliases=aliases, overwrite=overwrite, **spec))
    return out


# --- built-in sensors --------------------------------------------------------------------------

# name, range, published centre, bandwidth, resolution, aliases (facts: ESA S2A MSI)
_S2 = (
    ("B01", "aerosol", 442.7, 21, 60, ("coastal", "coastal_aerosol")),
    ("B02", "blue_1", 492.4, 66, 10, ("blue",)),
    ("B03", "green_2", 559.8, 36, 10, ("green",)),
    ("B04", "red_2", 664.6, 31, 10, ("red",)),
    ("B05", "red_edge_1", 704.1, 15, 20, ("rededge1",)),
    ("B06", "red_edge_2", 740.5, 15, 20, ("rededge2",)),
    ("B07", "near_infrared_2", 782.8, 20, 20, ("rededge3",)),
    ("B08", "near_infrared_1", 832.8, 106, 10, ("nir",)),
    ("B8A", "near_infrared_3", 864.7, 21, 20, ("nir08", "narrow_nir")),
    ("B09", "short_wave_infrared_1", 945.1, 20, 60, ("water_vapour", "water_vapor")),
    ("B10", "short_wave_infrared_2", 1373.5, 31, 60, ("cirrus",)),
    ("B11", "short_wave_infrared_3", 1613.7, 91, 20, ("swir16", "swir1")),
    ("B12", "short_wave_infrared_4", 2202.4, 175, 20, ("swir22", "swir2")),
)


def _release_bands(sensor: str, rows, family: str) -> tuple[Band, ...]:
    bands = []
    for name, rng, center, width, res, aliases in rows:
        r = SPECTRAL_RANGES[rng]
        bands.append(
            Band(name, r.min_nm, r.max_nm, rng, center, width, res, aliases, sensor, family)
        )
    return tuple(bands)


def _register_planetscope(name: str, rows, aliases: tuple[str, ...], model: str) -> None:
    """A PlanetScope sensor at 3 m in DN from its published band edges."""
    bands = _edge_bands(name, rows, "multispectral")
    description = f"PlanetScope {model} bands"
    register_sensor(Sensor(name, bands, "multispectral", 3.0, aliases, description, "DN"))


def _edge_bands(sensor: str, rows, family: str) -> tuple[Band, ...]:
    """Bands from published edges: (name, min, max, range or None, resolution, aliases)."""
    return tuple(
        Band(
            name,
            float(lo),
            float(hi),
            rng,
            (lo + hi) / 2,
            float(hi - lo),
            res,
            aliases,
            sensor,
            family,
        )
        for name, lo, hi, rng, res, aliases in rows
    )


def _register_builtins() -> None:
    register_sensor(
        Sensor(
            "sentinel2-l1c",
            _release_bands("sentinel2-l1c", _S2, "multispectral"),
            "multispectral",
            10.0,
            ("S2-L1C", "SENTINEL2-L1C"),
            "Sentinel-2 MSI Level-1C top-of-atmosphere, 13 bands",
            "DN",
        )
    )
    register_sensor(
        Sensor(
            "sentinel2-l2a",
            _release_bands("sentinel2-l2a", [r for r in _S2 if r[0] != "B10"], "multispectral"),
            "multispectral",
            10.0,
            ("S2", "S2-L2A", "SENTINEL2-L2A", "sentinel2"),
            "Sentinel-2 MSI Level-2A surface reflectance, 12 bands",
            "DN",
        )
    )
    s1 = (
        ("VV", "microwave_1", 5.5466e7, None, 10, ()),
        ("VH", "microwave_2", 5.5466e7, None, 10, ()),
    )
    register_sensor(
        Sensor(
            "sentinel1-grd",
            _release_bands("sentinel1-grd", s1, "sar"),
            "sar",
            10.0,
            ("S1", "S1-GRD", "SENTINEL1-GRD", "sentinel1"),
            "Sentinel-1 C-band SAR (5.405 GHz), GRD, dB",
            "dB",
        )
    )
    rgb = (
        ("red", "red_1", None, None, None, ("R",)),
        ("green", "green_1", None, None, None, ("G",)),
        ("blue", "blue_3", None, None, None, ("B",)),
    )
    register_sensor(
        Sensor(
            "rgb",
            _release_bands("rgb", rgb, "rgb"),
            "rgb",
            0.5,
            ("RGB", "vhr-rgb"),
            "Very-high-resolution RGB (aerial or satellite, 8-bit)",
            "DN",
        )
    )
    # Landsat-8/9 OLI + TIRS, published band edges (USGS). OLI bands that overlap a release range of
    # the multispectral family use that layer directly (the paper's naive transfer); B2 and B10 use
    # the release's interpolated ranges; B8 (pan) and B11 are interpolated from their centres; B9
    # (cirrus) has no layer, like S2 B10.
    landsat = (
        ("B1", 433, 453, "aerosol", 30, ("coastal", "coastal_aerosol")),
        ("B2", 450, 515, "blue_2", 30, ("blue",)),
        ("B3", 525, 600, "green_2", 30, ("green",)),
        ("B4", 630, 680, "red_2", 30, ("red",)),
        ("B5", 845, 885, "near_infrared_3", 30, ("nir", "nir08")),
        ("B6", 1560, 1660, "short_wave_infrared_3", 30, ("swir1", "swir16")),
        ("B7", 2100, 2300, "short_wave_infrared_4", 30, ("swir2", "swir22")),
        ("B8", 500, 680, None, 15, ("pan", "panchromatic")),
        ("B9", 1360, 1390, "short_wave_infrared_2", 30, ("cirrus",)),
        ("B10", 10600, 11190, "thermal_infrared_1", 100, ("tirs1", "lwir11")),
        ("B11", 11500, 12510, None, 100, ("tirs2", "lwir12")),
    )
    register_sensor(
        Sensor(
            "landsat8",
            _edge_bands("landsat8", landsat, "multispectral"),
            "multispectral",
            30.0,
            ("landsat-8", "landsat9", "landsat-8-9", "L8", "Landsat8-L2"),
            "Landsat-8/9 OLI + TIRS (TIRS 100 m native, delivered at 30 m)",
            "DN",
        )
    )
    # HLS v2 common bands: S30 and L30 harmonised to Sentinel-2 MSI, so the S2 layers serve them.
    hls_rows = [r for r in _S2 if r[0] in ("B01", "B02", "B03", "B04", "B8A", "B11", "B12")]
    hls_names = ("coastal_aerosol", "blue", "green", "red", "nir_narrow", "swir1", "swir2")
    hls = tuple(
        (n, rng, c, w, 30, (s2name, *(a for a in al if a != n)))
        for n, (s2name, rng, c, w, _, al) in zip(hls_names, hls_rows, strict=True)
    )
    register_sensor(
        Sensor(
            "hls",
            _release_bands("hls", hls, "multispectral"),
            "multispectral",
            30.0,
            ("harmonized-landsat-sentinel2", "HLS-S30", "HLS-L30"),
            "Harmonized Landsat Sentinel-2 (v2), 30 m surface reflectance",
            "reflectance",
        )
    )
    # PlanetScope (Planet Labs spec sheets). Bands are interpolated from their centres; coastal blue
    # starts below the first learned centre, so it uses the aerosol layer directly.
    dove = (
        ("blue", 455, 515, None, 3, ()),
        ("green", 500, 590, None, 3, ()),
        ("red", 590, 670, None, 3, ()),
        ("nir", 780, 860, None, 3, ()),
    )
    _register_planetscope("planetscope", dove, ("planetscope-4band", "dove", "PS2"), "Dove Classic, 4")
    superdove = (
        ("coastal_blue", 431, 452, "aerosol", 3, ()),
        ("blue", 465, 515, None, 3, ()),
        ("green_i", 513, 549, None, 3, ("green1",)),
        ("green", 547, 583, None, 3, ()),
        ("yellow", 600, 620, None, 3, ()),
        ("red", 650, 680, None, 3, ()),
        ("rededge", 697, 713, None, 3, ("red_edge",)),
        ("nir", 845, 885, None, 3, ()),
    )
    _register_planetscope(
        "planetscope-superdove", superdove, ("planetscope-8band", "superdove", "PSB.SD"), "SuperDove, 8"
    )


_register_builtins()
