"""Training image streams, drawn deterministically through the datasets and transforms of
:mod:`smartiesviz.data` (the one data path of training, notebooks and widgets).

Every sample is a pure function of the ``torch.Generator`` it is given and, for streamed shards,
of its stream position, so the training loop can seed one generator per *global* sample index and
any number of processes builds exactly the same global batch.

Streams:

* :class:`SceneSource`: tiles of the bundled Sentinel-2 L1C scene outside a held-out block, with
  optional coarsening (a ``size·f`` window area-averaged to ``size``: a tile at ``10·f`` m) and an
  optional simulated RGB partner (:func:`~smartiesviz.data.transforms.simulated_rgb_tensor`).
* :class:`PairSource`: the bundled BigEarthNet S2 L2A / S1 pairs except a held-out one, through
  :class:`~smartiesviz.data.datasets.PairedDataset` (paired crops, flips, rotations).
* :class:`ArchiveSource`: the user's pair or image lists (:mod:`smartiesviz.data.archives`).
* :class:`ShardSource`: the user's shards (:mod:`smartiesviz.data.shards`), streamed in order;
  :func:`shard_sources` gives one per sample group (sensor pair and band lists) of a folder.
* :class:`SyntheticSource`: smooth random fields, for tests.

All images are in model units, channel-first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from smartiesviz.data.archives import (
    ArchivePairs,
    co_register,
    source_entries,
    stats_for,
    stored_model_units,
)
from smartiesviz.data.datasets import PairedDataset
from smartiesviz.data.holdout import HeldOutPair, Holdout, SceneBlock
from smartiesviz.data.preprocess import normalize
from smartiesviz.data.samples import bigearthnet_pairs, sentinel2_sample
from smartiesviz.data.shards import ShardReader, signature
from smartiesviz.data.transforms import paired_augment, resample, simulated_rgb_tensor
from smartiesviz.errors import UserError

S2_SCENE_SENSOR = "sentinel2-l1c"
S2_PAIR_SENSOR = "sentinel2-l2a"
S1_SENSOR = "sentinel1-grd"
RGB_SENSOR = "rgb"
NATIVE_M = 10.0
Edge = Literal["top", "bottom", "left", "right"]


@dataclass(frozen=True)
class SampleOptions:
    """How samples are drawn (from the training config's ``data`` and ``model`` sections)."""

    img_size: int
    crop_scale: tuple[float, float] = (0.25, 1.0)
    coarsen_p: float = 0.0
    coarsen_m: tuple[float, float] = (20.0, 60.0)


@dataclass
class Sample:
    """One training example: ``x_a`` ``(C_a, H, W)`` and optional co-registered ``x_b``."""

    x_a: torch.Tensor
    x_b: torch.Tensor | None = None


@dataclass
class Source:
    """Base class: a named stream with fixed band lists (``sensor/band`` specs).

    ``streamed`` sources read a sequential stream and need the sample's stream ``position``.
    ``p_single``/``p_b``: how often a step trains one image alone, and image b among those.
    ``b_level_shift``: half-width of a random offset added to every band of image b (model units).
    ``weight``: relative probability that a step draws its batch from this source.
    """

    name: str
    bands_a: list[str]
    bands_b: list[str] | None = None
    holdout: Holdout = field(default_factory=Holdout)
    p_single: float = 0.0
    p_b: float = 0.5  # of the single-image steps, the share that trains image b
    b_level_shift: float = 0.0
    weight: float = 1.0
    streamed = False

    def sample(self, g: torch.Generator, opts: SampleOptions, position: int = 0) -> Sample:
        """Draw one sample using only ``g`` (and ``position``) for randomness."""
        raise NotImplementedError


def _randint(g: torch.Generator, low: int, high: int) -> int:
    """Uniform integer in ``[low, high]`` (inclusive)."""
    return int(torch.randint(low, high + 1, (1,), generator=g))


def _uniform(g: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=g))


def _specs(sensor: str, names: Sequence[str]) -> list[str]:
    return [f"{sensor}/{n}" for n in names]


def _paired(xs: list[torch.Tensor]) -> Sample:
    return Sample(xs[0], xs[1] if len(xs) > 1 else None)


