"""What each step trains on: the step plan, the deterministic dataset keyed by ``(step, index)``,
this rank's share of the global batch, and the sources built from the config.

Reproducibility design (what makes 1 process and N processes give the same loss curve, and a
resumed run repeat the uninterrupted one exactly):

* Step ``s`` draws its *plan* (which source, paired or single, which band subsets) from a
  generator seeded by ``(seed, s)``: identical on every rank.
* Global sample ``i`` of step ``s`` is built from its own generator seeded by ``(seed, s, i)``:
  crop, resampling, flips, its visible mask and its mixup mask. Rank ``r`` of ``W`` builds the
  contiguous slice ``i ∈ [r·B/W, (r+1)·B/W)`` of the global batch ``B``
  (:class:`GlobalBatchSampler`, the distributed sampler of this loop).
* A streamed source (shards) reads the sample at stream position ``c·B + i``, where ``c`` is the
  number of earlier steps whose plan chose that source: again a pure function of ``(seed, s)``.
* The data position is just the step counter.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from smartiesviz.data.sources import (
    ArchiveSource,
    PairSource,
    SampleOptions,
    SceneSource,
    Source,
    SyntheticSource,
    shard_sources,
)
from smartiesviz.data.transforms import band_subset
from smartiesviz.models.mixup import random_mixup_mask, random_visible_mask
from smartiesviz.models.tokenizer import patch_grid_shape
from smartiesviz.training.config import DataConfig, PretrainConfig, SourceConfig
from smartiesviz.yamlfile import load_yaml


def derive_seed(*keys: int) -> int:
    """A well-mixed 63-bit seed from integer keys (``numpy.random.SeedSequence``)."""
    words = np.random.SeedSequence([int(k) for k in keys]).generate_state(2, dtype=np.uint32)
    return int(words[0]) << 31 | int(words[1]) >> 1


def _generator(*keys: int) -> torch.Generator:
    return torch.Generator().manual_seed(derive_seed(*keys))


# ----------------------------------------------------------------------------- step plan
@dataclass(frozen=True)
class StepPlan:
    """What every rank does at one step.

    Attributes:
        source: index of the source.
        role: ``pair`` (a with b, mixup), ``a`` or ``b`` (that image alone).
        subset_a: channel indices kept of the first image (the single image for ``a``/``b``).
        subset_b: channel indices kept of the partner (``pair`` only).
    """

    source: int
    role: str
    subset_a: tuple[int, ...]
    subset_b: tuple[int, ...] | None


VISIBLE_BANDS = ("B02", "B03", "B04")


def _subset(bands: list[str], g: torch.Generator, cfg: DataConfig) -> tuple[int, ...]:
    """Kept channel indices of an image with these band specs: the visible trio with probability
    ``visible_subset_p``, the trio plus 1-3 other bands with ``visible_plus_p`` (when it has the
    trio), else :func:`band_subset`."""
    names = [b.rsplit("/", 1)[-1] for b in bands]
    p_trio, p_plus = cfg.visible_subset_p, cfg.visible_plus_p
    if p_trio + p_plus > 0 and all(v in names for v in VISIBLE_BANDS):
        u = float(torch.rand((), generator=g))
        trio = [names.index(v) for v in VISIBLE_BANDS]
        if u < p_trio:
            return tuple(sorted(trio))
        others = [i for i in range(len(names)) if i not in trio]
        if u < p_trio + p_plus and others:
            k = int(torch.randint(1, min(3, len(others)) + 1, (1,), generator=g))
            extra = [others[i] for i in torch.randperm(len(others), generator=g)[:k].tolist()]
            return tuple(sorted(trio + extra))
    return band_subset(len(bands), cfg.band_subset_p, cfg.band_subset_min, g, cfg.band_subset_max)


def plan_step(
    seed: int, step: int, sources: list[Source], weights: list[float], cfg: DataConfig
) -> StepPlan:
    """The :class:`StepPlan` of ``step`` (a pure function of its arguments)."""
    if step < cfg.curriculum_steps:  # plain full-band single images of the first source
        return StepPlan(0, "a", tuple(range(len(sources[0].bands_a))), None)
    g = _generator(seed, step, 1)
    idx = int(torch.multinomial(torch.tensor(weights, dtype=torch.float64), 1, generator=g))
    src = sources[idx]
    role = "a"
    if src.bands_b is not None:
        role = "pair"
        if float(torch.rand((), generator=g)) < getattr(src, "p_single", 0.0):
            role = "a" if float(torch.rand((), generator=g)) < 1.0 - src.p_b else "b"
    first = src.bands_b if role == "b" else src.bands_a
    subset_a = _subset(first, g, cfg)
    subset_b = _subset(src.bands_b, g, cfg) if role == "pair" else None
    return StepPlan(idx, role, subset_a, subset_b)


def plan_bands(plan: StepPlan, sources: list[Source]) -> tuple[list[str], list[str] | None]:
    """Band specs of the images of a step (after the band subsets)."""
    src = sources[plan.source]
    first = src.bands_b if plan.role == "b" else src.bands_a
    bands_a = [first[i] for i in plan.subset_a]
    bands_b = [src.bands_b[i] for i in plan.subset_b] if plan.role == "pair" else None
    return bands_a, bands_b


def full_band_targets(
    batch: dict[str, torch.Tensor], plan: StepPlan, sources: list[Source], device: torch.device
) -> dict[str, Any]:
    """Model keyword arguments for full-band targets of images that kept a band subset."""
    src = sources[plan.source]
    first = src.bands_b if plan.role == "b" else src.bands_a
    out: dict[str, Any] = {}
    if "target_a" in batch:
        out.update(target_a=batch["target_a"].to(device), target_bands_a=list(first))
    if "target_b" in batch:
        out.update(target_b=batch["target_b"].to(device), target_bands_b=list(src.bands_b))
    return out


# ----------------------------------------------------------------------------- data
class PretrainDataset(Dataset):
    """Map-style dataset keyed by ``(step, global_index)``; every item is deterministic.

    An item is a dict with ``x_a`` ``(C_a, H, W)``, optional ``x_b`` ``(C_b, H, W)``,
    ``visible_mask`` ``(N,)`` bool and ``mixup_mask`` ``(N,)`` bool.
    """

    def __init__(self, cfg: PretrainConfig, sources: list[Source], patch_size: int) -> None:
        self.cfg = cfg
        self.sources = sources
        self.weights = [s.weight for s in sources]  # a mixed shard folder gives one source per group
        self.img = cfg.model.img_size
        gh, gw = patch_grid_shape(self.img, self.img, patch_size, "model.img_size")
        self.num_patches = gh * gw
        self._plans: dict[int, StepPlan] = {}
        self._used: list[list[int]] = [[0] * len(sources)]  # _used[s][k]: steps < s on source k
        self.options = sample_options(cfg, plain=False)
        self._plain = sample_options(cfg, plain=True)  # during the curriculum

    def plan(self, step: int) -> StepPlan:
        if step not in self._plans:
            if len(self._plans) > 64:
                self._plans.clear()
            self._plans[step] = plan_step(
                self.cfg.train.seed, step, self.sources, self.weights, self.cfg.data
            )
        return self._plans[step]

    def stream_position(self, step: int, index: int) -> int:
        """Stream position of global sample ``index`` of ``step`` in its source's stream."""
        while len(self._used) <= step:
            s = len(self._used) - 1
            counts = list(self._used[-1])
            counts[plan_step(self.cfg.train.seed, s, self.sources, self.weights, self.cfg.data).source] += 1
            self._used.append(counts)
        source = self.plan(step).source
        return self._used[step][source] * self.cfg.train.global_batch_size + index

    def __len__(self) -> int:  # endless stream; the sampler decides what is drawn
        return sys.maxsize

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        step, index = key
        plan = self.plan(step)
        g = _generator(self.cfg.train.seed, step, index, 2)
        opts = self.options if step >= self.cfg.data.curriculum_steps else self._plain
        source = self.sources[plan.source]
        position = self.stream_position(step, index) if source.streamed else 0
        sample = source.sample(g, opts, position)
        x_a, x_b = sample.x_a, sample.x_b
        if x_b is not None and source.b_level_shift > 0 and step >= self.cfg.data.curriculum_steps:
            # one offset for all of b's bands: for S1 in dB, a radiometric gain (~0.2 per dB)
            x_b = x_b + source.b_level_shift * (2 * float(torch.rand((), generator=g)) - 1)
        if plan.role == "b":
            x_a, x_b = x_b, None
        elif plan.role == "a":
            x_b = None
        t = self.cfg.train
        item = {
            "x_a": x_a[list(plan.subset_a)],
            "visible_mask": random_visible_mask(1, self.num_patches, t.mask_ratio, g)[0],
        }
        full_target = self.cfg.data.full_band_target
        if full_target and len(plan.subset_a) < x_a.shape[0]:
            item["target_a"] = x_a
        if x_b is not None:
            item["x_b"] = x_b[list(plan.subset_b)]
            item["mixup_mask"] = random_mixup_mask(1, self.num_patches, t.mixup_ratio, g)[0]
            if full_target and len(plan.subset_b) < x_b.shape[0]:
                item["target_b"] = x_b
        return item


