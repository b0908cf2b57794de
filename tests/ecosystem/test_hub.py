"""Released SMARTIES names on the Hugging Face Hub, served offline from a cache the tests write.

Nothing is downloaded: each test writes a Hugging Face cache folder in ``huggingface_hub``'s own
layout (``models--<owner>--<repo>/blobs/<sha256>``, ``refs/<branch or tag>`` holding the commit,
``snapshots/<commit>/<file>`` linking to the blob) with a small file in the release's key layout
(the architecture is read from the file's shapes, so a tiny file under the ViT-B name loads as a
tiny model), and sets ``HF_HUB_OFFLINE``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import huggingface_hub.constants
import numpy as np
import pytest
import rasterio
import torch
from safetensors.torch import save_file

from smartiesviz.cli import main
from smartiesviz.models.checkpoint import CheckpointError, ForeignCheckpointError
from smartiesviz.models.encoder import SmartiesEncoder, build_encoder
from smartiesviz.models.hub import HUB_WEIGHTS, known_names
from smartiesviz.models.resolve import resolve_checkpoint, resolve_model
from tests.ecosystem.conftest import release_state_dict

VIT_B, VIT_B_FILE = "gsumbul/SMARTIES-v1-ViT-B", "smarties-v1-vitb.safetensors"
TUNED = "gsumbul/SMARTIES-v1-finetuned-models"
MAIN, OLD = "0123456789abcdef0123456789abcdef01234567", "fedcba9876543210fedcba9876543210fedcba98"


def write_cached(
    cache: Path, repo_id: str, filename: str, sd: dict[str, torch.Tensor], commit: str,
    refs: tuple[str, ...] = ("main",),
) -> Path:  # fmt: skip
    """Put ``sd`` into a Hugging Face cache as ``repo_id``'s ``filename`` at ``commit``."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    tmp = repo / "blobs" / "incoming"
    save_file(sd, str(tmp))
    blob = tmp.rename(repo / "blobs" / hashlib.sha256(tmp.read_bytes()).hexdigest())
    snap = repo / "snapshots" / commit / filename
    snap.parent.mkdir(parents=True, exist_ok=True)
    snap.symlink_to(os.path.relpath(blob, snap.parent))
    (repo / "refs").mkdir(exist_ok=True)
    for ref in refs:
        (repo / "refs" / ref).write_text(commit)  # no newline: huggingface_hub reads it verbatim
    return snap


def vit_b_layout(seed: int = 0) -> dict[str, torch.Tensor]:
    """The ViT-B file's exact 318 keys (12 blocks, 8 decoder blocks), 32 wide to stay small."""
    sd = release_state_dict(seed, dim=32, depth=12, dec_depth=8)
    assert len(sd) == 318
    return sd


