"""Archives as sequential shards: build them once, stream them at training time.

Format: WebDataset's convention (https://github.com/webdataset/webdataset), plain POSIX tar files
``shard-000000.tar`` in which the members of one sample share a key: ``<key>.a.npy`` (raw input-unit
``(C, H, W)`` float32 array of the first image), ``<key>.b.npy`` (its partner, pairs only) and
``<key>.json`` (band names, sensors, units, CRS, transform, bounds, source paths). Why this format:
tar is readable by every tool and language, WebDataset/LitData/TorchData read it as is, a shard is
read front to back (what network file systems and object stores serve fastest), and the standard
library writes it, so building needs no new dependency. Next to the shards, ``index.json`` lists
every shard with its SHA-256 and byte size and, per sample, each member's byte offset and size,
which lets a reader seek to a sample inside a shard it reads in order. The index also lists the
sample *groups* (one per sensor pair and band lists: a batch shares its band sets) and the group of
every sample, so one folder may mix archives (the release's BigEarthNet S2/S1 and fMoW RGB/S2 pairs):
training draws each step's batch from one group (:meth:`ShardReader.at` with ``group``).

Streaming order (:func:`epoch_order`): per epoch, the shards are visited in an order drawn from
``(seed, epoch)`` and the samples are shuffled inside windows of ``shuffle`` consecutive samples
(a shuffle buffer of that size, made deterministic). Position ``p`` of the stream is sample
``order(p // N)[p % N]``, so any process, rank or DataLoader worker reads exactly the samples of
its positions, and resuming at a step is skipping to its position: no state beyond the step count.

A shard whose bytes do not match the index is reported by name; ``on_bad="skip"`` drops its
samples from the stream, ``"error"`` refuses to start. An index with wrong types or missing keys,
or naming a shard outside its folder (``../x``, an absolute path, a symbolic link leading out), is
refused with one line naming the index, the entry and the value.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from smartiesviz.errors import UserError
from smartiesviz.outputs import atomic_path, atomic_write_bytes, check_input_file, file_sha256

FORMAT = "smartiesviz-shards/1"
INDEX = "index.json"
SIGNATURE_KEYS = ("sensor_a", "bands_a", "sensor_b", "bands_b")


@dataclass
class RawSample:
    """One sample as stored: raw input-unit arrays and what they are."""

    a: np.ndarray
    meta: dict[str, Any]
    b: np.ndarray | None = None


def signature(meta: dict[str, Any]) -> dict[str, Any]:
    """A record's group: its sensors and band lists (``sensor_b``/``bands_b`` None without partner)."""
    return {k: meta.get(k) for k in SIGNATURE_KEYS}


# ----------------------------------------------------------------------------- writing
def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array, dtype=np.float32), allow_pickle=False)
    return buf.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644  # reproducible bytes
    tar.addfile(info, io.BytesIO(data))


