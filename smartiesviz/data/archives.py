"""The user's own archives: pair lists and image lists, read entry by entry and checked up front.

Layouts (the SMARTIES release's, detected per entry):

* a **pair list**: a text file with one ``<a> <b>`` pair of names per line (blank lines and ``#``
  comments skipped), each name relative to its root folder (``root_a``/``root_b``);
* an **entry** is either one multi-band GeoTIFF (fMoW-style, ``<root>/<name>``) or a
  BigEarthNet-v1 band folder ``<root>/<name>/`` holding ``<name>_B04.tif``-style files (one band
  per file, resampled to the finest band's grid);
* ``list: bundled:bigearthnet`` names the bundled BigEarthNet-MM examples (same band folders);
* an **image list**: a text file with one name per line, or a glob pattern relative to ``root``.

:func:`validate_entries` opens every entry's header (no pixels) before training and reports missing
or unreadable files, band counts that do not match the sensor and pairs whose footprints do not
overlap (compared in WGS84, so each entry may have its own CRS). :class:`ArchivePairs` is the torch
dataset over the valid entries; items are normalized with the given statistics and co-registered
(``b`` resampled onto ``a``'s pixel grid when the two differ).
"""

from __future__ import annotations

import glob
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import xarray as xr
from affine import Affine

from smartiesviz.data.bands import resolve_sensor
from smartiesviz.data.bigearthnet import find_pairs
from smartiesviz.data.preprocess import StatsArg, has_released_stats, normalize, normalize_array
from smartiesviz.data.readers import list_raster_files, make_cube, read_band_files, read_geotiff
from smartiesviz.data.samples import bigearthnet_sample_dirs
from smartiesviz.data.shards import RawSample, ShardReader, write_shards
from smartiesviz.data.transforms import paired_augment
from smartiesviz.errors import UserError
from smartiesviz.outputs import check_input_file

Layout = Literal["geotiff", "band_folder"]
BUNDLED_PAIRS = "bundled:bigearthnet"  # a pairs source over the bundled BigEarthNet examples
OnBad = Literal["error", "skip"]
MAX_NAMED = 5  # offenders named in a validation message


@dataclass(frozen=True)
class Entry:
    """One sample of an archive: ``a`` (and ``b`` for pairs) as paths, with the list line."""

    line: int
    a: Path
    b: Path | None = None


@dataclass
class Problem:
    """An entry that failed validation, and why."""

    entry: Entry
    reason: str

    def __str__(self) -> str:
        paths = f"{self.entry.a}" + (f" {self.entry.b}" if self.entry.b is not None else "")
        return f"line {self.entry.line}: {paths}: {self.reason}"


@dataclass
class Validation:
    """Result of :func:`validate_entries`: the usable entries and the problems found."""

    source: str
    good: list[Entry] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def summary(self) -> str:
        """``N of M entries of <source> are unusable (reasons with counts); first: ...``."""
        total = len(self.good) + len(self.problems)
        kinds: dict[str, int] = {}
        for p in self.problems:
            key = p.reason.split(":")[0]
            kinds[key] = kinds.get(key, 0) + 1
        counts = ", ".join(f"{n} {k}" for k, n in kinds.items())
        first = "; ".join(str(p) for p in self.problems[:MAX_NAMED])
        return f"{len(self.problems)} of {total} entries of {self.source} are unusable ({counts}); first: {first}"


# ----------------------------------------------------------------------------- lists
def _list_lines(path: Path, what: str, expected: str) -> list[str]:
    """The lines of a list file; a missing, special (FIFO, device), folder or binary file is
    refused with one line naming it."""
    if not path.exists():
        raise FileNotFoundError(f"{what} {str(path)!r} does not exist")
    check_input_file(path, what)
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise UserError(f"{what} {str(path)!r} is not a text file (byte {err.start} is not UTF-8); "
                        f"expected {expected} per line") from None  # fmt: skip


def read_pair_list(path: str | Path, root_a: str | Path, root_b: str | Path) -> list[Entry]:
    """Entries of a release-style pair list (``<a> <b>`` per line; commas or tabs also accepted).

    Raises:
        FileNotFoundError: the list does not exist. ValueError: a line without exactly two names.
    """
    path = Path(path)
    entries = []
    for n, raw in enumerate(_list_lines(path, "pair list", "one '<a> <b>' pair of names"), 1):
        line = raw.split("#", 1)[0].replace(",", " ").strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2:
            raise ValueError(f"{path}:{n}: expected '<a> <b>' (two names); got {raw!r}")
        entries.append(Entry(n, Path(root_a) / parts[0], Path(root_b) / parts[1]))
    if not entries:
        raise ValueError(f"pair list {str(path)!r} holds no pairs")
    return entries