# ----------------------------------------------------------------------------- S2 scene
def holdout_block(
    height: int, width: int, edge: Edge, fraction: float, gap: int
) -> tuple[tuple[int, int, int, int], tuple[int, int, int, int]]:
    """Pixel windows ``(y0, y1, x0, x1)`` of the held-out block and of the training region.

    The block spans the scene along ``edge`` and ``fraction`` of the other axis; the training
    region is the rest minus a ``gap``-pixel strip.
    """
    along = height if edge in ("top", "bottom") else width
    n = int(round(along * fraction))
    if edge == "top":
        return (0, n, 0, width), (min(n + gap, height), height, 0, width)
    if edge == "bottom":
        return (height - n, height, 0, width), (0, max(height - n - gap, 0), 0, width)
    if edge == "left":
        return (0, height, 0, n), (0, height, min(n + gap, width), width)
    return (0, height, width - n, width), (0, height, 0, max(width - n - gap, 0))


class SceneSource(Source):
    """Tiles of the Sentinel-2 L1C sample scene outside its held-out block (see module doc)."""

    def __init__(
        self, edge: Edge, fraction: float, gap: int, partner: str | None, p_single: float = 0.0,
        stats: Mapping[str, Any] | None = None,
    ) -> None:  # fmt: skip
        cube = sentinel2_sample()
        names = [str(b) for b in cube.band.values if str(b) != "B10"]  # B10 has no layer
        cube = cube.sel(band=names)
        norm = normalize(cube, S2_SCENE_SENSOR, stats=stats_for(stats, S2_SCENE_SENSOR))
        x = torch.from_numpy(np.ascontiguousarray(np.asarray(norm.values, dtype=np.float32)))
        (y0, y1, x0, x1), train = holdout_block(x.shape[-2], x.shape[-1], edge, fraction, gap)
        self.x = x[:, train[0] : train[1], train[2] : train[3]].contiguous()
        transform = cube.rio.transform()
        minx, maxy = transform @ (x0, y0)
        maxx, miny = transform @ (x1, y1)
        block = SceneBlock(y0, y1, x0, x1, crs=str(cube.rio.crs),
                           bounds=(float(minx), float(miny), float(maxx), float(maxy)),
                           train_window=tuple(train),
                           description=f"{edge} block of the bundled S2 L1C scene, never trained on")  # fmt: skip
        super().__init__(
            name="s2_scene" + (f"+{partner}" if partner else ""),
            bands_a=_specs(S2_SCENE_SENSOR, names),
            bands_b=_specs(RGB_SENSOR, ["red", "green", "blue"]) if partner else None,
            holdout=Holdout(scene=block),
            p_single=p_single,
        )
        self.rgb: torch.Tensor | None = None
        if partner == "rgb":
            rgb = simulated_rgb_tensor(cube)
            self.rgb = rgb[:, train[0] : train[1], train[2] : train[3]].contiguous()

    def sample(self, g: torch.Generator, opts: SampleOptions, position: int = 0) -> Sample:
        factor = 1.0
        if opts.coarsen_p > 0 and float(torch.rand((), generator=g)) < opts.coarsen_p:
            factor = _uniform(g, *opts.coarsen_m) / NATIVE_M
        height, width = self.x.shape[-2:]
        side = min(int(round(opts.img_size * factor)), height, width)
        top = _randint(g, 0, height - side)
        left = _randint(g, 0, width - side)
        win = (..., slice(top, top + side), slice(left, left + side))
        xs = [resample(self.x[win], opts.img_size)]
        if self.rgb is not None:
            xs.append(resample(self.rgb[win], opts.img_size))
        xs, _ = paired_augment(xs, opts.img_size, scale=None, generator=g)
        return _paired(xs)


# ----------------------------------------------------------------------------- BigEarthNet pairs
def _pair_index(pairs: list[Any], holdout: int | str) -> int:
    if isinstance(holdout, str):
        names = [getattr(p, "name", str(i)) for i, p in enumerate(pairs)]
        if holdout not in names:
            raise ValueError(f"data.holdout_pair={holdout!r} is not a pair name; known: {names}")
        return names.index(holdout)
    if not -len(pairs) <= holdout < len(pairs):
        raise ValueError(f"data.holdout_pair={holdout} is out of range for {len(pairs)} pairs")
    return holdout % len(pairs)


