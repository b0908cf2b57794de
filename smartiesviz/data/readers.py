"""Read user rasters into georeferenced cubes with registry band names.

A *cube* is an ``xarray.DataArray`` with dims ``(band, y, x)``, a ``band`` coordinate holding the
sensor registry's band names, pixel-centre ``x``/``y`` coordinates, and a CRS and transform that
rioxarray reads (``cube.rio.crs``, ``cube.rio.transform()``). Its attrs record:

* ``sensor``: registry sensor name; ``units``: ``"DN"``, ``"reflectance"``, ``"dB"``, ...;
* ``resolution``: pixel size in CRS units (metres for UTM);
* ``resampling``: how bands were brought to the common grid (see below);
* ``nodata``: the source's no-data value (``None`` if it had none). Pixels without data on the
  common grid are NaN in the cube; :func:`smartiesviz.data.normalize` masks them.

Resampling to a common grid (bands of different resolutions, e.g. Sentinel-2 10/20/60 m): the grid
is the intersection of all bands' footprints, on the pixel lattice of the band(s) already at the
target resolution (default: the finest). Coarser bands are upsampled with **bilinear**
interpolation, finer bands are downsampled with **area average**, bands already on the grid are
copied exactly (GDAL warper via ``rasterio.warp.reproject``).
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from affine import Affine

from smartiesviz.data.bands import (
    canonical_band_names,
    check_band_names,
    default_units,
    infer_sensor,
    match_band,
    resolve_sensor,
    sensor_hint,
)
from smartiesviz.errors import UserError
from smartiesviz.outputs import check_input_file
from smartiesviz.spectrum import get_sensor, list_sensors

RASTER_SUFFIXES = (".tif", ".tiff", ".jp2", ".vrt", ".img")
_TOKEN_SPLIT = re.compile(r"[_\-.\s]+")


def make_cube(
    data: np.ndarray,
    transform: Any,
    crs: Any,
    bands: Sequence[str],
    attrs: Mapping[str, Any] | None = None,
) -> xr.DataArray:
    """Wrap a ``(C, H, W)`` array as a georeferenced cube.

    Args:
        data: ``(C, H, W)`` array.
        transform: ``affine.Affine`` of the top-left pixel corner (north-up).
        crs: anything rasterio's ``CRS`` accepts, or ``None``.
        bands: ``C`` band names.
        attrs: attributes to set.
    """
    import rioxarray  # noqa: F401 - registers the .rio accessor

    c, h, w = data.shape
    if len(bands) != c:
        raise ValueError(f"{len(bands)} band names for an array with {c} bands")
    x = transform.c + (np.arange(w) + 0.5) * transform.a
    y = transform.f + (np.arange(h) + 0.5) * transform.e
    da = xr.DataArray(
        data,
        dims=("band", "y", "x"),
        coords={"band": list(bands), "y": y, "x": x},
        attrs=dict(attrs or {}),
    )
    if crs is not None:
        da = da.rio.write_crs(crs)
    return da.rio.write_transform(transform)


def _same_crs(a: Any, b: Any) -> bool:
    return a == b or (a is not None and b is not None and a.to_wkt() == b.to_wkt())


def common_grid(
    sources: Sequence[Any], resolution: float | None = None, footprint: str = "intersection"
) -> tuple[Any, int, int, Any]:
    """The common grid of ``sources`` (open rasterio datasets) at ``resolution``.

    Args:
        sources: open rasterio datasets in one CRS.
        resolution: pixel size (default: the finest source's).
        footprint: ``"intersection"`` (every band covers every pixel of the grid) or
            ``"reference"`` (the footprint of the bands already at ``resolution``; other bands may
            leave edge pixels NaN or, with area averaging, partly covered).

    Returns:
        ``(transform, width, height, crs)``, snapped to the pixel lattice of a source at
        ``resolution`` when there is one.
    """
    if footprint not in ("intersection", "reference"):
        raise ValueError(f"footprint={footprint!r}; expected 'intersection' or 'reference'")

    crs = sources[0].crs
    for src in sources[1:]:
        if not _same_crs(src.crs, crs):
            raise ValueError(
                f"bands are in different CRSs ({crs} and {src.crs} for {src.name}); reproject them "
                "to one CRS first"
            )
    for src in sources:
        if abs(src.transform.b) > 0 or abs(src.transform.d) > 0 or src.transform.e > 0:
            raise ValueError(f"{src.name}: only north-up rasters without rotation are supported")
    res = resolution or min(src.res[0] for src in sources)
    refs = [s for s in sources if math.isclose(s.res[0], res)]
    cover = refs if footprint == "reference" and refs else sources
    left = max(src.bounds.left for src in cover)
    right = min(src.bounds.right for src in cover)
    bottom = max(src.bounds.bottom for src in cover)
    top = min(src.bounds.top for src in cover)
    if right <= left or top <= bottom:
        raise ValueError("the bands' footprints do not overlap; nothing to read on a common grid")
    ref = refs[0] if refs else None
    if ref is not None:  # snap to the lattice of a band already at this resolution
        ox, oy = ref.transform.c, ref.transform.f
        left = ox + math.ceil(round((left - ox) / res, 6)) * res
        top = oy - math.ceil(round((oy - top) / res, 6)) * res
    width = int(math.floor(round((right - left) / res, 6)))
    height = int(math.floor(round((top - bottom) / res, 6)))
    if width <= 0 or height <= 0:
        raise ValueError(f"the common footprint is smaller than one {res} pixel")
    return Affine(res, 0.0, left, 0.0, -res, top), width, height, crs


def check_dtypes(src: Any, path: str | os.PathLike) -> str:
    """The dtype of an open rasterio dataset's bands; complex bands are refused (a clear
    :class:`UserError` naming the file, the dtype and the fix)."""
    dtypes = sorted(set(src.dtypes))
    odd = [d for d in dtypes if "complex" in d or np.dtype(d).kind not in "uif"]
    if odd:
        raise UserError(
            f"{str(path)!r} holds {odd[0]} bands (complex or non-numeric values, e.g. SAR "
            "single-look complex data); smartiesviz reads real-valued rasters only: convert it "
            "first, e.g. to intensity |z|² in dB for Sentinel-1 (10·log10(re² + im²), saved as "
            "float32), or to the real bands your sensor delivers"
        )
    return dtypes[0]


def _resampling_for(src_res: float, dst_res: float, upsample: str, downsample: str) -> str:
    if math.isclose(src_res, dst_res):
        return "nearest"
    return upsample if src_res > dst_res else downsample


def _is_whole(v: float) -> bool:
    return abs(v - round(v)) < 1e-6


def read_to_grid(
    src: Any,
    band_index: int,
    transform: Any,
    width: int,
    height: int,
    crs: Any,
    method: str,
) -> np.ndarray:
    """One band of an open rasterio dataset on a target grid, float32, NaN where there is no data."""
    import rasterio  # lazy: GDAL binding; keeps `import smartiesviz.data` light
    from rasterio.enums import Resampling
    from rasterio.warp import reproject

    out = np.full((height, width), np.nan, dtype=np.float32)
    same_lattice = (
        method == "nearest"
        and _same_crs(src.crs, crs)
        and math.isclose(src.res[0], transform.a)
        and math.isclose(src.res[1], -transform.e)
        and _is_whole((transform.c - src.transform.c) / transform.a)
        and _is_whole((src.transform.f - transform.f) / transform.a)
    )
    if same_lattice:
        # the grid is a window of this band's own pixel lattice: an exact read, no interpolation
        col = round((transform.c - src.transform.c) / transform.a)
        row = round((src.transform.f - transform.f) / transform.a)
        r0, r1 = max(row, 0), min(row + height, src.height)
        c0, c1 = max(col, 0), min(col + width, src.width)
        if r1 > r0 and c1 > c0:
            window = rasterio.windows.Window(c0, r0, c1 - c0, r1 - r0)
            out[r0 - row : r1 - row, c0 - col : c1 - col] = src.read(band_index, window=window)
    else:
        reproject(
            source=rasterio.band(src, band_index),
            destination=out,
            src_nodata=src.nodata,
            dst_transform=transform,
            dst_crs=crs,
            dst_nodata=np.nan,
            resampling=Resampling[method],
        )
    if src.nodata is not None and not np.isnan(src.nodata) and method == "nearest":
        out[out == src.nodata] = np.nan
    return out


def _band_tokens(path: Path) -> list[str]:
    """Candidate band names from a file name, last token first (``s2_B8A.jp2`` → ``B8A``;
    ``T32_20200101_B04_10m.jp2`` → ``10m``, ``B04``, ...)."""
    return list(reversed([t for t in _TOKEN_SPLIT.split(path.stem) if t]))


def _band_from_filename(sensor: Any, path: Path) -> str | None:
    for token in _band_tokens(path):
        name = match_band(sensor, token)
        if name is not None:
            return name
    return None


def list_raster_files(folder: Path) -> list[Path]:
    """Raster files (``.tif``, ``.tiff``, ``.jp2``, ...) directly inside ``folder``, sorted."""
    # not only regular files: a FIFO or device named like a raster is refused, not skipped
    return sorted(
        p for p in folder.iterdir() if p.suffix.lower() in RASTER_SUFFIXES and not p.is_dir()
    )


def _infer_sensor_from_files(files: Sequence[Path]) -> Any:
    tokens = [_band_tokens(p)[0] for p in files if _band_tokens(p)]

    best, best_n = [], 0
    for name in list_sensors():
        s = get_sensor(name)
        n = sum(_band_from_filename(s, p) is not None for p in files)
        if n > best_n:
            best, best_n = [s], n
        elif n == best_n and n > 0:
            best.append(s)
    if not best:
        raise ValueError(
            f"cannot tell the sensor from the file names {[p.name for p in files]} (tokens {tokens}); "
            f"pass sensor=... and name files like 'scene_B04.tif' (registered sensors: "
            f"{', '.join(list_sensors())})"
        )
    if len(best) > 1:
        exact = [s for s in best if len(s.bands) == best_n]
        if len(exact) == 1:
            return exact[0]
        raise ValueError(
            f"the files {[p.name for p in files]} fit several sensors "
            f"({', '.join(s.name for s in best)}); pass sensor=... to choose"
        )
    return best[0]


def read_band_files(
    files: Sequence[str | os.PathLike] | Mapping[str, str | os.PathLike],
    sensor: str | Any | None = None,
    bands: Sequence[str] | None = None,
    resolution: float | None = None,
    upsample: str = "bilinear",
    downsample: str = "average",
    units: str | None = None,
    footprint: str = "intersection",
) -> xr.DataArray:
    """Read single-band raster files into one cube on a common grid.

    Args:
        files: paths (band names taken from the file names, e.g. ``*_B04.tif``) or a mapping
            ``band name → path``. Files whose names match no band of the sensor are skipped.
        sensor: registry sensor name (default: inferred from the file names).
        bands: bands to read, in this order (default: every band found, in registry order). The
            grid is computed from every band found, so it does not depend on this selection.
        resolution: target pixel size in CRS units (default: the finest band's).
        upsample: rasterio resampling for bands coarser than the grid (default ``"bilinear"``).
        downsample: resampling for bands finer than the grid (default ``"average"``).
        units: the data's units (default: the sensor's usual units, e.g. ``"DN"``).
        footprint: see :func:`common_grid` (default: every band covers every pixel).

    Returns:
        ``(C, H, W)`` float32 cube (see the module docstring).
    """
    s, named = _band_files(files, sensor)
    order = _band_order(s, named, bands)
    data, transform, crs, source = _read_bands_on_grid(
        named, s.band_names, order, resolution, footprint, (upsample, downsample)
    )
    attrs = {"sensor": s.name, "units": units or default_units(s), **source}
    return make_cube(data, transform, crs, order, attrs)


def _band_files(
    files: Sequence[str | os.PathLike] | Mapping[str, str | os.PathLike],
    sensor: str | Any | None,
) -> tuple[Any, dict[str, Path]]:
    """The sensor and its band name → file for the files given (see :func:`read_band_files`)."""
    if isinstance(files, Mapping):
        for p in files.values():
            check_input_file(p, "band file")
        s = resolve_sensor(sensor) if sensor is not None else infer_sensor(list(files))
        named = dict(zip(canonical_band_names(s, files.keys()), (Path(p) for p in files.values())))
        return s, named
    paths = [check_input_file(p, "band file") for p in files]
    if not paths:
        raise ValueError("no raster files given")
    s = resolve_sensor(sensor) if sensor is not None else _infer_sensor_from_files(paths)
    named: dict[str, Path] = {}
    for p in paths:
        name = _band_from_filename(s, p)
        if name is None:
            continue
        if name in named:
            raise ValueError(
                f"band {name!r} of {s.name!r} matches two files: {named[name].name}, {p.name}"
            )
        named[name] = p
    if not named:
        raise ValueError(
            f"no file name names a band of {s.name!r} ({[p.name for p in paths]}); "
            f"known bands: {', '.join(s.band_names)}"
        )
    return s, named


def _band_order(s: Any, named: Mapping[str, Path], bands: Sequence[str] | None) -> list[str]:
    """The bands to read: ``bands`` in canonical names, or every band found in registry order."""
    if bands is None:
        return [b for b in s.band_names if b in named]
    order = canonical_band_names(s, bands)
    missing = [b for b in order if b not in named]
    if missing:
        found = ", ".join(b for b in s.band_names if b in named)
        raise ValueError(f"band(s) {missing} of {s.name!r} not found; found: {found}")
    return order


def _read_bands_on_grid(
    named: Mapping[str, Path],
    registry_order: Sequence[str],
    order: Sequence[str],
    resolution: float | None,
    footprint: str,
    resampling: tuple[str, str],
) -> tuple[np.ndarray, Any, Any, dict[str, Any]]:
    """Read ``order`` onto the common grid of every band found.

    Returns:
        ``(C, H, W)`` float32 data, the grid's transform and CRS, and the cube attrs that describe
        the source (``resolution``, ``resampling``, ``nodata``, ``source_dtype``).
    """
    import rasterio  # lazy: GDAL binding; keeps `import smartiesviz.data` light

    upsample, downsample = resampling
    # the grid comes from every band found, so selecting bands never changes it
    all_srcs = {}
    try:
        for b in registry_order:
            if b in named:
                all_srcs[b] = rasterio.open(named[b])
                check_dtypes(all_srcs[b], named[b])
        transform, width, height, crs = common_grid(list(all_srcs.values()), resolution, footprint)
        res = transform.a
        data = np.empty((len(order), height, width), dtype=np.float32)
        methods = []
        for i, b in enumerate(order):
            src = all_srcs[b]
            method = _resampling_for(src.res[0], res, upsample, downsample)
            methods.append(method)
            data[i] = read_to_grid(src, 1, transform, width, height, crs, method)
        nodata = all_srcs[order[0]].nodata
        source_dtype = all_srcs[order[0]].dtypes[0]
    finally:
        for src in all_srcs.values():
            src.close()
    per_band = {b: m for b, m in zip(order, methods) if m != "nearest"}
    source = {
        "resolution": float(res),
        "resampling": _describe_resampling(per_band, res),
        "nodata": None if nodata is None else float(nodata),
        "source_dtype": source_dtype,
    }
    return data, transform, crs, source


def _describe_resampling(per_band: Mapping[str, str], res: float) -> str:
    if not per_band:
        return "none (all bands read on their native grid)"
    by_method: dict[str, list[str]] = {}
    for b, m in per_band.items():
        by_method.setdefault(m, []).append(b)
    parts = [f"{m} ({', '.join(bs)})" for m, bs in by_method.items()]
    return f"to {res:g} m grid: " + "; ".join(parts)


def raster_layout(src: Any) -> tuple[list[int], list[str], bool]:
    """The data bands of an open rasterio dataset (1-based, alpha bands left out), their
    descriptions (``[]`` unless every data band has one), and whether a mask (an alpha band or
    an internal mask) marks pixels without data."""
    from rasterio.enums import ColorInterp, MaskFlags  # lazy: GDAL binding

    idx = [i + 1 for i, ci in enumerate(src.colorinterp) if ci != ColorInterp.alpha]
    idx = idx or list(range(1, src.count + 1))
    described = [src.descriptions[i - 1] for i in idx]
    masked = any(
        MaskFlags.per_dataset in flags or MaskFlags.alpha in flags for flags in src.mask_flag_enums
    )
    return idx, described if all(described) else [], masked


def file_band_names(
    path: Path, s: Any, descriptions: Sequence[str], bands: Sequence[str] | None
) -> list[str]:
    """Registry names of a file's described bands; ``bands`` naming all of them in order
    overrides descriptions that do not fit the sensor."""
    try:
        check_band_names(s, descriptions, str(path))
    except UserError:
        if bands is None or len(bands) != len(descriptions):
            raise
        return canonical_band_names(s, bands)
    return canonical_band_names(s, descriptions)


def _read_multiband(
    path: Path, sensor: Any, bands: Sequence[str] | None, units: str | None
) -> xr.DataArray:
    import rasterio  # lazy: GDAL binding; keeps `import smartiesviz.data` light

    with rasterio.open(check_input_file(path, "raster")) as src:
        source_dtype = check_dtypes(src, path)
        band_idx, descriptions, masked = raster_layout(src)
        count = len(band_idx)
        if descriptions:
            s = resolve_sensor(sensor) if sensor is not None else infer_sensor(descriptions)
            names = file_band_names(path, s, descriptions, bands)
            select = canonical_band_names(s, bands) if bands is not None else names
        else:
            if sensor is None:
                if bands is None:
                    raise ValueError(
                        f"{path.name} has {count} bands without descriptions; pass sensor=... "
                        "(and bands=[...] naming the file's bands in order): "
                        + sensor_hint(count, source_dtype)
                    )
                s = infer_sensor(list(bands))
            else:
                s = resolve_sensor(sensor)
            if bands is not None and len(bands) == count:
                names = canonical_band_names(s, bands)
                select = names
            elif len(s.bands) == count:
                names = list(s.band_names)
                select = canonical_band_names(s, bands) if bands is not None else names
            else:
                raise ValueError(
                    f"{path.name} has {count} bands without descriptions and sensor {s.name!r} has "
                    f"{len(s.bands)} ({', '.join(s.band_names)}); pass bands=[...] with {count} names "
                    "in the file's order"
                )
        missing = [b for b in select if b not in names]
        if missing:
            raise ValueError(
                f"band(s) {missing} are not in {path.name}; it holds {', '.join(names)}"
            )
        idx = [band_idx[names.index(b)] for b in select]
        data = src.read(idx).astype(np.float32)
        if src.nodata is not None and not np.isnan(src.nodata):
            data[data == np.float32(src.nodata)] = np.nan
        if masked:  # an alpha band or internal mask: 0 marks pixels without data
            data[:, src.dataset_mask() == 0] = np.nan
        attrs = {
            "sensor": s.name,
            "units": units or default_units(s),
            "resolution": float(src.res[0]),
            "resampling": "none (native grid)",
            "nodata": None if src.nodata is None else float(src.nodata),
            "source": str(path),
            "source_dtype": source_dtype,
        }
        return make_cube(data, src.transform, src.crs, select, attrs)


def read_geotiff(
    path: str | os.PathLike,
    sensor: str | None = None,
    bands: Sequence[str] | None = None,
    resolution: float | None = None,
    units: str | None = None,
) -> xr.DataArray:
    """Read a multi-band GeoTIFF, or a folder of single-band rasters, into a cube.

    Band names come from, in this order: the file's band descriptions; ``bands`` (naming the
    file's bands in order when it has as many entries as the file has bands); the sensor's band
    order when the file has exactly as many bands as the sensor. For a folder they come from the
    file names (``*_B04.tif``, ``s2_B8A.jp2``, ``..._VV.tif``), and bands of different
    resolutions are resampled to a common grid (see the module docstring).

    Args:
        path: a raster file or a folder of single-band rasters.
        sensor: registry sensor name (default: inferred from the band names).
        bands: band names to read (registry names or aliases), in the output order.
        resolution: folders only: target pixel size (default: finest band).
        units: the data's units (default: the sensor's usual units).

    Returns:
        ``(C, H, W)`` float32 cube; no-data pixels are NaN.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: unknown sensor or bands (the message lists the known ones), or band names that
            cannot be worked out.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{str(p)!r} does not exist")
    if not p.is_dir():
        check_input_file(p, "raster")  # a FIFO or device would block or never end
    if p.is_dir():
        files = list_raster_files(p)
        if not files:
            raise ValueError(
                f"folder {str(p)!r} holds no raster files ({', '.join(RASTER_SUFFIXES)})"
            )
        cube = read_band_files(files, sensor, bands, resolution, units=units)
        cube.attrs["source"] = str(p)
        return cube
    if resolution is not None:
        warnings.warn("resolution= is ignored for a single multi-band file", stacklevel=2)
    return _read_multiband(p, sensor, bands, units)


