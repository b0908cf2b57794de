"""Normalization statistics of a whole archive, streamed with bounded memory.

The release normalizes each band as ``u = clip((v - p1) / (p99 - p1), 0, 1)`` then
``(u - mean) / std``, with ``p1``/``p99`` the 1st/99th percentiles of the band and ``mean``/``std``
those of ``u``. :func:`archive_stats` computes them per sensor and band over every sample of the
given sources in three streaming passes (only per-band counters are kept, whatever the archive's
size):

1. the range ``[min, max]`` of each band;
2. a histogram of ``bins`` equal bins over that range; ``p1``/``p99`` are read from its cumulative
   counts (linear inside the bin), so their error is at most one bin width, ``(max - min) / bins``,
   written next to each band as ``quantile_error``;
3. exact sums of ``u`` and ``u²`` for ``mean``/``std``.

Values are in the units the samples are stored in (Sentinel-1 of BigEarthNet-v1 folders: dB);
NaN pixels are ignored.
"""

from __future__ import annotations

import glob
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from smartiesviz.data.archives import iter_raw_samples
from smartiesviz.data.shards import RawSample
from smartiesviz.outputs import atomic_write_bytes, check_output

FORMAT = "smartiesviz-stats/1"


@dataclass
class _Band:
    lo: float = np.inf
    hi: float = -np.inf
    hist: np.ndarray | None = None
    p1: float = 0.0
    p99: float = 1.0
    n: int = 0
    s1: float = 0.0
    s2: float = 0.0


def _planes(samples: Iterable[RawSample]) -> Iterable[tuple[str, str, np.ndarray]]:
    """``(sensor, band, finite pixel values)`` of every band of every sample."""
    for s in samples:
        sides = [("a", s.a)] + ([("b", s.b)] if s.b is not None else [])
        for side, array in sides:
            sensor = s.meta[f"sensor_{side}"]
            for band, plane in zip(s.meta[f"bands_{side}"], array, strict=True):
                v = np.asarray(plane, np.float64).ravel()
                yield sensor, band, v[np.isfinite(v)]


def archive_stats(samples: Callable[[], Iterable[RawSample]], bins: int = 4096) -> dict[str, Any]:
    """Per-sensor, per-band ``p1``/``p99``/``mean``/``std`` (see the module docstring).

    Args:
        samples: a callable returning a fresh iterator over the samples (called once per pass).
        bins: histogram bins per band.

    Returns:
        ``{"format", "sensors": {sensor: {band: {p1, p99, mean, std, pixels, quantile_error}}}}``.
    """
    if bins < 10:
        raise ValueError(f"--bins must be >= 10, got {bins}")
    acc: dict[tuple[str, str], _Band] = {}
    for sensor, band, v in _planes(samples()):  # pass 1: range
        b = acc.setdefault((sensor, band), _Band())
        if v.size:
            b.lo, b.hi = min(b.lo, float(v.min())), max(b.hi, float(v.max()))
    empty = [f"{s}/{b}" for (s, b), a in acc.items() if not np.isfinite(a.lo)]
    if not acc or empty:
        raise ValueError(f"no valid pixels for {empty or 'any band'}; cannot compute statistics")
    for sensor, band, v in _planes(samples()):  # pass 2: histogram
        b = acc[(sensor, band)]
        h, _ = np.histogram(v, bins=bins, range=(b.lo, b.hi if b.hi > b.lo else b.lo + 1.0))
        b.hist = h if b.hist is None else b.hist + h
    for b in acc.values():
        b.p1, b.p99 = _quantiles(b, bins, (0.01, 0.99))
    for sensor, band, v in _planes(samples()):  # pass 3: clipped moments
        b = acc[(sensor, band)]
        u = np.clip((v - b.p1) / (b.p99 - b.p1), 0.0, 1.0)
        b.n, b.s1, b.s2 = b.n + u.size, b.s1 + float(u.sum()), b.s2 + float((u * u).sum())
    sensors: dict[str, dict[str, Any]] = {}
    for (sensor, band), b in acc.items():
        mean = b.s1 / b.n
        std = float(np.sqrt(max(b.s2 / b.n - mean * mean, 0.0))) or 1.0
        width = (b.hi - b.lo) / bins
        sensors.setdefault(sensor, {})[band] = {"p1": b.p1, "p99": b.p99, "mean": mean, "std": std,
                                                "pixels": b.n, "quantile_error": width}  # fmt: skip
    return {"format": FORMAT, "bins": bins, "sensors": sensors}


def _quantiles(b: _Band, bins: int, qs: Sequence[float]) -> tuple[float, float]:
    assert b.hist is not None
    hi = b.hi if b.hi > b.lo else b.lo + 1.0
    edges = np.linspace(b.lo, hi, bins + 1)
    cum = np.cumsum(b.hist) / max(int(b.hist.sum()), 1)
    out = []
    for q in qs:
        i = int(np.searchsorted(cum, q))
        i = min(i, bins - 1)
        before = cum[i - 1] if i > 0 else 0.0
        frac = (q - before) / max(cum[i] - before, 1e-12)
        out.append(float(edges[i] + np.clip(frac, 0.0, 1.0) * (edges[i + 1] - edges[i])))
    lo, hi_q = out
    if not hi_q > lo:  # constant band: any positive width maps it to 0
        hi_q = lo + 1.0
    return lo, hi_q


def source_inputs(sources: Sequence[Any]) -> list[Path]:
    """The files that ``data.sources`` entries name: list files, the images a glob matches, shard
    indexes and tars (what an output must never replace)."""
    found: list[Path] = []
    for src in sources:
        spec = getattr(src, "list", None)
        if spec and not str(spec).startswith("bundled:"):
            if any(ch in str(spec) for ch in "*?[") and getattr(src, "root", None):
                found += [Path(src.root) / n for n in glob.glob(str(spec), root_dir=src.root)]
            else:
                found.append(Path(spec))
        if getattr(src, "path", None):
            found += [Path(src.path) / "index.json", *Path(src.path).glob("*.tar")]
    return found


def write_stats(
    sources: Sequence[Any],
    out: str | Path,
    bins: int = 4096,
    inputs: Iterable[str | Path] = (),
    overwrite: bool = False,
) -> Path:
    """``smartiesviz stats``: :func:`archive_stats` of the config's sources, written as YAML.

    ``out`` is checked before any pass (:func:`smartiesviz.outputs.check_output`: never one of
    ``inputs``, a folder or a special file; an existing file only with ``overwrite``) and written
    atomically."""
    out = check_output(out, inputs, overwrite, what="--out")
    table = archive_stats(lambda: iter_raw_samples(sources), bins)
    atomic_write_bytes(out, yaml.safe_dump(table, sort_keys=False).encode())
    return out
