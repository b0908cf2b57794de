"""A scene: one image cube with its sensor, band names and geography, opened from anything.

:func:`open_scene` is the one entry point for the images the package works on (predictions, map
layers, widgets, the ``embed`` command)::

    open_scene("sentinel2")                       # bundled Sentinel-2 L1C sample
    open_scene("bigearthnet:3")                   # S2 of BigEarthNet pair 3 ("bigearthnet-s1:3": S1)
    open_scene("scene.tif", sensor="landsat8")    # a GeoTIFF, opened lazily (windows read on use)
    open_scene("S2A_.../IMG_DATA/R10m")           # a folder of single-band rasters
    open_scene(cube)                              # an xarray.DataArray (band, y, x)

A :class:`Scene` is an immutable record; :meth:`Scene.for_model` gives the same scene in model
units with only the bands the model can tokenize (what the widgets and maps feed the model).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from smartiesviz.data import readers
from smartiesviz.data.bands import cube_sensor, match_band, resolve_sensor
from smartiesviz.data.preprocess import check_model_units, normalize
from smartiesviz.data.samples import SAMPLE_SCENES, sample_cube
from smartiesviz.data.tiling import corner_bounds, cube_transform
from smartiesviz.errors import UserError
from smartiesviz.outputs import check_input_file

if TYPE_CHECKING:  # pragma: no cover
    from smartiesviz.data.preprocess import StatsArg


@dataclass(frozen=True, eq=False)
class Scene:
    """One image with its sensor and geography.

    Attributes:
        cube: ``(band, y, x)`` DataArray (physical units, or ``attrs["units"] == "model"``).
        sensor: registry sensor name (``"custom"`` for arrays described by wavelengths only).
        bands: the cube's band names, in channel order.
        crs: coordinate reference system (``None`` when the image has none).
        transform: affine transform of the top-left pixel corner.
        bounds: ``(left, bottom, right, top)`` in the CRS (pixel units without geography).
        name: where it came from (sample name, file name or ``"custom"``).
        specs: the model band spec of each channel (``"sensor/band"`` or ``(min_nm, max_nm)``);
            default ``"sensor/band"`` for every band.
    """

    cube: xr.DataArray
    sensor: str
    bands: tuple[str, ...]
    crs: Any
    transform: Any
    bounds: tuple[float, float, float, float]
    name: str = "custom"
    specs: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        if self.cube.dims != ("band", "y", "x"):
            raise ValueError(f"a scene cube has dims ('band', 'y', 'x'); got {self.cube.dims}")
        if not self.specs:
            object.__setattr__(self, "specs", tuple(f"{self.sensor}/{b}" for b in self.bands))
        if len(self.specs) != len(self.bands):
            raise ValueError(f"{len(self.specs)} band specs for {len(self.bands)} bands")

    @classmethod
    def from_cube(
        cls, cube: xr.DataArray, sensor: str | None = None, name: str = "custom",
        specs: Sequence[Any] = (),
    ) -> Scene:  # fmt: skip
        """A scene of a ``(band, y, x)`` cube (sensor: ``sensor`` or ``cube.attrs["sensor"]``)."""
        if not isinstance(cube, xr.DataArray) or cube.ndim != 3 or cube.dims[0] != "band":
            raise ValueError(
                f"expected an xarray.DataArray with dims ('band', 'y', 'x'); got "
                f"{getattr(cube, 'dims', type(cube).__name__)}"
            )
        sensor = str(sensor) if specs and sensor else cube_sensor(cube, sensor)
        crs, transform, bounds = geography(cube)
        bands = tuple(str(b) for b in cube["band"].values)
        return cls(cube, sensor, bands, crs, transform, bounds, name, tuple(specs))

    @property
    def values(self) -> np.ndarray:
        """``(C, H, W)`` float32 values (reads a lazily opened file)."""
        return np.asarray(self.cube.values, dtype=np.float32)

    @property
    def units(self) -> str:
        return str(self.cube.attrs.get("units", ""))

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)`` in pixels."""
        return int(self.cube.sizes["y"]), int(self.cube.sizes["x"])

    def select(self, bands: Sequence[str] | str) -> Scene:
        """The scene restricted to ``bands`` (registry names or aliases, in the order given)."""
        if isinstance(bands, str):
            bands = [bands]
        sensor = resolve_sensor(self.sensor) if self.sensor != "custom" else None
        key = (lambda b: match_band(sensor, b) or str(b).upper()) if sensor else str  # noqa: E731
        have = [key(b) for b in self.bands]
        wanted = [key(b) for b in bands]
        missing = [b for b, c in zip(bands, wanted) if c not in have]
        if missing:
            raise ValueError(
                f"band(s) {missing} are not in the cube; it has bands {list(self.bands)} "
                f"(sensor {self.sensor!r})"
            )
        idx = [have.index(c) for c in wanted]
        return replace(
            self,
            cube=self.cube.isel(band=idx),
            bands=tuple(self.bands[i] for i in idx),
            specs=tuple(self.specs[i] for i in idx),
        )

    def for_model(self, stats: StatsArg = "auto") -> Scene:
        """The scene in model units (:func:`smartiesviz.data.normalize`), keeping only the bands
        that have a projection layer (e.g. Sentinel-2 B10 is dropped); a scene already in model
        units is only filtered."""
        cube = self.cube
        if self.units.lower() != "model":
            cube = normalize(cube, self.sensor, stats=stats)
        else:
            check_model_units(cube.values, f"scene {self.name!r} (units 'model')")
        keep = tokenizable(self.specs)
        if not keep:
            raise ValueError(
                f"none of the bands {list(self.bands)} of {self.sensor!r} can be tokenized"
            )
        return replace(
            self,
            cube=cube.isel(band=keep),
            bands=tuple(self.bands[i] for i in keep),
            specs=tuple(self.specs[i] for i in keep),
        )