class PairSource(Source):
    """BigEarthNet S2 L2A (a) / S1 (b) pairs except the held-out one, drawn through
    :class:`~smartiesviz.data.datasets.PairedDataset`."""

    def __init__(
        self, holdout_pair: int | str, crop_scale: tuple[float, float], partner: str | None,
        p_single: float = 0.0, stats: Mapping[str, Any] | None = None,
    ) -> None:  # fmt: skip
        pairs = bigearthnet_pairs()
        held = _pair_index(pairs, holdout_pair)
        kept = [p for i, p in enumerate(pairs) if i != held]
        self.dataset = PairedDataset(
            [(p.s2, p.s1) for p in kept], output_size=None, scale=tuple(crop_scale),
            stats_a=stats_for(stats, S2_PAIR_SENSOR), stats_b=stats_for(stats, S1_SENSOR),
        )  # fmt: skip
        s2_names = [str(b) for b in pairs[0].s2.band.values]
        s1_names = [str(b) for b in pairs[0].s1.band.values]
        super().__init__(
            name="bigearthnet" + (f"+{partner}" if partner else ""),
            bands_a=_specs(S2_PAIR_SENSOR, s2_names),
            bands_b=_specs(S1_SENSOR, s1_names) if partner else None,
            holdout=Holdout(pair=HeldOutPair(held, str(getattr(pairs[held], "name", held)))),
            p_single=p_single,
        )
        self.with_s1 = partner == "s1"

    def sample(self, g: torch.Generator, opts: SampleOptions, position: int = 0) -> Sample:
        i = _randint(g, 0, len(self.dataset) - 1)
        self.dataset.output_size = opts.img_size
        item = self.dataset.item(i, g)
        return Sample(item["x_a"], item["x_b"] if self.with_s1 else None)


# ----------------------------------------------------------------------------- the user's archives
class ArchiveSource(Source):
    """A pair list (``kind: pairs``) or an image list (``kind: images``), validated up front and
    read entry by entry through :class:`~smartiesviz.data.archives.ArchivePairs`.

    Args:
        spec: the source's config (``list``, ``root_a``/``root_b``/``sensor_a``/``sensor_b`` or
            ``root``/``sensor``).
        on_bad: ``error`` or ``skip`` (skipped entries listed in ``run_dir``).
    """

    def __init__(
        self, spec: Any, crop_scale: tuple[float, float],
        on_bad: Literal["error", "skip"], run_dir: Path | None,
        stats: Mapping[str, Any] | None = None, p_single: float = 0.0,
    ) -> None:  # fmt: skip
        good, sensor_a, sensor_b = source_entries(spec, on_bad, run_dir)
        self.dataset = ArchivePairs(good, sensor_a, sensor_b, 0, tuple(crop_scale), stats)
        a, b = self.dataset.read(0)
        super().__init__(
            name=f"{spec.kind}:{Path(str(spec.list)).name}",
            bands_a=_specs(sensor_a, [str(v) for v in a.band.values]),
            bands_b=_specs(str(sensor_b), [str(v) for v in b.band.values]) if b is not None else None,
            p_single=p_single,
        )

    def sample(self, g: torch.Generator, opts: SampleOptions, position: int = 0) -> Sample:
        i = _randint(g, 0, len(self.dataset) - 1)
        self.dataset.output_size = opts.img_size
        item = self.dataset.item(i, g)
        return Sample(item["x_a"], item.get("x_b"))


