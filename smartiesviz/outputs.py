"""Where outputs go: the one atomic writer, the output checks, and the one file-hash helper.

Every file this package writes goes through here:

- :func:`check_output` refuses to write over an input (compared after resolving symbolic links,
  and by inode, so a hard link to an input is caught too), over a folder, over a special file
  (``/dev/null``, a FIFO, a socket, a device), and over an existing output unless ``overwrite``;
- :func:`atomic_path` / :func:`atomic_write_bytes` write to a hidden temporary file beside the
  target (``.NAME.partial-PID...``) and rename it into place only when complete, so a crash or
  ``kill -9`` midway never leaves a valid-looking half output;
- :func:`check_input_file` refuses FIFOs, devices and folders where a regular file is read, before
  anything blocks on them;
- :func:`file_sha256` is the one streaming sha256 of a file.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from smartiesviz.errors import UserError

#: Marker in the names of temporary files that :func:`atomic_path` writes beside a target.
PARTIAL = ".partial-"


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, streamed in ``chunk``-byte reads."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _kind(mode: int) -> str | None:
    """A name for a special file's type, or ``None`` for a regular file or folder."""
    for test, name in (
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return None


def check_input_file(path: str | os.PathLike, what: str = "input") -> Path:
    """``path`` as a :class:`Path` when it is a readable regular file; else a :class:`UserError`.

    FIFOs and devices are refused *before* they are opened (reading one may block forever or
    never end)."""
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise UserError(f"{what} {str(p)!r} does not exist") from None
    kind = _kind(st.st_mode)
    if kind:
        raise UserError(f"{what} {str(p)!r} is {kind}, not a regular file")
    if stat.S_ISDIR(st.st_mode):
        raise UserError(f"{what} {str(p)!r} is a folder; give a file")
    return p


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_output(
    out: str | os.PathLike,
    inputs: Iterable[str | os.PathLike] = (),
    overwrite: bool = False,
    what: str = "output",
) -> Path:
    """Refuse an output path that is an input, a folder, a special file, or exists already.

    Args:
        out: the path about to be written.
        inputs: every file the job reads (its scene, config, checkpoint, image list, ...).
        overwrite: whether an existing regular file at ``out`` may be replaced.
        what: how to name ``out`` in messages (``"--out"``, ``"output"``).

    Returns:
        ``out`` as a :class:`Path`.
    """
    out = Path(out)
    target = out.resolve()
    for p in map(Path, inputs):
        if p.exists() and (p.resolve() == target or (out.exists() and _same_file(p, out))):
            raise UserError(
                f"{what} {str(out)!r} is an input of this job ({str(p)!r}); "
                "choose another output path"
            )
    if out.is_symlink() and not out.exists():
        raise UserError(f"{what} {str(out)!r} is a dangling symbolic link; remove it first")
    if out.exists():
        st = out.stat()
        if stat.S_ISDIR(st.st_mode):
            raise UserError(f"{what} {str(out)!r} is a folder; give a file path")
        kind = _kind(st.st_mode)
        if kind:
            raise UserError(f"{what} {str(out)!r} is {kind}; give a regular file path")
        if not overwrite:
            raise UserError(
                f"{what} {str(out)!r} already exists; pass --overwrite to replace it"
            )
    return out


def _fsync_folder(folder: Path) -> None:
    try:  # make the rename itself durable
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:  # pragma: no cover - some filesystems refuse fsync on folders
        pass


def no_space_message(exc: OSError, path: str | os.PathLike) -> str | None:
    """A one-line "no space left" message for a full disk, else ``None``."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"no space left on the device holding {str(path)!r}: free some space and retry"
    return None


@contextmanager
def atomic_path(out: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``out``; renamed to ``out`` when the block succeeds, removed
    when it fails. The temporary name keeps ``out``'s suffix (GDAL picks drivers by it)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}{PARTIAL}{os.getpid()}{out.suffix}")
    try:
        yield tmp
        os.replace(tmp, out)
        _fsync_folder(out.parent)
    except OSError as exc:
        msg = no_space_message(exc, out)
        if msg:
            raise UserError(msg) from exc
        raise
    finally:
        if tmp.is_dir() and not tmp.is_symlink():
            import shutil  # rare: a folder output (Zarr) that failed

            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists() or tmp.is_symlink():
            tmp.unlink()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file, fsync'ed, renamed into place."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def remove_stale_partials(folder: str | os.PathLike, name: str | None = None) -> list[Path]:
    """Delete temporary files a killed writer left in ``folder`` (all, or those for ``name``)
    whose process is gone. Returns what was removed."""
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    prefix = f".{name}{PARTIAL}" if name else "."
    for p in folder.iterdir():
        if not p.name.startswith(prefix) or PARTIAL not in p.name:
            continue
        digits = "".join(
            c for c in p.name.split(PARTIAL, 1)[1].split(".", 1)[0] if c.isdigit()
        )
        if digits and _alive(int(digits)):
            continue
        if p.is_dir() and not p.is_symlink():
            import shutil

            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed.append(p)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
