"""Archives as sequential shards: build them once, stream them at training time.

Format: WebDataset's convention (https://github.com/webdataset/webdataset), plain POSIX tar files
``shard-000000.tar`` in which the members of one sample share a key: ``<key>.a.npy`` (raw input-unit
``(C, H, W)`` float32 array of the first image), ``<key>.b.npy`` (its partner, pairs only) and
``<key>.json`` (band names, sensors, units, CRS, transform, bounds, source paths). Why this format:
tar is readable by every tool and language, WebDataset/LitData/TorchData read it as is, a shard is
read front to back (what network file systems and object stores serve fastest), and the standard
library writes it, so building needs no new dependency. Next to the shards, ``index.json`` lists
every shard with its SHA-256 and byte size and, per sample, each member's byte offset and size,
which lets a reader seek to a sample inside a shard it reads in order.

Streaming order (:func:`epoch_order`): per epoch, the shards are visited in an order drawn from
``(seed, epoch)`` and the samples are shuffled inside windows of ``shuffle`` consecutive samples
(a shuffle buffer of that size, made deterministic). Position ``p`` of the stream is sample
``order(p // N)[p % N]``, so any process, rank or DataLoader worker reads exactly the samples of
its positions, and resuming at a step is skipping to its position: no state beyond the step count.

A shard whose bytes do not match the index is reported by name; ``on_bad="skip"`` drops its
samples from the stream, ``"error"`` refuses to start.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

FORMAT = "smartiesviz-shards/1"
INDEX = "index.json"


@dataclass
class RawSample:
    """One sample as stored: raw input-unit arrays and what they are."""

    a: np.ndarray
    meta: dict[str, Any]
    b: np.ndarray | None = None


# ----------------------------------------------------------------------------- writing
def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array, dtype=np.float32), allow_pickle=False)
    return buf.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644  # reproducible bytes
    tar.addfile(info, io.BytesIO(data))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _members(path: Path) -> dict[str, dict[str, list[int]]]:
    """``{key: {"a": [offset, size], "b": ..., "json": ...}}`` of a written shard."""
    out: dict[str, dict[str, list[int]]] = {}
    with tarfile.open(path) as tar:
        for m in tar.getmembers():
            key, ext = m.name.split(".", 1)
            out.setdefault(key, {})[ext.removesuffix(".npy")] = [m.offset_data, m.size]
    return out


def write_shards(samples: Iterable[RawSample], out: str | Path, shard_size: int = 1000) -> Path:
    """Write samples as tar shards plus ``index.json`` (see the module docstring).

    Args:
        samples: the samples, in order.
        out: output folder (created; must not hold an index already).
        shard_size: samples per shard.

    Returns:
        Path of ``index.json``.
    """
    if shard_size < 1:
        raise ValueError(f"--shard-size must be >= 1, got {shard_size}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"shard output {str(out)!r} is a file, not a folder")
    if (out / INDEX).exists():
        raise ValueError(f"{str(out / INDEX)!r} exists; choose an empty folder")
    out.mkdir(parents=True, exist_ok=True)
    shards: list[dict[str, Any]] = []
    tar, n = None, 0

    def close() -> None:
        tar.close()
        part = out / f".{name}.partial"
        os.replace(part, out / name)
        members = _members(out / name)
        shards.append({"name": name, "sha256": _sha256(out / name),
                       "bytes": (out / name).stat().st_size,
                       "samples": [[k, members[k]] for k in members]})  # fmt: skip

    for sample in samples:
        if n % shard_size == 0:
            if tar is not None:
                close()
            name = f"shard-{len(shards):06d}.tar"
            tar = tarfile.open(out / f".{name}.partial", "w", format=tarfile.USTAR_FORMAT)
        key = f"{n:09d}"
        _add(tar, f"{key}.a.npy", _npy(sample.a))
        if sample.b is not None:
            _add(tar, f"{key}.b.npy", _npy(sample.b))
        _add(tar, f"{key}.json", json.dumps(sample.meta, sort_keys=True).encode())
        n += 1
    if tar is None:
        raise ValueError("no samples to write")
    close()
    index = {"format": FORMAT, "samples": n, "shards": shards}
    tmp = out / f".{INDEX}.partial"
    tmp.write_text(json.dumps(index))
    os.replace(tmp, out / INDEX)
    return out / INDEX


# ----------------------------------------------------------------------------- order
def epoch_order(counts: list[int], seed: int, epoch: int, shuffle: int) -> np.ndarray:
    """Sample ids (into the shards' concatenated samples) in the order of ``epoch``.

    Shards are visited in a random order drawn from ``(seed, epoch)``; inside each window of
    ``shuffle`` consecutive samples of that stream the order is shuffled too.
    """
    rng = np.random.default_rng([seed, epoch, 0x5A4D])
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    stream = np.concatenate(
        [np.arange(starts[s], starts[s] + counts[s]) for s in rng.permutation(len(counts))]
    )
    window = max(1, int(shuffle))
    for lo in range(0, len(stream), window):
        stream[lo : lo + window] = rng.permutation(stream[lo : lo + window])
    return stream


# ----------------------------------------------------------------------------- reading
class ShardReader:
    """Random access by stream position to the samples of a shard folder (see the module doc).

    Args:
        path: folder holding ``index.json`` and the shards.
        on_bad: ``error`` (refuse corrupt or missing shards) or ``skip`` (leave their samples out).
        verify: check every shard's SHA-256 when opening (else only sizes).

    Attributes:
        bad: ``[(shard name, reason)]`` of the shards left out.
    """

    def __init__(
        self, path: str | Path, on_bad: Literal["error", "skip"] = "error", verify: bool = True
    ) -> None:
        self.path = Path(path)
        index_path = self.path / INDEX
        if not index_path.is_file():
            raise FileNotFoundError(f"{str(index_path)!r} does not exist: build shards with "
                                    "`smartiesviz shards build`")  # fmt: skip
        try:
            index = json.loads(index_path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{index_path} is not valid JSON: {err}") from err
        if index.get("format") != FORMAT:
            raise ValueError(f"{index_path}: format {index.get('format')!r}, expected {FORMAT!r}")
        self.bad: list[tuple[str, str]] = []
        self.shards: list[dict[str, Any]] = []
        for shard in index["shards"]:
            reason = self._check(shard, verify)
            if reason:
                self.bad.append((shard["name"], reason))
            else:
                self.shards.append(shard)
        if self.bad and on_bad == "error":
            names = "; ".join(f"{n} ({r})" for n, r in self.bad[:5])
            raise ValueError(f"{len(self.bad)} of {len(index['shards'])} shards in {self.path} are "
                             f"unusable: {names} (set data.on_bad=skip to train without them)")  # fmt: skip
        if not self.shards:
            raise ValueError(f"no usable shard in {self.path}")
        self.counts = [len(s["samples"]) for s in self.shards]
        self._where = [(i, j) for i, s in enumerate(self.shards) for j in range(len(s["samples"]))]
        self._files: dict[int, Any] = {}
        self._pid = os.getpid()
        self._orders: dict[tuple[int, int, int], np.ndarray] = {}

    def _check(self, shard: dict[str, Any], verify: bool) -> str | None:
        p = self.path / shard["name"]
        if not p.is_file():
            return "missing"
        if p.stat().st_size != shard["bytes"]:
            return f"size {p.stat().st_size} bytes, index says {shard['bytes']}"
        if verify and _sha256(p) != shard["sha256"]:
            return "corrupt: SHA-256 does not match the index"
        return None

    def __len__(self) -> int:
        return len(self._where)

    def _file(self, shard: int) -> Any:
        if self._pid != os.getpid():  # a forked DataLoader worker opens its own handles
            self._files, self._pid = {}, os.getpid()
        if shard not in self._files:
            self._files[shard] = open(self.path / self.shards[shard]["name"], "rb")  # noqa: SIM115
        return self._files[shard]

    def _member(self, shard: int, span: list[int]) -> bytes:
        f = self._file(shard)
        f.seek(span[0])
        return f.read(span[1])

    def sample(self, sample_id: int) -> RawSample:
        """The stored sample ``sample_id`` (index into the usable shards' samples)."""
        shard, j = self._where[sample_id]
        _, members = self.shards[shard]["samples"][j]
        meta = json.loads(self._member(shard, members["json"]))
        a = np.load(io.BytesIO(self._member(shard, members["a"])), allow_pickle=False)
        b = None
        if "b" in members:
            b = np.load(io.BytesIO(self._member(shard, members["b"])), allow_pickle=False)
        return RawSample(a, meta, b)

    def at(self, position: int, seed: int, shuffle: int) -> RawSample:
        """The sample at stream ``position`` (epochs follow each other; see :func:`epoch_order`)."""
        epoch, offset = divmod(int(position), len(self))
        key = (seed, epoch, shuffle)
        if key not in self._orders:
            if len(self._orders) > 2:
                self._orders.clear()
            self._orders[key] = epoch_order(self.counts, seed, epoch, shuffle)
        return self.sample(int(self._orders[key][offset]))

    def __iter__(self) -> Iterator[RawSample]:
        for i in range(len(self)):
            yield self.sample(i)
