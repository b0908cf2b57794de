"""Display composites with a percentile stretch, as numpy RGB arrays (no plotting library).

Each function returns ``(H, W, 3)`` ``uint8`` (default) or float32 in ``[0, 1]``
(``dtype="float"``), ready for ``plt.imshow``, PIL or a map overlay:

* :func:`true_color`: the sensor's red/green/blue bands (S2 B04/B03/B02, Landsat B4/B3/B2, ...);
* :func:`false_color`: its near-infrared/red/green (vegetation bright red);
* :func:`sar_composite`: Sentinel-1 R = VV, G = VH, B = VV − VH (dB ratio);
* :func:`composite`: any three bands; :func:`stretch`: the percentile stretch itself (from
  :mod:`smartiesviz.render`, the one renderer; this module adds the sensor registry's band choice).

The bands come from the roles the sensor declares in the registry (``Sensor.composite``), so a
sensor registered from a YAML file with ``roles: {red: ..., green: ..., blue: ..., nir: ...}``
has both colour composites.

NaN pixels are drawn black and stay out of the stretch, as do the no-data pixels of a normalized
cube (its ``valid`` coordinate: they hold the fill value 0 there). Composites take cubes in any
units (DN, dB, or model units).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from smartiesviz.data.bands import cube_sensor, resolve_sensor
from smartiesviz.render import Dtype, stretch
from smartiesviz.spectrum.sensors import Channel, RoleError

__all__ = ["composite", "false_color", "sar_composite", "stretch", "true_color"]


def composite(
    cube: xr.DataArray,
    bands: Sequence[Channel],
    percentiles: tuple[float, float] = (2.0, 98.0),
    dtype: Dtype = "uint8",
) -> np.ndarray:
    """Three channels of a ``(C, H, W)`` cube as an ``(H, W, 3)`` stretched image.

    Args:
        cube: cube with a ``band`` coordinate.
        bands: three channels, each a band name (registry name or alias of the cube's sensor) or
            a pair ``(a, b)`` for the difference ``a − b``.
        percentiles, dtype: see :func:`stretch`.
    """
    if len(bands) != 3:
        raise ValueError(f"a composite needs 3 bands; got {list(bands)}")
    have = [str(b) for b in cube["band"].values]
    sensor = cube.attrs.get("sensor")

    def plane(b: str) -> np.ndarray:
        name = b
        if b not in have and sensor:
            try:
                name = resolve_sensor(sensor).band(b).name
            except KeyError:
                name = b
        if name not in have:
            raise ValueError(f"band {b!r} is not in the cube; it has {', '.join(have)}")
        return np.asarray(cube.sel(band=name).values, dtype=np.float32)

    rgb = np.stack(
        [plane(c) if isinstance(c, str) else plane(c[0]) - plane(c[1]) for c in bands], -1
    )
    return stretch(_masked(rgb, cube), percentiles, dtype)


def _masked(rgb: np.ndarray, cube: xr.DataArray) -> np.ndarray:
    """``(H, W, 3)`` with NaN where a normalized cube's ``valid`` coordinate says no data."""
    if "valid" in cube.coords and cube["valid"].dims == ("y", "x"):
        rgb = np.where(np.asarray(cube["valid"].values, bool)[..., None], rgb, np.float32(np.nan))
    return rgb


def _sensor_bands(cube: xr.DataArray, name: str, kind: str) -> tuple[Channel, ...]:
    """The channels of the cube's sensor's composite ``name`` (from its declared band roles); an
    error naming the sensor and the missing role otherwise."""
    sensor = cube_sensor(cube)
    try:
        return resolve_sensor(sensor).composite(name).channels
    except RoleError as err:
        raise ValueError(
            f"no {kind} bands known for {sensor!r} ({err}); use composite(cube, bands)"
        ) from None


def true_color(
    cube: xr.DataArray, percentiles: tuple[float, float] = (2.0, 98.0), dtype: Dtype = "uint8"
) -> np.ndarray:
    """Red/green/blue composite ``(H, W, 3)`` of a multispectral or RGB cube."""
    return composite(cube, _sensor_bands(cube, "true_colour", "true-colour"), percentiles, dtype)


def false_color(
    cube: xr.DataArray, percentiles: tuple[float, float] = (2.0, 98.0), dtype: Dtype = "uint8"
) -> np.ndarray:
    """Near-infrared/red/green composite ``(H, W, 3)`` (vegetation appears red)."""
    return composite(cube, _sensor_bands(cube, "false_colour", "false-colour"), percentiles, dtype)


def sar_composite(
    cube: xr.DataArray, percentiles: tuple[float, float] = (2.0, 98.0), dtype: Dtype = "uint8"
) -> np.ndarray:
    """SAR composite ``(H, W, 3)`` of the sensor's ``sar`` composite (Sentinel-1 by default):
    R = VV, G = VH, B = VV − VH (the VV/VH ratio in dB).

    The cube must hold VV and VH in dB (convert linear power with
    :func:`~smartiesviz.data.to_db`) or in model units.
    """
    units = str(cube.attrs.get("units", "dB")).lower()
    if units not in ("db", "model"):
        raise ValueError(
            f"sar_composite needs VV/VH in dB (or model units); the cube's units are {units!r}"
        )
    sensor = cube_sensor(cube, default="sentinel1-grd")
    try:
        channels = resolve_sensor(sensor).composite("sar").channels
    except RoleError as err:
        raise ValueError(f"sar_composite needs VV and VH bands ({err})") from None
    return composite(cube, channels, percentiles, dtype)
