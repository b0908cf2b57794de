"""Patch embeddings of a whole scene, streamed tile by tile, as a georeferenced cube.

``embed(cube, sensor)`` cuts the scene into model-sized tiles on its patch grid, normalizes and
encodes them a batch at a time, and returns a ``(feature, y, x)`` cube whose grid is the patch grid:
the scene's transform scaled by the patch size, in the scene's CRS. ``embed_to_file`` writes the
same cube to a tiled GeoTIFF block by block (or to Zarr), so peak memory is one batch plus the
model whatever the scene's size (measured: 949 MiB for the bundled scene, 955 MiB for a 2 × 2
mosaic of it, ``benchmarks/map.py``). Outputs are written under a temporary name and renamed when
complete, never over an input, and over an existing output only with ``overwrite=True``; patches
that are mostly nodata are NaN (masked), not encoded from filled-in values. How tiles are cut and
encoded is one record, :class:`EmbedOptions`."""

from __future__ import annotations

import os
import shutil
import warnings
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from smartiesviz import data, outputs
from smartiesviz.data.samples import is_sample
from smartiesviz.data.scene import Scene, open_scene
from smartiesviz.data.tiling import (
    Blender,
    Overlap,
    PatchGrid,
    TileWindow,
    georeferenced,
    resolve_overlap,
)
from smartiesviz.data.tiling import grid_transform as scaled_geo
from smartiesviz.data.tiling import iter_grid_batches as iter_batches
from smartiesviz.errors import UserError
from smartiesviz.options import DEFAULT_TOKEN_NORM, TokenNorm, check_option
from smartiesviz.predict import rasterfile

if TYPE_CHECKING:  # pragma: no cover
    import torch
    import xarray as xr

    from smartiesviz.models.protocol import SmartiesModel

Normalizer = Callable[["xr.DataArray"], np.ndarray]

#: Upper bound of the automatic batch size on CPU: beyond it throughput no longer improves.
CPU_MAX_BATCH = 32
GPU_MAX_BATCH = 512


