"""The user cache directory: verified cache entries and safe, atomic archive extraction.

The cache root is ``$SMARTIESVIZ_CACHE`` when set, else the platform's user cache directory
(``~/.cache/smartiesviz`` on Linux). Nothing in it is trusted blindly:

- A cache *entry* is a folder built once by :func:`cached_folder`: into a temporary folder beside
  the target, a manifest (``manifest.json``: size and sha256 of every file) is added, and the
  folder is renamed into place, so a half-written entry is never seen as complete.
- On load the entry is checked against its manifest. A missing, extra, resized or changed file,
  or a link anywhere in the entry, makes it *damaged*: a :class:`CacheRepairWarning` names the
  files, the entry is removed (links are deleted, never followed) and rebuilt.
- Cost: the sha256 of a file is recomputed only when its stat fingerprint (inode, size, mtime,
  ctime) differs from the one recorded after the last full check, or when that check was too
  close to the file's last change to rule out a write in the same clock tick. Every write to a
  file updates its ctime, which no user can set back, so an in-place edit is always re-hashed;
  silent disk corruption that bypasses the file system is not detected.

Archive extraction refuses any member that would land outside the target (absolute paths, ``..``
components, drive letters), links pointing outside it, and device/FIFO members.

Size limit: ``$SMARTIESVIZ_CACHE_LIMIT`` (bytes, or a number with ``K``/``M``/``G``/``T``, binary
units, e.g. ``500M``; ``none`` for no limit; default 2 GiB) bounds the cache. After a new entry is
written, least-recently-used map-layer entries (:func:`map_layer_cache`, one folder per scene and
model, "used" = its folder's mtime) are removed whole until the cache is within the limit; the entry
in use is never evicted, nor are the sample entries (``cubes``, ``bigearthnet-common-*``), which
only ``smartiesviz cache clear --all`` (or ``clear samples``) removes. ``smartiesviz cache info``
lists each cache with its path, entries, size and limit.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import shutil
import tarfile
import tempfile
import time
import warnings
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

from platformdirs import user_cache_dir

from smartiesviz.errors import UserError
from smartiesviz.outputs import PARTIAL, atomic_write_bytes, file_sha256

ENV_VAR = "SMARTIESVIZ_CACHE"
LIMIT_ENV = "SMARTIESVIZ_CACHE_LIMIT"
DEFAULT_LIMIT = 2 * 1024**3
MAP_CACHE_ENV = "SMARTIESVIZ_MAP_CACHE"
MAP_LAYERS = "map-layers"  # the map-layer cache's folder in the cache root (by default)
SAMPLE_FOLDERS = ("cubes", "bigearthnet-common-*")  # data/samples.py's entries: never evicted
LAYER_ENTRY = re.compile(r"[0-9a-f]{16}")  # a map-layer entry's folder name (its key)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
MANIFEST = "manifest.json"
# in-flight manifest rewrites (atomic_path's temporary file + rename), and the name used before
MANIFEST_TEMP_PREFIX = f".{MANIFEST}{PARTIAL}"
_OLD_MANIFEST_TEMP_PREFIX = ".manifest-"
MANIFEST_VERSION = 1
# a file changed within this long before the last full check may have changed in the same tick
RACY_NS = 2_000_000_000


class UnsafeArchiveError(ValueError):
    """An archive member would be written outside the extraction folder."""


class CacheRepairWarning(UserWarning):
    """A damaged cache entry (named in the message) was found; it is removed and rebuilt."""


def cache_root() -> Path:
    """The cache root's path (not created): ``$SMARTIESVIZ_CACHE`` or the user cache directory."""
    return Path(os.environ.get(ENV_VAR) or user_cache_dir("smartiesviz", appauthor=False)).expanduser()


def cache_dir() -> Path:
    """The cache root (created if missing): ``$SMARTIESVIZ_CACHE`` or the user cache directory."""
    path = cache_root()
    path.mkdir(parents=True, exist_ok=True)
    return path


def map_layer_cache() -> Path:
    """The map-layer cache folder: ``$SMARTIESVIZ_MAP_CACHE``, or ``map-layers`` in the cache root
    (not created here)."""
    if os.environ.get(MAP_CACHE_ENV):
        return Path(os.environ[MAP_CACHE_ENV]).expanduser()
    return cache_root() / MAP_LAYERS


