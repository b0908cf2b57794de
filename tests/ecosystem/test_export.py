"""ONNX export of the encoder for a fixed band set (smartiesviz export): outputs equal to the eager
encoder at two input sizes, metadata read back with onnxruntime, layer-less inputs named."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import smartiesviz
from smartiesviz.cli import main
from smartiesviz.data.preprocess import release_stats
from smartiesviz.export import export_onnx, parse_bands_spec
from smartiesviz.models.demo import demo_weights_path
from smartiesviz.models.encoder import SmartiesEncoder
from smartiesviz.outputs import file_sha256
from smartiesviz.spectrum import get_sensor

ort = pytest.importorskip("onnxruntime", reason="needs the export extra: pip install smartiesviz[export]")
pytest.importorskip("onnxscript", reason="torch.onnx's exporter needs the export extra (onnxscript)")


def rel(a: np.ndarray, b: torch.Tensor) -> float:
    return float((torch.from_numpy(a) - b).abs().max() / b.abs().max())


@pytest.fixture(scope="module")
def demo() -> SmartiesEncoder:
    return SmartiesEncoder.from_pretrained("demo")


def test_cli_export_equals_eager_encoder_at_two_sizes_with_metadata(
    tmp_path: Path, demo: SmartiesEncoder, capsys
) -> None:
    out = tmp_path / "enc.onnx"
    assert main(["export", "--checkpoint", "demo", "--bands", "sentinel2-l2a", "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["enc.onnx"]  # no temp file left
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for shape in [(3, 12, 64, 64), (1, 12, 32, 48)]:  # the checkpoint's size, and another one
        x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
        cls, tokens = session.run(None, {"x": x.numpy()})
        with torch.no_grad():
            assert rel(cls, demo(x, sensor_type="S2")) < 1e-4
            assert rel(tokens, demo(x, sensor_type="S2", all_tokens=True)) < 1e-4
        assert tokens.shape[-2:] == (shape[2] // demo.patch_size, shape[3] // demo.patch_size)

    meta = session.get_modelmeta().custom_metadata_map
    assert json.loads(meta["bands"]) == [f"sentinel2-l2a/{b.name}" for b in get_sensor("S2").bands]
    assert json.loads(meta["unused_bands"]) == []
    assert meta["checkpoint_sha256"] == file_sha256(demo_weights_path())
    assert meta["token_norm"] == "pre-norm"
    assert meta["smartiesviz_version"] == smartiesviz.__version__
    assert meta["patch_size"] == str(demo.patch_size) and meta["dynamic_size"] == "true"
    norm = json.loads(meta["normalization"])["bands"]
    assert norm["sentinel2-l2a/B04"] == dict(release_stats("sentinel2-l2a").lookup("B04"))


def test_layerless_band_is_named_fixed_size_and_refusals(tmp_path: Path, demo: SmartiesEncoder) -> None:
    out = tmp_path / "l8.onnx"
    with pytest.warns(UserWarning, match=r"reach no output: landsat8/B9"):
        result = export_onnx(demo, "landsat8", out, img_size=32, dynamic_size=False)
    grid = 32 // demo.patch_size
    assert result.input_shape == (-1, 11, 32, 32) and result.grid == (grid, grid)
    assert result.unused_bands == ("landsat8/B9",)
    assert result.max_rel_error is not None and result.max_rel_error < 1e-4
    session = ort.InferenceSession(str(out))
    meta = session.get_modelmeta().custom_metadata_map
    bands = json.loads(meta["bands"])
    assert bands[8] == "landsat8/B9" and len(bands) == 11  # every input, in order
    assert json.loads(meta["unused_bands"]) == ["landsat8/B9"]
    assert json.loads(meta["normalization"])["bands"]["landsat8/B4"] is None  # no release stats
    assert meta["dynamic_size"] == "false"
    x = torch.randn(2, 11, 32, 32)
    y = x.clone()
    y[:, 8] = 100.0  # the unused input changes nothing
    (cls, _), (cls_y, _) = session.run(None, {"x": x.numpy()}), session.run(None, {"x": y.numpy()})
    assert np.array_equal(cls, cls_y)
    with torch.no_grad():
        eager = demo(x, bands="landsat8")  # 64-px table resampled to 32 px, as baked
    assert rel(cls, eager) < 1e-4
    before = out.stat().st_mtime_ns
    with pytest.raises(FileExistsError, match="--overwrite"):
        export_onnx(demo, "landsat8", out, img_size=32)
    assert out.stat().st_mtime_ns == before
    with pytest.raises(ValueError, match="cannot bake the band set"):
        export_onnx(demo, ["sentinel2-l2a/B99"], tmp_path / "bad.onnx")
    with pytest.raises(ValueError, match="cannot bake img_size 30"):
        export_onnx(demo, "S1", tmp_path / "bad.onnx", img_size=30)
    assert not (tmp_path / "bad.onnx").exists()


def test_post_norm_tokens_are_recorded_and_bad_values_refused(
    tmp_path: Path, demo: SmartiesEncoder
) -> None:
    out = tmp_path / "post.onnx"
    assert main(["export", "--checkpoint", "demo", "--bands", "S1", "--out", str(out),
                 "--img-size", "32", "--fixed-size", "--token-norm", "post-norm"]) == 0  # fmt: skip
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert session.get_modelmeta().custom_metadata_map["token_norm"] == "post-norm"
    x = torch.randn(2, 2, 32, 32, generator=torch.Generator().manual_seed(3))
    _, tokens = session.run(None, {"x": x.numpy()})
    eager = SmartiesEncoder.from_pretrained("demo", img_size=32)  # as the CLI loads it
    with torch.no_grad():
        post = eager(x, sensor_type="S1", all_tokens=True, token_norm="post-norm")
        pre = eager(x, sensor_type="S1", all_tokens=True)
    assert rel(tokens, post) < 1e-4 and rel(tokens, pre) > 0.05
    with pytest.raises(ValueError, match="token_norm must be one of 'pre-norm', 'post-norm'"):
        export_onnx(demo, "S1", tmp_path / "bad.onnx", token_norm="prenorm")
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