def read_image_list(spec: str | Path, root: str | Path) -> list[Entry]:
    """Entries of an image list file (one name per line) or of a glob pattern under ``root``."""
    root = Path(root)
    text = str(spec)
    if any(ch in text for ch in "*?["):
        names = sorted(glob.glob(text, root_dir=root))
        if not names:
            raise FileNotFoundError(f"no file under {str(root)!r} matches {text!r}")
        return [Entry(i + 1, root / n) for i, n in enumerate(names)]
    lines = [(n, ln.split("#", 1)[0].strip())
             for n, ln in enumerate(_list_lines(Path(spec), "image list", "one image name"), 1)]  # fmt: skip
    return [Entry(n, root / name) for n, name in lines if name]


def bundled_pairs() -> list[Entry]:
    """The bundled BigEarthNet-MM examples as pair-list entries (``list: bundled:bigearthnet``):
    the same v1 band folders a full archive has, read through the same path."""
    s2_root, s1_root = bigearthnet_sample_dirs()
    return [Entry(i + 1, s2_root / a, s1_root / b) for i, (a, b) in enumerate(find_pairs(s2_root, s1_root))]


# ----------------------------------------------------------------------------- entries
def entry_layout(path: Path) -> Layout:
    """``geotiff`` for a file, ``band_folder`` for a folder (BigEarthNet-v1).

    Raises:
        FileNotFoundError: neither exists.
    """
    if path.is_file():
        return "geotiff"
    if path.is_dir():
        return "band_folder"
    raise FileNotFoundError(f"missing: {path}")


def open_entry(path: Path, sensor: str) -> xr.DataArray:
    """Read one entry (either layout) as a ``(C, H, W)`` float32 cube in input units."""
    if entry_layout(path) == "geotiff":
        return read_geotiff(path, sensor)
    files = list_raster_files(path)
    if not files:
        raise ValueError(f"band folder {str(path)!r} holds no raster files")
    units = "dB" if sensor.startswith("sentinel1") else None  # BigEarthNet-v1 stores S1 in dB
    cube = read_band_files(files, sensor, units=units)
    cube.attrs.update(name=path.name, source=str(path))
    return cube


def _header(path: Path, sensor: str) -> tuple[int, Any, tuple[float, float, float, float]]:
    """``(band count, crs, WGS84 bounds)`` from the raster header(s) only (no pixels)."""
    import rasterio  # heavy GDAL binding: loaded when validation runs
    from rasterio.warp import transform_bounds

    files = [path] if entry_layout(path) == "geotiff" else list_raster_files(path)
    if not files:
        raise ValueError(f"unreadable: band folder {path} holds no raster files")
    count, crs, bounds = 0, None, None
    for f in files:
        try:
            with rasterio.open(f) as src:
                count += src.count
                crs, bounds = src.crs, src.bounds
        except rasterio.errors.RasterioIOError as err:
            raise ValueError(f"unreadable: {f}: {err}") from err
    geo = transform_bounds(crs, "EPSG:4326", *bounds, densify_pts=11) if crs else tuple(bounds)
    return count, crs, tuple(float(v) for v in geo)  # type: ignore[return-value]


def _check_count(count: int, sensor: str, path: Path) -> None:
    expected = len(resolve_sensor(sensor).bands)
    ok = count == expected or (entry_layout(path) == "band_folder" and 0 < count <= expected)
    if not ok:
        raise ValueError(f"band count: {path.name} has {count} bands, sensor {sensor} has {expected}")


def _overlap(a: Sequence[float], b: Sequence[float]) -> bool:
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


def validate_entries(
    entries: Sequence[Entry], sensor_a: str, sensor_b: str | None, source: str
) -> Validation:
    """Check every entry's files, band counts and (pairs) footprint overlap; see the module doc."""
    report = Validation(source)
    for e in entries:
        try:
            count_a, crs_a, geo_a = _header(e.a, sensor_a)
            _check_count(count_a, sensor_a, e.a)
            if e.b is not None and sensor_b is not None:
                count_b, crs_b, geo_b = _header(e.b, sensor_b)
                _check_count(count_b, sensor_b, e.b)
                if crs_a is not None and crs_b is not None and not _overlap(geo_a, geo_b):
                    raise ValueError(f"no overlap: footprints {geo_a} and {geo_b} (WGS84) are disjoint")
        except (FileNotFoundError, ValueError) as err:
            report.problems.append(Problem(e, str(err)))
            continue
        report.good.append(e)
    return report