def cache_limit() -> int | None:
    """The cache size limit in bytes from ``$SMARTIESVIZ_CACHE_LIMIT`` (default 2 GiB; ``None``:
    no limit)."""
    raw = os.environ.get(LIMIT_ENV, "").strip()
    if not raw:
        return DEFAULT_LIMIT
    if raw.lower() in ("none", "off", "unlimited"):
        return None
    m = re.fullmatch(r"(\d+(?:\.\d*)?)\s*([kmgt]?)(?:i?b)?", raw.lower())
    if not m:
        raise UserError(
            f"${LIMIT_ENV}={raw!r} is not a size: give bytes or a number with K, M, G or T "
            "(e.g. 2G, 500M), or 'none' for no limit"
        )
    return int(float(m[1]) * _UNITS[m[2]])


@dataclass(frozen=True)
class FileRecord:
    """What the manifest knows of one file of a cache entry.

    Attributes:
        size: Bytes.
        sha256: Hex digest of the content.
        fingerprint: ``(inode, mtime_ns, ctime_ns)`` when the content was last hashed.
    """

    size: int
    sha256: str
    fingerprint: tuple[int, int, int]


def _fingerprint(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_ino, st.st_mtime_ns, st.st_ctime_ns)


# the package's one file hash, under the name this module (and tests patching it) call
sha256_file = file_sha256


def _manifest_temp(rel: str) -> bool:
    return "/" not in rel and rel.startswith((MANIFEST_TEMP_PREFIX, _OLD_MANIFEST_TEMP_PREFIX))


def _scan(folder: Path) -> tuple[dict[str, Path], list[str]]:
    """Regular files under ``folder`` by relative POSIX name (manifest excluded), and problems:
    links (listed, never entered) and special files.

    The manifest's temporary file (another process refreshing fingerprints, mid-rename) is not
    a file of the entry either."""
    files: dict[str, Path] = {}
    problems: list[str] = []
    for dirpath, dirnames, filenames in os.walk(folder):  # does not descend into linked folders
        for name in sorted(dirnames) + sorted(filenames):
            path = Path(dirpath) / name
            rel = path.relative_to(folder).as_posix()
            if path.is_symlink():
                problems.append(f"{path} is a link (links are refused in the cache)")
            elif name in filenames and not path.is_file():
                problems.append(f"{path} is not a regular file")
            elif name in filenames and rel != MANIFEST and not _manifest_temp(rel):
                files[rel] = path
    return files, problems


def _save_manifest(folder: Path, records: dict[str, FileRecord], checked_ns: int) -> None:
    """Write ``folder/manifest.json`` atomically (:func:`smartiesviz.outputs.atomic_write_bytes`)."""
    body = {
        "version": MANIFEST_VERSION,
        "checked_ns": checked_ns,
        "files": {rel: asdict(rec) for rel, rec in sorted(records.items())},
    }
    atomic_write_bytes(folder / MANIFEST, json.dumps(body, indent=1).encode())


def write_manifest(folder: Path) -> dict[str, FileRecord]:
    """Hash every file of ``folder`` and write its manifest.

    Raises:
        UnsafeArchiveError: the folder holds a link or a special file.
    """
    checked_ns = time.time_ns()
    files, problems = _scan(folder)
    if problems:
        raise UnsafeArchiveError(f"refusing to cache {folder}: {'; '.join(problems)}")
    records = {
        rel: FileRecord(path.stat().st_size, sha256_file(path), _fingerprint(path.stat()))
        for rel, path in files.items()
    }
    _save_manifest(folder, records, checked_ns)
    return records


def _read_manifest(folder: Path) -> tuple[dict[str, FileRecord], int]:
    body = json.loads((folder / MANIFEST).read_text())
    if body.get("version") != MANIFEST_VERSION:
        raise ValueError(f"manifest version {body.get('version')!r}")
    records = {
        rel: FileRecord(int(r["size"]), str(r["sha256"]), tuple(r["fingerprint"]))  # type: ignore[arg-type]
        for rel, r in body["files"].items()
    }
    return records, int(body["checked_ns"])


