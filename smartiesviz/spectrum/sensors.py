"""Sensors and their bands.

A :class:`Band` carries two kinds of wavelength facts, kept apart on purpose:

* ``min_nm``/``max_nm`` and ``range_name``: how the model sees the band. For the release's own
  sensors (Sentinel-2, Sentinel-1, RGB) the interval *is* the release's range (what the checkpoints
  were trained with); for other sensors it is the instrument's published band edges, and
  ``range_name`` optionally binds the band to a release range whose layer(s) serve it.
* ``instrument_center_nm``/``instrument_bandwidth_nm``: the agency's published figures, used for
  display and for placing new bands. They never change how a band is tokenized.

Both are frozen fields: replacing one (``dataclasses.replace``) never changes the other.

A :class:`Sensor` also declares which band plays each **role** (:data:`ROLES`: ``red``, ``nir``,
``vv``, ...) and its display **composites** (:class:`Composite`). Code that needs "the red band" or
"a true-colour picture" asks the sensor (:meth:`Sensor.role`, :meth:`Sensor.composite`,
:meth:`Sensor.positions`) instead of guessing from band names, so a sensor registered in one YAML
file gets colour composites and the map's colour and "NIR from RGB" layers with no code.
The built-in sensors are such a file, ``sensors.yaml`` beside this module.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, get_args

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


Role = Literal[
    "coastal", "blue", "green", "red", "red_edge", "nir", "swir1", "swir2", "pan", "thermal",
    "cirrus", "vv", "vh",
]  # fmt: skip
#: The band roles a sensor may declare (``roles: {red: B04, nir: B08}`` in a sensors file):
#: ``coastal`` (coastal aerosol/blue), ``blue``, ``green``, ``red``, ``red_edge`` (the first red
#: edge), ``nir`` (the near-infrared band of false colour and "NIR from RGB"), ``swir1`` (~1.6 µm),
#: ``swir2`` (~2.2 µm), ``pan`` (panchromatic), ``thermal`` (first thermal infrared), ``cirrus``,
#: ``vv``, ``vh`` (SAR polarisations).
ROLES: tuple[str, ...] = get_args(Role)

#: Composites every sensor has when it declares their roles (a sensor's own ``composites`` win).
#: A channel ``"a - b"`` is the difference of two bands (for dB SAR: the VV/VH ratio).
DEFAULT_COMPOSITES: dict[str, tuple[str, str, str]] = {
    "true_colour": ("red", "green", "blue"),
    "false_colour": ("nir", "red", "green"),
    "sar": ("vv", "vh", "vv - vh"),
}

#: One channel of a composite: a band name, or ``(a, b)`` for the difference ``a − b``.
Channel = str | tuple[str, str]


class RoleError(ValueError):
    """A sensor lacks a band role or composite, or a band it names is not in the image."""


@dataclass(frozen=True)
class Composite:
    """A display composite of a sensor: three channels shown as red, green and blue.

    Attributes:
        name: ``"true_colour"``, ``"false_colour"``, ``"sar"`` or a sensor's own name.
        channels: three channels, each a band name of the sensor or a pair ``(a, b)`` for the
            difference ``a − b`` of two bands.
    """

    name: str
    channels: tuple[Channel, ...]

    @property
    def bands(self) -> tuple[str, ...]:
        """The band names the composite reads, each once, in order."""
        names = [n for c in self.channels for n in ((c,) if isinstance(c, str) else c)]
        return tuple(dict.fromkeys(names))


@dataclass(frozen=True)
class Sensor:
    """A sensor: an ordered tuple of bands and a native resolution.

    Attributes:
        name: registry name, e.g. ``"sentinel2-l2a"``.
        bands: ordered bands (the channel order images of this sensor are expected in).
        family: ``"multispectral"``, ``"rgb"`` or ``"sar"``.
        resolution_m: native resolution in metres (the finest band's).
        aliases: other names, e.g. the release's Hugging Face ``sensor_type`` (``"S2"``).
        roles: which band plays each role of :data:`ROLES` (``{"red": "B04", "nir": "B08"}``;
            band names or aliases), stored as ``(role, band name)`` pairs.
        composites: the sensor's own display composites (``{"agriculture": ["swir1", "nir",
            "blue"]}``; each channel a role, a band or ``"a - b"``), stored as :class:`Composite`
            objects; :data:`DEFAULT_COMPOSITES` add the ones whose roles the sensor declares.
    """

    name: str
    bands: tuple[Band, ...]
    family: str = "multispectral"
    resolution_m: float | None = None
    aliases: tuple[str, ...] = ()
    description: str = ""
    units: str = "reflectance"
    roles: Mapping[str, str] | tuple[tuple[str, str], ...] = ()
    composites: Mapping[str, Sequence[str]] | tuple[Composite, ...] = ()
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
        # frozen and hashable: roles and composites are stored as tuples, validated here once
        object.__setattr__(self, "roles", self._checked_roles(self.roles))
        object.__setattr__(self, "composites", self._checked_composites(self.composites))

    def _checked_roles(self, roles: Any) -> tuple[tuple[str, str], ...]:
        pairs = list(roles.items()) if isinstance(roles, Mapping) else list(roles)
        out = []
        for role, band in pairs:
            if role not in ROLES:
                raise ValueError(
                    f"sensor {self.name!r}: unknown band role {role!r}; roles are {', '.join(ROLES)}"
                )
            try:
                out.append((str(role), self.band(str(band)).name))
            except KeyError as err:
                raise ValueError(f"sensor {self.name!r}, role {role!r}: {err.args[0]}") from None
        return tuple(out)

    def _checked_composites(self, composites: Any) -> tuple[Composite, ...]:
        if not isinstance(composites, Mapping):
            return tuple(composites)
        out = []
        for name, channels in composites.items():
            if isinstance(channels, str) or len(channels) != 3:
                raise ValueError(
                    f"sensor {self.name!r}, composite {name!r}: give three channels; got {channels!r}"
                )
            out.append(Composite(str(name), tuple(self._channel(str(c), name) for c in channels)))
        return tuple(out)

    def _channel(self, spec: str, composite: str) -> Channel:
        """A composite channel spec (a role, a band, or ``"a - b"``) as band name(s)."""
        parts = [p.strip() for p in spec.split(" - ")]
        if len(parts) > 2:
            raise ValueError(f"sensor {self.name!r}, composite {composite!r}: bad channel {spec!r}")
        names, roles = [], self.band_roles
        for part in parts:
            if part in roles:
                names.append(roles[part])
            elif normalize_name(part) in self._index:
                names.append(self.band(part).name)
            else:
                raise RoleError(
                    f"sensor {self.name!r}, composite {composite!r}: {part!r} is neither a band "
                    f"nor a declared role (roles: {', '.join(self.band_roles) or 'none'})"
                )
        return names[0] if len(names) == 1 else (names[0], names[1])

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

    @property
    def band_roles(self) -> dict[str, str]:
        """Role → band name, as declared (``{"red": "B04", "nir": "B08", ...}``)."""
        return dict(self.roles)  # type: ignore[arg-type]

    def role(self, role: str) -> Band:
        """The band playing ``role`` (one of :data:`ROLES`).

        Raises:
            RoleError: the sensor declares no such role (the message lists the ones it has).
        """
        roles = self.band_roles
        if role not in roles:
            have = ", ".join(f"{r}: {b}" for r, b in roles.items()) or "none"
            raise RoleError(
                f"sensor {self.name!r} declares no {role!r} band role (its roles: {have}); add "
                f"it to the sensor's `roles:` in its sensors YAML file"
            )
        return self.band(roles[role])

    def composite(self, name: str) -> Composite:
        """The display composite ``name``: the sensor's own, else the default built from its
        roles (:data:`DEFAULT_COMPOSITES`).

        Raises:
            RoleError: the sensor has no such composite, or lacks a role the default needs.
        """
        for c in self.composites:  # type: ignore[union-attr]  (Composite objects once checked)
            if c.name == name:
                return c
        if name not in DEFAULT_COMPOSITES:
            own = [c.name for c in self.composites]  # type: ignore[union-attr]
            raise RoleError(
                f"sensor {self.name!r} has no {name!r} composite; it has "
                f"{', '.join([*own, *DEFAULT_COMPOSITES]) or 'none'}"
            )
        try:
            return Composite(name, tuple(self._channel(c, name) for c in DEFAULT_COMPOSITES[name]))
        except RoleError:
            needed = [r for spec in DEFAULT_COMPOSITES[name] for r in spec.split(" - ")]
            missing = [r for r in dict.fromkeys(needed) if r not in self.band_roles]
            raise RoleError(
                f"sensor {self.name!r} has no {name!r} composite: it declares no "
                f"{', '.join(repr(m) for m in missing)} band role (its roles: "
                f"{', '.join(self.band_roles) or 'none'})"
            ) from None

    def positions(self, names: Sequence[str], channels: Sequence[Channel]) -> list[Any]:
        """Where each channel's band sits in ``names`` (an image's band names or aliases of this
        sensor, e.g. a cube's ``band`` coordinate): an ``int`` per band, a pair per difference.

        Raises:
            RoleError: a channel's band is not among ``names`` (or not a band of this sensor).
        """
        at: dict[int, int] = {}  # band of this sensor -> its first position in `names`
        for i, n in enumerate(names):
            k = self._index.get(normalize_name(str(n)))
            if k is not None:
                at.setdefault(k, i)

        def pos(band: str) -> int:
            k = self._index.get(normalize_name(band))
            if k is None or k not in at:
                raise RoleError(
                    f"band {band!r} of sensor {self.name!r} is not among the bands "
                    f"{', '.join(map(str, names)) or '(none)'}"
                )
            return at[k]

        return [pos(c) if isinstance(c, str) else (pos(c[0]), pos(c[1])) for c in channels]


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

    Bands with no ``range`` are tokenized by interpolation between learned layers. Band roles
    and composites are keyword arguments of :class:`Sensor` (``roles={"nir": "nir"}``).
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


_SENSOR_KEYS = {"bands", "family", "resolution_m", "aliases", "description", "units", "roles",
                "composites"}  # fmt: skip


def load_sensors_yaml(path: str | Path, *, overwrite: bool = False) -> list[Sensor]:
    """Register the sensors described in a YAML file and return them.

    Format (the built-in sensors are such a file, :data:`BUILTIN_SENSORS_FILE`)::

        sensors:
          my-drone:
            family: multispectral
            resolution_m: 0.1
            units: DN                            # or reflectance, dB
            roles: {green: green, red: red, nir: nir}   # see ROLES
            bands:
              - {name: green, center_nm: 560, bandwidth_nm: 20}
              - {name: nir, min_nm: 820, max_nm: 860}
              - {name: red, range: red_2}        # use a release range's layer directly

    ``roles`` name the band playing each role of :data:`ROLES`; with ``red``, ``green`` and
    ``blue`` the sensor has a true-colour composite, with ``nir`` too a false-colour one and the
    map's "NIR from RGB" layer. ``composites`` (optional) adds or replaces display composites:
    ``composites: {swir: [swir2, nir, red]}`` (a role or band per channel, ``"a - b"`` for a
    difference).
    """
    raw = load_yaml(Path(path), "sensors file") or {}  # size, alias and duplicate-key checks
    if not isinstance(raw, dict) or not isinstance(raw.get("sensors"), dict):
        got = f"keys {sorted(map(str, raw))}" if isinstance(raw, dict) else type(raw).__name__
        raise ValueError(f"{path}: expected a top-level 'sensors:' mapping (got {got})")
    out = []
    for name, spec in raw["sensors"].items():
        if not isinstance(spec, dict) or set(spec) - _SENSOR_KEYS:
            unknown = sorted(map(str, set(spec) - _SENSOR_KEYS)) if isinstance(spec, dict) else spec
            raise ValueError(
                f"{path}, sensor {name!r}: unknown keys {unknown}; a sensor takes "
                f"{', '.join(sorted(_SENSOR_KEYS))}"
            )
        spec = dict(spec)
        bands = spec.pop("bands", None)
        aliases = tuple(spec.pop("aliases", ()))
        out.append(register_sensor(name, bands, aliases=aliases, overwrite=overwrite, **spec))
    return out


# --- built-in sensors: a data file, read by the loader users' files go through ----------------

BUILTIN_SENSORS_FILE = Path(__file__).with_name("sensors.yaml")
load_sensors_yaml(BUILTIN_SENSORS_FILE)
