"""Hostile cases for `embed`: inputs are never destroyed, outputs never faked (issue 15)."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from smartiesviz.cli import main


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture()
def scene(tmp_path: Path) -> Path:
    """A small 4-band (B02 B03 B04 B08) GeoTIFF in reflectance DN, with band descriptions."""
    rng = np.random.default_rng(0)
    path = tmp_path / "scene.tif"
    profile = dict(driver="GTiff", height=80, width=96, count=4, dtype="float32",
                   crs="EPSG:32618", transform=Affine(10, 0, 500_000, 0, -10, 4_000_000))  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write((rng.random((4, 80, 96)) * 3000 + 500).astype("float32"))
        dst.descriptions = ("B02", "B03", "B04", "B08")
    return path


def test_output_over_the_input_is_refused_and_the_input_kept(scene, capsys):
    before = _sha(scene)
    code = main(["embed", str(scene), "--sensor", "sentinel2-l1c", "--out", str(scene),
                 "--overwrite", "--no-progress"])  # fmt: skip
    assert code == 2
    assert "is an input of this job" in capsys.readouterr().err
    assert _sha(scene) == before


def test_existing_output_needs_overwrite(scene, tmp_path, capsys):
    out = tmp_path / "out.tif"
    out.write_bytes(b"previous result")
    args = ["embed", str(scene), "--sensor", "sentinel2-l1c", "--out", str(out), "--no-progress"]
    assert main(args) == 2 and "--overwrite" in capsys.readouterr().err
    assert out.read_bytes() == b"previous result"
    assert main([*args, "--overwrite"]) == 0
    with rasterio.open(out) as src:
        assert src.count == 192 and np.isfinite(src.read(1)).all()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.tif", "scene.tif"]


def test_kill_midway_leaves_no_file_at_the_output_path(scene, tmp_path):
    """SIGKILL after the first batch: no valid-looking output, only a hidden partial file."""
    out = tmp_path / "out.tif"
    script = textwrap.dedent(f"""
        import os, signal
        import importlib
        E = importlib.import_module("smartiesviz.predict.embed")
        real = E.stream_features
        def dying(job, options):
            for i, item in enumerate(real(job, options)):
                if i == 1:
                    os.kill(os.getpid(), signal.SIGKILL)
                yield item
        E.stream_features = dying
        E.embed_to_file({str(scene)!r}, {str(out)!r}, "sentinel2-l1c", batch_size=1,
                        progress=False)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=300)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    assert not out.exists()
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "scene.tif"]
    assert all(name.startswith(".out.tif.partial") for name in leftovers), leftovers


def test_batch_size_zero_and_missing_crs(scene, tmp_path, capsys):
    args = ["embed", str(scene), "--sensor", "sentinel2-l1c", "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "a.tif"), "--batch-size", "0"]) == 2
    assert "--batch-size must be a positive integer or 'auto'" in capsys.readouterr().err
    bare = tmp_path / "bare.tif"
    with rasterio.open(scene) as src:
        data, desc = src.read(), src.descriptions
    with rasterio.open(bare, "w", driver="GTiff", height=80, width=96, count=4,
                       dtype="float32") as dst:  # fmt: skip
        dst.write(data)
        dst.descriptions = desc
    assert main(["embed", str(bare), "--sensor", "sentinel2-l1c", "--no-progress",
                 "--out", str(tmp_path / "b.tif")]) == 0  # fmt: skip
    assert re.search(r"^warning: scene \S*bare\.tif has no CRS", capsys.readouterr().err, re.M)
