"""The scenes the widgets show: bundled samples and user images as model-ready :class:`Scene` s,
the default model, and the first tile/pair to show (inside the model's held-out data).

Scenes come from :func:`smartiesviz.data.scene.open_scene` and are normalized with
:meth:`Scene.for_model`; the simulated RGB sample is made by training's own function,
:func:`smartiesviz.data.transforms.simulated_rgb_partner` (the S2 sample's B04/B03/B02 as an 8-bit
RGB image, normalized with the RGB statistics as sensor ``rgb``), so widgets show the model what
it was trained on.
"""

from __future__ import annotations

import functools
import os
import warnings
from dataclasses import replace
from typing import Any

import ipywidgets as W
import numpy as np
import torch
import xarray as xr

import smartiesviz
from smartiesviz.data import samples
from smartiesviz.data.preprocess import StatsArg, check_model_units
from smartiesviz.data.scene import Scene, open_scene
from smartiesviz.data.tiling import full_tiles, tile_values
from smartiesviz.data.transforms import simulated_rgb_partner
from smartiesviz.models.resolve import resolve_model
from smartiesviz.predict.inference import model_holdout, resize
from smartiesviz.spectrum import resolve_bands

#: The widgets' image choices (:func:`load_scene`), each made from a bundled scene of the one
#: registry, :data:`smartiesviz.data.samples.SAMPLE_SCENES`: name → description.
SAMPLES: dict[str, str] = {
    "sentinel2": str(samples.SAMPLE_SCENES["sentinel2"]),
    "sentinel1": "Sentinel-1 GRD of a BigEarthNet pair (widgets: the model's held-out one)",
    "landsat8": str(samples.SAMPLE_SCENES["landsat8"]),
    "rgb": "RGB simulated from the Sentinel-2 scene's B04/B03/B02 (as in training)",
}


@functools.lru_cache(maxsize=1)
def default_model() -> torch.nn.Module:
    """The model every widget uses when none is given.

    The shipped demo model (:func:`smartiesviz.models.resolve.resolve_model`) when it is
    available, otherwise an untrained ``smarties_vit_tiny_patch4(img_size=64)`` (seeded, so figures
    are reproducible) with a warning that its reconstructions mean nothing.
    """
    try:
        return resolve_model(None)
    except (ImportError, AttributeError, FileNotFoundError, OSError) as exc:
        warnings.warn(
            f"demo model unavailable ({exc}); using an untrained smarties_vit_tiny_patch4(img_size=64)",
            stacklevel=2,
        )
        with torch.random.fork_rng():
            torch.manual_seed(0)
            return smartiesviz.smarties_vit_tiny_patch4(img_size=64).eval()


def resolve_widget_model(model: Any = None) -> torch.nn.Module:
    """``None`` → :func:`default_model`; anything else → ``resolve_model(model)``."""
    return default_model() if model is None else resolve_model(model)


def load_scene(name: str, pair: int = 0) -> Scene:
    """A bundled sample in model units, normalized once and cached.

    Args:
        name: one of :data:`SAMPLES`.
        pair: which BigEarthNet pair gives the ``"sentinel1"`` sample (ignored for the others).
    """
    if name not in SAMPLES:
        raise ValueError(f"unknown sample {name!r}; expected one of {sorted(SAMPLES)}")
    return _load_scene(name, int(pair) if name == "sentinel1" else 0)


@functools.lru_cache(maxsize=8)
def _load_scene(name: str, pair: int) -> Scene:
    if name == "sentinel1":
        return _named(open_scene(f"bigearthnet-s1:{pair}").for_model(), name)
    if name == "rgb":
        return _named(simulated_rgb_scene(open_scene("sentinel2")), name)
    return open_scene(name).for_model()


def _named(scene: Scene, name: str) -> Scene:
    return replace(scene, name=name)


@functools.lru_cache(maxsize=1)
def bigearthnet_pairs() -> tuple:
    return tuple(samples.bigearthnet_pairs())


@functools.lru_cache(maxsize=16)
def pair_tensors(index: int, size: int) -> tuple[torch.Tensor, list, torch.Tensor, list]:
    """BigEarthNet pair ``index`` in model units, resized to ``size``: ``(x_s2, specs_s2, x_s1,
    specs_s1)`` with ``x`` of shape ``(1, C, size, size)``."""
    s2 = open_scene(f"bigearthnet:{index}").for_model()
    s1 = open_scene(f"bigearthnet-s1:{index}").for_model()
    return resize(s2.values, size), list(s2.specs), resize(s1.values, size), list(s1.specs)


