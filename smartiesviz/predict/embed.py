"""Patch embeddings of a whole scene, streamed tile by tile, as a georeferenced cube.

``embed(cube, sensor)`` cuts the scene into model-sized tiles on its patch grid, normalizes and
encodes them a batch at a time, and returns a ``(feature, y, x)`` cube whose grid is the patch grid:
the scene's transform scaled by the patch size, in the scene's CRS. ``embed_to_file`` writes the
same cube to a GeoTIFF window by window (or to Zarr), so a large scene never sits in memory whole.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from smartiesviz.data.bands import cube_sensor
from smartiesviz.data.scene import select_bands
from smartiesviz.data.tiling import PatchGrid, TileWindow, georeferenced, scatter
from smartiesviz.data.tiling import grid_transform as scaled_geo
from smartiesviz.data.tiling import iter_grid_batches as iter_batches

if TYPE_CHECKING:  # pragma: no cover
    import torch
    import xarray as xr

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
    import torch

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


def _num_heads(model: Any) -> int:
    blocks = getattr(model, "blocks", None)
    try:
        return int(blocks[0].attn.num_heads)
    except (TypeError, IndexError, AttributeError):
        return max(1, int(model.embed_dim) // 64)


def _available_ram() -> int:
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:  # pragma: no cover - psutil is usually present through jupyter
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def make_normalizer(cube: xr.DataArray, sensor: str, normalize: bool | Normalizer) -> Normalizer:
    """The function that turns a raw sub-cube into a ``(C, h, w)`` float32 array in model units.

    ``True`` applies :func:`smartiesviz.data.normalize` with statistics fixed once for the whole
    scene: the sensor's released statistics, or, for sensors without any (Landsat-8, ...),
    statistics computed once from a subsample of the whole scene, so every tile is scaled the same
    way. A cube whose ``units`` attribute is ``"model"`` is taken as already normalized. ``False``
    means the cube is already in model units; a callable is used as given.
    """
    if callable(normalize):
        return normalize
    if normalize is not True and normalize is not False:
        raise TypeError(f"normalize must be True, False or a callable; got {normalize!r}")
    if normalize is False or str(cube.attrs.get("units", "")).lower() == "model":
        return lambda sub: np.asarray(sub.values, dtype=np.float32)
    from smartiesviz import data

    stats = "release" if data.has_released_stats(sensor) else data.compute_stats(cube, sensor)

    def _normalize(sub: xr.DataArray) -> np.ndarray:
        # no-data pixels are filled with 0 (the band mean); counted by the data module
        out = data.normalize(sub, sensor, stats=stats, warn=False)
        return np.asarray(out.values, dtype=np.float32)

    return _normalize


class EmbeddingJob:
    """A prepared embedding run: the scene, its patch grid, the model and the batches.

    Args:
        cube: ``(band, y, x)`` scene with registry band names and a CRS (rioxarray).
        sensor: registry sensor name (default: ``cube.attrs["sensor"]``).
        model: a SmartiesMAE, a checkpoint path, or ``None`` for the demo model.
        bands: the cube's bands to use (default all that the model can tokenize).
        batch_size: tiles per forward pass, or ``"auto"`` (:func:`auto_batch_size`).
        tile_size: tile side in pixels (default ``model.img_size``).
        overlap: pixels of context shared by neighbouring tiles (multiple of 2 × patch size).
        normalize: see :func:`make_normalizer`.
        device: run the model there (default: where its parameters are).
    """

    def __init__(
        self,
        cube: xr.DataArray,
        sensor: str | None = None,
        model: Any = None,
        bands: Sequence[str] | None = None,
        batch_size: int | str = "auto",
        tile_size: int | None = None,
        overlap: int = 0,
        normalize: bool | Normalizer = True,
        device: str | torch.device | None = None,
    ) -> None:
        import torch

        # torch-importing: kept local so `import smartiesviz.predict` (and the CLI) stay light
        from smartiesviz.models.resolve import model_device, model_img_size, resolve_model

        if "band" not in cube.dims or cube.ndim != 3:
            raise ValueError(f"expected a (band, y, x) cube; got dims {cube.dims}")
        self.sensor = cube_sensor(cube, sensor)
        self.model = resolve_model(model)
        if device is not None:
            self.model = self.model.to(device)
        self.device = torch.device(device) if device is not None else model_device(self.model)
        self.cube, self.band_specs = select_bands(cube, self.sensor, bands)
        self.patch_size = int(self.model.patch_size)
        self.tile_size = int(tile_size or model_img_size(self.model))
        self.grid = PatchGrid(
            cube.sizes["y"], cube.sizes["x"], self.patch_size, self.tile_size, overlap
        )
        n_bands = len(self.band_specs)
        if batch_size == "auto":
            batch_size = auto_batch_size(self.model, self.tile_size, n_bands, self.device)
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int or 'auto'; got {batch_size!r}")
        self.batch_size = batch_size
        self.normalizer = make_normalizer(self.cube, self.sensor, normalize)
        self.crs, self.transform = scaled_geo(cube, self.patch_size)

    @property
    def windows(self) -> list[TileWindow]:
        return self.grid.windows()

    def batches(
        self, progress: bool = True, desc: str = "embed"
    ) -> Iterator[tuple[list[TileWindow], torch.Tensor]]:
        """Yield ``(windows, x)`` with ``x`` a ``(B, C, T, T)`` tensor on the model's device."""
        import torch
        from tqdm.auto import tqdm

        windows = self.windows
        with tqdm(total=len(windows), unit="tile", desc=desc, disable=not progress) as bar:
            for chunk, x in iter_batches(
                self.cube, self.grid, self.batch_size, self.normalizer, windows
            ):
                yield chunk, torch.from_numpy(x).to(self.device)
                bar.update(len(chunk))

    def feature_maps(self, progress: bool = True) -> Iterator[tuple[list[TileWindow], np.ndarray]]:
        """Yield ``(windows, maps)``, ``maps`` a float32 ``(B, D, t, t)`` array of patch features."""
        import torch

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


