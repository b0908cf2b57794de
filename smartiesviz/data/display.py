"""Display composites with a percentile stretch, as numpy RGB arrays (no plotting library).

Each function returns ``(H, W, 3)`` ``uint8`` (default) or float32 in ``[0, 1]``
(``dtype="float"``), ready for ``plt.imshow``, PIL or a map overlay:

* :func:`true_color`: red/green/blue bands (S2 B04/B03/B02, Landsat B4/B3/B2, RGB sensors);
* :func:`false_color`: near-infrared/red/green (vegetation bright red);
* :func:`sar_composite`: Sentinel-1 R = VV, G = VH, B = VV − VH (dB ratio);
* :func:`composite`: any three bands; :func:`stretch`: the percentile stretch itself (from
  :mod:`smartiesviz.render`, the one renderer; this module adds the sensor registry's band choice).

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

__all__ = ["composite", "false_color", "sar_composite", "stretch", "true_color"]

#: (red, green, blue) and near-infrared bands of the registry sensors, by family of use
TRUE_COLOR = {
    "sentinel2-l1c": ("B04", "B03", "B02"),
    "sentinel2-l2a": ("B04", "B03", "B02"),
    "landsat8": ("B4", "B3", "B2"),
    "hls": ("red", "green", "blue"),
    "rgb": ("red", "green", "blue"),
    "planetscope": ("red", "green", "blue"),
    "planetscope-superdove": ("red", "green", "blue"),
}
FALSE_COLOR = {
    "sentinel2-l1c": ("B08", "B04", "B03"),
    "sentinel2-l2a": ("B08", "B04", "B03"),
    "landsat8": ("B5", "B4", "B3"),
    "hls": ("nir_narrow", "red", "green"),
    "planetscope": ("nir", "red", "green"),
    "planetscope-superdove": ("nir", "red", "green"),
}


def composite(
    cube: xr.DataArray,
    bands: Sequence[str],
    percentiles: tuple[float, float] = (2.0, 98.0),
    dtype: Dtype = "uint8",
) -> np.ndarray:
    """Three bands of a ``(C, H, W)`` cube as an ``(H, W, 3)`` stretched image.

    Args:
        cube: cube with a ``band`` coordinate.
        bands: three band names (registry names or aliases of the cube's sensor).
        percentiles, dtype: see :func:`stretch`.
    """
    if len(bands) != 3:
        raise ValueError(f"a composite needs 3 bands; got {list(bands)}")
    have = [str(b) for b in cube["band"].values]
    sensor = cube.attrs.get("sensor")
    chosen = []
    for b in bands:
        name = b
        if b not in have and sensor:
            try:
                name = resolve_sensor(sensor).band(b).name
            except KeyError:
                name = b
        if name not in have:
            raise ValueError(f"band {b!r} is not in the cube; it has {', '.join(have)}")
        chosen.append(name)
    rgb = np.moveaxis(np.asarray(cube.sel(band=chosen).values, dtype=np.float32), 0, -1)
    return stretch(_masked(rgb, cube), percentiles, dtype)


def _masked(rgb: np.ndarray, cube: xr.DataArray) -> np.ndarray:
    """``(H, W, 3)`` with NaN where a normalized cube's ``valid`` coordinate says no data."""
    if "valid" in cube.coords and cube["valid"].dims == ("y", "x"):
        rgb = np.where(np.asarray(cube["valid"].values, bool)[..., None], rgb, np.float32(np.nan))
    return rgb


def _sensor_bands(cube: xr.DataArray, table: dict[str, tuple[str, ...]], kind: str) -> tuple:
    """The bands ``table`` lists for the cube's sensor; an error naming the sensor otherwise."""
    sensor = cube_sensor(cube)
    if sensor not in table:
        raise ValueError(f"no {kind} bands known for {sensor!r}; use composite(cube, bands)")
    return table[sensor]


def true_color(
    cube: xr.DataArray, percentiles: tuple[float, float] = (2.0, 98.0), dtype: Dtype = "uint8"
) -> np.ndarray:
    """Red/green/blue composite ``(H, W, 3)`` of a multispectral or RGB cube."""
    return composite(cube, _sensor_bands(cube, TRUE_COLOR, "true-colour"), percentiles, dtype)


def false_color(
    cube: xr.DataArray, percentiles: tuple[float, float] = (2.0, 98.0), dtype: Dtype = "uint8"
) -> np.ndarray:
    """Near-infrared/red/green composite ``(H, W, 3)`` (vegetation appears red)."""
    return composite(cube, _sensor_bands(cube, FALSE_COLOR, "false-colour"), percentiles, dtype)


def sar_composite(
    cube: xr.DataArray, percentiles: tuple[float, float] = (2.0, 98.0), dtype: Dtype = "uint8"
) -> np.ndarray:
    """Sentinel-1 composite ``(H, W, 3)``: R = VV, G = VH, B = VV − VH (the VV/VH ratio in dB).

    The cube must hold VV and VH in dB (convert linear power with
    :func:`~smartiesviz.data.to_db`) or in model units.
    """
    units = str(cube.attrs.get("units", "dB")).lower()
    if units not in ("db", "model"):
        raise ValueError(
            f"sar_composite needs VV/VH in dB (or model units); the cube's units are {units!r}"
        )
    have = [str(b) for b in cube["band"].values]
    if not {"VV", "VH"} <= set(have):
        raise ValueError(f"sar_composite needs bands VV and VH; the cube has {', '.join(have)}")
    vv = np.asarray(cube.sel(band="VV").values, dtype=np.float32)
    vh = np.asarray(cube.sel(band="VH").values, dtype=np.float32)
    return stretch(_masked(np.stack([vv, vh, vv - vh], axis=-1), cube), percentiles, dtype)
