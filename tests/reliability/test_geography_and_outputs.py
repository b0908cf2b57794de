"""Hostile cases for `embed` and `export` outputs (issue 28): geography kept exactly, the
checkpoint and special files never overwritten, full disks and killed runs handled, one-line
warnings."""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine
from rasterio.control import GroundControlPoint

from smartiesviz import outputs
from smartiesviz.cli import main
from smartiesviz.errors import UserError
from smartiesviz.models.demo import demo_weights_path

BANDS = ("B02", "B03", "B04", "B08")
EMBED = ["--sensor", "sentinel2-l1c", "--no-progress"]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_scene(path: Path, transform: Affine | None = None, crs: str | None = "EPSG:32618",
                 size: int = 32, **extra) -> Path:  # fmt: skip
    """A small 4-band GeoTIFF (reflectance DN, band descriptions)."""
    data = (np.random.default_rng(0).random((4, size, size)) * 3000 + 500).astype("float32")
    profile = dict(driver="GTiff", height=size, width=size, count=4, dtype="float32", **extra)
    if crs is not None:
        profile["crs"] = crs
    if transform is not None:
        profile["transform"] = transform
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(data)
            dst.descriptions = BANDS
    return path


def test_rotated_scene_keeps_its_exact_transform(tmp_path, capsys):
    from smartiesviz.models.resolve import resolve_model

    rotated = Affine.translation(500_000, 4_000_000) @ Affine.rotation(30) @ Affine.scale(10, -10)
    scene = _write_scene(tmp_path / "rotated.tif", rotated, size=64)
    out = tmp_path / "emb.tif"
    assert main(["embed", str(scene), *EMBED, "--out", str(out)]) == 0, capsys.readouterr().err
    patch = resolve_model(None).patch_size
    with rasterio.open(scene) as src, rasterio.open(out) as dst:
        assert int(dst.tags()["patch_size"]) == patch > 1
        assert dst.crs == src.crs
        assert dst.transform.almost_equals(src.transform @ Affine.scale(patch), precision=1e-9)
        assert dst.transform.b != 0 and dst.transform.d != 0  # not the identity-like grid
        for col, row in [(0, 0), (dst.width, 0), (0, dst.height), (dst.width, dst.height)]:
            ground_out = dst.transform @ (col, row)
            ground_in = src.transform @ (col * patch, row * patch)
            assert np.allclose(ground_out, ground_in, rtol=0, atol=1e-6)


@pytest.mark.parametrize("skew", [Affine.rotation(-20), Affine.shear(15, 5)], ids=["rotated", "sheared"])
def test_patch_grid_helpers_keep_a_skewed_transform(tmp_path, skew):
    from smartiesviz.data.scene import open_scene
    from smartiesviz.data.tiling import georeferenced, grid_transform

    skewed = Affine.translation(500_000, 4_000_000) @ skew @ Affine.scale(10, -10)
    cube = open_scene(_write_scene(tmp_path / "r.tif", skewed), "sentinel2-l1c").cube
    crs, transform = grid_transform(cube, 4)
    assert transform.almost_equals(skewed @ Affine.scale(4), precision=1e-9)
    assert crs == "EPSG:32618"
    da = georeferenced(np.zeros((8, 8), np.float32), crs, transform)
    assert da.rio.transform() == transform
    assert "x" not in da.coords  # axis-aligned x/y centres would misplace every cell


