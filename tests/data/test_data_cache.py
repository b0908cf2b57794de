"""Cache folder and safe, atomic archive extraction."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from smartiesviz.data.cache import UnsafeArchiveError, cache_dir, safe_extract


def _tar(members: list[tarfile.TarInfo | tuple[str, bytes]]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:bz2") as tar:
        for m in members:
            if isinstance(m, tarfile.TarInfo):
                tar.addfile(m)
            else:
                info = tarfile.TarInfo(m[0])
                info.size = len(m[1])
                tar.addfile(info, io.BytesIO(m[1]))
    buf.seek(0)
    return buf


def _link(name: str, target: str, hard: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
    info.linkname = target
    return info


@pytest.mark.parametrize(
    "members",
    [
        [("pkg/ok.txt", b"fine"), ("pkg/../../evil.txt", b"owned")],
        [("/tmp/smartiesviz-evil-absolute.txt", b"owned")],
        [("pkg/ok.txt", b"fine"), _link("pkg/link", "../../outside.txt")],
        [_link("pkg/abs", "/etc/passwd")],
        [_link("pkg/hard", "../x", hard=True)],
    ],
    ids=["dotdot", "absolute", "symlink-out", "symlink-abs", "hardlink-out"],
)
def test_unsafe_members_are_refused_and_nothing_is_written(tmp_path, members):
    target = tmp_path / "cache" / "extracted"
    with pytest.raises(UnsafeArchiveError, match="refusing to extract"):
        safe_extract(_tar(members), target, "crafted.tar.bz2")
    assert not target.exists()
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "outside.txt").exists()
    # no temporary folder left behind either
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_safe_archive_extracts_once(tmp_path):
    archive = [("pkg/a.txt", b"A"), ("pkg/sub/b.txt", b"B"), _link("pkg/sub/link", "../a.txt")]
    target = tmp_path / "out"
    assert safe_extract(_tar(archive), target) == target
    assert (target / "pkg" / "a.txt").read_bytes() == b"A"
    assert (target / "pkg" / "sub" / "link").resolve() == (target / "pkg" / "a.txt").resolve()
    # a second call finds the finished folder and does not touch it
    (target / "pkg" / "a.txt").write_bytes(b"edited")
    safe_extract(_tar(archive), target)
    assert (target / "pkg" / "a.txt").read_bytes() == b"edited"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_cache_dir_follows_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SMARTIESVIZ_CACHE", str(tmp_path / "c"))
    assert cache_dir() == Path(tmp_path / "c") and cache_dir().is_dir()
    monkeypatch.delenv("SMARTIESVIZ_CACHE")
    assert cache_dir().name == "smartiesviz"
