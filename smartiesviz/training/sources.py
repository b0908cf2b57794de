"""Training image streams for pretraining, drawn deterministically from a ``torch.Generator``.

Every sample is a pure function of the generator it is given (crop position, resampling,
flips), so the engine can seed one generator per *global* sample index and any number of
processes builds exactly the same global batch.

Sources:

* :class:`SceneSource`: tiles of the bundled Sentinel-2 L1C scene outside a held-out block along
  one edge (``holdout_edge``, ``holdout_fraction`` of the scene, plus a ``holdout_gap`` strip).
  Optional random coarsening: a ``64·f``-pixel window is area-averaged to 64 px, i.e. a tile at
  ``10·f`` m. Optional partner: RGB simulated from B04/B03/B02 (clearly marked simulated).
* :class:`PairSource`: the bundled BigEarthNet S2 L2A / S1 pairs except a held-out one, with
  paired random resized crops (area scale ``crop_scale``) and paired flips/rotations.
* :class:`SyntheticSource`: smooth random fields, for tests.

All images are in model units (``smartiesviz.data.normalize``), channel-first. Flips, rotations
and random resized crops are ``smartiesviz.data.datasets.paired_augment`` with our generator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from smartiesviz.data.datasets import paired_augment
from smartiesviz.training.config import DataConfig, SourceConfig

S2_SCENE_SENSOR = "sentinel2-l1c"
S2_PAIR_SENSOR = "sentinel2-l2a"
S1_SENSOR = "sentinel1-grd"
RGB_SENSOR = "rgb"
NATIVE_M = 10.0


@dataclass
class Sample:
    """One training example: ``x_a`` ``(C_a, H, W)`` and optional co-registered ``x_b``."""

    x_a: torch.Tensor
    x_b: torch.Tensor | None = None


@dataclass
class Source:
    """Base class: a named stream with fixed band lists (``sensor/band`` specs)."""

    name: str
    bands_a: list[str]
    bands_b: list[str] | None = None
    holdout: dict[str, Any] = field(default_factory=dict)

    def sample(self, g: torch.Generator, img_size: int, cfg: DataConfig) -> Sample:
        """Draw one sample of ``img_size`` pixels using only ``g`` for randomness."""
        raise NotImplementedError


# ----------------------------------------------------------------------------- helpers
def _randint(g: torch.Generator, low: int, high: int) -> int:
    """Uniform integer in ``[low, high]`` (inclusive)."""
    return int(torch.randint(low, high + 1, (1,), generator=g))


def _uniform(g: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=g))


def resample(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resize ``(C, h, w)`` to ``(C, size, size)``: area mean when shrinking, bilinear otherwise."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    mode = "area" if x.shape[-1] > size else "bilinear"
    kw = {} if mode == "area" else {"align_corners": False}
    return F.interpolate(x[None], size=(size, size), mode=mode, **kw)[0]


def _band_specs(sensor: str, names: list[str]) -> list[str]:
    return [f"{sensor}/{n}" for n in names]


# ----------------------------------------------------------------------------- S2 scene
def holdout_block(
    height: int, width: int, cfg: DataConfig
) -> tuple[tuple[int, int, int, int], tuple[int, int, int, int]]:
    """Pixel windows ``(y0, y1, x0, x1)`` of the held-out block and of the training region.

    The block spans the scene along ``cfg.holdout_edge`` and ``holdout_fraction`` of the other
    axis; the training region is the rest minus a ``holdout_gap`` strip.
    """
    edge, gap = cfg.holdout_edge, cfg.holdout_gap
    along = height if edge in ("top", "bottom") else width
    n = int(round(along * cfg.holdout_fraction))
    if edge == "top":
        return (0, n, 0, width), (min(n + gap, height), height, 0, width)
    if edge == "bottom":
        return (height - n, height, 0, width), (0, max(height - n - gap, 0), 0, width)
    if edge == "left":
        return (0, height, 0, n), (0, height, min(n + gap, width), width)
    return (0, height, width - n, width), (0, height, 0, max(width - n - gap, 0))


class SceneSource(Source):
    """Tiles of the Sentinel-2 L1C sample scene left of its held-out block (see module doc)."""

    def __init__(self, cfg: DataConfig, partner: str | None, p_single: float = 0.0) -> None:
        from smartiesviz.data import normalize, sentinel2_sample

        cube = sentinel2_sample()
        names = [str(b) for b in cube.band.values if str(b) != "B10"]  # B10 has no layer
        cube = cube.sel(band=names)
        norm = normalize(cube, S2_SCENE_SENSOR)
        x = torch.from_numpy(np.ascontiguousarray(np.asarray(norm.values, dtype=np.float32)))
        (y0, y1, x0, x1), train = holdout_block(x.shape[-2], x.shape[-1], cfg)
        self.x = x[:, train[0] : train[1], train[2] : train[3]].contiguous()
        transform = cube.rio.transform()
        minx, maxy = transform * (x0, y0)
        maxx, miny = transform * (x1, y1)
        holdout = {
            "sentinel2_sample": {
                "description": f"{cfg.holdout_edge} block of the bundled S2 L1C scene, never trained on",
                "y_start": y0,
                "y_stop": y1,
                "x_start": x0,
                "x_stop": x1,
                "train_window": list(train),
                "crs": str(cube.rio.crs),
                "bounds": [float(minx), float(miny), float(maxx), float(maxy)],
            }
        }
        super().__init__(
            name="s2_scene" + (f"+{partner}" if partner else ""),
            bands_a=_band_specs(S2_SCENE_SENSOR, names),
            bands_b=_band_specs(RGB_SENSOR, ["red", "green", "blue"]) if partner else None,
            holdout=holdout,
        )
        self.p_single = p_single
        self.rgb: torch.Tensor | None = None
        if partner == "rgb":
            from smartiesviz.data.datasets import simulate_rgb

            rgb_norm = normalize(simulate_rgb(cube), RGB_SENSOR)
            self.rgb = torch.from_numpy(np.asarray(rgb_norm.values, dtype=np.float32))

    def sample(self, g: torch.Generator, img_size: int, cfg: DataConfig) -> Sample:
        factor = 1.0
        if cfg.coarsen_p > 0 and float(torch.rand((), generator=g)) < cfg.coarsen_p:
            factor = _uniform(g, *cfg.coarsen_m) / NATIVE_M
        height, width = self.x.shape[-2:]
        side = min(int(round(img_size * factor)), height, width)
        top = _randint(g, 0, height - side)
        left = _randint(g, 0, width - side)
        win = (..., slice(top, top + side), slice(left, left + side))
        xs = [resample(self.x[win], img_size)]
        if self.rgb is not None:
            xs.append(resample(self.rgb[win], img_size))
        xs, _ = paired_augment(xs, img_size, scale=None, generator=g)
        return Sample(xs[0], xs[1] if len(xs) > 1 else None)


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
    """BigEarthNet S2 L2A (a) / S1 (b) pairs except the held-out one (see module doc)."""

    def __init__(self, cfg: DataConfig, partner: str | None, p_single: float = 0.0) -> None:
        from smartiesviz.data import bigearthnet_pairs, normalize

        pairs = bigearthnet_pairs()
        held = _pair_index(pairs, cfg.holdout_pair)
        self.s2: list[torch.Tensor] = []
        self.s1: list[torch.Tensor] = []
        s2_names: list[str] = []
        for i, pair in enumerate(pairs):
            if i == held:
                continue
            s2_names = [str(b) for b in pair.s2.band.values]
            self.s2.append(
                torch.from_numpy(
                    np.asarray(normalize(pair.s2, S2_PAIR_SENSOR).values, dtype=np.float32)
                )
            )
            self.s1.append(
                torch.from_numpy(np.asarray(normalize(pair.s1, S1_SENSOR).values, dtype=np.float32))
            )
        s1_names = [str(b) for b in pairs[0].s1.band.values]
        holdout = {
            "bigearthnet_pair": {"index": held, "name": str(getattr(pairs[held], "name", held))}
        }
        super().__init__(
            name="bigearthnet" + (f"+{partner}" if partner else ""),
            bands_a=_band_specs(S2_PAIR_SENSOR, s2_names),
            bands_b=_band_specs(S1_SENSOR, s1_names) if partner else None,
            holdout=holdout,
        )
        self.p_single = p_single
        self.with_s1 = partner == "s1"

    def sample(self, g: torch.Generator, img_size: int, cfg: DataConfig) -> Sample:
        i = _randint(g, 0, len(self.s2) - 1)
        xs = [self.s2[i], self.s1[i]] if self.with_s1 else [self.s2[i]]
        xs, _ = paired_augment(xs, img_size, scale=tuple(cfg.crop_scale), generator=g)
        return Sample(xs[0], xs[1] if len(xs) > 1 else None)


# ----------------------------------------------------------------------------- synthetic
class SyntheticSource(Source):
    """Smooth random fields (bilinear upsampling of an 8×8 noise grid), for tests."""

    def __init__(self, cfg: DataConfig, channels: int, partner: str | None, p_single: float = 0.0):
        names = ["B02", "B03", "B04", "B08", "B05", "B06", "B07", "B8A", "B11", "B12", "B01", "B09"]
        if not 1 <= channels <= len(names):
            raise ValueError(f"synthetic source channels={channels}: expected 1..{len(names)}")
        super().__init__(
            name="synthetic" + (f"+{partner}" if partner else ""),
            bands_a=_band_specs(S2_PAIR_SENSOR, names[:channels]),
            bands_b=_band_specs(S1_SENSOR, ["VV", "VH"]) if partner else None,
        )
        self.p_single = p_single

    def sample(self, g: torch.Generator, img_size: int, cfg: DataConfig) -> Sample:
        c_a = len(self.bands_a)
        c_b = len(self.bands_b) if self.bands_b else 0
        base = torch.randn(c_a + c_b, 8, 8, generator=g)
        field_ = F.interpolate(
            base[None], size=(img_size, img_size), mode="bilinear", align_corners=False
        )[0]
        return Sample(field_[:c_a].contiguous(), field_[c_a:].contiguous() if c_b else None)


def build_source(src: SourceConfig, cfg: DataConfig) -> Source:
    """Instantiate the stream described by ``src``."""
    if src.kind == "s2_scene":
        return SceneSource(cfg, src.partner, src.p_single)
    if src.kind == "bigearthnet":
        return PairSource(cfg, src.partner, src.p_single)
    if src.kind == "synthetic":
        return SyntheticSource(cfg, src.channels, src.partner, src.p_single)
    raise ValueError(f"unknown source kind {src.kind!r}")
