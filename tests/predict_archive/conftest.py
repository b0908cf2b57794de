"""Fixtures for the archive tests: six small GeoTIFF scenes of three sensors, a tiny model saved
as a checkpoint, and a list file naming the scenes (some with their sensor)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
SENSORS = {
    "sentinel2-l2a": (["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09",
                       "B11", "B12"], 1000.0, 3000.0),
    "landsat8": ([f"B{i}" for i in range(1, 12)], 8000.0, 4000.0),
    "sentinel1-grd": (["VV", "VH"], -15.0, 4.0),
}  # fmt: skip


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """One torch thread (as each torchrun worker has): the same bytes in and out of process."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def write_scene(path: Path, sensor: str, seed: int, shape=(72, 88), epsg=32633,
                origin=(400_000.0, 5_000_000.0), describe: bool = True) -> Path:  # fmt: skip
    """A smooth random scene of ``sensor`` as a GeoTIFF (band descriptions = band names)."""
    import rasterio
    from affine import Affine

    bands, offset, scale = SENSORS[sensor]
    rng = np.random.default_rng(seed)
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.sin(yy / (5 + seed)) + np.cos(xx / (7 + seed))
    data = offset + scale * (0.3 * base[None] + 0.1 * rng.normal(size=(len(bands), h, w)))
    tr = Affine(10.0, 0, origin[0], 0, -10.0, origin[1])
    with rasterio.open(path, "w", driver="GTiff", height=h, width=w, count=len(bands),
                       dtype="float32", crs=f"EPSG:{epsg}", transform=tr) as dst:  # fmt: skip
        dst.write(data.astype("float32"))
        if describe:
            dst.descriptions = tuple(bands)
    return path


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    import smartiesviz
    from smartiesviz import save_checkpoint

    torch.manual_seed(0)
    model = smartiesviz.smarties_vit_tiny_patch8(img_size=64).eval()
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    save_checkpoint(model, path)
    return path


@pytest.fixture(scope="session")
def archive(tmp_path_factory) -> Path:
    """Folder ``scenes/`` with 6 small scenes (2 per sensor; one Landsat scene in another CRS;
    one Sentinel-1 scene without band names, its sensor given in the list) plus a larger
    Sentinel-2 scene ``zz_big`` (last in order, slow enough to be killed midway); lists
    ``six.txt`` (the small ones) and ``all.txt``."""
    root = tmp_path_factory.mktemp("archive")
    scenes = root / "scenes"
    scenes.mkdir()
    lines = []
    for i, sensor in enumerate(["sentinel2-l2a", "landsat8", "sentinel1-grd"] * 2):
        name = f"{sensor.split('-')[0]}_{i}_2020060{i + 1}T101010.tif"
        epsg = 32632 if i == 1 else 32633
        describe = i != 5
        write_scene(scenes / name, sensor, i, epsg=epsg, describe=describe,
                    origin=(400_000.0 + 160 * i, 5_000_000.0 - 80 * i))  # fmt: skip
        lines.append(f"scenes/{name}\t{sensor}" if not describe else f"scenes/{name}")
    (root / "six.txt").write_text("# six scenes\n" + "\n".join(lines) + "\n")
    write_scene(scenes / "zz_big.tif", "sentinel2-l2a", 7, shape=(448, 448),
                origin=(500_000.0, 5_000_000.0))  # fmt: skip
    (root / "all.txt").write_text("\n".join([*lines, "scenes/zz_big.tif sensor=sentinel2-l2a"]))
    return root


#: The options of every archive run in these tests (a rerun with other options redoes scenes).
EMBED_ARGS = ["--batch-size", "2", "--no-progress"]


def cli_env(tmp: Path) -> dict[str, str]:
    """The environment of a CLI subprocess: one thread, its temporary files (torchrun's) in
    ``tmp``."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(REPO),
               TMPDIR=str(tmp))  # fmt: skip
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "SMARTIESVIZ_SHARD"):
        env.pop(key, None)
    return env


def run_cli(args: list[str], tmp: Path, torchrun: int = 0, timeout: float = 180,
            ) -> subprocess.CompletedProcess:  # fmt: skip
    """``smartiesviz <args>`` in a subprocess (under ``torchrun`` with that many processes)."""
    if torchrun:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={torchrun}", "-m", "smartiesviz.cli", *args]  # fmt: skip
    else:
        cmd = [sys.executable, "-m", "smartiesviz.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=cli_env(tmp), timeout=timeout,
                          cwd=REPO)  # fmt: skip


def output_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.tif"))}