class ShardSource(Source):
    """One sample group of a shard folder (:mod:`smartiesviz.data.shards`: records sharing their
    sensors and band lists, so a batch shares its band sets), streamed in a deterministic order:
    the sample at stream ``position`` gets a paired random resized crop, flips and rotations from
    ``g``. Build them with :func:`shard_sources` (one per group of a folder that mixes sensors)."""

    streamed = True

    def __init__(
        self, path: str, seed: int, shuffle: int, crop_scale: tuple[float, float],
        on_bad: Literal["error", "skip"], stats: Mapping[str, Any] | None = None,
        p_single: float = 0.0, verify: bool = True, group: int = 0, reader: ShardReader | None = None,
    ) -> None:  # fmt: skip
        if reader is None:
            reader = ShardReader(path, on_bad, verify)
            for name, reason in reader.bad:
                print(f"[data] skipping shard {Path(path) / name}: {reason}", flush=True)
        self.reader, self.group = reader, group
        self.seed, self.shuffle, self.stats = seed, shuffle, stats
        sig = reader.groups[group]
        self.sensor_a, self.sensor_b = sig["sensor_a"], sig["sensor_b"]
        name = f"shards:{Path(path).name}"
        if len(reader.groups) > 1:
            name += f"[{group}:{self.sensor_a}" + (f"+{self.sensor_b}]" if self.sensor_b else "]")
        super().__init__(
            name=name,
            bands_a=_specs(self.sensor_a, sig["bands_a"]),
            bands_b=_specs(self.sensor_b, sig["bands_b"]) if self.sensor_b else None,
            p_single=p_single,
        )

    def tensors(self, position: int) -> list[torch.Tensor]:
        """Model-unit tensors of the sample at ``position`` (``b`` on ``a``'s grid), read with the
        record's own sensors and band names."""
        raw = self.reader.at(position, self.seed, self.shuffle, self.group)
        m = raw.meta
        if signature(m) != self.reader.groups[self.group] or (raw.b is None) != (self.sensor_b is None):
            raise UserError(f"{self.reader.path}: a record of group {self.group} has sensors/bands "
                            f"{signature(m)}, the index says {self.reader.groups[self.group]}; "
                            "rebuild the folder with `smartiesviz shards build`")  # fmt: skip
        sa = m["sensor_a"]
        xs = [stored_model_units(raw.a, m["bands_a"], sa, m.get("units_a"), stats_for(self.stats, sa))]
        if raw.b is not None:
            sb = m["sensor_b"]
            xb = stored_model_units(raw.b, m["bands_b"], sb, m.get("units_b"), stats_for(self.stats, sb))
            xs.append(co_register(xb, tuple(xs[0].shape[-2:])))
        return xs

    def sample(self, g: torch.Generator, opts: SampleOptions, position: int = 0) -> Sample:
        xs, _ = paired_augment(self.tensors(position), opts.img_size, opts.crop_scale, generator=g)
        return _paired(xs)


def shard_sources(
    path: str, seed: int, shuffle: int, crop_scale: tuple[float, float],
    on_bad: Literal["error", "skip"], stats: Mapping[str, Any] | None = None,
    p_single: float = 0.0, verify: bool = True, weight: float = 1.0,
) -> list[ShardSource]:  # fmt: skip
    """One :class:`ShardSource` per sample group of the folder ``path`` (one for a single-sensor
    folder); ``weight`` is shared among them by their numbers of usable samples."""
    reader = ShardReader(path, on_bad, verify)
    for name, reason in reader.bad:
        print(f"[data] skipping shard {Path(path) / name}: {reason}", flush=True)
    out = []
    for group in range(len(reader.groups)):
        if reader.group_size(group):
            src = ShardSource(path, seed, shuffle, crop_scale, on_bad, stats, p_single, verify, group, reader)
            src.weight = weight * reader.group_size(group) / len(reader)
            out.append(src)
    return out


# ----------------------------------------------------------------------------- synthetic
class SyntheticSource(Source):
    """Smooth random fields (bilinear upsampling of an 8×8 noise grid), for tests."""

    def __init__(self, channels: int, partner: str | None, p_single: float = 0.0):
        names = ["B02", "B03", "B04", "B08", "B05", "B06", "B07", "B8A", "B11", "B12", "B01", "B09"]
        if not 1 <= channels <= len(names):
            raise ValueError(f"synthetic source channels={channels}: expected 1..{len(names)}")
        super().__init__(
            name="synthetic" + (f"+{partner}" if partner else ""),
            bands_a=_specs(S2_PAIR_SENSOR, names[:channels]),
            bands_b=_specs(S1_SENSOR, ["VV", "VH"]) if partner else None,
            p_single=p_single,
        )

    def sample(self, g: torch.Generator, opts: SampleOptions, position: int = 0) -> Sample:
        c_a = len(self.bands_a)
        c_b = len(self.bands_b) if self.bands_b else 0
        base = torch.randn(c_a + c_b, 8, 8, generator=g)
        size = (opts.img_size, opts.img_size)
        field_ = F.interpolate(base[None], size=size, mode="bilinear", align_corners=False)[0]
        return Sample(field_[:c_a].contiguous(), field_[c_a:].contiguous() if c_b else None)