def check_entry(folder: Path) -> list[str]:
    """Compare a cache entry with its manifest, following no link.

    Returns:
        The problems found, each naming a file (empty when the entry is intact). When some files
        had to be re-hashed and all matched, their fingerprints are refreshed in the manifest.
    """
    if folder.is_symlink():
        return [f"{folder} is a link (links are refused in the cache)"]
    if not folder.is_dir():
        return [f"{folder} is not a folder"]
    manifest = folder / MANIFEST
    if manifest.is_symlink() or not manifest.is_file():
        return [f"{manifest} is missing (or the entry predates manifests)"]
    try:
        records, checked_ns = _read_manifest(folder)
    except (OSError, ValueError, KeyError, TypeError) as err:
        return [f"{manifest} is unreadable ({err})"]
    files, problems = _scan(folder)
    problems += [f"{folder / rel} is missing" for rel in sorted(records.keys() - files.keys())]
    problems += [f"{folder / rel} is not in the manifest" for rel in sorted(files.keys() - records.keys())]  # fmt: skip
    now_ns = time.time_ns()
    rehashed = False
    for rel in sorted(records.keys() & files.keys()):
        record, path = records[rel], files[rel]
        st = path.stat()
        if st.st_size != record.size:
            problems.append(f"{path} has {st.st_size} bytes, the manifest says {record.size}")
            continue
        stable = st.st_ctime_ns < checked_ns - RACY_NS
        if _fingerprint(st) == tuple(record.fingerprint) and stable:
            continue
        if sha256_file(path) != record.sha256:
            problems.append(f"{path} does not match its sha256 in the manifest")
            continue
        records[rel] = FileRecord(record.size, record.sha256, _fingerprint(st))
        rehashed = True
    if rehashed and not problems:
        try:
            _save_manifest(folder, records, now_ns)
        except (OSError, UserError):  # read-only or full cache: the check is repeated next time
            pass
    return problems


def discard(path: Path) -> None:
    """Remove a file, link or folder of the cache; links are deleted, never followed."""
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
        return
    if not path.exists():
        return
    trash = Path(tempfile.mkdtemp(prefix=f".{path.name}-discarded-", dir=path.parent))
    try:
        os.replace(path, trash / path.name)  # one atomic step: nobody sees a half-removed entry
    except FileNotFoundError:  # another process discarded it first
        pass
    shutil.rmtree(trash, ignore_errors=True)  # rmtree unlinks links without following them


def tree_size(path: Path) -> int:
    """Bytes of the files under ``path`` (a link counts as itself and is never followed)."""
    total = 0
    if path.is_symlink() or path.is_file():
        return path.lstat().st_size
    for dirpath, dirnames, filenames in os.walk(path):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:  # removed meanwhile
                pass
    return total


def _folders(folder: Path, pattern: str = "*") -> list[Path]:
    """Real sub-folders of ``folder`` matching ``pattern`` (links and files left out)."""
    if folder.is_symlink() or not folder.is_dir():
        return []
    return sorted(p for p in folder.glob(pattern) if p.is_dir() and not p.is_symlink())


def sample_folders() -> list[Path]:
    """The cache root's sample folders (``cubes``, ``bigearthnet-common-*``); links included, so
    that clearing removes them."""
    root = cache_root()
    return sorted({p for pattern in SAMPLE_FOLDERS for p in root.glob(pattern)} if root.is_dir() else [])


def layer_entries(root: Path) -> list[Path]:
    """Map-layer entries of ``root`` (folders named by a 16-hex key), least recently used first."""
    entries = [p for p in _folders(root) if LAYER_ENTRY.fullmatch(p.name)]
    return sorted(entries, key=lambda p: (p.stat().st_mtime_ns, p.name))


def touch(entry: Path) -> None:
    """Mark a cache entry as used now (its folder's mtime orders the eviction)."""
    try:
        os.utime(entry, follow_symlinks=False)
    except OSError:  # read-only cache: only the eviction order suffers
        pass


def is_inside(path: Path, root: Path) -> bool:
    """Whether ``path``, links resolved, lies in ``root``."""
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False


def enforce_limit(root: Path | None = None, keep: Collection[Path] = ()) -> list[Path]:
    """Evict least-recently-used map-layer entries of ``root`` until the cache fits its limit.

    Args:
        root: the map-layer cache (default :func:`map_layer_cache`). When it lies inside the cache
            root, the sample folders count towards the limit too (they are never evicted).
        keep: entries in use, never evicted (the one just written among them).

    Returns:
        The entries removed.
    """
    limit = cache_limit()
    root = Path(root) if root is not None else map_layer_cache()
    if limit is None:
        return []
    entries = layer_entries(root)
    sizes = {e: tree_size(e) for e in entries}
    total = sum(sizes.values())
    if is_inside(root, cache_root()):
        total += sum(tree_size(p) for p in sample_folders())
    kept = {Path(k).resolve() for k in keep}
    evicted = []
    for entry in entries:
        if total <= limit:
            break
        if entry.resolve() in kept:
            continue
        discard(entry)
        total -= sizes[entry]
        evicted.append(entry)
    return evicted


