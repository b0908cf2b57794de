"""Band and sensor names for cubes: THE sensor lookup and band-name canonicalisation.

Everything here defers to the sensor registry (:mod:`smartiesviz.spectrum`), so aliases work the
same way everywhere (case-insensitive, ``B8`` ≡ ``B08``, ``B08A`` ≡ ``B8A``, release range names).
:func:`cube_sensor` (the sensor of a cube) and :func:`canonical_band_names` are the only copies
in the package; predictions, widgets, preprocessing and display all call them.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from typing import Any

from smartiesviz.spectrum import Sensor, get_sensor, list_sensors
from smartiesviz.spectrum._names import normalize_name

#: Names that stand for a family of products: the registry maps them to one product, which
#: :func:`resolve_sensor` names in a :class:`SensorChoiceWarning`.
AMBIGUOUS_SENSOR_NAMES: dict[str, str] = {
    "sentinel2": "Sentinel-2 has two products with different statistics: 'sentinel2-l2a' "
    "(Level-2A surface reflectance, 12 bands) and 'sentinel2-l1c' (Level-1C top of atmosphere, "
    "13 bands with B10)",
}


class SensorChoiceWarning(UserWarning):
    """A family name (``"sentinel2"``) was resolved to one product of the family."""


def resolve_sensor(sensor: str | Sensor) -> Sensor:
    """The registry :class:`Sensor` for a name or alias; a clear ``ValueError`` if unknown.

    A family name such as ``"sentinel2"`` resolves to the registry's choice (Level-2A) with a
    :class:`SensorChoiceWarning` naming that choice and the alternative.
    """
    try:
        found = get_sensor(sensor)
    except KeyError as err:
        raise ValueError(
            f"unknown sensor {sensor!r}; registered sensors: {', '.join(list_sensors())}"
        ) from err
    if isinstance(sensor, str) and normalize_name(sensor) in AMBIGUOUS_SENSOR_NAMES:
        warnings.warn(
            f"sensor {sensor!r} is taken as {found.name!r}. "
            f"{AMBIGUOUS_SENSOR_NAMES[normalize_name(sensor)]}; name the one your data is.",
            SensorChoiceWarning,
            stacklevel=3,
        )
    return found


def cube_sensor(cube: Any, sensor: str | Sensor | None = None, default: str | None = None) -> str:
    """The registry name of a cube's sensor: ``sensor`` if given, else ``cube.attrs["sensor"]``,
    else ``default``.

    Raises:
        ValueError: none of them is set (the message says how to pass one), or the name is not
            a registered sensor.
    """
    name = sensor or getattr(cube, "attrs", {}).get("sensor") or default
    if not name:
        raise ValueError(
            "no sensor given and the cube has no 'sensor' attribute; pass sensor='sentinel2-l2a' "
            "(or another registry name, see `smartiesviz sensors`)"
        )
    return resolve_sensor(name).name


def canonical_band_names(sensor: str | Sensor, names: Iterable[object]) -> list[str]:
    """Registry names of ``names`` for ``sensor`` (aliases resolved, order kept).

    Raises:
        ValueError: a name is not a band of the sensor (the message lists the sensor's bands), or
            a band is given twice.
    """
    s = resolve_sensor(sensor)
    out: list[str] = []
    unknown: list[str] = []
    for name in names:
        try:
            out.append(s.band(str(name)).name)
        except KeyError:
            unknown.append(str(name))
    if unknown:
        raise ValueError(
            f"unknown band(s) {unknown} for sensor {s.name!r}; known bands: {', '.join(s.band_names)}"
        )
    dup = sorted({n for n in out if out.count(n) > 1})
    if dup:
        raise ValueError(f"band(s) {dup} given more than once for sensor {s.name!r}")
    return out


def match_band(sensor: Sensor, token: str) -> str | None:
    """The registry name of ``token`` in ``sensor``, or ``None`` when it is not one of its bands."""
    try:
        return sensor.band(token).name
    except KeyError:
        return None


def infer_sensor(names: Sequence[str]) -> Sensor:
    """The one registered sensor that has every band in ``names``.

    Raises:
        ValueError: no sensor or several sensors fit (e.g. ``B02``–``B12`` without ``B10`` fit both
            Sentinel-2 L1C and L2A): pass ``sensor=`` explicitly.
    """
    fits = []
    for sname in list_sensors():
        s = get_sensor(sname)
        if all(match_band(s, n) is not None for n in names):
            fits.append(s)
    # a sensor whose band list is exactly these bands wins over sensors that merely contain them
    exact = [s for s in fits if len(s.bands) == len(names)]
    if len(exact) == 1:
        return exact[0]
    if len(fits) == 1:
        return fits[0]
    if not fits:
        raise ValueError(
            f"no registered sensor has all the bands {list(names)}; pass sensor=... and bands=... "
            f"(registered sensors: {', '.join(list_sensors())})"
        )
    raise ValueError(
        f"bands {list(names)} fit several sensors ({', '.join(s.name for s in fits)}); "
        "pass sensor=... to choose (their statistics differ)"
    )


def band_spec(sensor: str | Sensor, names: Sequence[str]) -> str | list[str]:
    """The model's ``bands`` argument for a cube: the sensor name when the cube holds all of the
    sensor's bands in registry order, else ``["sensor/band", ...]``."""
    s = resolve_sensor(sensor)
    names = canonical_band_names(s, names)
    if names == s.band_names:
        return s.name
    return [f"{s.name}/{n}" for n in names]


def default_units(sensor: str | Sensor) -> str:
    """The units a sensor's data usually come in (``"DN"``, ``"dB"``, ``"reflectance"``)."""
    return getattr(resolve_sensor(sensor), "units", "DN") or "DN"
