"""A small archive in the release's layouts, built from the bundled samples in a temporary folder.

* ``ben/S2/<name>/<name>_B04.tif`` … and ``ben/S1/<name>/<name>_VV.tif``: BigEarthNet-v1 band
  folders (the bundled example patches), with ``ben-pairs.txt`` (``<s2> <s1>`` per line);
* ``fmow/s2/tile_<i>.tif`` (13-band Sentinel-2 L1C GeoTIFFs, 10 m) and ``fmow/rgb/tile_<i>.tif``
  (3-band RGB GeoTIFFs at 5 m over the same footprint, simulated from the S2 tile): fMoW-style
  multi-band pairs, with ``fmow-pairs.txt``.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import Affine

from smartiesviz.data import bigearthnet_sample_dirs, find_pairs, sentinel2_sample
from smartiesviz.data.transforms import simulate_rgb

TILE = 64  # px of the fMoW-style S2 tiles


def write_tif(path: Path, values: np.ndarray, transform: Affine, crs: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    c, h, w = values.shape
    with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=c, dtype="float32",
                       crs=crs, transform=transform) as dst:  # fmt: skip
        dst.write(values.astype(np.float32))


@pytest.fixture(scope="session")
def archive(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("archive")
    s2_root, s1_root = bigearthnet_sample_dirs()
    pairs = find_pairs(s2_root, s1_root)
    for s2, s1 in pairs:
        shutil.copytree(s2_root / s2, root / "ben" / "S2" / s2)
        shutil.copytree(s1_root / s1, root / "ben" / "S1" / s1)
    (root / "ben-pairs.txt").write_text("".join(f"{a} {b}\n" for a, b in pairs))

    scene = sentinel2_sample()
    t = scene.rio.transform()
    crs = str(scene.rio.crs)
    lines = []
    for i in range(4):
        r, c = 300 + 200 * i, 400 + 150 * i
        tile = scene.isel(y=slice(r, r + TILE), x=slice(c, c + TILE))
        tt = t @ Affine.translation(c, r)
        write_tif(root / "fmow" / "s2" / f"tile_{i}.tif", tile.values, tt, crs)
        rgb = simulate_rgb(tile).values.repeat(2, axis=1).repeat(2, axis=2)  # 5 m RGB
        write_tif(root / "fmow" / "rgb" / f"tile_{i}.tif", rgb, tt @ Affine.scale(0.5), crs)
        lines.append(f"tile_{i}.tif tile_{i}.tif\n")
    (root / "fmow-pairs.txt").write_text("# fMoW-style pairs: S2 L1C / RGB\n" + "".join(lines))
    return root


def archive_config(archive: Path, out: Path, *sources: str) -> Path:
    """A tiny pretraining config over the archive's pair lists (``ben``/``fmow``) or shards."""
    known = {
        "ben": f"{{kind: pairs, list: {archive}/ben-pairs.txt, root_a: {archive}/ben/S2, "
        f"root_b: {archive}/ben/S1, sensor_a: sentinel2-l2a, sensor_b: sentinel1-grd, p_single: 0.3}}",
        "fmow": f"{{kind: pairs, list: {archive}/fmow-pairs.txt, root_a: {archive}/fmow/s2, "
        f"root_b: {archive}/fmow/rgb, sensor_a: sentinel2-l1c, sensor_b: rgb}}",
    }
    srcs = ", ".join(known.get(s, s) for s in sources)
    path = out.with_suffix(".yaml")
    path.write_text(f"""
model:
  name: smarties_vit_tiny_patch8
  img_size: 32
  kwargs: {{embed_dim: 32, depth: 1, num_heads: 2, decoder_embed_dim: 32, decoder_depth: 1, decoder_num_heads: 2}}
data:
  sources: [{srcs}]
  samples_per_epoch: 16
  band_subset_p: 0.3
optim: {{base_lr: 1.5e-2, warmup_steps: 2}}
train:
  global_batch_size: 4
  steps: 4
  seed: 0
  num_threads: 1
  log_every: 1
  ckpt_every: 2
  output_dir: {out}
  progress: false
""")
    return path


def read_losses(run_dir: Path) -> dict[int, float]:
    with open(Path(run_dir) / "metrics.csv") as f:
        return {int(r["step"]): float(r["loss"]) for r in csv.DictReader(f)}