class GlobalBatchSampler(Sampler[list[tuple[int, int]]]):
    """Yields, for each step, this rank's contiguous share of the global batch as ``(step, i)`` keys.

    Args:
        start_step: first step to yield (the data position when resuming).
        total_steps: one past the last step.
        global_batch_size: ``B``; must be divisible by ``world_size``.
        rank, world_size: this process's place.
    """

    def __init__(
        self,
        start_step: int,
        total_steps: int,
        global_batch_size: int,
        rank: int = 0,
        world_size: int = 1,
    ):
        if global_batch_size % world_size:
            raise ValueError(
                f"train.global_batch_size={global_batch_size} must be divisible by the number of "
                f"processes ({world_size})"
            )
        self.start, self.total = start_step, total_steps
        self.local = global_batch_size // world_size
        self.offset = rank * self.local

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for step in range(self.start, self.total):
            yield [(step, self.offset + j) for j in range(self.local)]

    def __len__(self) -> int:
        return max(0, self.total - self.start)




# ----------------------------------------------------------------------------- sources
def sample_options(cfg: PretrainConfig, plain: bool = False) -> SampleOptions:
    """The :class:`SampleOptions` of a config (``plain``: no coarsening, for the curriculum)."""
    d = cfg.data
    return SampleOptions(
        img_size=cfg.model.img_size,
        crop_scale=(float(d.crop_scale[0]), float(d.crop_scale[1])),
        coarsen_p=0.0 if plain else d.coarsen_p,
        coarsen_m=(float(d.coarsen_m[0]), float(d.coarsen_m[1])),
    )