@functools.lru_cache(maxsize=16)
def pair_rgb_tensor(index: int, size: int) -> tuple[torch.Tensor, list]:
    """The simulated RGB partner of pair ``index``'s S2 image, exactly as training builds it
    (:func:`~smartiesviz.data.transforms.simulated_rgb_partner`),
    resized to ``size``: ``(x, specs)`` with ``x`` of shape ``(1, 3, size, size)``."""
    rgb = simulated_rgb_scene(open_scene(f"bigearthnet:{index}"))
    return resize(rgb.values, size), list(rgb.specs)


def simulated_rgb_scene(s2: Scene) -> Scene:
    """The simulated RGB partner of a Sentinel-2 scene, in model units (sensor ``rgb``): training's
    own :func:`~smartiesviz.data.transforms.simulated_rgb_partner`."""
    return open_scene(simulated_rgb_partner(s2.cube)).for_model()


def default_pair(model: torch.nn.Module) -> int:
    """The BigEarthNet pair the model never trained on, if recorded, else 0."""
    held = model_holdout(model).pair
    return held.index if held is not None else 0


def tile_grid(scene: Scene, size: int) -> tuple[int, int]:
    """Rows and columns of full ``size``-pixel tiles in the scene."""
    return full_tiles(*scene.shape, size)


