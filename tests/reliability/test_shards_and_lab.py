"""Hostile inputs for shards and archive lists, and `smartiesviz lab` dying with its JupyterLab."""

from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio

from smartiesviz.cli import main
from smartiesviz.data import bigearthnet_pairs
from smartiesviz.data.archives import read_image_list, read_pair_list
from smartiesviz.data.datasets import collate
from smartiesviz.data.shards import ShardReader
from smartiesviz.data.transforms import simulate_rgb
from smartiesviz.errors import UserError
from smartiesviz.training.config import load_config
from smartiesviz.training.engine import pretrain
from smartiesviz.training.steps import PretrainDataset, build_sources, plan_bands

TINY = "{embed_dim: 16, depth: 1, num_heads: 2, decoder_embed_dim: 16, decoder_depth: 1, decoder_num_heads: 2}"


def _tif(path: Path, values: np.ndarray, like) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    c, h, w = values.shape
    with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=c, dtype="float32",
                       crs=like.rio.crs, transform=like.rio.transform()) as dst:  # fmt: skip
        dst.write(values.astype(np.float32))


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> Path:
    """The release's mix in one shard folder: the bundled BigEarthNet S2/S1 pairs and two
    fMoW-style RGB/S2 pairs (32 px S2 L2A crops and their simulated RGB), built by the CLI."""
    root = tmp_path_factory.mktemp("mixed")
    for i, pair in enumerate(bigearthnet_pairs()[:2]):
        s2 = pair.s2.isel(y=slice(0, 32), x=slice(0, 32))
        _tif(root / "s2" / f"t{i}.tif", s2.values, s2)
        _tif(root / "rgb" / f"t{i}.tif", simulate_rgb(s2).values, s2)
    (root / "fmow.txt").write_text("t0.tif t0.tif\nt1.tif t1.tif\n")
    (root / "build.yaml").write_text(f"""
data:
  sources:
  - {{kind: pairs, list: "bundled:bigearthnet"}}
  - {{kind: pairs, list: {root}/fmow.txt, root_a: {root}/rgb, root_b: {root}/s2, sensor_a: rgb, sensor_b: sentinel2-l2a}}
""")
    args = [
        "shards",
        "build",
        "--config",
        str(root / "build.yaml"),
        "--out",
        str(root / "shards"),
        "--shard-size",
        "3",
    ]
    assert main(args) == 0
    return root / "shards"


def _train_cfg(shards: Path, out: Path, *overrides: str):
    path = out.with_suffix(".yaml")
    path.write_text(f"""
model: {{name: smarties_vit_tiny_patch8, img_size: 16, kwargs: {TINY}}}
data: {{sources: [{{kind: shards, path: {shards}, shuffle: 4}}]}}
train: {{global_batch_size: 4, steps: 2, seed: 0, output_dir: {out}, progress: false, ckpt_every: 0}}
""")
    return load_config(path, list(overrides))


# ----------------------------------------------------------------------------- case 1
def test_mixed_sensor_shards_batch_by_group_and_train(mixed, tmp_path):
    index = json.loads((mixed / "index.json").read_text())
    assert [(g["sensor_a"], g["sensor_b"]) for g in index["groups"]] == [
        ("sentinel2-l2a", "sentinel1-grd"), ("rgb", "sentinel2-l2a")]  # fmt: skip
    cfg = _train_cfg(mixed, tmp_path / "run")
    sources = build_sources(cfg)
    assert [s.bands_b[0] for s in sources] == ["sentinel1-grd/VV", "sentinel2-l2a/B01"]
    assert sources[1].bands_a == ["rgb/red", "rgb/green", "rgb/blue"]
    assert [s.weight for s in sources] == [0.75, 0.25]  # 6 and 2 of 8 samples
    ds = PretrainDataset(cfg, sources, patch_size=8)
    seen = set()
    for step in range(12):
        plan = ds.plan(step)
        batch = collate([ds[(step, i)] for i in range(4)])
        bands_a, bands_b = plan_bands(plan, sources)
        assert batch["x_a"].shape == (4, len(bands_a), 16, 16)
        if bands_b is not None:
            assert batch["x_b"].shape == (4, len(bands_b), 16, 16)
        seen.add(plan.source)
    assert seen == {0, 1}
    first_rgb = next(s for s in range(12) if ds.plan(s).source == 1)
    result = pretrain(_train_cfg(mixed, tmp_path / "run", f"train.steps={first_rgb + 1}"))
    assert result.status == "completed" and all(np.isfinite(v) for v in result.losses.values())
    assert "rgb+sentinel2-l2a" in (tmp_path / "run" / "metrics.csv").read_text()


