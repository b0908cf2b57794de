"""Band and sensor names for cubes: THE sensor lookup and band-name canonicalisation.

Everything here defers to the sensor registry (:mod:`smartiesviz.spectrum`), so aliases work the
same way everywhere (case-insensitive, ``B8`` ≡ ``B08``, ``B08A`` ≡ ``B8A``, release range names).
:func:`cube_sensor` (the sensor of a cube) and :func:`canonical_band_names` are the only copies
in the package; predictions, widgets, preprocessing and display all call them.
"""

from __future__ import annotations

import re
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
        sizes = getattr(cube, "sizes", {})
        count = int(sizes["band"]) if "band" in sizes else None
        raise ValueError(
            "no sensor given and the cube has no 'sensor' attribute; "
            + sensor_hint(count, str(getattr(cube, "dtype", "")))
        )
    return resolve_sensor(name).name


def sensor_hint(count: int | None, dtype: str | None = None) -> str:
    """How to give the sensor of an image with ``count`` unnamed bands of ``dtype``: a sentence
    naming ``--sensor`` (command line) and ``sensor=`` (Python) with a suggestion that fits."""
    why, names = "", []
    if count == 3 and str(dtype) == "uint8":
        why, names = "3 bands of 8-bit values look like an RGB image", ["rgb"]
    elif count == 2:
        why, names = "2 bands look like Sentinel-1 VV, VH in dB", ["sentinel1-grd"]
    elif count in (12, 13):
        product = "Level-2A, 12 bands" if count == 12 else "Level-1C, 13 bands with B10"
        name = "sentinel2-l2a" if count == 12 else "sentinel2-l1c"
        why, names = f"{count} bands look like Sentinel-2 {product}", [name]
    elif count is not None:
        names = [n for n in list_sensors() if len(get_sensor(n).bands) == count]
        why = f"registered sensors with {count} bands: {', '.join(names)}" if names else ""
    if not names:
        some = (
            f"; no registered sensor has {count} bands, so also name them (--bands, "
            "bands=[names]) or register yours (smartiesviz.spectrum.register_sensor)"
        )
        return (
            f"pass --sensor NAME on the command line or sensor='NAME' in Python"
            f"{some if count is not None else ''} (registered sensors: "
            f"{', '.join(list_sensors())}; `smartiesviz sensors` lists their bands)"
        )
    return (
        f"pass --sensor {names[0]} on the command line or sensor={names[0]!r} in Python "
        f"({why}; `smartiesviz sensors` lists every sensor's bands)"
    )


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


def _plain(name: object) -> str:
    return str(name).strip().lower().replace("-", "_").replace(" ", "_")


def _names_exactly(sensor: Sensor, names: Sequence[str]) -> bool:
    """Whether every name is one of the sensor's band names or aliases as written.

    Padding is not loosened (``B08`` is not Landsat-8's ``B8``), with one documented exception:
    a sensor whose names are zero-padded (Sentinel-2's ``B02``) also owns the unpadded spelling
    (``B2``), which Google Earth Engine and Sentinel Hub exports use."""
    keys = {_plain(k) for b in sensor.bands for k in (b.name, *b.aliases, b.range_name) if k}
    keys |= {re.sub(r"^b0(\d)$", r"b\1", k) for k in keys}
    return all(_plain(n) in keys for n in names)


def check_band_names(sensor: str | Sensor, names: Sequence[str], where: str) -> None:
    """Refuse a file's own band names that do not fit the chosen sensor.

    A name the sensor takes only through loose matching (``B08`` read as Landsat-8's ``B8``,
    its panchromatic band, when the file names Sentinel-2's NIR ``B08``) while another
    registered sensor has every name exactly is refused, as is a name the sensor lacks.

    Raises:
        UserError: naming ``where``, the file's bands, the sensor's bands and the likely sensor.
    """
    from smartiesviz.errors import UserError  # errors is tiny; kept local like the registry

    s = resolve_sensor(sensor)
    names = [str(n) for n in names]
    if _names_exactly(s, names):
        return
    others = [get_sensor(n) for n in list_sensors() if n != s.name]
    exact = [o.name for o in others if _names_exactly(o, names)]
    loose = [o.name for o in others if all(match_band(o, n) for n in names)]
    unknown = [n for n in names if match_band(s, n) is None]
    if not unknown and not exact:
        return
    likely = exact or loose
    hint = (
        f"pass --sensor {likely[0]} (sensor={likely[0]!r} in Python)"
        if likely
        else "pass the sensor the file comes from (--sensor / sensor=)"
    )
    if unknown:
        problem = f"{unknown} are not bands of {s.name!r}"
    else:
        taken = ", ".join(f"{n} as {match_band(s, n)}" for n in names if match_band(s, n) != n)
        problem = f"they are {' / '.join(exact)} band names; {s.name!r} would read {taken}"
    raise UserError(
        f"{where}: its bands are named {', '.join(names)} and {problem} (bands of {s.name!r}: "
        f"{', '.join(s.band_names)}). The likely sensor is {' or '.join(likely) or 'unknown'}: "
        f"{hint}; if the file really is {s.name!r}, pass bands=[names] (--bands) naming its "
        f"{len(names)} bands in order with {s.name!r}'s names"
    )


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
    # names written as a sensor writes them (B02, not B2) rule out loose matches
    fits = [s for s in fits if _names_exactly(s, names)] or fits
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