def finetuned_layout(head: str, classes: int = 10) -> dict[str, torch.Tensor]:
    """A fine-tuned file: the downstream ViT (no decoder) plus the release's task head."""
    sd = {k: v for k, v in release_state_dict(2, dim=32).items() if not k.startswith(("decoder", "mask"))}
    if head == "linprobe":  # BatchNorm1d(affine=False) then Linear
        sd.update({"head.0.running_mean": torch.zeros(32), "head.0.running_var": torch.ones(32),
                   "head.0.num_batches_tracked": torch.tensor(5), "head.1.weight": torch.randn(classes, 32),
                   "head.1.bias": torch.zeros(classes)})  # fmt: skip
    else:
        sd.update({"head.weight": torch.randn(classes, 32), "head.bias": torch.zeros(classes)})
    return sd


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face cache, offline (the library reads both variables at import: its
    constants are set too)."""
    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    return cache


def test_vit_b_name_is_served_from_the_cache_with_its_sha256(hub: Path, tmp_path: Path) -> None:
    sd = vit_b_layout()
    snap = write_cached(hub, VIT_B, VIT_B_FILE, sd, MAIN)
    sha = hashlib.sha256(snap.read_bytes()).hexdigest()
    enc = SmartiesEncoder.from_pretrained(VIT_B)
    src = enc.checkpoint_source
    assert (src.kind, src.repo_id, src.filename, src.commit) == ("hub", VIT_B, VIT_B_FILE, MAIN)
    assert src.sha256 == sha and src.path == snap and src.weights.architecture == "vit_base_patch16"
    assert str(src) == f"hf://{VIT_B}@{MAIN}/{VIT_B_FILE}" == enc.load_report.source
    assert f"sha256 {sha}" in str(enc.load_report)
    assert (enc.depth, enc.embed_dim, enc.img_size) == (12, 32, 16)  # shapes, not the table
    assert "mask_token" in enc.load_report.skipped and not enc.load_report.missing
    local = tmp_path / VIT_B_FILE
    save_file(sd, str(local))
    x = torch.randn(2, 12, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = SmartiesEncoder.from_pretrained(local)(x, sensor_type="S2")
        for name in (VIT_B, f"hf://{VIT_B}", f"hf://{VIT_B}/{VIT_B_FILE}", VIT_B.lower()):
            assert torch.equal(SmartiesEncoder.from_pretrained(name)(x, sensor_type="S2"), ref), name
    assert resolve_model(VIT_B).checkpoint_info.sha256 == sha  # the MAE, decoder included


def test_revision_pins_a_commit_or_tag(hub: Path) -> None:
    write_cached(hub, VIT_B, VIT_B_FILE, vit_b_layout(0), MAIN)
    write_cached(hub, VIT_B, VIT_B_FILE, vit_b_layout(1), OLD, refs=("v1.0",))

    def cls_token(**kw) -> torch.Tensor:
        return SmartiesEncoder.from_pretrained(kw.pop("name", VIT_B), **kw).cls_token

    new, old = vit_b_layout(0)["cls_token"], vit_b_layout(1)["cls_token"]
    assert torch.equal(cls_token(), new)
    assert torch.equal(cls_token(revision=OLD), old)
    assert torch.equal(cls_token(revision="v1.0"), old)
    assert torch.equal(cls_token(name=f"{VIT_B}@v1.0"), old)
    src = resolve_checkpoint(f"{VIT_B}@v1.0")
    assert (src.revision, src.commit) == ("v1.0", OLD) and str(src) == f"hf://{VIT_B}@{OLD}/{VIT_B_FILE}"
    other = hub.parent / "other-cache"  # cache_dir= instead of HF_HUB_CACHE
    write_cached(other, VIT_B, VIT_B_FILE, vit_b_layout(1), MAIN)
    assert torch.equal(cls_token(cache_dir=other), old)
    with pytest.raises(ValueError, match="names revision 'v1.0' but revision='main'"):
        resolve_checkpoint(f"{VIT_B}@v1.0", revision="main")
    with pytest.raises(FileNotFoundError, match="not in the Hugging Face cache.*HF_HUB_OFFLINE"):
        resolve_checkpoint(VIT_B, revision="v9")


@pytest.mark.parametrize(("stem", "head", "keys"), [
    ("smarties-v1-vitb-eurosat-linprobe", "linprobe", 5),
    ("smarties-v1-vitl-eurosat-finetune", "finetune", 2),
])  # fmt: skip
def test_finetuned_names_load_the_encoder_and_report_the_dropped_head(
    hub: Path, stem: str, head: str, keys: int
) -> None:
    write_cached(hub, TUNED, f"{stem}.safetensors", finetuned_layout(head), MAIN)
    enc = SmartiesEncoder.from_pretrained(f"{TUNED}/{stem}")
    report = enc.load_report
    assert report.ok and sum(k.startswith("head.") for k in report.skipped) == keys
    note = f"head: the file's {head} head for EuroSAT, 10 classes ({keys} tensors"
    assert note in str(report)
    assert enc.checkpoint_source.weights.head == head
    mae = resolve_model(f"hf://{TUNED}/{stem}.safetensors")  # what `embed` uses
    assert any(note in n for n in mae.load_report.notes)
    assert torch.equal(mae.cls_token, enc.cls_token)


def test_unknown_names_list_the_known_ones_and_local_paths_win(
    hub: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert len(HUB_WEIGHTS) == 14 and f"{TUNED}/smarties-v1-vitb-dfc2020-linprobe" in known_names()
    for bad in ("gsumbul/SMARTIES-v2-ViT-B", f"{TUNED}/smarties-v1-vitb-nope", TUNED):
        with pytest.raises(FileNotFoundError) as err:
            resolve_checkpoint(bad)
        assert all(name in str(err.value) for name in known_names()), bad
    with pytest.raises(FileNotFoundError, match="'nope.safetensors' does not exist"):
        resolve_checkpoint("nope.safetensors")
    with pytest.raises(FileNotFoundError, match="not in the Hugging Face cache"):
        resolve_checkpoint("gsumbul/SMARTIES-v1-ViT-L")  # known, not cached, offline
    write_cached(hub, VIT_B, VIT_B_FILE, vit_b_layout(), MAIN)
    monkeypatch.chdir(tmp_path)
    run = tmp_path / VIT_B
    run.mkdir(parents=True)
    save_file(release_state_dict(), str(run / "model.safetensors"))
    src = resolve_checkpoint(VIT_B)  # a run folder of that spelling exists here
    assert src.kind == "run" and src.path == Path(VIT_B) / "model.safetensors"


def test_a_corrupt_cached_file_is_refused(hub: Path) -> None:
    snap = write_cached(hub, VIT_B, VIT_B_FILE, vit_b_layout(), MAIN)
    blob = snap.resolve()
    data = bytearray(blob.read_bytes())
    data[-1] ^= 1  # one bit of one weight
    blob.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="cached file is corrupt"):
        SmartiesEncoder.from_pretrained(VIT_B)


def test_build_then_load_reports_missing_and_unexpected_keys(hub: Path) -> None:
    demo_sd = SmartiesEncoder.from_pretrained("demo").state_dict()
    enc, report = build_encoder("vit_tiny_patch4", bands=["B04", "B03", "B02", "B08"],
                                checkpoint="demo", img_size=32)  # fmt: skip
    assert report.ok and enc.img_size == 32 and enc.checkpoint_source.kind == "demo"
    assert list(enc.default_bands.names) == ["B04", "B03", "B02", "B08"]
    x = torch.randn(1, 4, 32, 32)
    with torch.no_grad():
        assert torch.equal(enc(x), enc(x, bands="sentinel2-l2a:B04,B03,B02,B08"))
    partial = {k: v for k, v in demo_sd.items() if k != "blocks.0.attn.qkv.weight"}
    partial["extra.weight"] = torch.zeros(1)
    enc, report = build_encoder("smarties_encoder_vit_tiny_patch4", checkpoint=partial)
    assert report.missing == ["blocks.0.attn.qkv.weight"] and report.unexpected == ["extra.weight"]
    with pytest.raises(CheckpointError, match=r"blocks\.0\.attn\.qkv\.weight"):
        build_encoder("vit_tiny_patch4", checkpoint=partial, strict=True)
    enc, report = build_encoder("vit_tiny_patch4")
    assert not report.loaded and "blocks.0.attn.qkv.weight" in report.missing
    write_cached(hub, VIT_B, VIT_B_FILE, vit_b_layout(), MAIN)
    with pytest.raises(ForeignCheckpointError, match="embed_dim 32 in file vs 768 in vit_base_patch16"):
        build_encoder("vit_base_patch16", checkpoint=VIT_B)
    enc, report = build_encoder(VIT_B, bands="S1")  # a name alone: the file's own shape
    assert report.ok and enc.embed_dim == 32 and list(enc.default_bands.names) == ["VV", "VH"]


def _scene(path: Path) -> Path:
    data = (np.random.default_rng(0).random((4, 32, 32)) * 3000 + 500).astype("float32")
    with rasterio.open(path, "w", driver="GTiff", height=32, width=32, count=4, dtype="float32",
                       crs="EPSG:32618", transform=rasterio.Affine(10, 0, 5e5, 0, -10, 4e6)) as dst:  # fmt: skip
        dst.write(data)
        dst.descriptions = ("B02", "B03", "B04", "B08")
    return path


def test_cli_embed_takes_released_files_and_hub_names(hub: Path, tmp_path: Path, capsys) -> None:
    sd = release_state_dict()  # 16-px tiles: a fast embed
    local = tmp_path / "smarties-v1-test.safetensors"
    save_file(sd, str(local))
    write_cached(hub, VIT_B, VIT_B_FILE, sd, MAIN)
    scene = _scene(tmp_path / "scene.tif")
    maps = []
    for ckpt in (str(local), VIT_B, f"{VIT_B}@{MAIN}"):
        out = tmp_path / "emb.tif"
        argv = ["embed", str(scene), "--sensor", "sentinel2-l1c", "--checkpoint", ckpt,
                "--out", str(out), "--no-progress", "--overwrite"]  # fmt: skip
        assert main(argv) == 0, capsys.readouterr().err
        with rasterio.open(out) as src:
            maps.append(src.read())
    assert maps[0].shape == (128, 8, 8) and np.isfinite(maps[0]).all()
    assert all(np.array_equal(m, maps[0]) for m in maps[1:])
    capsys.readouterr()
    argv = ["embed", str(scene), "--sensor", "sentinel2-l1c", "--checkpoint",
            "gsumbul/SMARTIES-v2-ViT-B", "--out", str(tmp_path / "x.tif")]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after any library warnings
    assert err.startswith("error: ") and VIT_B in err and "not a known Hugging Face Hub name" in err


def test_cli_export_takes_the_same_names(hub: Path, tmp_path: Path, capsys) -> None:
    ort = pytest.importorskip("onnxruntime", reason="needs the export extra")
    pytest.importorskip("onnxscript", reason="needs the export extra")
    sd = release_state_dict()
    local = tmp_path / "smarties-v1-test.safetensors"
    save_file(sd, str(local))
    write_cached(hub, VIT_B, VIT_B_FILE, sd, MAIN)
    x = torch.randn(2, 2, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = SmartiesEncoder.from_pretrained(local)(x, sensor_type="S1")
    out = tmp_path / "enc.onnx"  # one export (the slow part): the Hub name, against the local file
    assert main(["export", "--checkpoint", VIT_B, "--bands", "S1", "--out", str(out)]) == 0, (
        capsys.readouterr().err
    )
    (cls, _) = ort.InferenceSession(str(out)).run(None, {"x": x.numpy()})
    assert float((torch.from_numpy(cls) - ref).abs().max() / ref.abs().max()) < 1e-4
    capsys.readouterr()
    argv = ["export", "--checkpoint", "gsumbul/SMARTIES-v2-ViT-B", "--bands", "S1",
            "--out", str(tmp_path / "x.onnx")]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after any library warnings
    assert err.startswith("error: ") and VIT_B in err and "not a known Hugging Face Hub name" in err