def sensor_hint_for(path: str | os.PathLike) -> str:
    """How to give the sensor of a raster file or band folder (``--sensor`` / ``sensor=``), with
    the sensor its band names, band count and dtype suggest."""
    import rasterio  # lazy: GDAL binding; keeps `import smartiesviz.data` light

    p = Path(path)
    try:
        if p.is_dir():
            names = [_band_tokens(f)[0] for f in list_raster_files(p) if _band_tokens(f)]
            return sensor_hint(None) if not names else _named_hint(names, len(names), None)
        with rasterio.open(check_input_file(p, "raster")) as src:
            idx, descriptions, _ = raster_layout(src)
            return _named_hint(descriptions, len(idx), src.dtypes[0])
    except (OSError, ValueError, rasterio.errors.RasterioError):
        return sensor_hint(None)


def _named_hint(names: Sequence[str], count: int, dtype: str | None) -> str:
    if names:
        try:
            name = infer_sensor(names).name
        except ValueError:
            pass
        else:
            return (
                f"pass --sensor {name} on the command line or sensor={name!r} in Python (its "
                f"bands are named {', '.join(names)})"
            )
    return sensor_hint(count, dtype)


_BAND_DIMS = ("band", "bands", "channel", "channels", "c", "spectral")
_Y_DIMS = ("y", "lat", "latitude", "northing", "row", "rows")
_X_DIMS = ("x", "lon", "longitude", "easting", "col", "cols")