def tokenizable(specs: Sequence[Any]) -> list[int]:
    """Indices of the band specs the model can tokenize (those with a projection layer)."""
    # lazy: spectrum.resolve imports torch; `import smartiesviz.predict` (embed → scene) stays light
    from smartiesviz.spectrum.resolve import resolve_bands

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [int(i) for i in resolve_bands(list(specs)).keep]


def geography(cube: xr.DataArray) -> tuple[Any, Any, tuple[float, float, float, float]]:
    """``(crs, transform, bounds)`` of a cube: the exact affine (rotated and sheared grids kept,
    :func:`~smartiesviz.data.tiling.cube_transform`), bounds from all four corners; identity
    transform and pixel bounds without coordinates."""
    h, w = int(cube.sizes["y"]), int(cube.sizes["x"])
    transform = cube_transform(cube)
    bounds = corner_bounds(transform, w, h)
    return cube.rio.crs, transform, tuple(float(v) for v in bounds)


def open_scene(
    source: Any, sensor: str | None = None, bands: Sequence[str] | str | None = None
) -> Scene:
    """Open an image as a :class:`Scene`.

    Args:
        source: an ``xarray.DataArray`` ``(band, y, x)``; a GeoTIFF path (opened lazily, so only
            the windows used are read); a folder of single-band rasters; or a bundled sample
            (:data:`SAMPLE_SCENES`, optionally prefixed ``sample:``).
        sensor: registry sensor name (default: the cube's ``sensor`` attribute, or inferred from
            file names). A sample's sensor is fixed: a different one is refused.
        bands: use only these bands (registry names or aliases), in this order.

    Raises:
        FileNotFoundError: a path that does not exist.
        ValueError: unknown sample, sensor or band, or a sensor that contradicts a sample's.
    """
    if isinstance(source, Scene):
        scene = source
    elif isinstance(source, xr.DataArray):
        scene = Scene.from_cube(source, sensor)
    elif isinstance(source, (str, os.PathLike)):
        key = str(source)
        key = key[len("sample:") :] if key.startswith("sample:") else key
        sample = sample_cube(str(source))
        if sample is not None:
            if sensor is not None and cube_sensor(sample, sensor) != cube_sensor(sample):
                raise UserError(
                    f"sample {key!r} is {cube_sensor(sample)!r} data; sensor {sensor!r} does not "
                    "match and cannot relabel it (leave the sensor out, or give your own file)"
                )
            scene = Scene.from_cube(sample, name=key)
        else:
            scene = _open_path(Path(source), sensor, bands)
    else:
        raise TypeError(
            f"cannot open a scene from {type(source).__name__}: give an xarray.DataArray, a "
            f"GeoTIFF or folder path, or a sample name ({', '.join(SAMPLE_SCENES)})"
        )
    return scene if bands is None else scene.select(bands)


def _open_path(path: Path, sensor: str | None, bands: Sequence[str] | str | None = None) -> Scene:
    if not path.exists():
        raise FileNotFoundError(
            f"scene {str(path)!r} does not exist (give a raster file, a folder of band rasters, "
            f"or one of the samples {', '.join(SAMPLE_SCENES)})"
        )
    if path.is_dir():
        return Scene.from_cube(readers.read_geotiff(path, sensor=sensor), name=path.name)
    import rasterio  # lazy: GDAL binding; keeps `import smartiesviz.data` light
    import rioxarray  # lazy: rasterio via rioxarray; keeps `import smartiesviz.data` light

    check_input_file(path, "scene")  # a FIFO or device would block forever
    try:
        with rasterio.open(path) as src:
            dtype = readers.check_dtypes(src, path)
            band_idx, descriptions, masked = readers.raster_layout(src)
            alpha = len(band_idx) < src.count
        lazy = rioxarray.open_rasterio(path, masked=True)
    except UserError:
        raise
    except Exception as err:  # rasterio raises its own error types for unreadable files
        raise ValueError(f"scene {str(path)!r} cannot be read as a raster: {err}") from err
    given = [bands] if isinstance(bands, str) else bands
    if masked or alpha:  # alpha bands and internal masks need the eager reader
        cube = readers.read_geotiff(path, sensor=sensor, bands=given)
    elif descriptions:  # the file's own band names must fit the sensor
        s = resolve_sensor(sensor) if sensor is not None else readers.infer_sensor(descriptions)
        names = readers.file_band_names(path, s, descriptions, given)
        cube = readers.from_xarray(lazy, sensor=s.name, bands=names)
    else:
        try:
            cube = readers.from_xarray(lazy, sensor=sensor)
        except ValueError:  # no band descriptions and a different count: let the reader explain
            cube = readers.read_geotiff(path, sensor=sensor)
    cube.attrs["source_dtype"] = dtype
    cube.encoding["source"] = str(path)  # the file behind a lazy cube (map layers cache by it)
    return Scene.from_cube(cube, name=path.name)
