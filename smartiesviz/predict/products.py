"""The map products: one explicit registry of what a scene and a model can show as map layers.

Each :class:`Product` names the function that computes it, its kind, a generic legend and the
band roles it needs (declared by the sensor, :meth:`~smartiesviz.spectrum.sensors.Sensor.role`).
:data:`PRODUCTS` holds them in menu order; the map (:class:`~smartiesviz.widgets.map.MapExplorer`),
the ``smartiesviz layers`` command and the notebooks all read it::

    available("sentinel2-l1c", ["B02", "B03", "B04"])   # every product but "NIR from RGB"
    product("PCA colour").kind                          # "rgb"

A product's function takes the scene's layers (a
:class:`~smartiesviz.predict.map_layers.SceneLayers`, seen here through the :class:`LayerStore`
protocol: the scene, the model, the options and the writer) and a progress callback, streams the
scene or its patch embeddings, writes one GeoTIFF through the store and returns its
:class:`LayerFile` (with a legend specific to the scene: its bands, its scores). SceneLayers
caches the result. This module sits below :mod:`~smartiesviz.predict.map_layers`: that module
imports this one, never the reverse.

Colour layers are RGBA ``uint8`` (alpha 0 = no data); scalar layers ``float32`` (NaN = no data);
class layers ``uint8`` (255 = no data).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np
import torch

from smartiesviz.data.tiling import Blender
from smartiesviz.errors import UserError
from smartiesviz.predict import similarity
from smartiesviz.predict.cross_spectral import cross_spectral_stream
from smartiesviz.predict.maps import fit_kmeans, fit_pca, reconstruction_error_map
from smartiesviz.spectrum.sensors import ROLES, RoleError, Sensor, get_sensor

if TYPE_CHECKING:  # pragma: no cover
    import xarray as xr

    from smartiesviz.data.scene import Scene
    from smartiesviz.predict.embed import EmbedOptions

Progress = Callable[[float], None] | None
LayerKind = Literal["rgb", "scalar", "classes"]
Blocks = Iterator[tuple[Any, np.ndarray]]

ROWS = 512  # pixel rows read per block when streaming the scene (fewer for wide scenes)
BLOCK_PIXELS = 1_000_000  # pixels per block: memory per block stays constant as scenes widen
FIT_SAMPLES = 20_000  # embeddings sampled to fit PCA / k-means
STRETCH_PIXELS = 250_000  # pixels sampled for a layer's 2-98 % stretch


@dataclass(frozen=True)
class LayerFile:
    """One layer on disk and how to show it.

    Attributes:
        name: the layer's name.
        path: its GeoTIFF.
        kind: ``"rgb"`` (RGBA uint8), ``"scalar"`` (float32, colour-mapped) or ``"classes"``.
        legend: what the layer shows, one sentence.
        cmap, vmin, vmax: colour map and range of a scalar layer.
        classes: class names of a class layer (value ``i`` is ``classes[i]``).
    """

    name: str
    path: Path
    kind: LayerKind
    legend: str
    cmap: str = "viridis"
    vmin: float | None = None
    vmax: float | None = None
    classes: tuple[str, ...] = ()
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def resampling(self) -> str:
        return "nearest" if self.kind == "classes" else "average"


class LayerStore(Protocol):
    """What a product's function reads and writes: a
    :class:`~smartiesviz.predict.map_layers.SceneLayers`."""

    scene: Scene
    cube: xr.DataArray  # (band, y, x), the scene's cube
    sensor: str
    bands: list[str]
    model: Any
    mask_ratio: float
    seed: int
    product_options: EmbedOptions

    def embeddings(self, on_progress: Progress = None) -> Path: ...

    def write(self, name: str | Path, count: int, dtype: str, crs: Any, transform: Any,
              height: int, width: int, blocks: Blocks, nodata: Any = None, rgba: bool = False,
              tags: dict[str, Any] | None = None) -> Path: ...  # fmt: skip

    def write_grid(self, name: str, values: np.ndarray, crs: Any, transform: Any,
                   nodata: Any = None, rgba: bool = False) -> Path: ...  # fmt: skip


# ---------------------------------------------------------------------- band roles
#: The band roles the "NIR from RGB" layer needs: its target first, then its inputs.
NIR_FROM_RGB_ROLES = ("nir", "red", "green", "blue")


def rgb_indices(bands: list[str], sensor: str | Sensor) -> list[int]:
    """Positions among ``bands`` of the sensor's true-colour composite (its declared red, green
    and blue roles); the first three bands (the first one thrice if fewer) when it has none."""
    try:
        s = get_sensor(sensor)
        return s.positions(bands, s.composite("true_colour").channels)
    except (KeyError, RoleError):
        return [0, 0, 0] if len(bands) < 3 else [0, 1, 2]


def nir_from_rgb_bands(bands: list[str], sensor: str | Sensor) -> list[str] | None:
    """The names among ``bands`` of the sensor's :data:`NIR_FROM_RGB_ROLES` bands (NIR, red,
    green, blue), or ``None`` when the sensor lacks one of these roles or the scene the band."""
    if missing_roles(NIR_FROM_RGB_ROLES, sensor, bands) is not None:
        return None
    s = get_sensor(sensor)
    return [bands[i] for i in s.positions(bands, [s.role(r).name for r in NIR_FROM_RGB_ROLES])]


def missing_roles(roles: tuple[str, ...], sensor: str | Sensor, bands: list[str]) -> str | None:
    """Why a scene of ``sensor`` with ``bands`` lacks the bands of ``roles`` (``None``: it has
    them all)."""
    if not roles:
        return None
    try:
        s = get_sensor(sensor)
        s.positions(bands, [s.role(r).name for r in roles])
    except KeyError:
        return f"{sensor!r} is not a registered sensor, so it declares no band roles"
    except RoleError as err:
        return str(err)
    return None


# ---------------------------------------------------------------------- shared helpers
def percentiles(sample: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2nd and 98th percentiles per channel of a ``(C, n)`` sample, ignoring NaN."""
    lo = np.nanpercentile(sample, 2, axis=1).astype(np.float32)
    hi = np.nanpercentile(sample, 98, axis=1).astype(np.float32)
    return lo, np.maximum(hi, lo + np.float32(1e-6))