def auto_batch_size(
    model: Any,
    tile_size: int,
    n_bands: int,
    device: str | torch.device | None = None,
    budget_bytes: int | None = None,
) -> int:
    """Largest batch whose estimated inference memory fits a budget.

    The estimate counts, per tile, the input, one encoder block's live activations (tokens, qkv,
    MLP hidden) and the attention matrix; under ``torch.no_grad`` only one block is alive at a time.

    Args:
        model: a SmartiesMAE (uses ``embed_dim``, ``patch_size`` and the heads of its blocks).
        tile_size: tile side in pixels.
        n_bands: channels per tile.
        device: where the model runs; defaults to the model's device.
        budget_bytes: memory to plan for; default a quarter of the free GPU memory, or on CPU a
            tenth of the available RAM capped at 2 GiB.

    Returns:
        A batch size between 1 and 32 (CPU) or 512 (GPU).
    """
    import torch  # lazy: `import smartiesviz.predict` (embed is eager) stays torch-free

    # torch-importing: kept local so `import smartiesviz.predict` (and the CLI) stay light
    from smartiesviz.models.resolve import model_device

    device = torch.device(device) if device is not None else model_device(model)
    n = (tile_size // model.patch_size) ** 2 + 1
    d = int(model.embed_dim)
    heads = _num_heads(model)
    per_tile = 4 * (n_bands * tile_size**2 + n * d * (1 + 3 + 4 + 1) + 2 * heads * n * n)
    if budget_bytes is None:
        if device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(device)
            budget_bytes = free // 4
        else:
            budget_bytes = min(_available_ram() // 10, 2 * 1024**3)
    cap = GPU_MAX_BATCH if device.type == "cuda" else CPU_MAX_BATCH
    return int(max(1, min(cap, budget_bytes // per_tile)))


def _num_heads(model: SmartiesModel) -> int:
    return int(model.num_heads)


def _available_ram() -> int:
    try:
        import psutil  # optional: psutil is not a dependency

        return int(psutil.virtual_memory().available)
    except ImportError:  # pragma: no cover - psutil is usually present through jupyter
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def make_normalizer(cube: xr.DataArray, sensor: str, normalize: bool | Normalizer) -> Normalizer:
    """The function that turns a raw sub-cube into a ``(C, h, w)`` float32 array in model units.

    ``True`` gives the scene's :class:`~smartiesviz.data.preprocess.SceneNormalizer` (band names
    and statistics fixed once for the whole scene): the sensor's released statistics, or, for
    sensors without any (Landsat-8, ...), statistics computed once from a subsample of the whole
    scene, so every tile is scaled the same way. A cube whose ``units`` attribute is ``"model"`` is taken as already normalized. ``False``
    means the cube is already in model units; a callable is used as given.
    """
    if callable(normalize):
        return normalize
    if normalize is not True and normalize is not False:
        raise TypeError(f"normalize must be True, False or a callable; got {normalize!r}")
    if normalize is False or str(cube.attrs.get("units", "")).lower() == "model":
        return lambda sub: np.asarray(sub.values, dtype=np.float32)
    return data.preprocess.scene_normalizer(cube, sensor)


class EmbeddingJob:
    """A prepared embedding run: the scene, its patch grid, the model and the batches.

    Args:
        scene: a :class:`~smartiesviz.data.scene.Scene`, or what
            :func:`~smartiesviz.data.scene.open_scene` opens (a ``(band, y, x)`` cube with
            registry band names and a CRS, a GeoTIFF, a band folder, a sample name).
        sensor: registry sensor name (default: the scene's).
        model: a SmartiesMAE, a checkpoint path, or ``None`` for the demo model.
        bands: the cube's bands to use (default all that the model can tokenize).
        batch_size: tiles per forward pass, or ``"auto"`` (:func:`auto_batch_size`).
        tile_size: tile side in pixels (default ``model.img_size``).
        overlap: pixels shared by neighbouring tiles (a multiple of 2 × patch size), or ``"auto"``
            (half the tile: :func:`~smartiesviz.data.tiling.seamless_overlap`); with overlap the
            tiles are cross-faded over it (no seams at tile edges, see :func:`placed_features`).
        normalize: see :func:`make_normalizer`.
        device: run the model there (default: where its parameters are).
    """

    def __init__(
        self,
        scene: Scene | xr.DataArray | str | os.PathLike,
        sensor: str | None = None,
        model: Any = None,
        bands: Sequence[str] | None = None,
        batch_size: int | str = "auto",
        tile_size: int | None = None,
        overlap: Overlap = 0,
        normalize: bool | Normalizer = True,
        device: str | torch.device | None = None,
    ) -> None:
        import torch  # lazy: `import smartiesviz.predict` (embed is eager) stays torch-free

        # torch-importing: kept local so `import smartiesviz.predict` (and the CLI) stay light
        from smartiesviz.models.resolve import model_device, model_img_size, resolve_model

        self.model = resolve_model(model)
        if device is not None:
            self.model = self.model.to(device)
        self.device = torch.device(device) if device is not None else model_device(self.model)
        self.scene = tokenized_scene(open_scene(scene, sensor, bands), self.model)
        self.sensor, self.cube = self.scene.sensor, self.scene.cube
        self.band_specs = list(self.scene.specs)
        self.patch_size = int(self.model.patch_size)
        self.tile_size = int(tile_size or model_img_size(self.model))
        self.grid = PatchGrid(
            *self.scene.shape, self.patch_size, self.tile_size,
            resolve_overlap(overlap, self.tile_size, self.patch_size),
        )
        n_bands = len(self.band_specs)
        if batch_size == "auto":
            batch_size = auto_batch_size(self.model, self.tile_size, n_bands, self.device)
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int or 'auto'; got {batch_size!r}")
        self.batch_size = batch_size
        self.normalizer = make_normalizer(self.cube, self.sensor, normalize)
        self.crs, self.transform = scaled_geo(self.cube, self.patch_size)

    @property
    def windows(self) -> list[TileWindow]:
        return self.grid.windows()

    def batches(
        self, progress: bool = True, desc: str = "embed"
    ) -> Iterator[tuple[list[TileWindow], torch.Tensor]]:
        """Yield ``(windows, x)`` with ``x`` a ``(B, C, T, T)`` tensor on the model's device."""
        import torch  # lazy: `import smartiesviz.predict` (embed is eager) stays torch-free
        from tqdm.auto import tqdm  # lazy: tqdm.auto probes for Jupyter widgets

        windows = self.windows
        with tqdm(total=len(windows), unit="tile", desc=desc, disable=not progress) as bar:
            for chunk, x in iter_batches(
                self.cube, self.grid, self.batch_size, self.normalizer, windows
            ):
                yield chunk, torch.from_numpy(x).to(self.device)
                bar.update(len(chunk))

    def feature_maps(self, progress: bool = True) -> Iterator[tuple[list[TileWindow], np.ndarray]]:
        """Yield ``(windows, maps)``, ``maps`` a float32 ``(B, D, t, t)`` array of patch features."""
        import torch  # lazy: `import smartiesviz.predict` (embed is eager) stays torch-free

        with torch.no_grad():
            for chunk, x in self.batches(progress):
                maps = self.model.patch_feature_map(x, self.band_specs)
                yield chunk, maps.float().cpu().numpy()

    def wrap(self, values: np.ndarray, name: str, leading: tuple[str, Sequence[Any]] | None):
        """Georeference a ``([L,] ny, nx)`` array on this job's patch grid."""
        return georeferenced(values, self.crs, self.transform, leading, name, self.attrs)

    @property
    def attrs(self) -> dict[str, Any]:
        return {
            "sensor": self.sensor,
            "bands": ",".join(self.band_specs),
            "patch_size": self.patch_size,
            "tile_size": self.tile_size,
            "overlap": self.grid.overlap,
            "model": type(self.model).__name__,
            "embed_dim": int(self.model.embed_dim),
        }


@dataclass(frozen=True)
class EmbedOptions:
    """How a scene is tiled and encoded; shared by :func:`embed`, :func:`embed_to_file` and the map.

    Attributes:
        bands: which of the cube's bands to feed (default: all the model can tokenize).
        batch_size: tiles per forward pass (a positive int), or ``"auto"`` (:func:`auto_batch_size`).
        tile_size: tile side in pixels, a multiple of the patch size (default ``model.img_size``).
        overlap: pixels shared by neighbouring tiles (a multiple of 2 × patch size) or ``"auto"``
            (half the tile); tiles are cross-faded over it, so products have no seams.
        normalize: ``True`` (the data module's preprocessing), ``False`` or a callable.
        device: run there (default where the model is).
        progress: show a tqdm progress bar.
        min_valid: patches with a smaller share of valid (not nodata) pixels are written as NaN
            (masked) instead of being encoded from filled-in values.
        on_progress: called with the fraction of tiles done (for widgets' progress bars).
        token_norm: which patch tokens are written (:data:`~smartiesviz.options.TokenNorm`:
            ``"pre-norm"``, before the final LayerNorm, the default; or ``"post-norm"``);
            recorded in every file written (GeoTIFF tags, Zarr attributes, archive catalogue).
    """

    bands: tuple[str, ...] | None = None
    batch_size: int | Literal["auto"] = "auto"
    tile_size: int | None = None
    overlap: Overlap = 0
    normalize: bool | Normalizer = True
    device: str | None = None
    progress: bool = True
    min_valid: float = 0.5
    on_progress: Callable[[float], None] | None = None
    token_norm: TokenNorm = DEFAULT_TOKEN_NORM

    def __post_init__(self) -> None:
        check_option("token_norm", self.token_norm, TokenNorm)
        b = self.batch_size
        if b != "auto" and (isinstance(b, bool) or not isinstance(b, int) or b < 1):
            raise ValueError(f"batch size must be a positive integer or 'auto'; got {b!r}")
        if self.tile_size is not None and int(self.tile_size) < 1:
            raise ValueError(f"tile size must be a positive integer; got {self.tile_size!r}")
        if not 0 <= self.min_valid <= 1:
            raise ValueError(f"min_valid must be in [0, 1]; got {self.min_valid!r}")
        if isinstance(self.bands, str):
            object.__setattr__(self, "bands", (self.bands,))
        elif self.bands is not None:
            object.__setattr__(self, "bands", tuple(self.bands))

    @classmethod
    def build(cls, options: EmbedOptions | None = None, **overrides: Any) -> EmbedOptions:
        """``options`` (default: all defaults) with the given fields replaced."""
        unknown = sorted(set(overrides) - {f.name for f in fields(cls)})
        if unknown:
            raise TypeError(f"unknown embed option(s) {unknown}")
        return replace(options or cls(), **overrides)

    def job(self, scene: Any, sensor: str | None, model: Any) -> EmbeddingJob:
        """The :class:`EmbeddingJob` these options describe, for a :class:`Scene` or anything
        :func:`~smartiesviz.data.scene.open_scene` opens."""
        return EmbeddingJob(
            scene, sensor, model, self.bands, self.batch_size, self.tile_size, self.overlap,
            self.normalize, self.device,
        )  # fmt: skip

    def provenance(self) -> dict[str, Any]:
        """The options that decide the values written, as plain JSON types (for file tags,
        manifests and catalogues; ``device``, ``progress`` and callbacks are left out)."""
        norm = self.normalize if isinstance(self.normalize, bool) else "custom"
        return {
            "bands": list(self.bands) if self.bands else None,
            "batch_size": self.batch_size,
            "tile_size": self.tile_size,
            "overlap": self.overlap,
            "normalize": norm,
            "min_valid": self.min_valid,
            "token_norm": self.token_norm,
        }


def tokenized_scene(scene: Scene, model: SmartiesModel) -> Scene:
    """``scene`` with only the bands ``model``'s tokenizer serves (bands without a projection
    layer, such as Sentinel-2 B10, dropped with a warning; none left is an error)."""
    keep = list(model.spectrum_projection.resolve(list(scene.specs)).keep)  # none: it raises
    return scene if len(keep) == len(scene.bands) else scene.select([scene.bands[i] for i in keep])


def _with_validity(normalizer: Normalizer) -> Normalizer:
    """Wrap a normalizer so it appends a validity channel (1 where every band has data)."""

    def _norm(sub: xr.DataArray) -> np.ndarray:
        raw = np.asarray(sub.values)  # read once
        valid = np.isfinite(raw).all(0, keepdims=True).astype(np.float32)
        x = np.asarray(normalizer(sub.copy(data=raw)), np.float32)
        if not valid.all():  # nodata → 0 (the band mean): those patches are masked afterwards
            x = np.where(valid.astype(bool), x, np.float32(0))
        return np.concatenate([x, valid])

    return _norm


def stream_features(
    job: EmbeddingJob, options: EmbedOptions
) -> Iterator[tuple[list[TileWindow], np.ndarray]]:
    """Yield ``(windows, maps)``: float32 ``(B, D, t, t)`` patch features, NaN at masked patches
    (less than ``options.min_valid`` of their pixels valid). Memory is bounded by one batch."""
    import torch  # lazy: `import smartiesviz.predict` (embed is eager) stays torch-free

    cells, s = job.grid.cells_per_tile, job.patch_size
    normalizer = _with_validity(job.normalizer)
    batches = iter_batches(job.cube, job.grid, job.batch_size, normalizer, job.windows)
    from tqdm.auto import tqdm  # lazy: tqdm.auto probes for Jupyter widgets

    with (
        torch.no_grad(),
        tqdm(total=len(job.windows), unit="tile", desc="embed", disable=not options.progress) as bar,
    ):
        done = 0
        for chunk, x in batches:
            valid = x[:, -1].reshape(len(chunk), cells, s, cells, s).mean(axis=(2, 4))
            xt = torch.from_numpy(np.ascontiguousarray(x[:, :-1])).to(job.device)
            maps = job.model.patch_feature_map(xt, job.band_specs, token_norm=options.token_norm)
            maps = maps.float().cpu().numpy()
            maps[np.broadcast_to((valid < options.min_valid)[:, None], maps.shape)] = np.nan
            bar.update(len(chunk))
            done += len(chunk)
            if options.on_progress is not None:
                options.on_progress(done / len(job.windows))
            yield chunk, maps


def placed_features(
    job: EmbeddingJob, options: EmbedOptions
) -> Iterator[tuple[int, int, np.ndarray]]:
    """``(row, col, block)``: float32 ``(D, h, w)`` blocks of the patch grid at ``(row, col)``.

    Without overlap, each window's cells; with overlap, row strips in which neighbouring windows
    are cross-faded over their shared cells (:class:`~smartiesviz.data.tiling.Blender`): a ViT's
    tokens near a window's edge differ from those of the same place seen mid-window, and keeping
    only window centres still leaves a step where they meet. Memory: one strip of windows."""
    batches = stream_features(job, options)
    if not job.grid.margin:
        for windows, maps in batches:
            for win, m in zip(windows, maps):
                yield win.row, win.col, _core(m, win)
        return
    for row, block in Blender(job.grid, int(job.model.embed_dim)).blend(batches):
        yield row, 0, block


def embed(
    scene: Scene | xr.DataArray | str | os.PathLike,
    sensor: str | None = None,
    model: Any = None,
    options: EmbedOptions | None = None,
    **overrides: Any,
) -> xr.DataArray:
    """Patch embeddings of a scene as a georeferenced ``(feature, y, x)`` cube, in memory.

    The scene (``H × W`` pixels) is cut into tiles on its patch grid, each tile is normalized and
    encoded (a batch at a time, with a progress bar) and its patch tokens are placed on the grid.
    Edges are completed by mirroring. Patches that are mostly nodata are NaN. For scenes whose
    embeddings do not fit in memory use :func:`embed_to_file`.

    Args:
        scene: a :class:`~smartiesviz.data.scene.Scene` or what
            :func:`~smartiesviz.data.scene.open_scene` opens: a ``(band, y, x)`` cube in its native
            units (or model units with ``normalize=False``), band coordinate with registry band
            names, CRS readable by ``cube.rio.crs``; a GeoTIFF, a band folder, a sample name.
        sensor: registry sensor name; default the scene's (``cube.attrs["sensor"]``).
        model: a SmartiesMAE, a checkpoint path, or ``None`` for the bundled demo model.
        options: an :class:`EmbedOptions`; keyword ``overrides`` replace its fields
            (``embed(cube, batch_size=8, progress=False)``).

    Returns:
        float32 DataArray ``(feature, y, x)`` of shape ``(D, ceil(H/S), ceil(W/S))`` whose
        transform is the scene's scaled by the patch size ``S`` and whose CRS is the scene's.
    """
    opts = EmbedOptions.build(options, **overrides)
    job = opts.job(scene, sensor, model)
    ny, nx = job.grid.shape
    out = np.empty((int(job.model.embed_dim), ny, nx), dtype=np.float32)
    for row, col, block in placed_features(job, opts):
        out[:, row : row + block.shape[1], col : col + block.shape[2]] = block
    da = job.wrap(out, "embedding", ("feature", range(out.shape[0])))
    da.attrs["token_norm"] = opts.token_norm
    return da


def embed_to_file(
    source: xr.DataArray | str | os.PathLike,
    out: str | os.PathLike,
    sensor: str | None = None,
    model: Any = None,
    options: EmbedOptions | None = None,
    *,
    overwrite: bool = False,
    **overrides: Any,
) -> Path:
    """Embed a scene straight into a file: a tiled GeoTIFF (``.tif``) or Zarr (``.zarr``).

    GeoTIFFs are written block by block as tiles are encoded (GDAL cache capped), so peak memory is
    one batch plus the model, whatever the scene's size; masked (nodata) patches are NaN, the file's
    nodata value. The file is written beside ``out`` under a temporary name and renamed when
    complete (temporary files that killed runs left there are removed first; a full disk is one
    "no space left" error, and no partial file stays); an input is never overwritten, an existing
    output only with ``overwrite=True``. The grid is the scene's transform times the patch size,
    exact for rotated grids; a scene without a CRS or geotransform gives an output without CRS.

    Args:
        source: a ``(band, y, x)`` cube, or a path (GeoTIFF, folder of band files, ``sample:...``)
            opened lazily (:func:`open_source`).
        out: ``.tif``/``.tiff`` or ``.zarr`` path.
        sensor, model, options, overrides: as in :func:`embed`.
        overwrite: replace an existing output.

    Returns:
        The path written.
    """
    path = Path(out)
    suffix = path.suffix.lower()
    if suffix not in {".tif", ".tiff", ".zarr"}:
        raise ValueError(f"output {str(path)!r}: expected a .tif/.tiff (GeoTIFF) or .zarr path")
    opts = EmbedOptions.build(options, **overrides)
    outputs.check_output(path, rasterfile.source_paths(source), overwrite)
    outputs.remove_stale_partials(path.parent, path.name)  # left by a killed earlier run
    try:
        with warnings.catch_warnings():
            # rasterio's "identity matrix" note: the geotransform warning below says it better
            warnings.filterwarnings("ignore", message="Dataset has no geotransform")
            check_sensor_given(source, sensor)
            job = opts.job(source, sensor, model)  # the scene opened once, lazily
            if suffix == ".zarr":
                _write_zarr(job, path, opts)
            else:
                _write_geotiff(job, path, opts, source)
    except UserError:
        raise
    except Exception as err:  # a full disk, as GDAL reports it: one line, the partial file gone
        msg = rasterfile.no_space_message(err, path)
        if msg:
            raise UserError(msg) from err
        raise
    return path


_MODEL_SHA: weakref.WeakKeyDictionary[Any, tuple[tuple[int, ...], str]] = (
    weakref.WeakKeyDictionary()
)


def model_sha256(model: Any) -> str:
    """Hex sha256 naming a model's weights: its checkpoint file's (when loaded from one), else
    one computed over its state dict (names and bytes, in key order); cached until a parameter
    changes in place."""
    source = model.checkpoint_source
    if getattr(source, "sha256", None):
        return str(source.sha256)
    import hashlib

    import torch  # lazy: `import smartiesviz.predict` (embed is eager) stays torch-free

    state = model.state_dict()
    versions = tuple(int(t._version) for t in state.values())
    cached = _MODEL_SHA.get(model)
    if cached is not None and cached[0] == versions:
        return cached[1]
    h = hashlib.sha256()
    for key in sorted(state):
        t = state[key].detach().cpu().contiguous()
        h.update(f"{key}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    _MODEL_SHA[model] = (versions, h.hexdigest())
    return _MODEL_SHA[model][1]


def provenance_tags(job: EmbeddingJob, opts: EmbedOptions) -> dict[str, str]:
    """What a written file records about how it was made (no time stamps: the same inputs give
    the same bytes): the job's attributes, ``token_norm``, ``model_sha256``, the package version
    and the value-deciding options as JSON."""
    import json

    from smartiesviz import __version__

    tags = {k: str(v) for k, v in job.attrs.items()}
    tags.update(
        token_norm=opts.token_norm,
        model_sha256=model_sha256(job.model),
        smartiesviz_version=__version__,
        embed_options=json.dumps(opts.provenance(), sort_keys=True),
    )
    return tags


def _write_zarr(job: EmbeddingJob, path: Path, opts: EmbedOptions) -> None:
    """Stream the embeddings into a Zarr array block by block: a template with the grid's
    coordinates is written first (its data a broadcast NaN view, no memory), then each tile's
    core is assigned to its region."""
    try:
        import zarr  # optional dependency
    except ImportError as err:
        raise ImportError(
            f"writing {str(path)!r} needs the 'zarr' package (pip install zarr); "
            "or give a .tif path for a GeoTIFF"
        ) from err

    ny, nx = job.grid.shape
    d = int(job.model.embed_dim)
    empty = np.broadcast_to(np.float32(np.nan), (d, ny, nx))
    template = job.wrap(empty, "embedding", ("feature", range(d)))
    template.attrs.update(provenance_tags(job, opts))
    chunks = (d, min(ny, 256), min(nx, 256))
    with outputs.atomic_path(path.with_suffix(".zarr")) as tmp:
        try:
            template.to_dataset(name="embedding").to_zarr(
                tmp, mode="w", encoding={"embedding": {"chunks": chunks}}
            )
            array = zarr.open_group(str(tmp), mode="r+")["embedding"]
            for windows, maps in stream_features(job, opts):
                for win, m in zip(windows, maps):
                    array[:, win.row : win.row + win.rows, win.col : win.col + win.cols] = _core(
                        m, win
                    )
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if path.exists():
            shutil.rmtree(path)


def _core(m: np.ndarray, win: TileWindow) -> np.ndarray:
    """The ``(D, rows, cols)`` part of a tile's ``(D, t, t)`` map that its window owns."""
    return m[:, win.margin : win.margin + win.rows, win.margin : win.margin + win.cols]


def _write_geotiff(job: EmbeddingJob, path: Path, opts: EmbedOptions, source: Any) -> None:
    """Write the embeddings block by block as tiles are encoded (bounded memory) into a tiled
    staging GeoTIFF, then copy it into a cloud-optimised GeoTIFF (:func:`rasterfile.write_cog`:
    overviews, compression) at the temporary name that is renamed to ``path``."""
    import rasterio  # heavy optional: only the GeoTIFF writer needs it
    from rasterio.windows import Window

    rasterfile.warn_if_not_georeferenced(job.crs, source, job.cube.rio.crs)
    ny, nx = job.grid.shape
    d = int(job.model.embed_dim)
    profile = rasterfile.geotiff_profile(
        ny, nx, d, "float32", job.crs, job.transform, nodata=float("nan")
    )
    with rasterfile.gdal_env(), outputs.atomic_path(path) as tmp:
        stage = tmp.with_name(tmp.name + ".stage.tif")  # removed as a stale partial if killed
        try:
            with rasterio.open(stage, "w", **profile) as dst:
                dst.update_tags(**provenance_tags(job, opts))
                dst.descriptions = tuple(f"feature_{i:04d}" for i in range(d))
                for row, col, block in placed_features(job, opts):
                    dst.write(block, window=Window(col, row, block.shape[2], block.shape[1]))
            rasterfile.write_cog(stage, tmp)
        except Exception as err:  # GDAL hides ENOSPC: look at the disk while the partial is there
            msg = rasterfile.no_space_message(err, path, check_free=True)
            if msg:
                raise UserError(msg) from err
            raise
        finally:
            stage.unlink(missing_ok=True)


def open_source(source: Any, sensor: str | None = None) -> Scene:
    """The :class:`~smartiesviz.data.scene.Scene` of what a user named (the command line, the
    map): a :class:`Scene` or cube as given, a bundled sample, a folder of band files or a
    multi-band raster (opened lazily), through :func:`~smartiesviz.data.scene.open_scene`; a
    file's sensor must be given (its file names alone may mislead).

    Raises:
        ValueError: a file without ``sensor``, or what :func:`open_scene` refuses.
    """
    check_sensor_given(source, sensor)
    return open_scene(source, sensor)


def check_sensor_given(scene: Any, sensor: str | None) -> None:
    """Refuse a file or folder named without its sensor (a bundled sample knows its own; a
    cube or :class:`Scene` carries its own)."""
    if not isinstance(scene, (str, os.PathLike)) or sensor is not None:
        return
    if not is_sample(str(scene)) and Path(scene).exists():
        raise ValueError(f"scene {str(scene)!r}: give its sensor; {data.readers.sensor_hint_for(scene)}")
