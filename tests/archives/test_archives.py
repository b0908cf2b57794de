"""Pretraining from the user's archives: pair lists, shards, statistics, validation, resume, DDP."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from smartiesviz.cli import main
from smartiesviz.data.archives import read_pair_list, validate_entries
from smartiesviz.training.config import load_config
from smartiesviz.training.engine import pretrain
from smartiesviz.training.steps import build_sources

from .conftest import archive_config, read_losses


@pytest.fixture(scope="session")
def shards(archive, tmp_path_factory):
    """Shards of the BigEarthNet pair list, 2 samples per shard (built through the CLI)."""
    work = tmp_path_factory.mktemp("shards")
    out = work / "ben"
    config = archive_config(archive, work / "ben-build", "ben")
    assert main(["shards", "build", "--config", str(config), "--out", str(out), "--shard-size", "2"]) == 0
    return out


def test_pair_lists_in_both_layouts_pretrain(archive, tmp_path):
    cfg = load_config(archive_config(archive, tmp_path / "run", "ben", "fmow"))
    sources = build_sources(cfg)
    assert [len(s.dataset) for s in sources] == [6, 4]
    assert sources[0].bands_b == ["sentinel1-grd/VV", "sentinel1-grd/VH"]  # band folders
    assert len(sources[1].bands_a) == 13 and sources[1].bands_b[0] == "rgb/red"  # GeoTIFFs
    result = pretrain(cfg)
    assert result.status == "completed" and sorted(result.losses) == [1, 2, 3, 4]
    assert all(np.isfinite(v) for v in result.losses.values())
    logged = (tmp_path / "run" / "metrics.csv").read_text()
    assert "pairs:ben-pairs.txt" in logged or "pairs:fmow-pairs.txt" in logged


def test_fmow_partner_is_resampled_onto_the_s2_grid(archive, tmp_path):
    cfg = load_config(archive_config(archive, tmp_path / "run", "fmow"))
    ds = build_sources(cfg)[0].dataset
    xa, xb = ds.tensors(*ds.read(0))
    assert xa.shape == (13, 64, 64) and xb.shape == (3, 64, 64)  # RGB read at 128 px, 5 m


def test_a_missing_file_is_refused_before_training_naming_it(archive, tmp_path, capsys):
    bad = tmp_path / "pairs.txt"
    lines = (archive / "fmow-pairs.txt").read_text() + "tile_9.tif tile_0.tif\n"
    bad.write_text(lines)
    config = archive_config(archive, tmp_path / "run", "fmow")
    code = main(["pretrain", "--config", str(config), f"data.sources.0.list={bad}"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert "1 of 5 entries" in err and str(archive / "fmow" / "s2" / "tile_9.tif") in err
    assert "missing" in err and "line 6" in err
    assert not (tmp_path / "run" / "metrics.csv").exists()  # refused before the first step
    # on_bad=skip trains without it and lists it in the run folder
    cfg = load_config(config, [f"data.sources.0.list={bad}", "data.on_bad=skip", "train.steps=1"])
    assert pretrain(cfg).status == "completed"
    assert "tile_9.tif" in (tmp_path / "run" / "skipped-entries.txt").read_text()


def test_validation_checks_band_counts_and_footprints(archive, tmp_path):
    entries = read_pair_list(archive / "fmow-pairs.txt", archive / "fmow" / "s2", archive / "fmow" / "rgb")
    ok = validate_entries(entries, "sentinel2-l1c", "rgb", "fmow")
    assert len(ok.good) == 4 and not ok.problems
    wrong = validate_entries(entries, "sentinel2-l2a", "rgb", "fmow")  # 13 bands vs 12
    assert len(wrong.problems) == 4 and "band count" in wrong.summary()
    shifted = [type(e)(e.line, e.a, entries[(i + 2) % 4].b) for i, e in enumerate(entries)]
    far = validate_entries(shifted, "sentinel2-l1c", "rgb", "fmow")
    assert len(far.problems) == 4 and "no overlap" in far.problems[0].reason


def test_shards_have_checksums_an_index_and_the_raw_samples(shards, archive):
    index = json.loads((shards / "index.json").read_text())
    assert index["samples"] == 6 and len(index["shards"]) == 3
    for shard in index["shards"]:
        data = (shards / shard["name"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == shard["sha256"]
    from smartiesviz.data.shards import ShardReader

    first = ShardReader(shards).sample(0)
    assert first.a.shape == (12, 120, 120) and first.b.shape == (2, 120, 120)
    assert first.meta["sensor_b"] == "sentinel1-grd" and first.meta["bands_b"] == ["VV", "VH"]
    assert first.meta["crs"] and len(first.meta["bounds"]) == 4
    assert first.meta["source_a"].startswith(str(archive))


def _shard_cfg(archive, shards, out, *overrides):
    src = f"{{kind: shards, path: {shards}, shuffle: 3}}"
    return load_config(archive_config(archive, out, src), list(overrides))


def test_pretrain_from_shards_and_resume_mid_epoch(archive, shards, tmp_path):
    # 8 samples per step over 6 stored samples: every step crosses into a new epoch
    steps = ["train.steps=6", "train.global_batch_size=8", "train.ckpt_every=0"]
    full = pretrain(_shard_cfg(archive, shards, tmp_path / "full", *steps)).losses
    assert sorted(full) == [1, 2, 3, 4, 5, 6]
    cfg = _shard_cfg(archive, shards, tmp_path / "cut", *steps)

    def kill_at_3(step, loss):
        if step == 3:
            os.kill(os.getpid(), signal.SIGUSR1)

    cut = pretrain(cfg, on_step=kill_at_3)
    assert cut.status == "interrupted" and cut.step == 3
    resumed = pretrain(cfg, resume=True)
    assert sorted(resumed.losses) == [4, 5, 6]
    assert all(resumed.losses[s] == full[s] for s in resumed.losses)
    assert read_losses(tmp_path / "cut") == full  # no repeated steps in the log


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_torchrun_from_shards_matches_one_process(archive, shards, tmp_path):
    one = pretrain(_shard_cfg(archive, shards, tmp_path / "one", "train.save_final=false")).losses
    config = archive_config(archive, tmp_path / "two", f"{{kind: shards, path: {shards}, shuffle: 3}}")
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable)) or "torchrun"
    cmd = [torchrun, "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
           "-m", "smartiesviz.cli", "pretrain", "--config", str(config), "train.save_final=false"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["TMPDIR"] = str(tmp_path)  # torchrun's elastic agent leaves a torchelastic_* folder there
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = read_losses(tmp_path / "two")
    assert sorted(two) == sorted(one) == [1, 2, 3, 4]
    for step, loss in one.items():
        assert two[step] == pytest.approx(loss, rel=1e-5, abs=1e-6)


def test_a_corrupt_shard_is_reported_by_name(archive, shards, tmp_path, capsys):
    damaged = tmp_path / "damaged"
    shutil.copytree(shards, damaged)
    shard = damaged / "shard-000001.tar"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="shard-000001.tar .corrupt"):
        pretrain(_shard_cfg(archive, damaged, tmp_path / "run"))
    cut = damaged / "shard-000002.tar"
    cut.write_bytes(cut.read_bytes()[:-512])  # truncated: caught by the cheap size check too
    with pytest.raises(ValueError, match="shard-000002.tar .size"):
        pretrain(_shard_cfg(archive, damaged, tmp_path / "run", "data.verify_shards=size"))
    skip = pretrain(_shard_cfg(archive, damaged, tmp_path / "run2", "data.on_bad=skip", "train.steps=1"))
    assert skip.status == "completed"
    out = capsys.readouterr().out
    assert f"skipping shard {shard}: corrupt" in out and f"skipping shard {cut}: size" in out


def test_stats_are_streamed_per_band_and_used_by_a_run(archive, tmp_path):
    config = archive_config(archive, tmp_path / "run", "ben", "fmow")
    out = tmp_path / "stats.yaml"
    assert main(["stats", "--config", str(config), "--out", str(out)]) == 0
    table = yaml.safe_load(out.read_text())["sensors"]
    assert set(table) == {"sentinel2-l2a", "sentinel1-grd", "sentinel2-l1c", "rgb"}
    assert len(table["sentinel2-l2a"]) == 12 and set(table["sentinel1-grd"]) == {"VV", "VH"}
    # against exact percentiles of all the VV pixels: within the stated error
    cfg = load_config(config)
    ds = build_sources(cfg)[0].dataset
    vv = np.concatenate([ds.read(i)[1].sel(band="VV").values.ravel() for i in range(len(ds))])
    st = table["sentinel1-grd"]["VV"]
    p1, p99 = np.percentile(vv, [1, 99])
    assert abs(st["p1"] - p1) <= st["quantile_error"] and abs(st["p99"] - p99) <= st["quantile_error"]
    u = np.clip((vv - st["p1"]) / (st["p99"] - st["p1"]), 0, 1)
    assert st["mean"] == pytest.approx(u.mean(), rel=1e-6) and st["std"] == pytest.approx(u.std(), rel=1e-6)
    # a run with data.stats normalizes with them
    with_stats = build_sources(load_config(config, [f"data.stats={out}"]))[0].dataset
    a, b = with_stats.read(0)
    _, xb = with_stats.tensors(a, b)
    expected = (np.clip((b.sel(band="VV").values - st["p1"]) / (st["p99"] - st["p1"]), 0, 1) - st["mean"]) / st["std"]
    torch.testing.assert_close(xb[0], torch.from_numpy(expected.astype(np.float32)), rtol=1e-5, atol=1e-5)
    _, xb_release = ds.tensors(a, b)
    assert not torch.allclose(xb_release[0], xb[0])


def test_stored_arrays_normalize_like_cubes():
    """The shard path's array normalization equals the cube path's (one normalization)."""
    from smartiesviz.data import bigearthnet_pairs
    from smartiesviz.data.archives import model_units, raw_cube, stored_model_units

    pair = bigearthnet_pairs()[0]
    for cube, sensor in ((pair.s2, "sentinel2-l2a"), (pair.s1, "sentinel1-grd")):
        bands, units = [str(b) for b in cube.band.values], cube.attrs.get("units")
        values = cube.values.copy()
        values[0, :3, :3] = np.nan  # no-data pixels become the band mean (0) on both paths
        fast = stored_model_units(values, bands, sensor, units, "auto")
        slow = model_units(raw_cube(values, bands, sensor, units), sensor, "auto")
        torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-5)


def test_an_image_glob_is_a_single_sensor_source(archive, tmp_path):
    src = f"{{kind: images, list: 's2/tile_*.tif', root: {archive}/fmow, sensor: sentinel2-l1c}}"
    cfg = load_config(archive_config(archive, tmp_path / "run", src), ["train.steps=2"])
    (source,) = build_sources(cfg)
    assert len(source.dataset) == 4 and source.bands_b is None
    assert pretrain(cfg).status == "completed"


def test_bundled_samples_are_a_pairs_source_of_the_same_kind(archive, tmp_path):
    """``list: bundled:bigearthnet`` reads the bundled examples through the pair-list path: the
    same tensors as the copied archive's pair list."""
    bundled = load_config(archive_config(archive, tmp_path / "b", "{kind: pairs, list: 'bundled:bigearthnet'}"))
    listed = load_config(archive_config(archive, tmp_path / "l", "ben"))
    (a,), (b,) = build_sources(bundled), build_sources(listed)
    assert len(a.dataset) == len(b.dataset) == 6 and a.bands_a == b.bands_a and a.bands_b == b.bands_b
    for x, y in zip(a.dataset.tensors(*a.dataset.read(2)), b.dataset.tensors(*b.dataset.read(2)), strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=0)