def embed(
    cube: xr.DataArray,
    sensor: str | None = None,
    model: Any = None,
    bands: Sequence[str] | None = None,
    batch_size: int | str = "auto",
    tile_size: int | None = None,
    overlap: int = 0,
    normalize: bool | Normalizer = True,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> xr.DataArray:
    """Patch embeddings of a scene as a georeferenced ``(feature, y, x)`` cube.

    The scene (``H × W`` pixels) is cut into tiles of ``tile_size`` on its patch grid, each tile is
    normalized and encoded (a batch at a time, with a progress bar) and its patch tokens are placed
    on the grid. Edges are completed by mirroring.

    Args:
        cube: ``(band, y, x)`` scene in its native units (or model units with ``normalize=False``),
            band coordinate with registry band names, CRS readable by ``cube.rio.crs``.
        sensor: registry sensor name; default ``cube.attrs["sensor"]``.
        model: a SmartiesMAE, a checkpoint path, or ``None`` for the bundled demo model.
        bands: which of the cube's bands to feed (default: all the model can tokenize).
        batch_size: tiles per forward pass, or ``"auto"``.
        tile_size: tile side in pixels, a multiple of the patch size (default ``model.img_size``).
        overlap: context pixels shared by neighbouring tiles (a multiple of 2 × patch size).
        normalize: ``True`` (the data module's preprocessing), ``False`` or a callable.
        device: run there (default where the model is).
        progress: show a tqdm progress bar.

    Returns:
        float32 DataArray ``(feature, y, x)`` of shape ``(D, ceil(H/S), ceil(W/S))`` whose
        transform is the scene's scaled by the patch size ``S`` and whose CRS is the scene's.
    """
    job = EmbeddingJob(
        cube, sensor, model, bands, batch_size, tile_size, overlap, normalize, device
    )
    ny, nx = job.grid.shape
    out = np.empty((int(job.model.embed_dim), ny, nx), dtype=np.float32)
    for windows, maps in job.feature_maps(progress):
        scatter(out, windows, maps)
    return job.wrap(out, "embedding", ("feature", range(out.shape[0])))


def embed_to_file(
    cube: xr.DataArray,
    out: str | os.PathLike,
    sensor: str | None = None,
    model: Any = None,
    bands: Sequence[str] | None = None,
    batch_size: int | str = "auto",
    tile_size: int | None = None,
    overlap: int = 0,
    normalize: bool | Normalizer = True,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> Path:
    """Embed a scene straight into a file: GeoTIFF (``.tif``/``.tiff``) or Zarr (``.zarr``).

    GeoTIFFs are written window by window as tiles are encoded, so memory stays bounded by one
    batch; Zarr needs the ``zarr`` package. Arguments as in :func:`embed`.

    Returns:
        The path written.
    """
    path = Path(out)
    suffix = path.suffix.lower()
    if suffix not in {".tif", ".tiff", ".zarr"}:
        raise ValueError(f"output {str(path)!r}: expected a .tif/.tiff (GeoTIFF) or .zarr path")
    if suffix == ".zarr":
        try:
            import zarr  # noqa: F401
        except ImportError as err:
            raise ImportError(
                f"writing {str(path)!r} needs the 'zarr' package (pip install zarr); "
                "or give a .tif path for a GeoTIFF"
            ) from err
        da = embed(cube, sensor, model, bands, batch_size, tile_size, overlap, normalize, device,
                   progress)  # fmt: skip
        da.to_dataset(name="embedding").to_zarr(path, mode="w")
        return path

    import rasterio
    from rasterio.windows import Window

    job = EmbeddingJob(
        cube, sensor, model, bands, batch_size, tile_size, overlap, normalize, device
    )
    ny, nx = job.grid.shape
    profile = {
        "driver": "GTiff",
        "width": nx,
        "height": ny,
        "count": int(job.model.embed_dim),
        "dtype": "float32",
        "crs": job.crs,
        "transform": job.transform,
        "interleave": "band",
        "BIGTIFF": "IF_SAFER",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", **profile) as dst:
        dst.update_tags(**{k: str(v) for k, v in job.attrs.items()})
        for windows, maps in job.feature_maps(progress):
            for win, m in zip(windows, maps):
                core = m[:, win.margin : win.margin + win.rows, win.margin : win.margin + win.cols]
                dst.write(core, window=Window(win.col, win.row, win.cols, win.rows))
    return path