def _add_sample(tar: tarfile.TarFile, key: str, sample: RawSample) -> None:
    _add(tar, f"{key}.a.npy", _npy(sample.a))
    if sample.b is not None:
        _add(tar, f"{key}.b.npy", _npy(sample.b))
    _add(tar, f"{key}.json", json.dumps(sample.meta, sort_keys=True).encode())


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
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    shards: list[dict[str, Any]] = []
    groups: list[dict[str, Any]] = []
    written: list[Path] = []
    n = 0
    it = iter(samples)
    try:
        while (first := next(it, None)) is not None:
            name, group_of = f"shard-{len(shards):06d}.tar", []
            # each shard and the index go through the package's atomic writer (hidden
            # ``.NAME.partial-PID`` file renamed into place); a failure removes the one in flight
            with atomic_path(out / name) as tmp, tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:  # fmt: skip
                for sample in itertools.chain([first], itertools.islice(it, shard_size - 1)):
                    sig = signature(sample.meta)
                    if sig not in groups:
                        groups.append(sig)
                    group_of.append(groups.index(sig))
                    _add_sample(tar, f"{n:09d}", sample)
                    n += 1
            written.append(out / name)
            members = _members(out / name)
            shards.append({"name": name, "sha256": file_sha256(out / name),
                           "bytes": (out / name).stat().st_size,
                           "samples": [[k, members[k]] for k in members], "groups": group_of})  # fmt: skip
        if not shards:
            raise ValueError("no samples to write")
        index = {"format": FORMAT, "samples": n, "groups": groups, "shards": shards}
        atomic_write_bytes(out / INDEX, json.dumps(index).encode())
    except BaseException:  # no shards without an index left behind: remove what this call wrote
        for path in written:
            path.unlink(missing_ok=True)
        if created:
            with contextlib.suppress(OSError):
                out.rmdir()
        raise
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
REBUILD = "rebuild the folder with `smartiesviz shards build`"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class _Index:
    """Checks of ``index.json`` entries: each failure is one line naming the file, entry and value."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, value: Any, expected: str) -> UserError:
        kind = type(value).__name__
        return UserError(
            f"{self.path}: {where} is {_short(value)} ({kind}); expected {expected}; {REBUILD}"
        )

    def get(self, obj: dict[str, Any], key: str, where: str, ok: Any, expected: str) -> Any:
        if key not in obj:
            raise UserError(f"{self.path}: {where}{key} is missing; {REBUILD}")
        if not ok(obj[key]):
            raise self.fail(f"{where}{key}", obj[key], expected)
        return obj[key]

    def shard_name(self, folder: Path, name: str, where: str) -> None:
        """Refuse names that are not plain file names inside ``folder`` (symbolic links included)."""
        plain = (
            name not in ("", ".", "..")
            and "/" not in name
            and "\\" not in name
            and "\0" not in name
        )
        if not plain:
            raise UserError(f"{self.path}: {where} is {name!r}; a shard must be a plain file name "
                            f"inside {str(folder)!r} (no folders, '..' or absolute paths); {REBUILD}")  # fmt: skip
        target = (folder / name).resolve()
        if (folder / name).is_symlink() and target.parent != folder.resolve():
            raise UserError(f"{self.path}: {where} {name!r} is a symbolic link to {str(target)!r}, outside "
                            f"{str(folder)!r}; shards must lie inside their folder")  # fmt: skip

    def check(self, index: Any, folder: Path) -> dict[str, Any]:
        """``index`` when every entry the reader uses has the right type (else a :class:`UserError`)."""
        if not isinstance(index, dict):
            raise self.fail(
                "the top level", index, "a JSON object written by `smartiesviz shards build`"
            )
        if index.get("format") != FORMAT:
            raise self.fail("format", index.get("format"), repr(FORMAT))
        shards = self.get(
            index, "shards", "", lambda v: isinstance(v, list) and v, "a non-empty list of shards"
        )
        groups = self._groups(index.get("groups"))
        total = sum(
            self._shard(shard, f"shards[{i}]", folder, groups) for i, shard in enumerate(shards)
        )
        count = index.get("samples", total)
        if count != total or not _is_int(count):
            raise self.fail("samples", count, f"the number of samples its shards list ({total})")
        return index

    def _groups(self, groups: Any) -> list[dict[str, Any]] | None:
        """The index's optional ``groups`` (sensor/band pairs), each entry checked."""
        if groups is not None:
            ok = isinstance(groups, list) and all(isinstance(g, dict) for g in groups)
            if not ok:
                raise self.fail(
                    "groups", groups, "a list of {sensor_a, bands_a, sensor_b, bands_b}"
                )
            for i, g in enumerate(groups):
                self._group(g, f"groups[{i}].")
        return groups

    def _shard(
        self, shard: Any, where: str, folder: Path, groups: list[dict[str, Any]] | None
    ) -> int:
        """Check one ``shards[i]`` entry; returns its number of samples."""
        if not isinstance(shard, dict):
            raise self.fail(where, shard, "an object with name, sha256, bytes and samples")
        name = self.get(shard, "name", f"{where}.", lambda v: isinstance(v, str), "a file name")
        self.shard_name(folder, name, f"{where}.name")
        self.get(
            shard,
            "sha256",
            f"{where}.",
            lambda v: isinstance(v, str) and len(v) == 64,
            "a hex SHA-256",
        )
        size = self.get(shard, "bytes", f"{where}.", _is_int, "a byte count (an integer >= 0)")
        samples = self.get(shard, "samples", f"{where}.", lambda v: isinstance(v, list),
                           "a list of [key, members]")  # fmt: skip
        for j, sample in enumerate(samples):
            self._sample(sample, size, f"{where}.samples[{j}]")
        if groups is not None:
            self._shard_groups(shard, where, len(samples), len(groups))
        return len(samples)

    def _shard_groups(
        self, shard: dict[str, Any], where: str, n_samples: int, n_groups: int
    ) -> None:
        """A shard's ``groups``: one valid group id per sample."""
        of = self.get(
            shard,
            "groups",
            f"{where}.",
            lambda v: isinstance(v, list),
            "a list of group ids",
        )
        if len(of) != n_samples:
            raise self.fail(f"{where}.groups", of, f"one group id per sample ({n_samples})")
        for j, g in enumerate(of):
            if not (_is_int(g) and g < n_groups):
                raise self.fail(f"{where}.groups[{j}]", g, f"a group id in 0..{n_groups - 1}")

    def _group(self, g: dict[str, Any], where: str) -> None:
        def names(v: Any) -> bool:
            return isinstance(v, list) and bool(v) and all(isinstance(b, str) for b in v)

        self.get(g, "sensor_a", where, lambda v: isinstance(v, str), "a sensor name")
        self.get(g, "bands_a", where, names, "a list of band names")
        if g.get("sensor_b") is not None or g.get("bands_b") is not None:
            self.get(g, "sensor_b", where, lambda v: isinstance(v, str), "a sensor name")
            self.get(g, "bands_b", where, names, "a list of band names")

    def _sample(self, sample: Any, size: int, where: str) -> None:
        ok = isinstance(sample, list) and len(sample) == 2 and isinstance(sample[1], dict)
        if not ok:
            raise self.fail(
                where, sample, '[key, {"a": [offset, size], "json": [offset, size], ...}]'
            )
        for ext in ("a", "json"):
            if ext not in sample[1]:
                raise UserError(f"{self.path}: {where} has no {ext!r} member; {REBUILD}")
        for ext, span in sample[1].items():
            good = isinstance(span, list) and len(span) == 2 and all(_is_int(v) for v in span)
            if not good or span[0] + span[1] > size:
                raise self.fail(
                    f"{where}.{ext}", span, f"[offset, size] inside the shard's {size} bytes"
                )