@pytest.mark.parametrize("kind", ["gcps", "crs-only", "none"])
def test_scene_without_geotransform_gives_an_output_without_crs(tmp_path, capsys, kind):
    if kind == "gcps":
        gcps = [GroundControlPoint(r, c, 500_000 + 10 * c, 4_000_000 - 10 * r)
                for r in (0, 32) for c in (0, 32)]  # fmt: skip
        scene = _write_scene(tmp_path / "s.tif", crs="EPSG:32618", gcps=gcps)
        why = r"has no geotransform \(only ground control points\)"
    elif kind == "crs-only":
        scene = _write_scene(tmp_path / "s.tif", crs="EPSG:32618")
        why = "has no geotransform"
    else:
        scene = _write_scene(tmp_path / "s.tif", crs=None)
        why = "has no CRS"
    out = tmp_path / "emb.tif"
    assert main(["embed", str(scene), *EMBED, "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert re.search(rf"^warning: scene \S*s\.tif {why}.*not georeferenced", err, re.M), err
    with rasterio.open(out) as dst:
        assert dst.crs is None  # placed nowhere rather than at the origin of a real CRS


def test_cli_warnings_are_one_line_without_source(tmp_path, capsys):
    scene = _write_scene(tmp_path / "bare.tif", Affine(10, 0, 0, 0, -10, 0), crs=None)
    before = warnings.showwarning
    assert main(["embed", str(scene), *EMBED, "--out", str(tmp_path / "e.tif")]) == 0
    assert warnings.showwarning is before  # restored on exit
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert any(re.match(r"warning: scene \S*bare\.tif has no CRS", line) for line in lines)
    assert all(line.startswith("warning: ") for line in lines), lines
    assert not any(".py:" in line or "UserWarning" in line for line in lines)


def _copy_checkpoint(tmp_path: Path) -> Path:
    ckpt = tmp_path / "model.safetensors"
    shutil.copy(demo_weights_path(), ckpt)
    shutil.copy(demo_weights_path().with_suffix(".json"), ckpt.with_suffix(".json"))
    return ckpt


@pytest.mark.parametrize("how", ["same", "symlink", "hardlink", "sidecar"])
def test_export_over_its_checkpoint_is_refused(tmp_path, capsys, how):
    ckpt = _copy_checkpoint(tmp_path)
    out = {"same": ckpt, "sidecar": ckpt.with_suffix(".json")}.get(how, tmp_path / "enc.onnx")
    if how == "symlink":
        out.symlink_to(ckpt)
    elif how == "hardlink":
        os.link(ckpt, out)
    hashes = {p: _sha(p) for p in (ckpt, ckpt.with_suffix(".json"))}
    argv = ["export", "--checkpoint", str(ckpt), "--bands", "S2", "--out", str(out), "--overwrite"]
    assert main(argv) == 2
    assert "is an input of this job" in capsys.readouterr().err
    assert {p: _sha(p) for p in hashes} == hashes


def test_export_refuses_special_files_before_writing(tmp_path, capsys, monkeypatch):
    def no_export(*args, **kwargs):
        raise AssertionError("the exporter ran: the output was not refused first")

    monkeypatch.setattr(torch.onnx, "export", no_export)
    fifo = tmp_path / "pipe.onnx"
    os.mkfifo(fifo)
    argv = ["export", "--checkpoint", "demo", "--bands", "S2", "--out", str(fifo), "--overwrite"]
    assert main(argv) == 2
    assert "is a FIFO" in capsys.readouterr().err
    assert fifo.is_fifo()
    # /dev/null: refused by the check, so the (failing) exporter is never reached
    from smartiesviz.export import export_onnx

    with pytest.raises(UserError, match="is a character device"):
        export_onnx("demo", "S2", Path("/dev/null"), overwrite=True)
    with pytest.raises(UserError, match="is a character device"):
        outputs.check_output(Path("/dev/null"), overwrite=True)


def test_export_writes_through_the_atomic_writer(tmp_path, monkeypatch):
    used = []
    real = outputs.atomic_path

    def spy(out):
        used.append(Path(out))
        return real(out)

    def fake_export(model, args, f, **kwargs):  # an empty ONNX model: export.py adds metadata
        onnx.save(onnx.helper.make_model(onnx.helper.make_graph([], "g", [], [])), f)

    onnx = pytest.importorskip("onnx", reason="needs the export extra")
    monkeypatch.setattr(outputs, "atomic_path", spy)
    monkeypatch.setattr(torch.onnx, "export", fake_export)
    from smartiesviz.export import export_onnx

    out = tmp_path / "enc.onnx"
    export_onnx("demo", "S1", out, check=False)
    assert used == [out] and "bands" in {p.key for p in onnx.load(str(out)).metadata_props}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["enc.onnx"]


class _FullDisk:
    """A rasterio dataset whose second ``write`` fails as a full disk does."""

    def __init__(self, dataset, error: Exception):
        self._dataset, self._error, self._writes = dataset, error, 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._dataset.close()

    def write(self, *args, **kwargs):
        self._writes += 1
        if self._writes > 1:
            raise self._error
        return self._dataset.write(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._dataset, name)


GDAL_WRITE_FAILED = "Write failed. See previous exception for details."  # GDAL's ENOSPC, really


@pytest.mark.parametrize(
    ("error", "free", "full"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), None, True),
        (rasterio.errors.RasterioIOError("emb.tif: No space left on device"), None, True),
        (rasterio.errors.RasterioIOError(GDAL_WRITE_FAILED), 1024, True),
        (rasterio.errors.RasterioIOError(GDAL_WRITE_FAILED), 10**12, False),
    ],
    ids=["oserror", "gdal-says-so", "gdal-disk-nearly-full", "gdal-other-error"],
)
def test_disk_full_is_one_no_space_line_and_no_partial(
    tmp_path, capsys, monkeypatch, error, free, full
):
    import shutil as shutil_module

    scene = _write_scene(tmp_path / "scene.tif", Affine(10, 0, 5e5, 0, -10, 4e6), size=96)
    real_open, real_usage = rasterio.open, shutil_module.disk_usage

    def opener(path, mode="r", **kwargs):
        ds = real_open(path, mode, **kwargs)
        return _FullDisk(ds, error) if mode == "w" else ds

    def usage(path):
        total, used, _ = real_usage(path)
        return type(real_usage(path))(total, used, free)

    monkeypatch.setattr(rasterio, "open", opener)
    if free is not None:
        monkeypatch.setattr(shutil_module, "disk_usage", usage)
    out = tmp_path / "emb.tif"
    argv = ["embed", str(scene), *EMBED, "--batch-size", "1", "--out", str(out)]
    assert main(argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert ("no space left" in err[0] and str(out) in err[0]) is full, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.tif"]  # no partial, no output


def test_stale_partials_of_dead_runs_are_removed(tmp_path, capsys):
    scene = _write_scene(tmp_path / "scene.tif", Affine(10, 0, 5e5, 0, -10, 4e6))
    dead = 2**22 + 12345
    with pytest.raises(ProcessLookupError):
        os.kill(dead, 0)  # no such process
    stale = tmp_path / f".emb.tif{outputs.PARTIAL}{dead}.tif"
    alive = tmp_path / f".emb.tif{outputs.PARTIAL}{os.getppid()}.tif"  # a running writer's
    other = tmp_path / f".other.tif{outputs.PARTIAL}{dead}.tif"  # another output's
    for p in (stale, alive, other):
        p.write_bytes(b"half a GeoTIFF")
    assert main(["embed", str(scene), *EMBED, "--out", str(tmp_path / "emb.tif")]) == 0
    assert not stale.exists()
    assert alive.exists() and other.exists()


def test_bad_inputs_are_one_line(tmp_path, capsys):
    from smartiesviz.predict.embed import embed_to_file

    with pytest.raises(TypeError, match=r"cannot open a scene from int: give an xarray.DataArray"):
        embed_to_file(123, tmp_path / "e.tif")
    ckpt_fifo = tmp_path / "ckpt.safetensors"
    os.mkfifo(ckpt_fifo)
    argv = ["export", "--checkpoint", str(ckpt_fifo), "--bands", "S2", "--out", str(tmp_path / "e.onnx")]
    assert main(argv) == 2  # refused before anything opens (and blocks on) the FIFO
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "is a FIFO" in err
    argv = ["export", "--checkpoint", "demo", "--bands", "S2", "--img-size", "0",
            "--out", str(tmp_path / "e.onnx")]  # fmt: skip
    assert main(argv) == 2
    assert "--img-size must be a positive integer" in capsys.readouterr().err
    argv = ["export", "--checkpoint", "demo", "--bands", "nope", "--out", str(tmp_path / "e.onnx")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "cannot bake the band set 'nope'" in err and "unknown sensor 'nope'" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.safetensors"]
