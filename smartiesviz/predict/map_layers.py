"""A scene's model products as map layers: tiled GeoTIFFs on disk, computed on demand, cached.

:class:`SceneLayers` holds one :class:`~smartiesviz.data.scene.Scene` (opened once) and one model.
It computes each product of the registry (:data:`~smartiesviz.predict.products.PRODUCTS`: what
each product is, which band roles it needs and the function computing it) the first time it is
asked for, by streaming the scene tile by tile (memory bounded by one batch, GDAL cache capped),
and writes it as a tiled GeoTIFF with internal overviews into a cache folder keyed by the scene's
content and the model's weights, so reopening the same scene with the same model costs nothing.
It also writes user layers (:meth:`SceneLayers.add`) and the scene's patch embeddings (behind PCA
colour, k-means and similarity). Rendering (colour maps, PNGs, tile pyramids) happens elsewhere.

Seamless products: a ViT sees one window at a time, and its tokens near a window's edge differ
from those of the same place seen mid-window, so every model product (and the embeddings behind
PCA colour, k-means and similarity) comes from patch-aligned windows overlapping by half
(:func:`~smartiesviz.data.tiling.seamless_overlap`), cross-faded over their overlap
(:class:`~smartiesviz.data.tiling.Blender`), with fits and stretches over the whole scene, never
per window. The boundary-jump ratio of :mod:`smartiesviz.predict.seams` measures the result
(``benchmarks/seams.py``).

A cached file is used only when it is a regular file inside its entry (no link) whose size and
sha256 match those recorded beside it when it was written (``<layer>.json``, ``embeddings.json``);
anything else is rebuilt with a :class:`~smartiesviz.data.cache.CacheRepairWarning` naming it.
Each layer's file name is its slug plus a short hash of its exact name, so names that slug alike
("My layer", "my-layer") never share a file. The cache is bounded (``$SMARTIESVIZ_CACHE_LIMIT``):
after a file is written, least recently used entries are evicted (:func:`~smartiesviz.data.cache.enforce_limit`),
never one a live :class:`SceneLayers` uses.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
import weakref
from collections.abc import Iterator
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from smartiesviz import outputs
from smartiesviz.data import cache as data_cache
from smartiesviz.data.cache import CacheRepairWarning
from smartiesviz.data.scene import Scene, open_scene
from smartiesviz.data.tiling import Blender, Overlap, resolve_overlap
from smartiesviz.errors import UserError
from smartiesviz.models.resolve import model_img_size
from smartiesviz.predict import rasterfile, similarity
from smartiesviz.predict.embed import EmbedOptions, stream_features
from smartiesviz.predict.products import (
    NIR_FROM_RGB_ROLES,
    PRODUCTS,
    LayerFile,
    LayerKind,
    Product,
    Progress,
    available,
    nir_from_rgb_bands,
    product,
    rgb_indices,
    rgba8,
)

if TYPE_CHECKING:  # pragma: no cover
    import xarray as xr

__all__ = [  # the registry's names are re-exported: earlier code imported them from here
    "NIR_FROM_RGB_ROLES", "PRODUCTS", "LayerFile", "LayerKind", "Product", "SceneLayers",
    "available", "default_cache", "model_sha", "nir_from_rgb_bands", "product", "rgb_indices",
    "scene_sha",
]  # fmt: skip

# in the cache key: version 1 layers were computed without overlap; version 2 fitted PCA colour
# and k-means classes apart from maps.pca_map / kmeans_map (now both use maps.fit_pca / fit_kmeans)
PRODUCTS_VERSION = 3


def model_sha(model: Any) -> str:
    """SHA-256 of a model's weights (names, shapes and values)."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def scene_sha(cube: xr.DataArray) -> str:
    """SHA-256 identifying a scene: its file (path, size, mtime) when read lazily from one, else
    its values; plus its grid, bands and CRS."""
    h = hashlib.sha256()
    h.update(str(cube.rio.crs).encode())
    h.update(str(tuple(cube.rio.transform(recalc=True))).encode())
    h.update(str([str(b) for b in cube["band"].values]).encode())
    h.update(str(cube.shape).encode())
    source = cube.encoding.get("source")
    lazy = not isinstance(cube.variable._data, np.ndarray)
    if source and lazy and os.path.exists(source):
        st = os.stat(source)
        h.update(f"{os.path.abspath(source)}:{st.st_size}:{st.st_mtime_ns}".encode())
    else:
        for r in range(0, cube.sizes["y"], 64):
            h.update(np.ascontiguousarray(cube.isel(y=slice(r, r + 64)).values).tobytes())
    return h.hexdigest()


