"""The user cache directory and safe, atomic extraction of the bundled sample archives.

The cache root is ``$SMARTIESVIZ_CACHE`` when set, else the platform's user cache directory
(``~/.cache/smartiesviz`` on Linux). An archive is extracted once: into a temporary folder beside
the target, then renamed into place, so a half-written extraction is never seen as complete.

Extraction refuses any member that would land outside the target (absolute paths, ``..``
components, drive letters), links pointing outside it, and device/FIFO members.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import IO

ENV_VAR = "SMARTIESVIZ_CACHE"


class UnsafeArchiveError(ValueError):
    """An archive member would be written outside the extraction folder."""


def cache_dir() -> Path:
    """The cache root (created if missing): ``$SMARTIESVIZ_CACHE`` or the user cache directory."""
    root = os.environ.get(ENV_VAR)
    if not root:
        try:
            from platformdirs import user_cache_dir

            root = user_cache_dir("smartiesviz", appauthor=False)
        except ImportError:  # pragma: no cover - platformdirs comes with jupyter
            root = os.path.join(os.path.expanduser("~"), ".cache", "smartiesviz")
    path = Path(root).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


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


def safe_extract(fileobj: IO[bytes], target: Path, archive_name: str = "archive") -> Path:
    """Extract a tar archive (any compression tarfile reads) into ``target``, safely and atomically.

    Every member is checked before anything is written; one unsafe member aborts the whole
    extraction and leaves no trace. If ``target`` already exists it is returned untouched.

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
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=fileobj, mode="r:*") as tar:
        members = tar.getmembers()
        for member in members:
            _check_member(member, archive_name)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        try:
            kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(tmp, members=members, **kwargs)  # noqa: S202 - members checked above
            try:
                os.replace(tmp, target)
            except OSError:
                if not target.exists():  # a concurrent extraction may have won the race
                    raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return target