def from_xarray(
    da: xr.DataArray,
    sensor: str | None = None,
    bands: Iterable[str] | None = None,
    units: str | None = None,
    nodata: float | None = None,
) -> xr.DataArray:
    """Label an ``xarray.DataArray`` as a cube: dims ``(band, y, x)``, registry band names, attrs.

    Args:
        da: 3-D array with a band-like dim (``band``, ``channel``, ...) and y/x (or lat/lon) dims.
        sensor: registry sensor name (default: ``da.attrs["sensor"]``, else inferred from names).
        bands: names for the band dim, in order (default: the existing ``band`` coordinate if it
            holds names, else the sensor's bands when the counts match).
        units: ``"DN"``, ``"reflectance"``, ``"dB"``, ``"linear"``, ... (default: attrs or the
            sensor's usual units).
        nodata: value meaning "no data" (default: attrs ``nodata``/``_FillValue``).

    Returns:
        A new DataArray sharing the data, with canonical dims, coordinates and attrs.
    """
    if not isinstance(da, xr.DataArray):
        raise TypeError(f"expected an xarray.DataArray; got {type(da).__name__}")
    out = _canonical_dims(da)
    s, names = _cube_band_names(out, sensor or out.attrs.get("sensor"), bands)
    out = out.assign_coords(band=names)
    out.attrs = _cube_attrs(out, s, units, nodata)
    return out