def apply_validation(report: Validation, on_bad: OnBad, run_dir: Path | None) -> list[Entry]:
    """The usable entries; raise (``on_bad='error'``) or list the skipped ones in
    ``<run_dir>/skipped-entries.txt`` (``'skip'``) when there are problems.

    Raises:
        ValueError: problems with ``on_bad='error'``, or no usable entry at all.
    """
    if report.problems:
        if on_bad == "error":
            raise ValueError(report.summary() + " (set data.on_bad=skip to train without them)")
        if run_dir is not None:
            run_dir.mkdir(parents=True, exist_ok=True)
            with open(run_dir / "skipped-entries.txt", "a") as f:
                f.writelines(f"{report.source}: {p}\n" for p in report.problems)
    if not report.good:
        raise ValueError(f"no usable entries in {report.source}: {report.summary()}")
    return report.good


# ----------------------------------------------------------------------------- dataset
def co_register(b: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """``b`` ``(C, h, w)`` resampled onto ``a``'s pixel grid ``shape`` (same footprint assumed)."""
    if tuple(b.shape[-2:]) == tuple(shape):
        return b
    return torch.nn.functional.interpolate(
        b[None], size=tuple(shape), mode="bilinear", align_corners=False, antialias=True
    )[0]


def raw_cube(values: np.ndarray, bands: Sequence[str], sensor: str, units: str | None) -> xr.DataArray:
    """Wrap stored input-unit ``(C, H, W)`` values as a cube (pixel grid only, no georeference)."""
    attrs = {"sensor": sensor, "units": units} if units else {"sensor": sensor}
    return make_cube(np.asarray(values, np.float32), Affine.identity(), None, list(bands), attrs)


def stored_model_units(
    values: np.ndarray, bands: Sequence[str], sensor: str, units: str | None, stats: StatsArg
) -> torch.Tensor:
    """Stored input-unit ``(C, H, W)`` values → model units, without building a cube when the
    statistics are known (the per-sample path of shards: xarray would cost 3x the rest)."""
    known = not isinstance(stats, str) or has_released_stats(sensor)
    if units == "linear" or not known:  # dB conversion / statistics from the data: the cube path
        return model_units(raw_cube(values, bands, sensor, units), sensor, stats)
    z = normalize_array(np.asarray(values, np.float32), list(bands), sensor, stats)
    return torch.from_numpy(np.ascontiguousarray(z, dtype=np.float32))


def model_units(cube: xr.DataArray, sensor: str, stats: StatsArg) -> torch.Tensor:
    """An input-unit cube → a model-unit ``(C, H, W)`` float32 tensor (NaN filled by the mean)."""
    out = normalize(cube, sensor, stats=stats, warn=False)
    return torch.from_numpy(np.ascontiguousarray(out.values, dtype=np.float32))


def stats_for(stats: Mapping[str, Any] | None, sensor: str) -> StatsArg:
    """The statistics of ``sensor`` from a ``data.stats`` table (``"auto"`` when absent)."""
    if stats and sensor in stats:
        return stats[sensor]
    return "auto"


class ArchivePairs(torch.utils.data.Dataset):
    """Pairs (or single images) of an archive as dataset items (``x_a``, ``bands_a``, ``sensor_a``,
    ``x_b``, ``bands_b``, ``sensor_b``, ``name``; see :mod:`smartiesviz.data.datasets`).

    Args:
        entries: validated entries (``b`` is None for single images).
        sensor_a, sensor_b: registry sensor names.
        output_size: side of the items' images.
        scale: paired random resized crop area range (``None``: whole image).
        stats: ``{sensor: {band: {p1, p99, mean, std}}}`` (``data.stats``), else released stats.
    """

    def __init__(
        self,
        entries: Sequence[Entry],
        sensor_a: str,
        sensor_b: str | None,
        output_size: int,
        scale: tuple[float, float] | None = (0.25, 1.0),
        stats: Mapping[str, Any] | None = None,
    ) -> None:
        self.entries, self.sensor_a, self.sensor_b = list(entries), sensor_a, sensor_b
        self.output_size, self.scale, self.stats = output_size, scale, stats

    def __len__(self) -> int:
        return len(self.entries)

    def read(self, index: int) -> tuple[xr.DataArray, xr.DataArray | None]:
        """The raw cubes (input units) of entry ``index``."""
        e = self.entries[index]
        a = open_entry(e.a, self.sensor_a)
        b = open_entry(e.b, self.sensor_b) if e.b is not None and self.sensor_b else None
        return a, b

    def tensors(
        self, a: xr.DataArray, b: xr.DataArray | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Model-unit tensors of raw cubes, ``b`` on ``a``'s grid."""
        xa = model_units(a, self.sensor_a, stats_for(self.stats, self.sensor_a))
        if b is None:
            return xa, None
        sb = str(self.sensor_b)
        xb = model_units(b, sb, stats_for(self.stats, sb))
        return xa, co_register(xb, tuple(xa.shape[-2:]))

    def item(self, index: int, generator: torch.Generator | None = None) -> dict[str, Any]:
        """Item ``index`` with the augmentation drawn from ``generator``."""
        a, b = self.read(index)
        xa, xb = self.tensors(a, b)
        xs, info = paired_augment([xa] if xb is None else [xa, xb], self.output_size, self.scale,
                                  generator=generator)  # fmt: skip
        item: dict[str, Any] = {"x_a": xs[0], "bands_a": _specs(self.sensor_a, a), "sensor_a": self.sensor_a,
                                "name": str(self.entries[index].a), "index": index, **info}  # fmt: skip
        if b is not None:
            item.update(x_b=xs[1], bands_b=_specs(str(self.sensor_b), b), sensor_b=self.sensor_b,
                        simulated_b=False)  # fmt: skip
        return item

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.item(index)


def _bands(cube: xr.DataArray) -> list[str]:
    return [str(b) for b in cube["band"].values]


def _specs(sensor: str, cube: xr.DataArray) -> list[str]:
    return [f"{sensor}/{b}" for b in _bands(cube)]


# ----------------------------------------------------------------------------- whole archives
def source_entries(
    src: Any, on_bad: OnBad = "error", run_dir: Path | None = None
) -> tuple[list[Entry], str, str | None]:
    """Validated entries and sensors of a ``pairs`` or ``images`` source config (skipped entries
    listed in ``run_dir`` with ``on_bad='skip'``)."""
    if src.kind == "pairs" and src.list == BUNDLED_PAIRS:
        entries, sensor_a, sensor_b = bundled_pairs(), "sentinel2-l2a", "sentinel1-grd"
    elif src.kind == "pairs":
        entries = read_pair_list(src.list, src.root_a, src.root_b)
        sensor_a, sensor_b = src.sensor_a, src.sensor_b
    elif src.kind == "images":
        entries = read_image_list(src.list, src.root)
        sensor_a, sensor_b = src.sensor, None
    else:
        raise ValueError(f"source kind {src.kind!r} has no list of files; use pairs, images or shards")
    report = validate_entries(entries, sensor_a, sensor_b, f"{src.kind} list {src.list}")
    return apply_validation(report, on_bad, run_dir), sensor_a, sensor_b


def _meta(cube: xr.DataArray, side: str) -> dict[str, Any]:
    return {f"bands_{side}": _bands(cube), f"units_{side}": cube.attrs.get("units"),
            f"source_{side}": str(cube.attrs.get("source", ""))}  # fmt: skip


def _geography(cube: xr.DataArray) -> dict[str, Any]:
    try:
        crs, transform = cube.rio.crs, cube.rio.transform()
    except Exception:  # noqa: BLE001 - a cube without georeference
        return {"crs": None, "transform": None, "bounds": None}
    return {"crs": str(crs) if crs else None, "transform": list(transform)[:6],
            "bounds": [float(v) for v in cube.rio.bounds()]}  # fmt: skip


def iter_raw_samples(sources: Sequence[Any], on_bad: OnBad = "error") -> Any:
    """Every sample of ``pairs``/``images``/``shards`` sources (``data.sources`` entries) as a
    :class:`~smartiesviz.data.shards.RawSample` in input units, one at a time (bounded memory)."""
    for src in sources:
        if src.kind == "shards":
            yield from ShardReader(src.path, on_bad)
            continue
        entries, sensor_a, sensor_b = source_entries(src, on_bad)
        for e in entries:
            a = open_entry(e.a, sensor_a)
            meta = {"sensor_a": sensor_a, **_meta(a, "a"), **_geography(a)}
            b = None
            if e.b is not None and sensor_b:
                cube_b = open_entry(e.b, sensor_b)
                meta.update(sensor_b=sensor_b, **_meta(cube_b, "b"))
                b = np.asarray(cube_b.values, np.float32)
            yield RawSample(np.asarray(a.values, np.float32), meta, b)


def build_shards(sources: Sequence[Any], out: str | Path, shard_size: int = 1000) -> Path:
    """``smartiesviz shards build``: the sources' samples as tar shards (returns ``index.json``)."""
    return write_shards(iter_raw_samples(sources), out, shard_size)
