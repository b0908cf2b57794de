"""ONNX export of the encoder for a fixed band set (smartiesviz export)."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from smartiesviz.cli import main
from smartiesviz.export import export_onnx, parse_bands_spec
from smartiesviz.models.encoder import SmartiesEncoder

ort = pytest.importorskip("onnxruntime", reason="needs the export extra: pip install smartiesviz[export]")
pytest.importorskip("onnxscript", reason="torch.onnx's exporter needs the export extra (onnxscript)")


def rel(a: np.ndarray, b: torch.Tensor) -> float:
    return float((torch.from_numpy(a) - b).abs().max() / b.abs().max())


@pytest.fixture(scope="module")
def demo() -> SmartiesEncoder:
    return SmartiesEncoder.from_pretrained("demo")


def test_cli_export_equals_eager_encoder(tmp_path: Path, demo: SmartiesEncoder, capsys) -> None:
    out = tmp_path / "enc.onnx"
    assert main(["export", "--checkpoint", "demo", "--bands", "sentinel2-l2a", "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["enc.onnx"]  # no temp file left
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = torch.randn(3, 12, 64, 64, generator=torch.Generator().manual_seed(0))
    cls, tokens = session.run(None, {"x": x.numpy()})
    with torch.no_grad():
        assert rel(cls, demo(x, sensor_type="S2")) < 1e-4
        assert rel(tokens, demo(x, sensor_type="S2", all_tokens=True)) < 1e-4


def test_band_subset_with_dropped_band_and_refusals(tmp_path: Path, demo: SmartiesEncoder) -> None:
    out = tmp_path / "l1c.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # B10 has no layer: read but unused
        result = export_onnx(demo, "sentinel2-l1c", out, img_size=32)
        grid = 32 // demo.patch_size
        assert result.input_shape == (-1, 13, 32, 32) and result.grid == (grid, grid)
        assert result.max_rel_error is not None and result.max_rel_error < 1e-4
        x = torch.randn(2, 13, 32, 32)
        with torch.no_grad():
            eager = demo(x, bands="sentinel2-l1c")  # 64-px table resampled to 32 px, as baked
    (cls, _) = ort.InferenceSession(str(out)).run(None, {"x": x.numpy()})
    assert rel(cls, eager) < 1e-4
    before = out.stat().st_mtime_ns
    with pytest.raises(FileExistsError, match="--overwrite"):
        export_onnx(demo, "sentinel2-l1c", out, img_size=32)
    assert out.stat().st_mtime_ns == before
    with pytest.raises(ValueError, match="cannot bake the band set"):
        export_onnx(demo, ["sentinel2-l2a/B99"], tmp_path / "bad.onnx")
    with pytest.raises(ValueError, match="cannot bake img_size 30"):
        export_onnx(demo, "S1", tmp_path / "bad.onnx", img_size=30)
    assert not (tmp_path / "bad.onnx").exists()


def test_failed_export_leaves_nothing(tmp_path: Path, demo: SmartiesEncoder, monkeypatch) -> None:
    def broken(model, args, f, **kwargs):
        Path(f).write_bytes(b"partial")
        raise RuntimeError("exporter failed")

    monkeypatch.setattr(torch.onnx, "export", broken)
    with pytest.raises(RuntimeError, match="exporter failed"):
        export_onnx(demo, "S1", tmp_path / "x.onnx")
    assert list(tmp_path.iterdir()) == []


def test_bands_spec_parsing() -> None:
    assert parse_bands_spec("S2") == "S2"
    assert parse_bands_spec("sentinel2-l2a:B04, B03") == ["sentinel2-l2a/B04", "sentinel2-l2a/B03"]
    assert parse_bands_spec("red_2,microwave_1") == ["red_2", "microwave_1"]
    assert parse_bands_spec("red_2") == ["red_2"]
    with pytest.raises(ValueError, match="empty"):
        parse_bands_spec(" ")


def test_parser_does_not_import_torch() -> None:
    code = "import sys, argparse, smartiesviz.export_cli as m; p = argparse.ArgumentParser(); " \
        "m.register(p.add_subparsers()); assert 'torch' not in sys.modules, 'torch imported'"  # fmt: skip
    subprocess.run([sys.executable, "-c", code], check=True)