def default_tile(scene: Scene, size: int, model: torch.nn.Module) -> int:
    """A tile to show first: inside the model's held-out block of the S2 sample if it has one
    (so reconstructions are honest), else the scene's centre tile."""
    rows, cols = tile_grid(scene, size)
    if rows * cols == 0:
        return 0
    block = model_holdout(model).scene if scene.name == "sentinel2" else None
    if block is not None:
        r0, r1 = -(-block.y_start // size), block.y_stop // size
        c0, c1 = -(-block.x_start // size), block.x_stop // size
        if r1 > r0 and c1 > c0:
            return ((r0 + r1 - 1) // 2) * cols + (c0 + c1 - 1) // 2
    return (rows // 2) * cols + cols // 2


def scene_tile(scene: Scene, index: int, size: int) -> torch.Tensor:
    """Tile ``index`` (row-major over the scene's tiles) as a ``(1, C, size, size)`` tensor; a scene
    smaller than a tile is resized whole."""
    rows, cols = tile_grid(scene, size)
    if rows * cols == 0:
        return resize(scene.values, size)
    return resize(tile_values(scene.cube.data, index, size), size)


def pick_scene(name: str, user: tuple | None, model: torch.nn.Module) -> Scene:
    """The scene a widget's image dropdown names: ``"custom"`` → :func:`user_scene` of ``user``
    (its arguments), else the bundled sample (Sentinel-1: the model's held-out pair)."""
    if name == "custom":
        if user is None:
            raise ValueError("no image given: pass image=... to show a custom image")
        return user_scene(*user)
    return load_scene(name, default_pair(model))


class SceneChooser:
    """Which scene and tile a scene widget shows: an ``image`` dropdown (the bundled
    :data:`SAMPLES`, and ``"custom"`` first and chosen when the user gave an image) and a ``tile``
    slider over the scene's full tiles (row-major).

    Args:
        user: the widget's ``(image, sensor, bands, stats)`` (see :func:`user_scene`), or ``None``.
        sample: the bundled sample shown first when there is no user image.
    """

    def __init__(self, user: tuple | None, sample: str) -> None:
        if sample not in SAMPLES:
            raise ValueError(f"unknown sample {sample!r}; choose from {list(SAMPLES)}")
        self.user = user
        options = ["custom", *SAMPLES] if user is not None else list(SAMPLES)
        self.sample = W.Dropdown(
            options=options, value="custom" if user is not None else sample, description="image"
        )
        self.tile = W.IntSlider(value=0, min=0, max=0, description="tile", continuous_update=False)

    def open(self, model: torch.nn.Module) -> Scene:
        """The scene the dropdown names (see :func:`pick_scene`)."""
        return pick_scene(self.sample.value, self.user, model)

    def fit_tiles(self, scene: Scene, size: int, model: torch.nn.Module) -> None:
        """Set the tile slider to ``scene``'s ``size``-pixel tiles, at :func:`default_tile`."""
        rows, cols = tile_grid(scene, size)
        self.tile.max = max(rows * cols, 1) - 1
        self.tile.value = default_tile(scene, size, model)

    @classmethod
    def for_widget(cls, scene: Any, stats: StatsArg, described: dict[str, Any]) -> SceneChooser:
        """The chooser of a scene widget's ``scene`` argument (:func:`scene_argument`): ``None``
        or a bundled sample name (``"sentinel2"``, ``"sample:landsat8"``) selects that sample;
        anything else is the user's image (:func:`user_scene`)."""
        scene, sensor, bands = scene_argument(scene, described)
        name = scene.removeprefix("sample:") if isinstance(scene, str) else scene
        if scene is None or (isinstance(name, str) and name in SAMPLES):
            return cls(None, name or "sentinel2")
        return cls((scene, sensor, bands, stats), "sentinel2")


def scene_argument(scene: Any, described: dict[str, Any]) -> tuple[Any, str | None, Any]:
    """``(scene, sensor, bands)`` of a widget's ``scene`` argument and the keywords that describe
    it: ``sensor`` (a file's) and ``bands`` (an array's); the older spellings ``image=`` and
    ``sample=`` are accepted with a :class:`FutureWarning`. Other keywords are a TypeError."""
    unknown = sorted(set(described) - {"sensor", "bands", "image", "sample"})
    if unknown:
        raise TypeError(f"unexpected keyword argument(s) {unknown}")
    old = [k for k in ("image", "sample") if described.get(k) is not None]
    if old:
        warnings.warn(f"{'/'.join(k + '=' for k in old)} is now scene=...", FutureWarning,
                      stacklevel=4)  # fmt: skip
        if scene is not None or len(old) > 1:
            raise TypeError(f"give one of scene=, {', '.join(k + '=' for k in old)}")
        scene = described[old[0]]
    return scene, described.get("sensor"), described.get("bands")


def user_scene(
    image: Any, sensor: str | None = None, bands: Any = None, stats: StatsArg = "auto"
) -> Scene:
    """A user's image as a model-ready :class:`Scene`.

    Args:
        image: a :class:`Scene`, a GeoTIFF or band-folder path, an ``xarray.DataArray``
            (band, y, x) in physical units (normalized here), or a ``(C, H, W)`` array/tensor
            already in model units.
        sensor: registry sensor name (needed unless the DataArray has ``attrs['sensor']``, or
            ``bands`` are given for an array).
        bands: band specs for an array's C channels (default: all bands of ``sensor``).
        stats: normalization statistics of a DataArray (see :func:`smartiesviz.data.normalize`:
            ``"auto"``, ``"release"``, ``"data"``, a release entry or your own).
    """
    if isinstance(image, Scene):
        return image.for_model(stats)
    if isinstance(image, (str, os.PathLike)):  # a GeoTIFF or band folder
        return open_scene(image, sensor, bands).for_model(stats)
    if isinstance(image, xr.DataArray):
        if tuple(image.dims)[:1] != ("band",) or image.ndim != 3:
            raise ValueError(
                f"image DataArray has dims {tuple(image.dims)}; expected ('band', 'y', 'x')"
            )
        return open_scene(image, sensor).for_model(stats)
    arr = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 3:
        raise ValueError(
            f"image has shape {arr.shape}; expected (C, H, W) in model units or a DataArray"
        )
    if bands is None and sensor is None:
        raise ValueError("an array image needs bands=[...] or sensor=... to know its wavelengths")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rb = resolve_bands(sensor if bands is None else bands)
    if rb.n_input != arr.shape[0]:
        raise ValueError(
            f"image has {arr.shape[0]} channels but {rb.n_input} bands were given ({rb.qualified_names})"
        )
    if not np.isfinite(arr).all():
        raise ValueError(
            "image contains NaN or inf; fill or mask them first (smartiesviz.data.normalize does)"
        )
    check_model_units(arr, "the image array")
    specs = tuple((b.min_nm, b.max_nm) if b.sensor is None else b.qualified_name for b in rb.bands)
    keep = list(rb.keep)
    specs = tuple(specs[i] for i in keep)
    names = [str(s).split("/")[-1] if isinstance(s, str) else f"{s[0]:g}-{s[1]:g}nm" for s in specs]
    cube = xr.DataArray(
        arr[keep].astype(np.float32), dims=("band", "y", "x"), coords={"band": names},
        attrs={"units": "model"},
    )  # fmt: skip
    return Scene.from_cube(cube, str(sensor or "custom"), name="custom", specs=specs)