def refuse_links_above(target: Path, root: Path) -> None:
    """Remove links between the cache root and ``target`` (``cubes -> /elsewhere``), with a warning."""
    try:
        parts = target.relative_to(root).parts[:-1]
    except ValueError:
        return
    path = root
    for part in parts:
        path = path / part
        if path.is_symlink():
            warnings.warn(
                f"cache folder {path} is a link (links are refused in the cache); removing it",
                CacheRepairWarning,
                stacklevel=4,
            )
            path.unlink()


def _build_atomically(target: Path, build: Callable[[Path], None], manifest: bool) -> bool:
    """Run ``build(tmp)`` in a temporary folder beside ``target``, then rename it into place.

    Returns:
        ``False`` when a concurrent builder renamed its folder first (ours is discarded).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        build(tmp)
        if manifest:
            write_manifest(tmp)
        try:
            os.replace(tmp, target)
        except OSError:
            if not target.is_dir():  # not a concurrent extraction that won the race
                raise
            return False
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return True


def cached_folder(target: Path, build: Callable[[Path], None]) -> Path:
    """An intact cache entry at ``target``, built by ``build(folder)`` when missing or damaged.

    Args:
        target: The entry folder, inside :func:`cache_dir`.
        build: Writes the entry's files into the (empty, temporary) folder it is given.

    Returns:
        ``target``, verified against its manifest.

    Warns:
        CacheRepairWarning: the entry was damaged (the message names the files); it is rebuilt.
    """
    target = Path(target)
    refuse_links_above(target, cache_dir())
    if target.exists() or target.is_symlink():
        problems = check_entry(target)
        if not problems:
            return target
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        warnings.warn(
            f"cache entry {target} is damaged: {'; '.join(problems[:3])}{more}; rebuilding it",
            CacheRepairWarning,
            stacklevel=2,
        )
        discard(target)
    if not _build_atomically(target, build, manifest=True):
        problems = check_entry(target)  # a concurrent build won: check its entry instead
        if problems:
            raise OSError(f"cache entry {target} is damaged right after it was built: {problems[0]}")
    enforce_limit()  # the cache grew: map-layer entries may have to go (sample entries never do)
    return target


def _check_member(member: tarfile.TarInfo, archive: str) -> None:
    name = member.name
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or ".." in parts:
        raise UnsafeArchiveError(
            f"refusing to extract {archive!r}: member {name!r} would be written outside the "
            "target folder (absolute path or '..' component)"
        )
    if member.isdev() or member.isfifo():
        raise UnsafeArchiveError(
            f"refusing to extract {archive!r}: member {name!r} is a device or FIFO"
        )
    if member.issym() or member.islnk():
        link = member.linkname.replace("\\", "/")
        # symlinks are relative to the member's folder, hard links to the archive root
        base = posixpath.dirname(name) if member.issym() else ""
        target = posixpath.normpath(posixpath.join(base, link))
        if link.startswith("/") or target == ".." or target.startswith("../"):
            raise UnsafeArchiveError(
                f"refusing to extract {archive!r}: link {name!r} -> {member.linkname!r} points "
                "outside the target folder"
            )


def extract_into(fileobj: IO[bytes], folder: Path, archive_name: str = "archive") -> None:
    """Extract a tar archive into the existing ``folder`` after checking every member.

    Raises:
        UnsafeArchiveError: a member would escape ``folder`` (nothing is written then).
    """
    with tarfile.open(fileobj=fileobj, mode="r:*") as tar:
        members = tar.getmembers()
        for member in members:
            _check_member(member, archive_name)
        kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tar.extractall(folder, members=members, **kwargs)  # noqa: S202 - members checked above


def safe_extract(fileobj: IO[bytes], target: Path, archive_name: str = "archive") -> Path:
    """Extract a tar archive (any compression tarfile reads) into ``target``, safely and atomically.

    Every member is checked before anything is written; one unsafe member aborts the whole
    extraction and leaves no trace. If ``target`` already exists it is returned untouched (use
    :func:`cached_folder` with :func:`extract_into` for a verified cache entry).

    Args:
        fileobj: the archive, opened in binary mode.
        target: folder to create; the archive's content ends up inside it.
        archive_name: used in error messages.

    Returns:
        ``target``.

    Raises:
        UnsafeArchiveError: a member would escape ``target``.
    """
    target = Path(target)
    if not target.exists():
        _build_atomically(target, lambda tmp: extract_into(fileobj, tmp, archive_name), False)
    return target