def test_an_index_without_groups_is_grouped_from_its_records(mixed, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(mixed, old)
    index = json.loads((old / "index.json").read_text())
    groups = index.pop("groups")
    for shard in index["shards"]:
        shard.pop("groups")
    (old / "index.json").write_text(json.dumps(index))
    reader = ShardReader(old)
    assert reader.groups == groups and list(reader.group_of) == [0] * 6 + [1] * 2


# ----------------------------------------------------------------------------- cases 2 and 3
def _index(mixed: Path) -> dict:
    return json.loads((mixed / "index.json").read_text())


def _write(folder: Path, index) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "index.json").write_text(json.dumps(index))
    return folder


@pytest.mark.parametrize("name", ["../shard-000000.tar", "/etc/passwd", "sub/shard.tar", "..", ""])
def test_a_shard_name_leaving_the_folder_is_refused(mixed, tmp_path, name):
    index = _index(mixed)
    index["shards"][1]["name"] = name
    folder = _write(tmp_path / "sh", index)
    with pytest.raises(UserError) as err:
        ShardReader(folder)
    msg = str(err.value)
    assert str(folder / "index.json") in msg and "shards[1].name" in msg and repr(name) in msg
    assert "plain file name" in msg and "\n" not in msg


def test_a_shard_symlink_leaving_the_folder_is_refused(mixed, tmp_path):
    folder = tmp_path / "sh"
    shutil.copytree(mixed, folder)
    outside = tmp_path / "outside.tar"
    (folder / "shard-000002.tar").rename(outside)
    (folder / "shard-000002.tar").symlink_to(outside)
    with pytest.raises(
        UserError, match=r"shards\[2\]\.name 'shard-000002.tar' is a symbolic link to .*outside"
    ):
        ShardReader(folder)


def _set(index: dict, path: tuple, value) -> dict:
    index = copy.deepcopy(index)
    obj = index
    for key in path[:-1]:
        obj = obj[key]
    if value is KeyError:
        del obj[path[-1]]
    else:
        obj[path[-1]] = value
    return index


@pytest.mark.parametrize(
    ("path", "value", "where"),
    [
        (("shards", 0, "bytes"), "123", "shards[0].bytes is '123' (str)"),
        (("shards", 0, "bytes"), True, "shards[0].bytes is True (bool)"),
        (("shards",), {"a": 1}, "shards is {'a': 1} (dict)"),
        (("shards",), KeyError, "shards is missing"),
        (("shards", 0, "name"), 5, "shards[0].name is 5 (int)"),
        (("shards", 1, "sha256"), KeyError, "shards[1].sha256 is missing"),
        (("shards", 0, "samples"), "3", "shards[0].samples is '3' (str)"),
        (("shards", 0, "samples", 1), "x", "shards[0].samples[1] is 'x' (str)"),
        (("shards", 0, "samples", 0, 1, "a"), [0, -4], "shards[0].samples[0].a is [0, -4]"),
        (("shards", 0, "groups", 2), 7, "shards[0].groups[2] is 7 (int)"),
        (("groups", 1, "bands_a"), "red", "groups[1].bands_a is 'red' (str)"),
        (("samples",), "8", "samples is '8' (str)"),
        (("format",), None, "format is None"),
    ],
)
def test_wrong_types_in_the_index_give_one_line(mixed, tmp_path, path, value, where):
    folder = _write(tmp_path / "sh", _set(_index(mixed), path, value))
    with pytest.raises(UserError) as err:
        ShardReader(folder)
    msg = str(err.value)
    assert msg.startswith(f"{folder / 'index.json'}: {where}") and "\n" not in msg, msg
    assert "smartiesviz shards build" in msg


