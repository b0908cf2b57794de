"""Band and sensor names for cubes: canonical registry names, inference, model band specs.

Everything here defers to the sensor registry (:mod:`smartiesviz.spectrum`), so aliases work the
same way everywhere (case-insensitive, ``B8`` ≡ ``B08``, ``B08A`` ≡ ``B8A``, release range names).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from smartiesviz.spectrum import Sensor, get_sensor, list_sensors


def resolve_sensor(sensor: str | Sensor) -> Sensor:
    """The registry :class:`Sensor` for a name or alias; a clear ``ValueError`` if unknown."""
    try:
        return get_sensor(sensor)
    except KeyError as err:
        raise ValueError(
            f"unknown sensor {sensor!r}; registered sensors: {', '.join(list_sensors())}"
        ) from err


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