def _canonical_dims(da: xr.DataArray) -> xr.DataArray:
    """``da`` with its band-, y- and x-like dims renamed ``band``/``y``/``x``, in that order."""
    if da.ndim != 3:
        raise ValueError(f"expected a 3-D (band, y, x) array; got dims {da.dims}")
    rename = {}
    for dim in da.dims:
        key = str(dim).lower()
        if key in _BAND_DIMS:
            rename[dim] = "band"
        elif key in _Y_DIMS:
            rename[dim] = "y"
        elif key in _X_DIMS:
            rename[dim] = "x"
    if sorted(rename.values()) != ["band", "x", "y"]:
        raise ValueError(
            f"cannot tell which dims of {da.dims} are band, y and x; name them 'band', 'y', 'x'"
        )
    return da.rename({k: v for k, v in rename.items() if k != v}).transpose("band", "y", "x")


def _cube_band_names(
    out: xr.DataArray, sensor: str | None, bands: Iterable[str] | None
) -> tuple[Any, list[str]]:
    """The sensor and registry band names of a ``(band, y, x)`` array (see :func:`from_xarray`)."""
    n = out.sizes["band"]
    if bands is not None:
        given = [str(b) for b in bands]
    elif "band" in out.coords and out["band"].dtype.kind in "UO":
        given = [str(b) for b in out["band"].values]
    else:
        given = None
    if given is None:
        if sensor is None:
            dtype = out.attrs.get("source_dtype") or out.encoding.get("rasterio_dtype") or out.dtype
            raise ValueError(
                f"the cube's {n} bands have no names; pass sensor=... and/or bands=[...]: "
                + sensor_hint(n, str(dtype))
            )
        s = resolve_sensor(sensor)
        if len(s.bands) != n:
            raise ValueError(
                f"the cube has {n} unnamed bands and {s.name!r} has {len(s.bands)} "
                f"({', '.join(s.band_names)}); pass bands=[...] with {n} names"
            )
        return s, list(s.band_names)
    if len(given) != n:
        raise ValueError(f"{len(given)} band names for a cube with {n} bands")
    s = resolve_sensor(sensor) if sensor is not None else infer_sensor(given)
    if bands is None:  # the data's own names: they must fit the sensor
        check_band_names(s, given, str(out.attrs.get("source") or "the cube"))
    return s, canonical_band_names(s, given)


def _cube_attrs(
    out: xr.DataArray, s: Any, units: str | None, nodata: float | None
) -> dict[str, Any]:
    """``out``'s attrs completed with sensor, units, nodata, resampling and resolution."""
    attrs = dict(out.attrs)
    attrs["sensor"] = s.name
    attrs["units"] = units or attrs.get("units") or default_units(s)
    if nodata is None:
        nodata = attrs.get("nodata", attrs.get("_FillValue"))
    attrs["nodata"] = None if nodata is None else float(nodata)
    attrs.setdefault("resampling", "none")
    try:
        res = out.rio.resolution()
        attrs.setdefault("resolution", float(abs(res[0])))
    except Exception:  # no spatial coords that rioxarray understands
        attrs.setdefault("resolution", None)
    return attrs