@pytest.mark.parametrize("content", [b"[1, 2]", b"\x89PNG\x00\xff", b"{not json"])
def test_an_index_that_is_no_index_is_one_cli_line(mixed, tmp_path, capsys, content):
    folder = tmp_path / "sh"
    folder.mkdir()
    (folder / "index.json").write_bytes(content)
    assert main(["pretrain", "--config", str(_train_cfg_path(folder, tmp_path))]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and str(folder / "index.json") in err
    assert "Traceback" not in err


def _train_cfg_path(shards: Path, tmp_path: Path) -> Path:
    path = tmp_path / "train.yaml"
    path.write_text(f"""
model: {{name: smarties_vit_tiny_patch8, img_size: 16, kwargs: {TINY}}}
data: {{sources: [{{kind: shards, path: {shards}}}]}}
train: {{global_batch_size: 4, steps: 1, output_dir: {tmp_path / "run"}, progress: false}}
""")
    return path


def test_an_index_fifo_is_refused_without_blocking(tmp_path):
    folder = tmp_path / "sh"
    folder.mkdir()
    os.mkfifo(folder / "index.json")
    with pytest.raises(UserError, match="FIFO"):
        ShardReader(folder)


def test_a_record_with_wrong_types_is_named(tmp_path):
    from smartiesviz.data.shards import RawSample, write_shards

    write_shards(
        [RawSample(np.zeros((2, 4, 4)), {"sensor_a": "sentinel1-grd", "bands_a": "VV"})],
        tmp_path / "sh",
    )
    index = json.loads((tmp_path / "sh" / "index.json").read_text())
    del index["groups"], index["shards"][0]["groups"]  # as written before groups were recorded
    (tmp_path / "sh" / "index.json").write_text(json.dumps(index))
    with pytest.raises(UserError, match=r"shard-000000.tar member 000000000.json: sensor_a='sentinel1-grd', "
                                         r"bands_a='VV'; expected a sensor name and a list of band names"):  # fmt: skip
        ShardReader(tmp_path / "sh")


def test_list_files_that_are_no_text_lists_are_named(tmp_path):
    binary = tmp_path / "pairs.txt"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
    with pytest.raises(UserError, match=r"pair list '.*pairs.txt' is not a text file \(byte 0 is not UTF-8\); "
                                         r"expected one '<a> <b>' pair of names per line"):  # fmt: skip
        read_pair_list(binary, tmp_path, tmp_path)
    with pytest.raises(UserError, match=r"image list '.*' is a folder"):
        read_image_list(tmp_path, tmp_path)
    os.mkfifo(tmp_path / "fifo.txt")
    with pytest.raises(UserError, match="FIFO"):
        read_image_list(tmp_path / "fifo.txt", tmp_path)


def test_a_failed_build_leaves_no_shards_without_index(tmp_path):
    from smartiesviz.data.shards import RawSample, write_shards

    def samples():
        for _ in range(3):
            yield RawSample(
                np.zeros((2, 4, 4)), {"sensor_a": "sentinel1-grd", "bands_a": ["VV", "VH"]}
            )
        raise ValueError("unreadable entry")

    with pytest.raises(ValueError, match="unreadable entry"):
        write_shards(samples(), tmp_path / "out", shard_size=2)
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- case 4
def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)")
def test_killing_lab_kills_its_jupyterlab(tmp_path):
    tutorials = tmp_path / "tutorials"
    tutorials.mkdir()
    (tutorials / "01-x.ipynb").write_text(
        '{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, **{k: str(tmp_path / k.lower()) for k in (
        "JUPYTER_RUNTIME_DIR", "JUPYTER_DATA_DIR", "JUPYTER_CONFIG_DIR", "IPYTHONDIR", "JUPYTERLAB_SETTINGS_DIR",
        "JUPYTERLAB_WORKSPACES_DIR")}}  # fmt: skip
    # the `lab` command through its own parser: `smartiesviz.cli` would import the data stack (~1.5 s)
    code = (
        "import argparse, sys; from smartiesviz import tour; p = argparse.ArgumentParser(); "
        "tour.register(p.add_subparsers()); a = p.parse_args(); sys.exit(a.func(a))"
    )
    parent = subprocess.Popen([sys.executable, "-c", code, "lab", "--no-browser", "--port", str(port),
                               "--tutorials", str(tutorials)], env=env, cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    child = None
    try:
        deadline = time.monotonic() + 30
        while child is None and time.monotonic() < deadline and parent.poll() is None:
            for pid in _children(parent.pid):
                if "jupyterlab" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(
                    errors="replace"
                ):
                    child = pid
            time.sleep(0.05)
        assert child is not None, "smartiesviz lab started no jupyterlab child"
        parent.send_signal(signal.SIGTERM)
        parent.wait(timeout=15)
        deadline = time.monotonic() + 5
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child), "JupyterLab kept serving after smartiesviz lab was killed"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if child is not None and _alive(child):
            os.kill(child, signal.SIGKILL)
