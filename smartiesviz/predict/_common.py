"""Small helpers shared by the prediction modules: model resolution, band specs, georeference."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import torch
    import xarray as xr


def resolve_model(model: Any = None) -> Any:
    """Return a model in eval mode: the demo model for ``None``, a checkpoint for a path.

    Args:
        model: ``None`` (the bundled demo model), a path to a checkpoint written by
            :func:`smartiesviz.save_checkpoint`, or a model instance (returned as is, in eval mode).
    """
    if model is None:
        from smartiesviz.models.demo import load_demo_model

        model = load_demo_model()
    elif isinstance(model, (str, os.PathLike)):
        from smartiesviz.models.checkpoint import load_checkpoint

        path = Path(model)
        if not path.exists():
            raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
        model = load_checkpoint(path)
    if not hasattr(model, "encode") or not hasattr(model, "patch_size"):
        raise TypeError(
            f"model must be a SmartiesMAE (with .encode and .patch_size), a checkpoint path or None; "
            f"got {type(model).__name__}"
        )
    return model.eval()


def model_device(model: Any) -> torch.device:
    import torch

    try:
        return next(model.parameters()).device
    except (StopIteration, AttributeError):
        return torch.device("cpu")


def cube_sensor(cube: xr.DataArray, sensor: str | None) -> str:
    """The sensor name given, or the cube's ``sensor`` attribute."""
    if sensor is None:
        sensor = cube.attrs.get("sensor")
    if not sensor:
        raise ValueError(
            "no sensor given and the cube has no 'sensor' attribute; pass sensor='sentinel2-l1c' "
            "(or another registry name, see `smartiesviz sensors`)"
        )
    return str(sensor)


def band_names(cube: xr.DataArray) -> list[str]:
    if "band" not in cube.dims:
        raise ValueError(f"expected a cube with dims ('band', 'y', 'x'); got dims {cube.dims}")
    return [str(b) for b in cube["band"].values]


def select_bands(
    cube: xr.DataArray, sensor: str, bands: Sequence[str] | None = None
) -> tuple[xr.DataArray, list[str]]:
    """Pick the cube bands the model can use and their band specs.

    Args:
        cube: ``(band, y, x)`` cube whose ``band`` coordinate holds the sensor's band names.
        sensor: registry sensor name.
        bands: band names of the cube to use (case-insensitive, registry aliases allowed);
            ``None`` uses every band.

    Returns:
        The cube restricted to the used bands (bands without any projection layer, such as
        Sentinel-2 B10, are dropped with a warning) and the matching ``"sensor/band"`` specs.
    """
    from smartiesviz.spectrum import get_sensor, resolve_bands

    names = band_names(cube)
    if bands is not None:
        if isinstance(bands, str):
            bands = [bands]
        known = get_sensor(sensor)
        canon = {_canonical_band(known, n): n for n in names}
        picked = []
        for b in bands:
            key = _canonical_band(known, b)
            if key not in canon:
                raise ValueError(
                    f"band {b!r} is not in the cube; the cube has bands {names} (sensor {sensor!r})"
                )
            picked.append(canon[key])
        cube = cube.sel(band=picked)
        names = picked
    specs = [f"{sensor}/{n}" for n in names]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resolved = resolve_bands(specs)
    keep = [int(i) for i in resolved.keep]
    if len(keep) < len(specs):
        dropped = [names[i] for i in range(len(names)) if i not in keep]
        warnings.warn(
            f"bands {dropped} of {sensor!r} have no projection layer and are not used",
            stacklevel=3,
        )
    elif caught:
        for w in caught:
            warnings.warn(w.message, w.category, stacklevel=3)
    if not keep:
        raise ValueError(f"none of the bands {names} of {sensor!r} can be tokenized")
    cube = cube.isel(band=keep)
    return cube, [specs[i] for i in keep]


def _canonical_band(sensor_obj: Any, name: str) -> str:
    """Registry canonical name of a band (aliases like ``B8`` → ``B08``); falls back to upper case."""
    for attr in ("band", "get_band"):
        fn = getattr(sensor_obj, attr, None)
        if callable(fn):
            try:
                return str(fn(name).name)
            except (KeyError, ValueError, LookupError):
                break
    return str(name).upper()


def scaled_geo(cube: xr.DataArray, factor: int) -> tuple[Any, Any]:
    """CRS and the affine transform of a grid ``factor`` times coarser than the cube's.

    Returns:
        ``(crs, transform)``; ``crs`` may be ``None`` when the cube has none.
    """
    from affine import Affine

    crs = cube.rio.crs
    transform = cube.rio.transform(recalc=True) if "x" in cube.coords else Affine.identity()
    return crs, transform @ Affine.scale(factor)


def georeferenced(
    values: np.ndarray,
    crs: Any,
    transform: Any,
    leading: tuple[str, Sequence[Any]] | None = None,
    name: str | None = None,
    attrs: dict[str, Any] | None = None,
) -> xr.DataArray:
    """Wrap a ``([L,] ny, nx)`` array as a DataArray on the grid of ``transform`` with ``crs``.

    Coordinates are cell centres, as rioxarray expects.
    """
    import rioxarray  # noqa: F401  (registers the .rio accessor)
    import xarray as xr

    ny, nx = values.shape[-2:]
    xs = transform.c + (np.arange(nx) + 0.5) * transform.a
    ys = transform.f + (np.arange(ny) + 0.5) * transform.e
    coords: dict[str, Any] = {"y": ys, "x": xs}
    dims: tuple[str, ...] = ("y", "x")
    if leading is not None:
        dims = (leading[0], *dims)
        coords[leading[0]] = list(leading[1])
    da = xr.DataArray(values, dims=dims, coords=coords, name=name, attrs=dict(attrs or {}))
    # in place: rioxarray otherwise deep-copies the (possibly large) values twice
    if crs is not None:
        da.rio.write_crs(crs, inplace=True)
    da.rio.write_transform(transform, inplace=True)
    return da