class ShardReader:
    """Random access by stream position to the samples of a shard folder (see the module doc).

    Args:
        path: folder holding ``index.json`` and the shards.
        on_bad: ``error`` (refuse corrupt or missing shards) or ``skip`` (leave their samples out).
        verify: check every shard's SHA-256 when opening (else only sizes).

    Attributes:
        bad: ``[(shard name, reason)]`` of the shards left out.
        groups: the sample groups (:func:`signature`: sensors and band lists).
        group_of: ``(len(self),)`` group id of every usable sample.

    Raises:
        UserError: the index is missing, unreadable, has wrong types or names a shard outside
            the folder; or (``on_bad='error'``) a shard is missing or corrupt.
    """

    def __init__(
        self, path: str | Path, on_bad: Literal["error", "skip"] = "error", verify: bool = True
    ) -> None:
        self.path = Path(path)
        index_path = self.path / INDEX
        if not index_path.exists():
            raise FileNotFoundError(f"{str(index_path)!r} does not exist: build shards with "
                                    "`smartiesviz shards build`")  # fmt: skip
        check_input_file(index_path, "shard index")
        try:
            index = json.loads(index_path.read_bytes())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise UserError(f"{index_path} is not valid JSON: {err}; {REBUILD}") from None
        index = _Index(index_path).check(index, self.path)
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
        if not self.shards or not any(s["samples"] for s in self.shards):
            raise ValueError(f"no usable shard in {self.path}")
        self.counts = [len(s["samples"]) for s in self.shards]
        self._where = [(i, j) for i, s in enumerate(self.shards) for j in range(len(s["samples"]))]
        self._files: dict[int, Any] = {}
        self._pid = os.getpid()
        self._orders: dict[tuple[int, int, int, int | None], np.ndarray] = {}
        if index.get("groups") is not None:
            self.groups: list[dict[str, Any]] = [signature(g) for g in index["groups"]]
            self.group_of = np.array([g for s in self.shards for g in s["groups"]], dtype=np.int64)
        else:  # an index written before groups were recorded: read every record's JSON once
            self.groups, ids = [], []
            for i in range(len(self)):
                sig = signature(self._meta(i))
                if sig not in self.groups:
                    self.groups.append(sig)
                ids.append(self.groups.index(sig))
            self.group_of = np.array(ids, dtype=np.int64)
        self._sizes = np.bincount(self.group_of, minlength=len(self.groups))

    def _check(self, shard: dict[str, Any], verify: bool) -> str | None:
        p = self.path / shard["name"]
        if not p.exists():
            return "missing"
        if not p.is_file():
            return "not a regular file"
        if p.stat().st_size != shard["bytes"]:
            return f"size {p.stat().st_size} bytes, index says {shard['bytes']}"
        if verify and file_sha256(p) != shard["sha256"]:
            return "corrupt: SHA-256 does not match the index"
        return None

    def __len__(self) -> int:
        return len(self._where)

    def group_size(self, group: int) -> int:
        """Number of usable samples of ``group``."""
        return int(self._sizes[group])

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

    def _meta(self, sample_id: int) -> dict[str, Any]:
        shard, j = self._where[sample_id]
        key, members = self.shards[shard]["samples"][j]
        where = f"{self.path / self.shards[shard]['name']} member {key}.json"
        try:
            meta = json.loads(self._member(shard, members["json"]))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise UserError(f"{where} is not valid JSON: {err}; {REBUILD}") from None
        if not isinstance(meta, dict):
            raise UserError(f"{where} is {_short(meta)}, not an object; {REBUILD}")
        for side in ("a", "b"):
            sensor, bands = meta.get(f"sensor_{side}"), meta.get(f"bands_{side}")
            if side == "b" and sensor is None and bands is None:
                continue
            ok = (
                isinstance(sensor, str)
                and isinstance(bands, list)
                and all(isinstance(b, str) for b in bands)
            )
            if not ok:
                raise UserError(f"{where}: sensor_{side}={_short(sensor)}, bands_{side}={_short(bands)}; "
                                f"expected a sensor name and a list of band names; {REBUILD}")  # fmt: skip
        return meta

    def sample(self, sample_id: int) -> RawSample:
        """The stored sample ``sample_id`` (index into the usable shards' samples)."""
        shard, j = self._where[sample_id]
        _, members = self.shards[shard]["samples"][j]
        meta = self._meta(sample_id)
        a = np.load(io.BytesIO(self._member(shard, members["a"])), allow_pickle=False)
        b = None
        if "b" in members:
            b = np.load(io.BytesIO(self._member(shard, members["b"])), allow_pickle=False)
        return RawSample(a, meta, b)

    def order(self, seed: int, epoch: int, shuffle: int, group: int | None = None) -> np.ndarray:
        """Sample ids of ``epoch`` (:func:`epoch_order`), only those of ``group`` when given."""
        key = (seed, epoch, shuffle, group)
        if key not in self._orders:
            if len(self._orders) > 2 * (1 + len(self.groups)):
                self._orders.clear()
            ids = epoch_order(self.counts, seed, epoch, shuffle)
            if group is not None and len(self.groups) > 1:
                ids = ids[self.group_of[ids] == group]
            self._orders[key] = ids
        return self._orders[key]

    def at(self, position: int, seed: int, shuffle: int, group: int | None = None) -> RawSample:
        """The sample at stream ``position`` (epochs follow each other; see :func:`epoch_order`);
        with ``group``, the stream of that group's samples only (same shard order)."""
        size = len(self) if group is None else self.group_size(group)
        if size == 0:
            raise ValueError(f"group {group} of {self.path} has no usable sample")
        epoch, offset = divmod(int(position), size)
        return self.sample(int(self.order(seed, epoch, shuffle, group)[offset]))

    def __iter__(self) -> Iterator[RawSample]:
        for i in range(len(self)):
            yield self.sample(i)