#: Environment variable naming the layer cache folder (default: ``map-layers`` in the data cache).
CACHE_ENV = data_cache.MAP_CACHE_ENV
_LIVE: weakref.WeakSet[SceneLayers] = weakref.WeakSet()  # their entries are in use: never evicted


def default_cache() -> Path:
    """``$SMARTIESVIZ_MAP_CACHE``, or ``map-layers`` in the package's data cache."""
    return data_cache.map_layer_cache()


class SceneLayers:
    """The map layers of one scene and one model, computed on demand into a cache folder.

    Args:
        scene: a :class:`~smartiesviz.data.scene.Scene` (native units, CRS; its cube in memory
            or opened lazily), or anything :func:`~smartiesviz.data.scene.open_scene` opens: a
            ``(band, y, x)`` DataArray with a ``sensor`` attribute, a GeoTIFF or folder path,
            ``"sample:sentinel2"``.
        model: a resolved SmartiesMAE (eval mode).
        cache: root folder of the layer cache (default: the user cache, ``map-layers``).
        mask_ratio, seed: masking of the reconstruction layers.
        options: how the scene is tiled and encoded (``options.overlap``: see ``overlap``).
        overlap: pixels shared by neighbouring windows for every model product; ``"auto"``:
            ``options.overlap`` when set, else :func:`~smartiesviz.data.tiling.seamless_overlap`
            (half the window). The products' options are ``product_options``; ``options``
            stays as given (the map's tile inspector tiles by it).

    Attributes: ``scene``; its ``cube`` ``(band, y, x)``, ``sensor`` and ``bands`` (names);
    ``key`` and ``folder`` (the cache entry); ``layers`` (name → :class:`LayerFile`, so far).
    """

    def __init__(self, scene: Scene | Any, model: Any, cache: Path | None = None,
                 mask_ratio: float = 0.75, seed: int = 0, options: EmbedOptions | None = None,
                 overlap: Overlap = "auto") -> None:  # fmt: skip
        self.scene, self.model = open_scene(scene), model
        self.mask_ratio, self.seed = float(mask_ratio), int(seed)
        self.options = EmbedOptions.build(options, progress=False)
        self.product_options = _with_overlap(self.options, model, overlap)
        settings = json.dumps(
            {"mask_ratio": self.mask_ratio, "seed": self.seed, "sensor": self.sensor,
             "products_version": PRODUCTS_VERSION,
             **{k: str(v) for k, v in asdict(self.product_options).items()
                if k not in ("progress", "on_progress")}},
            sort_keys=True,
        )  # fmt: skip
        key = hashlib.sha256(f"{scene_sha(self.cube)}{model_sha(model)}{settings}".encode())
        self.key = key.hexdigest()[:16]
        self.root = Path(cache or default_cache())
        self.folder = self.root / self.key
        self._verified: dict[Path, tuple[int, ...]] = {}  # files hashed by us, by stat fingerprint
        self._entry()
        data_cache.touch(self.folder)
        self.layers: dict[str, LayerFile] = {}
        _LIVE.add(self)

    # ------------------------------------------------------------------ the scene's parts
    @property
    def cube(self) -> xr.DataArray:
        """The scene's ``(band, y, x)`` cube."""
        return self.scene.cube

    @property
    def sensor(self) -> str:
        return self.scene.sensor

    @property
    def bands(self) -> list[str]:
        return list(self.scene.bands)

    # ------------------------------------------------------------------ the cache entry
    def _entry(self) -> Path:
        """The entry folder, created; a link there (or above it, inside the user cache) is removed
        with a warning, never followed."""
        data_cache.refuse_links_above(self.folder, data_cache.cache_root())  # (only when inside it)
        if self.folder.is_symlink() or (self.folder.exists() and not self.folder.is_dir()):
            warnings.warn(f"map-layer cache entry {self.folder} is a link or a file (refused in "
                          "the cache); replacing it", CacheRepairWarning, stacklevel=3)  # fmt: skip
            data_cache.discard(self.folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        return self.folder

    def _cached(self, path: Path, record: Any) -> bool:
        """Whether ``path`` can be used: a regular file of the entry matching ``record`` (its
        ``size`` and ``sha256``). A damaged file is removed, with a warning naming it."""
        if not path.exists() and not path.is_symlink():
            return False
        problem = None
        if not path.is_symlink() and self._verified.get(path) == _fingerprint(path):
            return True  # hashed by this instance and unchanged since (a write changes the ctime)
        if path.is_symlink() or not path.is_file():
            problem = "is a link or not a regular file (refused in the cache)"
        elif not data_cache.is_inside(path, self.folder):
            problem = f"resolves outside the cache entry {self.folder}"
        elif not isinstance(record, dict) or not {"size", "sha256"} <= record.keys():
            problem = "has no size and sha256 record (written by an older version, or damaged)"
        elif path.stat().st_size != record["size"]:
            problem = f"has {path.stat().st_size} bytes, {record['size']} were written"
        elif outputs.file_sha256(path) != record["sha256"]:
            problem = "does not match the sha256 recorded when it was written"
        if problem is None:
            self._verified[path] = _fingerprint(path)
            return True
        warnings.warn(f"cached map layer file {path} {problem}; rebuilding it",
                      CacheRepairWarning, stacklevel=3)  # fmt: skip
        data_cache.discard(path)
        return False

    def _read_record(self, meta: Path) -> dict[str, Any] | None:
        """The JSON record beside a cached file, or ``None`` (a link or unreadable JSON counts as
        none: the file is rebuilt)."""
        if meta.is_symlink() or not meta.is_file():
            return None
        try:
            info = json.loads(meta.read_text())
        except (OSError, ValueError):
            return None
        return info if isinstance(info, dict) else None

    def _record(self, path: Path, meta: Path, layer: LayerFile | None = None) -> None:
        """Record ``path``'s size and sha256 (and ``layer``) in ``meta``, then bound the cache."""
        fingerprint = _fingerprint(path)
        info = {} if layer is None else {**asdict(layer), "path": path.name}
        body = {**info, "size": path.stat().st_size, "sha256": outputs.file_sha256(path)}
        outputs.atomic_write_bytes(meta, json.dumps(body).encode())
        self._verified[path] = fingerprint
        data_cache.enforce_limit(self.root, keep=[s.folder for s in list(_LIVE)] + [self.folder])

    # ------------------------------------------------------------------ access
    @property
    def names(self) -> list[str]:
        """Products this scene can have (:func:`~smartiesviz.predict.products.available`: those
        whose band roles its sensor declares and it has), in menu order."""
        return available(self.sensor, self.bands)

    def get(self, name: str, on_progress: Progress = None) -> LayerFile:
        """The layer ``name`` (a product of the registry, or a layer :meth:`add` wrote),
        computed (and cached on disk) the first time.

        Raises:
            UserError: not a product (the message lists them), or one this scene cannot have
                (the message names the band role or band it lacks).
        """
        if name in self.layers and (name not in PRODUCTS or self.layers[name].path.is_file()):
            return self.layers[name]  # (a product evicted by another process is rebuilt)
        job = self._product(name)
        path = self.path(name)
        meta = path.with_suffix(".json")
        layer = self._cached_layer(path, meta)
        if layer is None:
            with rasterfile.gdal_env():  # every read of the scene too: GDAL's cache stays capped
                layer = job.build(self, on_progress or (lambda f: None))
            self._record(path, meta, layer)
        self.layers[name] = layer
        return layer

    def _product(self, name: str) -> Product:
        """The registry's product ``name``, refused when this scene cannot have it."""
        found = product(name)
        reason = found.missing(self.sensor, self.bands)
        if reason is not None:
            raise UserError(
                f"this {self.sensor!r} scene cannot have the {name!r} layer: it needs the "
                f"{', '.join(found.needs)} band roles ({reason}); it can have "
                f"{', '.join(repr(n) for n in self.names)}"
            )
        return found

    def _cached_layer(self, path: Path, meta: Path) -> LayerFile | None:
        """The cached layer at ``path`` described by ``meta``, or ``None`` (absent, damaged, or
        recorded by another version: rebuilt)."""
        info = self._read_record(meta)
        if not self._cached(path, info) or info is None:
            return None
        try:
            fields = {k: v for k, v in info.items() if k not in ("size", "sha256", "path")}
            return LayerFile(**{**fields, "path": path, "classes": tuple(fields["classes"])})
        except (KeyError, TypeError):
            return None

    def path(self, name: str) -> Path:
        """The layer's GeoTIFF: its slug plus a short hash of the exact name (names that slug
        alike, such as "My layer" and "my-layer", get files of their own)."""
        digest = hashlib.sha256(name.encode()).hexdigest()[:8]
        return self.folder / f"{_slug(name) or 'layer'}-{digest}.tif"

    def embeddings(self, on_progress: Progress = None) -> Path:
        """The scene's patch embeddings as a GeoTIFF (``(D, ny, nx)``, NaN at masked patches),
        from windows overlapping by ``product_options.overlap``, cross-faded over their overlap
        (:class:`~smartiesviz.data.tiling.Blender`); streamed, memory one strip of windows."""
        out, meta = self.folder / "embeddings.tif", self.folder / "embeddings.json"
        if not self._cached(out, self._read_record(meta)):
            self._entry()
            opts = EmbedOptions.build(self.product_options, on_progress=on_progress)
            data_cache.discard(out)  # a link or a file without its record: never written through
            job = opts.job(self.scene, None, self.model)
            ny, nx = job.grid.shape
            d = int(job.model.embed_dim)
            blocks = Blender(job.grid, d).blend(stream_features(job, opts))
            with rasterfile.gdal_env():
                self.write(out, d, "float32", job.crs, job.transform, ny, nx, blocks,
                           nodata=float("nan"), tags={**job.attrs, "blend": "linear"})  # fmt: skip
            self._record(out, meta)
        return out

    # ------------------------------------------------------------------ writing
    def write(self, name: str | Path, count: int, dtype: str, crs: Any, transform: Any,
              height: int, width: int, blocks: Iterator[tuple[Any, np.ndarray]],
              nodata: Any = None, rgba: bool = False, tags: dict[str, Any] | None = None,
              ) -> Path:  # fmt: skip
        """Write ``(window, (count, h, w) array)`` blocks to the layer's GeoTIFF (or to the file
        ``name`` when a path) atomically; ``(row0, (count, h, width) array)`` blocks are rows."""
        import rasterio  # heavy optional: only writing layers needs GDAL
        from rasterio.enums import ColorInterp
        from rasterio.windows import Window

        path = name if isinstance(name, Path) else self.path(name)
        self._entry()  # the entry may have been evicted by another process meanwhile
        profile = rasterfile.geotiff_profile(height, width, count, dtype, crs, transform, nodata)
        with rasterfile.gdal_env(), outputs.atomic_path(path) as tmp:
            with rasterio.open(tmp, "w", **profile) as dst:
                if tags:
                    dst.update_tags(**{k: str(v) for k, v in tags.items()})
                if rgba:
                    dst.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue,
                                       ColorInterp.alpha]  # fmt: skip
                for window, block in blocks:
                    if isinstance(window, int):
                        window = Window(0, window, block.shape[2], block.shape[1])
                    dst.write(block, window=window)
                if not isinstance(name, Path):  # a map layer: overviews for zoomed-out views
                    rasterfile.build_overviews(dst, "nearest" if dtype == "uint8" and not rgba
                                               else "average")  # fmt: skip
        return path

    def write_grid(self, name: str, values: np.ndarray, crs: Any, transform: Any,
                   nodata: Any = None, rgba: bool = False) -> Path:  # fmt: skip
        """Write a whole ``(count, h, w)`` array (patch-grid layers are small) as the layer."""
        from rasterio.windows import Window  # lazy: GDAL binding; only when layers are written

        c, h, w = values.shape
        window = Window(0, 0, w, h)
        return self.write(name, c, str(values.dtype), crs, transform, h, w,
                          iter([(window, values)]), nodata, rgba)  # fmt: skip

    # ------------------------------------------------------------------ similarity and user layers
    def similarity_at(self, lat: float, lon: float, on_progress: Progress = None) -> xr.DataArray:
        """Cosine similarity of every patch to the patch under ``(lat, lon)`` (1 there)."""
        return similarity.similarity_at(self.embeddings(on_progress), lat, lon)

    def similarity_to(self, cube: xr.DataArray, sensor: str | None = None,
                      on_progress: Progress = None) -> xr.DataArray:  # fmt: skip
        """Cosine similarity of every patch to a query image of any sensor."""
        return similarity.similarity_to(self.embeddings(on_progress), cube, sensor, self.model)

    def add(self, da: xr.DataArray, name: str, kind: LayerKind = "scalar", legend: str = "",
            cmap: str = "viridis", classes: tuple[str, ...] = ()) -> LayerFile:  # fmt: skip
        """Write a user's georeferenced ``([band,] y, x)`` raster as a layer (RGB: 3 bands in
        [0, 1]; classes: integer values indexing ``classes``)."""
        if da.rio.crs is None:
            raise ValueError(f"layer {name!r} has no CRS (set one with .rio.write_crs)")
        values = np.asarray(da.values)
        values = values[None] if values.ndim == 2 else values
        crs, transform = da.rio.crs, da.rio.transform(recalc=True)
        vmin = vmax = None
        if kind == "rgb":
            rgba = rgba8(values.astype(np.float32)[:3], np.zeros(3), np.ones(3))
            path = self.write_grid(name, rgba, crs, transform, rgba=True)
        elif kind == "classes":
            v = np.where(np.isfinite(values), values, 255).astype(np.uint8)
            path = self.write_grid(name, v, crs, transform, nodata=255)
            classes = classes or tuple(str(i) for i in range(int(v[v < 255].max(initial=0)) + 1))
        else:
            v = values[:1].astype(np.float32)
            path = self.write_grid(name, v, crs, transform, nodata=float("nan"))
            vmin, vmax = (float(x) for x in np.nanpercentile(v, [2, 98]))
        layer = LayerFile(name, path, kind, legend or name, cmap, vmin, vmax, tuple(classes))
        self._record(path, path.with_suffix(".json"), layer)
        self.layers[name] = layer
        return layer


def _with_overlap(options: EmbedOptions, model: Any, overlap: Overlap) -> EmbedOptions:
    """``options`` with the map's window overlap (see :class:`SceneLayers`), checked against the
    model's patch and window size."""
    patch = int(model.patch_size)
    tile = int(options.tile_size or model_img_size(model))
    if overlap == "auto" and options.overlap:
        overlap = options.overlap
    return replace(options, overlap=resolve_overlap(overlap, tile, patch))


def _fingerprint(path: Path) -> tuple[int, ...]:
    st = path.stat()
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")
