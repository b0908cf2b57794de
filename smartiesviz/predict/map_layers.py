"""A scene's model products as map layers: tiled GeoTIFFs on disk, computed on demand, cached.

:class:`SceneLayers` computes each layer the first time it is asked for, by streaming the scene
tile by tile (memory bounded by one batch, GDAL cache capped), and writes it as a tiled GeoTIFF
with internal overviews into a cache folder keyed by the scene's content and the model's weights,
so reopening the same scene with the same model costs nothing. Colour layers are stored as RGBA
``uint8`` (alpha 0 = no data); scalar layers as ``float32`` (NaN = no data); class layers as
``uint8`` (255 = no data). Rendering (colour maps, PNGs, tile pyramids) happens elsewhere.

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
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from smartiesviz import outputs
from smartiesviz.data import cache as data_cache
from smartiesviz.data.cache import CacheRepairWarning
from smartiesviz.data.tiling import Blender, Overlap, resolve_overlap
from smartiesviz.models.resolve import model_img_size
from smartiesviz.predict import rasterfile, similarity
from smartiesviz.predict.cross_spectral import cross_spectral_stream
from smartiesviz.predict.embed import EmbedOptions, stream_features
from smartiesviz.predict.maps import reconstruction_error_map
from smartiesviz.spectrum.sensors import RoleError, Sensor, get_sensor

if TYPE_CHECKING:  # pragma: no cover
    import xarray as xr

Progress = Callable[[float], None] | None
LayerKind = Literal["rgb", "scalar", "classes"]

#: Layers computed from a scene and a model, in the order offered.
PRODUCTS = (
    "true colour",
    "reconstruction",
    "reconstruction error",
    "PCA colour",
    "k-means classes",
    "NIR from RGB",
)
ROWS = 512  # pixel rows read per block when streaming the scene (fewer for wide scenes)
BLOCK_PIXELS = 1_000_000  # pixels per block: memory per block stays constant as scenes widen
FIT_SAMPLES = 20_000  # embeddings sampled to fit PCA / k-means
PRODUCTS_VERSION = 2  # in the cache key: layers of version 1 were computed without overlap


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
    try:
        s = get_sensor(sensor)
        return [bands[i] for i in s.positions(bands, [s.role(r).name for r in NIR_FROM_RGB_ROLES])]
    except (KeyError, RoleError):
        return None


def _percentiles(sample: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2nd and 98th percentiles per channel of a ``(C, n)`` sample, ignoring NaN."""
    lo = np.nanpercentile(sample, 2, axis=1).astype(np.float32)
    hi = np.nanpercentile(sample, 98, axis=1).astype(np.float32)
    return lo, np.maximum(hi, lo + np.float32(1e-6))


