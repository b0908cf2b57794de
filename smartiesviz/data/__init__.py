"""Data: bundled samples, readers, preprocessing, tiling, torch datasets and display composites.

Cubes are ``xarray.DataArray`` ``(band, y, x)`` with registry band names, a CRS/transform readable
with rioxarray (``cube.rio.crs``) and attrs ``sensor``, ``units``, ``resolution``, ``resampling``,
``nodata``. Quick start::

    from smartiesviz import data
    cube = data.sentinel2_sample()                 # (13, 1942, 1931) L1C DN, EPSG:32618
    x = data.normalize(cube)                       # float32 model units, NaN-free
    tiles = data.tile(x, 224)                      # tiles with scene-CRS and WGS84 bounds
    rgb = data.true_color(cube)                    # (H, W, 3) uint8

Modules: ``samples`` (bundled imagery), ``readers`` (GeoTIFFs, folders, xarray), ``preprocess``
(release normalization), ``tiling``, ``datasets`` (torch; imported on first use), ``display``,
``bigearthnet`` (BigEarthNet-MM layout), ``cache`` (cache folder, safe extraction).
Names are loaded lazily so ``import smartiesviz.data`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from smartiesviz.lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    # samples
    "sentinel2_sample": "samples",
    "landsat8_sample": "samples",
    "bigearthnet_pairs": "samples",
    "bigearthnet_sample_dirs": "samples",
    "clear_cache": "samples",
    "BigEarthNetPair": "bigearthnet",
    "read_pair": "bigearthnet",
    "find_pairs": "bigearthnet",
    "label_names": "bigearthnet",
    "multi_hot": "bigearthnet",
    # readers
    "read_geotiff": "readers",
    "read_band_files": "readers",
    "from_xarray": "readers",
    "make_cube": "readers",
    # preprocess
    "normalize": "preprocess",
    "denormalize": "preprocess",
    "compute_stats": "preprocess",
    "release_stats": "preprocess",
    "list_release_stats": "preprocess",
    "has_released_stats": "preprocess",
    "normalize_array": "preprocess",
    "to_db": "preprocess",
    "harmonize_s2": "preprocess",
    "BandStats": "preprocess",
    "NodataWarning": "preprocess",
    # tiling
    "tile": "tiling",
    "stitch": "tiling",
    "iter_batches": "tiling",
    "Tile": "tiling",
    "TileSet": "tiling",
    "TileBatch": "tiling",
    # datasets (torch)
    "TileDataset": "datasets",
    "PairedDataset": "datasets",
    "BigEarthNetMM": "datasets",
    "simulate_rgb": "datasets",
    "collate": "datasets",
    # display
    "stretch": "display",
    "composite": "display",
    "true_color": "display",
    "false_color": "display",
    "sar_composite": "display",
    # cache
    "cache_dir": "cache",
    "CacheRepairWarning": "cache",
    "UnsafeArchiveError": "cache",
    # bands
    "band_spec": "bands",
    # scenes
    "Scene": "scene",
    "open_scene": "scene",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(
    __name__, _EXPORTS, ("samples", "readers", "preprocess", "tiling", "datasets", "display")
)


if TYPE_CHECKING:  # pragma: no cover
    from smartiesviz.data.bands import band_spec
    from smartiesviz.data.bigearthnet import (
        BigEarthNetPair,
        find_pairs,
        label_names,
        multi_hot,
        read_pair,
    )
    from smartiesviz.data.cache import CacheRepairWarning, UnsafeArchiveError, cache_dir
    from smartiesviz.data.datasets import (
        BigEarthNetMM,
        PairedDataset,
        TileDataset,
        collate,
        simulate_rgb,
    )
    from smartiesviz.data.display import composite, false_color, sar_composite, stretch, true_color
    from smartiesviz.data.preprocess import (
        BandStats,
        NodataWarning,
        compute_stats,
        denormalize,
        harmonize_s2,
        has_released_stats,
        list_release_stats,
        normalize,
        normalize_array,
        release_stats,
        to_db,
    )
    from smartiesviz.data.readers import from_xarray, make_cube, read_band_files, read_geotiff
    from smartiesviz.data.samples import (
        bigearthnet_pairs,
        bigearthnet_sample_dirs,
        clear_cache,
        landsat8_sample,
        sentinel2_sample,
    )
    from smartiesviz.data.tiling import Tile, TileBatch, TileSet, iter_batches, stitch, tile