def load_stats(path: str | None) -> dict[str, Any] | None:
    """The ``{sensor: {band: {p1, p99, mean, std}}}`` table of ``data.stats`` (None: unset).

    Raises:
        FileNotFoundError: the file does not exist. ValueError: it is not such a table.
    """
    if path is None:
        return None
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"data.stats file {str(p)!r} does not exist")
    table = load_yaml(p, "data.stats file")  # size, aliases, duplicate keys checked
    sensors = table.get("sensors") if isinstance(table, dict) else None
    if not isinstance(sensors, dict) or not sensors:
        raise ValueError(f"data.stats file {str(p)!r} has no 'sensors' table (write it with smartiesviz stats)")
    for sensor, bands in sensors.items():
        for band, values in dict(bands).items():
            missing = {"p1", "p99", "mean", "std"} - set(values)
            if missing:
                raise ValueError(f"data.stats {p}: {sensor}/{band} lacks {sorted(missing)}")
    return sensors


def _build(
    src: SourceConfig, cfg: DataConfig, seed: int, run_dir: Path | None, stats: dict[str, Any] | None
) -> list[Source]:
    """The streams of one ``data.sources`` entry: one, or one per sample group of a shard folder
    that mixes sensors (each step's batch shares its band sets), sharing the entry's weight."""
    scale = (float(cfg.crop_scale[0]), float(cfg.crop_scale[1]))
    if src.kind == "s2_scene":
        out: list[Source] = [SceneSource(cfg.holdout_edge, cfg.holdout_fraction, cfg.holdout_gap,
                                         src.partner, src.p_single, stats)]  # fmt: skip
    elif src.kind == "bigearthnet":
        out = [PairSource(cfg.holdout_pair, scale, src.partner, src.p_single, stats)]
    elif src.kind == "synthetic":
        out = [SyntheticSource(src.channels, src.partner, src.p_single)]
    elif src.kind in ("pairs", "images"):
        out = [ArchiveSource(src, scale, cfg.on_bad, run_dir, stats, src.p_single)]
    else:
        out = [*shard_sources(str(src.path), seed, src.shuffle, scale, cfg.on_bad, stats, src.p_single,
                              verify=cfg.verify_shards == "full", weight=src.weight)]  # fmt: skip
    for s in out:
        s.p_b, s.b_level_shift = src.p_b, src.b_level_shift
        if src.kind != "shards":
            s.weight = src.weight
    return out


def build_source(
    src: SourceConfig, cfg: DataConfig, seed: int = 0, run_dir: Path | None = None,
    stats: dict[str, Any] | None = None,
) -> Source:  # fmt: skip
    """Instantiate the stream described by ``src`` (the ``data.sources`` entry).

    Raises:
        ValueError: ``src`` is a shard folder mixing sensors (use :func:`build_sources`).
    """
    out = _build(src, cfg, seed, run_dir, stats)
    if len(out) > 1:
        raise ValueError(f"shard folder {src.path} holds {len(out)} sensor groups; use build_sources")
    return out[0]


def build_sources(cfg: PretrainConfig, run_dir: Path | None = None) -> list[Source]:
    """Every source of ``cfg.data.sources``, validated (user archives are checked up front); a
    shard folder that mixes sensors gives one source per sample group."""
    stats = load_stats(cfg.data.stats)
    return [s for src in cfg.data.sources for s in _build(src, cfg.data, cfg.train.seed, run_dir, stats)]