def rgba8(rgb: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``(3, h, w)`` values → ``(4, h, w)`` uint8 with alpha 0 where any channel is NaN."""
    rgb = np.asarray(rgb, np.float32)
    valid = np.isfinite(rgb).all(0)
    lo32, span = np.float32(lo)[:, None, None], np.float32(hi - lo)[:, None, None]
    scaled = np.nan_to_num((rgb - lo32) * (np.float32(255) / span), copy=False)
    out = np.zeros((4, *rgb.shape[1:]), np.uint8)
    out[:3] = np.clip(scaled, 0, 255, out=scaled) * valid
    out[3] = valid * 255
    return out


def scene_blocks(cube: xr.DataArray) -> Iterator[tuple[int, xr.DataArray]]:
    """``(row0, (band, rows, W) block)`` strips of the scene, about :data:`BLOCK_PIXELS` each."""
    rows = int(np.clip(BLOCK_PIXELS // cube.sizes["x"], 16, ROWS))
    for r in range(0, cube.sizes["y"], rows):
        yield r, cube.isel(y=slice(r, r + rows))


def _grid(cube: xr.DataArray) -> tuple[Any, Any, int, int]:
    """``(crs, transform, height, width)`` of the scene's pixel grid."""
    return cube.rio.crs, cube.rio.transform(recalc=True), cube.sizes["y"], cube.sizes["x"]


def _fit_sample(emb: Path) -> np.ndarray:
    """Up to ~:data:`FIT_SAMPLES` valid embedding rows ``(n, D)``, spread over the scene (every
    k-th patch, taken block by block, so memory stays one block)."""
    _, _, _, ny, nx = similarity.grid_of(emb)
    step = max(1, ny * nx // FIT_SAMPLES)
    rows, offset = [], 0
    for _, block in similarity.row_blocks(emb):
        flat = block.reshape(block.shape[0], -1).T
        picked = flat[(offset + np.arange(len(flat))) % step == 0]
        offset += len(flat)
        rows.append(picked[np.isfinite(picked).all(1)])
    return np.concatenate(rows)


def _patch_map(layers: LayerStore, name: str, emb: Path, fn: Callable[[np.ndarray], np.ndarray],
               count: int, dtype: str, nodata: Any, rgba: bool = False) -> Path:  # fmt: skip
    """Apply ``fn`` ``(n, D) → (n, count)`` to every valid patch, streaming row blocks."""
    from rasterio.windows import Window  # lazy: GDAL binding; only when layers are written

    crs, transform, _, ny, nx = similarity.grid_of(emb)

    def blocks() -> Blocks:
        for r, block in similarity.row_blocks(emb):
            flat = block.reshape(block.shape[0], -1).T
            ok = np.isfinite(flat).all(1)
            out = np.full((flat.shape[0], count), nodata if nodata is not None else 0, dtype)
            if ok.any():
                out[ok] = fn(flat[ok])
            yield Window(0, r, nx, block.shape[1]), out.T.reshape(count, *block.shape[1:])

    return layers.write(name, count, dtype, crs, transform, ny, nx, blocks(), nodata, rgba)


# ---------------------------------------------------------------------- the products
def true_colour(layers: LayerStore, on_progress: Callable[[float], None]) -> LayerFile:
    """The scene's own red, green and blue bands (grey from its first band without those
    roles), one 2-98 % stretch for the whole scene; no model work."""
    from rasterio.windows import Window  # lazy: GDAL binding; only when layers are written

    cube = layers.cube
    idx = rgb_indices(layers.bands, layers.sensor)
    crs, transform, h, w = _grid(cube)
    step = max(1, int(np.sqrt(h * w / STRETCH_PIXELS)))
    sample = np.concatenate(
        [np.asarray(b.isel(band=idx, y=slice(0, None, step), x=slice(0, None, step)).values,
                    np.float32).reshape(3, -1) for _, b in scene_blocks(cube)], 1,
    )  # fmt: skip
    lo, hi = percentiles(sample)

    def blocks() -> Blocks:
        for r, b in scene_blocks(cube):
            rgb = np.asarray(b.isel(band=idx).values, np.float32)
            on_progress(min(1.0, (r + rgb.shape[1]) / h))
            yield Window(0, r, w, rgb.shape[1]), rgba8(rgb, lo, hi)

    path = layers.write("true colour", 4, "uint8", crs, transform, h, w, blocks(), rgba=True)
    names = "/".join(layers.bands[i] for i in idx)
    return LayerFile("true colour", path, "rgb", f"true colour ({names}, 2-98 % stretch)")


def reconstruction(layers: LayerStore, on_progress: Callable[[float], None]) -> LayerFile:
    """The model's reconstruction of the hidden patches (visible ones copied from the input),
    overlapping windows cross-faded, shown with the inputs' true-colour stretch."""
    job = layers.product_options.job(layers.scene, None, layers.model)
    model = layers.model
    rb = model.resolve(job.band_specs)
    keep = list(rb.keep)
    idx = rgb_indices([s.split("/")[-1] for s in np.asarray(job.band_specs)[keep]], layers.sensor)
    crs, transform, h, w = _grid(layers.cube)
    s, cells, n = job.patch_size, job.grid.cells_per_tile, len(job.windows)
    gen = torch.Generator().manual_seed(layers.seed)
    state: dict[str, Any] = {"done": 0}

    def tiles() -> Blocks:
        with torch.no_grad():
            for windows, x in job.batches(progress=False, desc="reconstruct"):
                out = model(x, rb, mask_ratio=layers.mask_ratio, generator=gen)
                vis = out.visible_mask.reshape(-1, 1, cells, 1, cells, 1)
                vis = vis.expand(-1, 1, cells, s, cells, s).reshape(x.shape[0], 1, cells * s,
                                                                     cells * s)  # fmt: skip
                pasted = torch.where(vis, x[:, keep], out.recon_a.float())[:, idx].numpy()
                if "lo" not in state:  # one stretch for the whole scene, from the inputs
                    state["lo"], state["hi"] = percentiles(
                        x[:, keep][:, idx].permute(1, 0, 2, 3).reshape(3, -1).numpy())
                state["done"] += len(windows)
                on_progress(state["done"] / n)
                yield windows, pasted

    def blocks() -> Blocks:
        for r, rgb in Blender(job.grid, 3, s).blend(tiles()):
            if r < h:
                yield r, rgba8(rgb[:, : h - r, :w], state["lo"], state["hi"])

    path = layers.write("reconstruction", 4, "uint8", crs, transform, h, w, blocks(), rgba=True)
    legend = (f"reconstruction: {layers.mask_ratio:.0%} of each window's patches hidden and "
              f"rebuilt by the model, the visible ones copied from the input (seed "
              f"{layers.seed}); overlapping windows, each its own mask, cross-faded")  # fmt: skip
    return LayerFile("reconstruction", path, "rgb", legend)


def reconstruction_error(layers: LayerStore, on_progress: Callable[[float], None]) -> LayerFile:
    """MSE of each hidden patch's reconstruction (:func:`~smartiesviz.predict.maps.
    reconstruction_error_map`), on the patch grid."""
    o = layers.product_options
    da = reconstruction_error_map(
        layers.cube, layers.sensor, layers.model, bands=o.bands, mask_ratio=layers.mask_ratio,
        seed=layers.seed, tile_size=o.tile_size, batch_size=o.batch_size, normalize=o.normalize,
        device=o.device, progress=False, overlap=o.overlap,
    )  # fmt: skip
    on_progress(1.0)
    values = np.asarray(da.values, np.float32)[None]
    path = layers.write_grid("reconstruction error", values, da.rio.crs, da.rio.transform(),
                             nodata=float("nan"))  # fmt: skip
    hi = float(np.nanpercentile(values, 98))
    return LayerFile("reconstruction error", path, "scalar",
                     "reconstruction MSE per hidden patch (normalized units)", "magma", 0.0, hi)  # fmt: skip


def pca_colour(layers: LayerStore, on_progress: Callable[[float], None]) -> LayerFile:
    """The first three principal components of the patch embeddings, fitted on a sample of the
    whole scene, as RGB (:func:`~smartiesviz.predict.maps.fit_pca`, as ``pca_map``)."""
    emb = layers.embeddings(lambda f: on_progress(0.9 * f))
    colours = fit_pca(_fit_sample(emb), 3)

    def colour(rows: np.ndarray) -> np.ndarray:  # (n, D) → (n, 4) RGBA
        return rgba8(colours(rows).T[:, :, None], np.zeros(3), np.ones(3))[:, :, 0].T

    path = _patch_map(layers, "PCA colour", emb, colour, 4, "uint8", None, rgba=True)
    return LayerFile("PCA colour", path, "rgb", "PCA of patch embeddings: components 1-3 as RGB")


def kmeans_classes(layers: LayerStore, on_progress: Callable[[float], None],
                   k: int = 6) -> LayerFile:  # fmt: skip
    """``k`` k-means classes of the patch embeddings' directions, class 0 the largest
    (:func:`~smartiesviz.predict.maps.fit_kmeans`, as ``kmeans_map``)."""
    emb = layers.embeddings(lambda f: on_progress(0.9 * f))
    classes = fit_kmeans(_fit_sample(emb), k, seed=0, n_init=2)
    path = _patch_map(layers, "k-means classes", emb,
                      lambda rows: classes(rows)[:, None], 1, "uint8", 255)  # fmt: skip
    return LayerFile("k-means classes", path, "classes",
                     "k-means classes of patch embedding directions (0 = largest)",
                     classes=tuple(f"class {i}" for i in range(k)))  # fmt: skip


def nir_from_rgb(layers: LayerStore, on_progress: Callable[[float], None]) -> LayerFile:
    """The NIR band predicted by the model from the red, green and blue bands only, windows
    cross-faded; its legend scores it against a per-tile-mean baseline."""
    found = nir_from_rgb_bands(layers.bands, layers.sensor)
    if found is None:  # (SceneLayers.get refuses it before this)
        raise ValueError(f"{layers.sensor!r} scene: no NIR, red, green and blue band roles")
    nir, rgb = found[0], found[1:]
    o = layers.product_options
    stream = cross_spectral_stream(layers.cube, [nir], inputs=rgb, sensor=layers.sensor,
                                   model=layers.model, tile_size=o.tile_size,
                                   batch_size=o.batch_size, normalize=o.normalize,
                                   device=o.device, overlap=o.overlap)  # fmt: skip
    crs, transform, h, w = _grid(layers.cube)
    s, n = stream.job.patch_size, len(stream.job.windows)
    step = int(np.ceil(np.sqrt(h * w / STRETCH_PIXELS)))  # every step-th pixel for the stretch
    sample: list[np.ndarray] = []

    def tiles() -> Blocks:
        done = 0
        for windows, out in stream.batches():
            done += len(windows)
            on_progress(done / n)
            yield windows, out[:, :1]

    def blocks() -> Blocks:
        for r, block in Blender(stream.job.grid, 1, s).blend(tiles()):
            if r < h:
                block = block[:, : h - r, :w]
                sample.append(block[0, (-r) % step :: step, ::step].ravel())
                yield r, block

    path = layers.write("NIR from RGB", 1, "float32", crs, transform, h, w, blocks(),
                        nodata=float("nan"))  # fmt: skip
    lo, hi = (float(v) for v in np.nanpercentile(np.concatenate(sample), [2, 98]))
    score = ""
    if stream.sums is not None:
        ratio = next(iter(stream.sums.scores(stream.targets).values()))["mse_ratio"]
        score = f"; MSE / per-tile-mean baseline = {ratio:.2f}"
    return LayerFile("NIR from RGB", path, "scalar",
                     f"{nir} predicted from {'/'.join(rgb)} only (normalized){score}", "gray",
                     lo, hi)  # fmt: skip


# ---------------------------------------------------------------------- the registry
@dataclass(frozen=True)
class Product:
    """One map product.

    Attributes:
        name: its name in menus, on the command line and in the cache.
        kind: ``"rgb"``, ``"scalar"`` or ``"classes"`` (how its :class:`LayerFile` is shown).
        legend: what it shows, one generic sentence (the layer's own legend is specific).
        build: ``build(layers, on_progress) -> LayerFile``, computing and writing it.
        needs: the band roles a scene must have for it (:data:`~smartiesviz.spectrum.ROLES`);
            ``()``: every scene (the colour products fall back to grey without red/green/blue).
    """

    name: str
    kind: LayerKind
    legend: str
    build: Callable[[LayerStore, Callable[[float], None]], LayerFile]
    needs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if unknown := [r for r in self.needs if r not in ROLES]:
            raise ValueError(f"product {self.name!r}: unknown band role(s) {unknown}; roles are "
                             f"{', '.join(ROLES)}")  # fmt: skip

    def missing(self, sensor: str | Sensor, bands: list[str]) -> str | None:
        """Why a scene of ``sensor`` with ``bands`` cannot have this product (``None``: it can)."""
        return missing_roles(self.needs, sensor, bands)


#: The products of a scene and a model, in the order offered.
PRODUCTS: dict[str, Product] = {
    p.name: p
    for p in (
        Product("true colour", "rgb", "the scene's own red, green and blue bands (without "
                "them: its first band, grey)", true_colour),
        Product("reconstruction", "rgb", "the model's reconstruction of hidden patches, as "
                "true colour", reconstruction),
        Product("reconstruction error", "scalar", "reconstruction error (MSE) of each hidden "
                "patch", reconstruction_error),
        Product("PCA colour", "rgb", "the first three principal components of the patch "
                "embeddings, as RGB", pca_colour),
        Product("k-means classes", "classes", "k-means classes of the patch embeddings",
                kmeans_classes),
        Product("NIR from RGB", "scalar", "the NIR band predicted from the red, green and blue "
                "bands only", nir_from_rgb, NIR_FROM_RGB_ROLES),
    )
}  # fmt: skip


def product(name: str) -> Product:
    """The product ``name`` of :data:`PRODUCTS`.

    Raises:
        UserError: no such product (the message lists them).
    """
    if name not in PRODUCTS:
        raise UserError(f"unknown map product {name!r}; choose from "
                        f"{', '.join(repr(n) for n in PRODUCTS)}")  # fmt: skip
    return PRODUCTS[name]


def available(sensor: str | Sensor, bands: list[str]) -> list[str]:
    """Names of the products a scene of ``sensor`` with ``bands`` can have, in menu order."""
    return [n for n, p in PRODUCTS.items() if p.missing(sensor, bands) is None]
