"""Torch datasets for pretraining and evaluation, and the collate function the training loop uses.

Every dataset returns a ``dict`` per item:

==================  ==========================================================================
``x_a``             ``(C_a, H, W)`` float32 tensor in model units (normalized, NaN-free)
``bands_a``         the model's ``bands`` argument for ``x_a``: a sensor name (all its bands in
                    registry order, e.g. ``"sentinel2-l2a"``) or ``["sensor/band", ...]``
``sensor_a``        registry sensor name
``x_b``             paired datasets only: ``(C_b, H, W)``, same pixels as ``x_a`` (co-registered)
``bands_b``         paired datasets only, as ``bands_a``
``sensor_b``        paired datasets only
``simulated_b``     paired datasets only: ``True`` when ``x_b`` was *simulated* from ``x_a``
                    (e.g. RGB from Sentinel-2 B04/B03/B02), not observed by a second sensor
``labels``          BigEarthNet only: ``(K,)`` float32 multi-hot (19 or 43 classes)
``label_names``     BigEarthNet only: the patch's label strings
``name``            a string naming the item (patch or ``scene[row,col]``)
``index``           int, the item's index
``window``          ``(row, col, height, width)``: the source window in the scene's pixels
``crop``            ``(top, left, height, width)``: the random resized crop inside that window
                    (the whole window without augmentation)
``flip``/``rot90``  ``(flip_h, flip_v)`` and the number of 90° rotations applied
``bounds``          ``(left, bottom, right, top)`` of the window in the scene CRS (or ``None``)
==================  ==========================================================================

:func:`collate` stacks ``x_a``/``x_b``/``labels`` into ``(B, ...)`` tensors, keeps ``bands_a``/
``bands_b``/``sensor_*`` as one value (a batch must share its band sets: use one dataset per sensor
pair, or a batch sampler grouping by sensor) and turns the other keys into lists, so a batch feeds
``model(batch["x_a"], batch["bands_a"], batch["x_b"], batch["bands_b"])`` directly.

Datasets:

* :class:`TileDataset`: tiles of one scene (single sensor), optional flips/rotations.
* :class:`PairedDataset`: co-registered pairs (BigEarthNet S2/S1 samples, two rasters on the same
  grid, or a scene with a simulated RGB partner), with *paired* random resized crops
  (scale 0.25–1, aspect 3/4–4/3, resized bilinearly to ``output_size``) and *paired* flips and
  90° rotations: both images always get the same geometric transform.
* :class:`BigEarthNetMM`: the BigEarthNet-MM archive read from folders (``S2/`` and ``S1/`` roots,
  the layout of the full archive and of :func:`~smartiesviz.data.bigearthnet_sample_dirs`).

Randomness: with ``seed=None`` the global torch RNG is used (``DataLoader`` seeds it per worker);
with an int ``seed`` item ``i`` of epoch ``e`` (``dataset.set_epoch(e)``) is reproducible.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr
from torch.utils.data import Dataset

from smartiesviz.data.bands import band_spec
from smartiesviz.data.bigearthnet import find_pairs, label_names, multi_hot, read_pair
from smartiesviz.data.preprocess import StatsArg, normalize
from smartiesviz.data.samples import bigearthnet_pairs, bigearthnet_sample_dirs
from smartiesviz.data.tiling import _starts
from smartiesviz.data.transforms import (  # noqa: F401 - sample_crop/RGB_BANDS_FROM_S2 re-exported
    RGB_BANDS_FROM_S2,
    paired_augment,
    sample_crop,
    simulate_rgb,
)


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def _names(cube: xr.DataArray) -> list[str]:
    return [str(b) for b in cube["band"].values]


def _prepare(
    cube: xr.DataArray, stats: StatsArg, sensor: str | None = None
) -> tuple[np.ndarray, str, Any]:
    """Normalize once; return ``(values (C,H,W) float32, sensor, bands spec)``."""
    if cube.attrs.get("units") == "model":
        values = np.asarray(cube.values, dtype=np.float32)
        sensor = sensor or cube.attrs["sensor"]
    else:
        norm = normalize(cube, sensor, stats=stats)
        values = np.asarray(norm.values, dtype=np.float32)
        sensor = norm.attrs["sensor"]
    return values, sensor, band_spec(sensor, _names(cube))


def _bounds(cube: xr.DataArray, row: int, col: int, h: int, w: int) -> tuple[float, ...] | None:
    try:
        t = cube.rio.transform()
    except Exception:
        return None
    left, top = t.c + col * t.a, t.f + row * t.e
    right, bottom = left + w * t.a, top + h * t.e
    return (min(left, right), min(top, bottom), max(left, right), max(top, bottom))


def _windows(
    h: int, w: int, size: int | None, stride: int | None
) -> list[tuple[int, int, int, int]]:
    if size is None:
        return [(0, 0, h, w)]
    stride = stride or size
    return [
        (r, c, size, size)
        for r in _starts(h, size, stride, "shift")
        for c in _starts(w, size, stride, "shift")
    ]


class _Seeded(Dataset):
    seed: int | None = None
    epoch: int = 0

    def set_epoch(self, epoch: int) -> None:
        """Change the augmentation draws of a seeded dataset (call once per epoch)."""
        self.epoch = int(epoch)

    def _generator(self, index: int) -> torch.Generator | None:
        if self.seed is None:
            return None
        return torch.Generator().manual_seed(
            hash((self.seed, self.epoch, index)) & 0x7FFF_FFFF_FFFF
        )


# --------------------------------------------------------------------------------------------
# datasets
# --------------------------------------------------------------------------------------------
class TileDataset(_Seeded):
    """Tiles of one scene as single-sensor items (``x_a``, ``bands_a``; see the module docstring).

    Args:
        cube: ``(C, H, W)`` cube in input units (normalized here) or already in model units.
        size: tile side in pixels.
        stride: step between tiles (default ``size``); the last row/column is shifted inside.
        sensor: registry sensor name (default: ``cube.attrs["sensor"]``).
        stats: normalization statistics (see :func:`~smartiesviz.data.normalize`).
        augment: random flips and 90° rotations.
        seed: see the module docstring.
    """

    def __init__(
        self,
        cube: xr.DataArray,
        size: int,
        stride: int | None = None,
        sensor: str | None = None,
        stats: StatsArg = "auto",
        augment: bool = False,
        seed: int | None = None,
    ):
        self.values, self.sensor, self.bands = _prepare(cube, stats, sensor)
        self.cube = cube
        self.windows = _windows(cube.sizes["y"], cube.sizes["x"], size, stride)
        self.augment, self.seed = augment, seed
        self.name = str(cube.attrs.get("name", "scene"))

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        r, c, h, w = self.windows[index]
        x = torch.from_numpy(self.values[:, r : r + h, c : c + w].copy())
        info: dict[str, Any] = {"crop": (0, 0, h, w), "flip": (False, False), "rot90": 0}
        if self.augment:
            (x,), info = paired_augment([x], None, None, generator=self._generator(index))
        return {
            "x_a": x,
            "bands_a": self.bands,
            "sensor_a": self.sensor,
            "name": f"{self.name}[{r},{c}]",
            "index": index,
            "window": (r, c, h, w),
            "bounds": _bounds(self.cube, r, c, h, w),
            **info,
        }


class PairedDataset(_Seeded):
    """Co-registered image pairs for cross-sensor pretraining (see the module docstring).

    Args:
        pairs: ``(a, b)`` cubes; each pair shares its pixel grid (``H × W``); input units
            (normalized here with ``stats_a``/``stats_b``) or model units.
        output_size: side of the items' images (default 224, the paper's input).
        scale: random resized crop area range (release: 0.25–1); ``None`` disables the crop.
        ratio: crop aspect ratio range.
        flip, rotate: paired random flips / 90° rotations.
        augment: ``False`` turns all augmentation off (whole window, resized to ``output_size``).
        stats_a, stats_b: normalization statistics for each side.
        names: a name per pair (default ``a.attrs["name"]`` or ``"pair{i}"``).
        labels: optional per-pair label strings (kept as ``label_names``).
        simulated_b: mark every ``b`` as simulated (set automatically for :func:`simulate_rgb`).
        seed: see the module docstring.
    """

    def __init__(
        self,
        pairs: Sequence[tuple[xr.DataArray, xr.DataArray]],
        output_size: int | None = 224,
        scale: tuple[float, float] | None = (0.25, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        flip: bool = True,
        rotate: bool = True,
        augment: bool = True,
        stats_a: StatsArg = "auto",
        stats_b: StatsArg = "auto",
        names: Sequence[str] | None = None,
        labels: Sequence[Sequence[str]] | None = None,
        simulated_b: bool | None = None,
        seed: int | None = None,
        windows: Sequence[tuple[int, int, int, int]] | None = None,
    ):
        if not pairs:
            raise ValueError("PairedDataset needs at least one (a, b) pair")
        self._a, self._b, self._cubes = [], [], []
        for i, (a, b) in enumerate(pairs):
            if a.shape[1:] != b.shape[1:]:
                raise ValueError(
                    f"pair {i}: a is {a.shape[1]}×{a.shape[2]} px and b {b.shape[1]}×{b.shape[2]}; paired "
                    "images must share their pixel grid (resample one onto the other first)"
                )
            _check_same_grid(a, b, i)
            self._a.append(_prepare(a, stats_a))
            self._b.append(_prepare(b, stats_b))
            self._cubes.append(a)
        self.windows = (
            list(windows)
            if windows is not None
            else [(i, 0, 0, *p[0].shape[1:]) for i, p in enumerate(pairs)]
        )
        self.output_size, self.scale, self.ratio = output_size, scale, ratio
        self.flip, self.rotate, self.augment, self.seed = flip, rotate, augment, seed
        self.names = (
            list(names)
            if names is not None
            else [str(a.attrs.get("name", f"pair{i}")) for i, (a, _) in enumerate(pairs)]
        )
        self.labels = [list(lbl) for lbl in labels] if labels is not None else None
        if simulated_b is None:
            simulated_b = any(bool(b.attrs.get("simulated", False)) for _, b in pairs)
        self.simulated_b = bool(simulated_b)

    @classmethod
    def from_bigearthnet(cls, pairs: Sequence[Any] | None = None, **kwargs: Any) -> PairedDataset:
        """Sentinel-2 L2A (``a``) / Sentinel-1 (``b``) pairs, by default the 6 bundled samples
        (:func:`~smartiesviz.data.bigearthnet_pairs`). Items also carry ``label_names``."""
        if pairs is None:
            pairs = bigearthnet_pairs()
        kwargs.setdefault("names", [p.name for p in pairs])
        kwargs.setdefault("labels", [p.labels for p in pairs])
        return cls([(p.s2, p.s1) for p in pairs], **kwargs)

    @classmethod
    def from_rasters(
        cls,
        a: xr.DataArray,
        b: xr.DataArray,
        tile_size: int,
        stride: int | None = None,
        **kwargs: Any,
    ) -> PairedDataset:
        """Windows of ``tile_size`` px (every ``stride`` px) of two rasters on the same grid."""
        if a.shape[1:] != b.shape[1:]:
            raise ValueError(
                f"a is {a.shape[1]}×{a.shape[2]} px and b {b.shape[1]}×{b.shape[2]}; they must share one grid"
            )
        wins = [(0, *w) for w in _windows(a.sizes["y"], a.sizes["x"], tile_size, stride)]
        return cls([(a, b)], windows=wins, **kwargs)

    @classmethod
    def with_simulated_rgb(
        cls,
        cubes: Sequence[xr.DataArray],
        tile_size: int | None = None,
        max_dn: float = 3000.0,
        **kwargs: Any,
    ) -> PairedDataset:
        """Sentinel-2 cubes (``a``) paired with RGB **simulated** from their B04/B03/B02 (``b``,
        ``simulated_b=True``); with ``tile_size`` each cube is cut into windows."""
        pairs = [(c, simulate_rgb(c, max_dn)) for c in cubes]
        wins = None
        if tile_size is not None:
            wins = [
                (i, *w)
                for i, c in enumerate(cubes)
                for w in _windows(c.sizes["y"], c.sizes["x"], tile_size, None)
            ]
        return cls(pairs, windows=wins, simulated_b=True, **kwargs)

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.item(index, self._generator(index))

    def item(self, index: int, generator: torch.Generator | None) -> dict[str, Any]:
        """Item ``index`` with its augmentation drawn from ``generator`` (training draws its
        samples this way, from a generator seeded per global sample)."""
        p, r, c, h, w = self.windows[index]
        va, sa, ba = self._a[p]
        vb, sb, bb = self._b[p]
        xa = torch.from_numpy(va[:, r : r + h, c : c + w].copy())
        xb = torch.from_numpy(vb[:, r : r + h, c : c + w].copy())
        if self.augment:
            (xa, xb), info = paired_augment(
                [xa, xb],
                self.output_size,
                self.scale,
                self.ratio,
                self.flip,
                self.rotate,
                generator,
            )
        else:
            (xa, xb), info = _resize_pair(xa, xb, self.output_size)
        item = {
            **_pair_item(xa, ba, sa, xb, bb, sb, self.simulated_b),
            "name": self.names[p]
            if len(self.windows) == len(self.names)
            else f"{self.names[p]}[{r},{c}]",
            "index": index,
            "window": (r, c, h, w),
            "bounds": _bounds(self._cubes[p], r, c, h, w),
            **info,
        }
        if self.labels is not None:
            item["label_names"] = self.labels[p]
        return item


def _resize_pair(
    xa: torch.Tensor, xb: torch.Tensor, size: int | None
) -> tuple[list[torch.Tensor], dict[str, Any]]:
    """The pair resized to ``size`` without random augmentation (evaluation items)."""
    return paired_augment([xa, xb], size, None, flip=False, rotate=False)


def _pair_item(
    xa: torch.Tensor,
    bands_a: list[str],
    sensor_a: str,
    xb: torch.Tensor,
    bands_b: list[str],
    sensor_b: str,
    simulated_b: bool,
) -> dict[str, Any]:
    """The keys every paired item carries (``collate`` batches them)."""
    return {
        "x_a": xa,
        "bands_a": bands_a,
        "sensor_a": sensor_a,
        "x_b": xb,
        "bands_b": bands_b,
        "sensor_b": sensor_b,
        "simulated_b": simulated_b,
    }


def _check_same_grid(a: xr.DataArray, b: xr.DataArray, i: int) -> None:
    try:
        ta, tb = a.rio.transform(), b.rio.transform()
        ca, cb = a.rio.crs, b.rio.crs
    except Exception:
        return
    if ca is not None and cb is not None and ca != cb:
        raise ValueError(
            f"pair {i}: a is in {ca} and b in {cb}; reproject one onto the other's grid"
        )
    if not np.allclose(tuple(ta)[:6], tuple(tb)[:6], atol=1e-6 * max(1.0, abs(ta.c))):
        raise ValueError(
            f"pair {i}: a and b have different transforms ({ta} vs {tb}); they must share one grid"
        )


class BigEarthNetMM(_Seeded):
    """BigEarthNet-MM pairs read from folders: ``x_a`` Sentinel-2 L2A (12 bands, bilinear to 10 m),
    ``x_b`` Sentinel-1 (VV, VH dB), ``labels`` multi-hot.

    Args:
        s2_root, s1_root: folders holding the S2 and S1 patch folders (BigEarthNet v1 layout).
        pairs: ``(s2_name, s1_name)`` pairs, or a text file with one ``s2_name,s1_name`` per line
            (default: every S1 patch under ``s1_root`` whose partner is under ``s2_root``, found
            from the S1 metadata; reads one JSON per patch, so pass a list for the full archive).
        nomenclature: 19 (the BigEarthNet-19 classes, default) or 43 labels.
        output_size: resize to this side (default: 120, the native 10 m grid).
        augment: paired random resized crops (``scale``), flips and rotations.
        scale: crop area range when augmenting.
        stats_s2, stats_s1: statistics (default: the release's BigEarthNetS2 / BigEarthNetS1).
        seed: see the module docstring.
    """

    def __init__(
        self,
        s2_root: str | Path,
        s1_root: str | Path,
        pairs: Sequence[tuple[str, str]] | str | Path | None = None,
        nomenclature: int = 19,
        output_size: int | None = None,
        augment: bool = False,
        scale: tuple[float, float] = (0.25, 1.0),
        stats_s2: StatsArg = "BigEarthNetS2",
        stats_s1: StatsArg = "BigEarthNetS1",
        seed: int | None = None,
    ):
        self.s2_root, self.s1_root = Path(s2_root), Path(s1_root)
        for root in (self.s2_root, self.s1_root):
            if not root.is_dir():
                raise FileNotFoundError(f"BigEarthNet folder {str(root)!r} does not exist")
        if pairs is None:
            self.pairs = find_pairs(self.s2_root, self.s1_root)
        elif isinstance(pairs, str | Path):
            self.pairs = _read_pair_list(Path(pairs))
        else:
            self.pairs = [tuple(p) for p in pairs]
        self.class_names = label_names(nomenclature)
        self.nomenclature = nomenclature
        self.output_size, self.augment, self.scale, self.seed = output_size, augment, scale, seed
        self.stats_s2, self.stats_s1 = stats_s2, stats_s1

    @classmethod
    def from_samples(cls, **kwargs: Any) -> BigEarthNetMM:
        """The 6 bundled example pairs, read through the same folder layout."""
        s2_root, s1_root = bigearthnet_sample_dirs()
        return cls(s2_root, s1_root, **kwargs)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        s2_name, s1_name = self.pairs[index]
        pair = read_pair(self.s2_root / s2_name, self.s1_root / s1_name)
        va, sa, ba = _prepare(pair.s2, self.stats_s2)
        vb, sb, bb = _prepare(pair.s1, self.stats_s1)
        xa, xb = torch.from_numpy(va), torch.from_numpy(vb)
        if self.augment:
            (xa, xb), info = paired_augment(
                [xa, xb], self.output_size, self.scale, generator=self._generator(index)
            )
        else:
            (xa, xb), info = _resize_pair(xa, xb, self.output_size)
        h, w = va.shape[1:]
        return {
            **_pair_item(xa, ba, sa, xb, bb, sb, simulated_b=False),
            "labels": torch.from_numpy(multi_hot(pair.labels, self.nomenclature)),
            "label_names": pair.labels,
            "name": s2_name,
            "s1_name": s1_name,
            "index": index,
            "window": (0, 0, h, w),
            "bounds": pair.bounds,
            **info,
        }


def _read_pair_list(path: Path) -> list[tuple[str, str]]:
    pairs = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = [p.strip() for p in line.replace("\t", ",").split(",") if p.strip()]
        if len(parts) != 2:
            raise ValueError(f"{path}:{n}: expected 's2_name,s1_name'; got {line!r}")
        pairs.append((parts[0], parts[1]))
    return pairs


_SHARED_KEYS = ("bands_a", "bands_b", "sensor_a", "sensor_b", "simulated_b")


def collate(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Batch dataset items for the training loop (see the module docstring).

    Returns:
        ``x_a`` ``(B, C_a, H, W)``, ``x_b`` ``(B, C_b, H, W)`` if present, ``labels`` ``(B, K)`` if
        present; ``bands_*``/``sensor_*``/``simulated_b`` as single values; lists for the rest.

    Raises:
        ValueError: the items do not share band sets or image sizes.
    """
    if not items:
        raise ValueError("collate got an empty batch")
    out: dict[str, Any] = {}
    for key in items[0]:
        vals = [it.get(key) for it in items]
        if key in _SHARED_KEYS:
            if any(v != vals[0] for v in vals[1:]):
                raise ValueError(
                    f"a batch must share {key}; got {sorted({str(v) for v in vals})}. Batch one sensor "
                    "(pair) at a time, e.g. with a batch sampler that groups items by sensor"
                )
            out[key] = vals[0]
        elif isinstance(vals[0], torch.Tensor):
            shapes = {tuple(v.shape) for v in vals}
            if len(shapes) > 1:
                raise ValueError(
                    f"cannot stack {key} of different shapes {sorted(shapes)}; set output_size"
                )
            out[key] = torch.stack(vals)
        else:
            out[key] = vals
    return out