def _rgba8(rgb: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``(3, h, w)`` values → ``(4, h, w)`` uint8 with alpha 0 where any channel is NaN."""
    rgb = np.asarray(rgb, np.float32)
    valid = np.isfinite(rgb).all(0)
    lo32, span = np.float32(lo)[:, None, None], np.float32(hi - lo)[:, None, None]
    scaled = np.nan_to_num((rgb - lo32) * (np.float32(255) / span), copy=False)
    out = np.zeros((4, *rgb.shape[1:]), np.uint8)
    out[:3] = np.clip(scaled, 0, 255, out=scaled) * valid
    out[3] = valid * 255
    return out


class SceneLayers:
    """The map layers of one scene and one model, computed on demand into a cache folder.

    Args:
        cube: ``(band, y, x)`` scene (native units, CRS), in memory or opened lazily.
        sensor: its registry sensor name.
        model: a resolved SmartiesMAE (eval mode).
        cache: root folder of the layer cache (default: the user cache, ``map-layers``).
        mask_ratio, seed: masking of the reconstruction layers.
        options: how the scene is tiled and encoded (``options.overlap``: see ``overlap``).
        overlap: pixels shared by neighbouring windows for every model product; ``"auto"``:
            ``options.overlap`` when set, else :func:`~smartiesviz.data.tiling.seamless_overlap`
            (half the window). The products' options are ``product_options``; ``options``
            stays as given (the map's tile inspector tiles by it).
    """

    def __init__(self, cube: xr.DataArray, sensor: str, model: Any, cache: Path | None = None,
                 mask_ratio: float = 0.75, seed: int = 0, options: EmbedOptions | None = None,
                 overlap: Overlap = "auto") -> None:  # fmt: skip
        self.cube, self.sensor, self.model = cube, sensor, model
        self.mask_ratio, self.seed = float(mask_ratio), int(seed)
        self.options = EmbedOptions.build(options, progress=False)
        self.product_options = _with_overlap(self.options, model, overlap)
        settings = json.dumps(
            {"mask_ratio": self.mask_ratio, "seed": self.seed, "sensor": sensor,
             "products_version": PRODUCTS_VERSION,
             **{k: str(v) for k, v in asdict(self.product_options).items()
                if k not in ("progress", "on_progress")}},
            sort_keys=True,
        )  # fmt: skip
        key = hashlib.sha256(f"{scene_sha(cube)}{model_sha(model)}{settings}".encode())
        self.key = key.hexdigest()[:16]
        self.root = Path(cache or default_cache())
        self.folder = self.root / self.key
        self._verified: dict[Path, tuple[int, ...]] = {}  # files hashed by us, by stat fingerprint
        self._entry()
        data_cache.touch(self.folder)
        self.layers: dict[str, LayerFile] = {}
        self.bands = [str(b) for b in cube["band"].values]
        _LIVE.add(self)

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
        """Products this scene can have ("NIR from RGB" needs the bands of the sensor's nir, red,
        green and blue roles)."""
        has_nir = nir_from_rgb_bands(self.bands, self.sensor) is not None
        return [n for n in PRODUCTS if n != "NIR from RGB" or has_nir]

    def get(self, name: str, on_progress: Progress = None) -> LayerFile:
        """The layer ``name``, computed (and cached on disk) the first time."""
        if name in self.layers and (name not in PRODUCTS or self.layers[name].path.is_file()):
            return self.layers[name]  # (a product evicted by another process is rebuilt)
        if name not in self.names:
            raise ValueError(f"unknown layer {name!r}; choose from {self.names}")
        path = self.path(name)
        meta = path.with_suffix(".json")
        info = self._read_record(meta)
        layer = None
        if self._cached(path, info):
            try:
                fields = {k: v for k, v in info.items() if k not in ("size", "sha256", "path")}
                layer = LayerFile(**{**fields, "path": path, "classes": tuple(fields["classes"])})
            except (KeyError, TypeError):  # a record of another version: rebuild
                layer = None
        if layer is None:
            builder = getattr(self, "_" + _slug(name).replace("-", "_"))
            with rasterfile.gdal_env():  # every read of the scene too: GDAL's cache stays capped
                layer = builder(on_progress or (lambda f: None))
            self._record(path, meta, layer)
        self.layers[name] = layer
        return layer

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
            job = opts.job(self.cube, self.sensor, self.model)
            ny, nx = job.grid.shape
            d = int(job.model.embed_dim)
            blocks = Blender(job.grid, d).blend(stream_features(job, opts))
            with rasterfile.gdal_env():
                self._write(out, d, "float32", job.crs, job.transform, ny, nx, blocks,
                            nodata=float("nan"), tags={**job.attrs, "blend": "linear"})  # fmt: skip
            self._record(out, meta)
        return out

    # ------------------------------------------------------------------ writing
    def _write(self, name: str | Path, count: int, dtype: str, crs: Any, transform: Any,
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
        return self._write(name, c, str(values.dtype), crs, transform, h, w,
                           iter([(window, values)]), nodata, rgba)  # fmt: skip

    @property
    def rows_per_block(self) -> int:
        return int(np.clip(BLOCK_PIXELS // self.cube.sizes["x"], 16, ROWS))

    def _scene_blocks(self) -> Iterator[tuple[int, Any]]:
        rows = self.rows_per_block
        for r in range(0, self.cube.sizes["y"], rows):
            yield r, self.cube.isel(y=slice(r, r + rows))

    # ------------------------------------------------------------------ products
    def _true_colour(self, on_progress: Callable[[float], None]) -> LayerFile:
        from rasterio.windows import Window  # lazy: GDAL binding; only when layers are written

        idx = rgb_indices(self.bands, self.sensor)
        h, w = self.cube.sizes["y"], self.cube.sizes["x"]
        step = max(1, int(np.sqrt(h * w / 250_000)))
        sample = np.concatenate(
            [np.asarray(b.isel(band=idx, y=slice(0, None, step), x=slice(0, None, step)).values,
                        np.float32).reshape(3, -1) for _, b in self._scene_blocks()], 1,
        )  # fmt: skip
        lo, hi = _percentiles(sample)

        def blocks() -> Iterator[tuple[Any, np.ndarray]]:
            for r, b in self._scene_blocks():
                rgb = np.asarray(b.isel(band=idx).values, np.float32)
                on_progress(min(1.0, (r + rgb.shape[1]) / h))
                yield Window(0, r, w, rgb.shape[1]), _rgba8(rgb, lo, hi)

        crs, transform = self.cube.rio.crs, self.cube.rio.transform(recalc=True)
        path = self._write("true colour", 4, "uint8", crs, transform, h, w, blocks(), rgba=True)
        names = "/".join(self.bands[i] for i in idx)
        return LayerFile("true colour", path, "rgb", f"true colour ({names}, 2-98 % stretch)")

    def _reconstruction(self, on_progress: Callable[[float], None]) -> LayerFile:
        job = self.product_options.job(self.cube, self.sensor, self.model)
        rb = self.model.resolve(job.band_specs)
        keep = list(rb.keep)
        idx = rgb_indices([s.split("/")[-1] for s in np.asarray(job.band_specs)[keep]], self.sensor)
        h, w, s = self.cube.sizes["y"], self.cube.sizes["x"], job.patch_size
        cells, n = job.grid.cells_per_tile, len(job.windows)
        gen = torch.Generator().manual_seed(self.seed)
        state: dict[str, Any] = {"done": 0}

        def tiles() -> Iterator[tuple[Any, np.ndarray]]:
            with torch.no_grad():
                for windows, x in job.batches(progress=False, desc="reconstruct"):
                    out = self.model(x, rb, mask_ratio=self.mask_ratio, generator=gen)
                    vis = out.visible_mask.reshape(-1, 1, cells, 1, cells, 1)
                    vis = vis.expand(-1, 1, cells, s, cells, s).reshape(x.shape[0], 1, cells * s,
                                                                         cells * s)  # fmt: skip
                    pasted = torch.where(vis, x[:, keep], out.recon_a.float())[:, idx].numpy()
                    if "lo" not in state:  # one stretch for the whole scene, from the inputs
                        state["lo"], state["hi"] = _percentiles(
                            x[:, keep][:, idx].permute(1, 0, 2, 3).reshape(3, -1).numpy())
                    state["done"] += len(windows)
                    on_progress(state["done"] / n)
                    yield windows, pasted

        def blocks() -> Iterator[tuple[Any, np.ndarray]]:
            for r, rgb in Blender(job.grid, 3, s).blend(tiles()):
                if r < h:
                    yield r, _rgba8(rgb[:, : h - r, :w], state["lo"], state["hi"])

        crs, transform = self.cube.rio.crs, self.cube.rio.transform(recalc=True)
        path = self._write("reconstruction", 4, "uint8", crs, transform, h, w, blocks(), rgba=True)
        legend = (f"reconstruction: {self.mask_ratio:.0%} of each window's patches hidden and "
                  f"rebuilt by the model, the visible ones copied from the input (seed "
                  f"{self.seed}); overlapping windows, each its own mask, cross-faded")  # fmt: skip
        return LayerFile("reconstruction", path, "rgb", legend)

    def _reconstruction_error(self, on_progress: Callable[[float], None]) -> LayerFile:
        o = self.product_options
        da = reconstruction_error_map(
            self.cube, self.sensor, self.model, bands=o.bands, mask_ratio=self.mask_ratio,
            seed=self.seed, tile_size=o.tile_size, batch_size=o.batch_size, normalize=o.normalize,
            device=o.device, progress=False, overlap=o.overlap,
        )  # fmt: skip
        on_progress(1.0)
        values = np.asarray(da.values, np.float32)[None]
        path = self.write_grid("reconstruction error", values, da.rio.crs, da.rio.transform(),
                               nodata=float("nan"))  # fmt: skip
        hi = float(np.nanpercentile(values, 98))
        return LayerFile("reconstruction error", path, "scalar",
                         "reconstruction MSE per hidden patch (normalized units)", "magma", 0.0, hi)  # fmt: skip

    def _fit_sample(self, emb: Path) -> np.ndarray:
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

    def _patch_map(self, name: str, emb: Path, fn: Callable[[np.ndarray], np.ndarray],
                   count: int, dtype: str, nodata: Any, rgba: bool = False) -> Path:  # fmt: skip
        """Apply ``fn`` ``(n, D) → (n, count)`` to every valid patch, streaming row blocks."""
        from rasterio.windows import Window  # lazy: GDAL binding; only when layers are written

        crs, transform, _, ny, nx = similarity.grid_of(emb)

        def blocks() -> Iterator[tuple[Any, np.ndarray]]:
            for r, block in similarity.row_blocks(emb):
                flat = block.reshape(block.shape[0], -1).T
                ok = np.isfinite(flat).all(1)
                out = np.full((flat.shape[0], count), nodata if nodata is not None else 0, dtype)
                if ok.any():
                    out[ok] = fn(flat[ok])
                yield Window(0, r, nx, block.shape[1]), out.T.reshape(count, *block.shape[1:])

        return self._write(name, count, dtype, crs, transform, ny, nx, blocks(), nodata, rgba)

    def _pca_colour(self, on_progress: Callable[[float], None]) -> LayerFile:
        # lazy: scikit-learn is heavy; only these maps need it
        from sklearn.decomposition import PCA

        emb = self.embeddings(lambda f: on_progress(0.9 * f))
        pca = PCA(n_components=3, random_state=0).fit(self._fit_sample(emb))
        lo, hi = _percentiles(pca.transform(self._fit_sample(emb)).T)

        def colour(rows: np.ndarray) -> np.ndarray:
            rgb = pca.transform(rows).T[:, :, None]
            return _rgba8(rgb, lo, hi)[:, :, 0].T

        path = self._patch_map("PCA colour", emb, colour, 4, "uint8", None, rgba=True)
        return LayerFile("PCA colour", path, "rgb", "PCA of patch embeddings: components 1-3 as RGB")

    def _k_means_classes(self, on_progress: Callable[[float], None], k: int = 6) -> LayerFile:
        from sklearn.cluster import KMeans  # lazy: scikit-learn is heavy; only these maps need it

        emb = self.embeddings(lambda f: on_progress(0.9 * f))
        km = KMeans(n_clusters=k, n_init=2, random_state=0).fit(_unit(self._fit_sample(emb)))
        order = np.argsort(-np.bincount(km.labels_, minlength=k))  # class 0 = largest
        rank = np.argsort(order)
        path = self._patch_map("k-means classes", emb,
                               lambda rows: rank[km.predict(_unit(rows))][:, None], 1, "uint8",
                               255)  # fmt: skip
        return LayerFile("k-means classes", path, "classes",
                         "k-means classes of patch embedding directions (0 = largest)",
                         classes=tuple(f"class {i}" for i in range(k)))  # fmt: skip

    def _nir_from_rgb(self, on_progress: Callable[[float], None]) -> LayerFile:
        found = nir_from_rgb_bands(self.bands, self.sensor)
        if found is None:  # (not offered in `names`; `get` refuses it before this)
            raise ValueError(f"{self.sensor!r} scene: no NIR, red, green and blue band roles")
        nir, rgb = found[0], found[1:]
        o = self.product_options
        stream = cross_spectral_stream(self.cube, [nir], inputs=rgb, sensor=self.sensor,
                                       model=self.model, tile_size=o.tile_size,
                                       batch_size=o.batch_size, normalize=o.normalize,
                                       device=o.device, overlap=o.overlap)  # fmt: skip
        h, w, s = self.cube.sizes["y"], self.cube.sizes["x"], stream.job.patch_size
        step = int(np.ceil(np.sqrt(h * w / 250_000)))  # every step-th pixel: <= 250k for the stretch
        sample: list[np.ndarray] = []
        n = len(stream.job.windows)

        def tiles() -> Iterator[tuple[Any, np.ndarray]]:
            done = 0
            for windows, out in stream.batches():
                done += len(windows)
                on_progress(done / n)
                yield windows, out[:, :1]

        def blocks() -> Iterator[tuple[Any, np.ndarray]]:
            for r, block in Blender(stream.job.grid, 1, s).blend(tiles()):
                if r < h:
                    block = block[:, : h - r, :w]
                    sample.append(block[0, (-r) % step :: step, ::step].ravel())
                    yield r, block

        crs, transform = self.cube.rio.crs, self.cube.rio.transform(recalc=True)
        path = self._write("NIR from RGB", 1, "float32", crs, transform, h, w, blocks(),
                           nodata=float("nan"))  # fmt: skip
        lo, hi = (float(v) for v in np.nanpercentile(np.concatenate(sample), [2, 98]))
        score = ""
        if stream.sums is not None:
            ratio = next(iter(stream.sums.scores(stream.targets).values()))["mse_ratio"]
            score = f"; MSE / per-tile-mean baseline = {ratio:.2f}"
        return LayerFile("NIR from RGB", path, "scalar",
                         f"{nir} predicted from {'/'.join(rgb)} only (normalized){score}", "gray",
                         lo, hi)  # fmt: skip

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
            rgba = _rgba8(values.astype(np.float32)[:3], np.zeros(3), np.ones(3))
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


def _unit(rows: np.ndarray) -> np.ndarray:
    """``(n, D)`` rows scaled to unit length: k-means on directions, as ``maps.kmeans_map`` (a
    blend of two windows' tokens is shorter than either; its direction is not)."""
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)


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
