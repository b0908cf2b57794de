"""Hostile sizes and checkpoint files (issue 28): refused by name before anything is allocated,
and checkpoint pairs saved atomically."""

from __future__ import annotations

import json
import os
import select
import signal
import stat
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from smartiesviz.models import checkpoint, state_dict, tokenizer
from smartiesviz.models.checkpoint import (
    CheckpointError,
    NonFiniteWeightsError,
    load_checkpoint,
    load_pretrained,
    read_checkpoint_info,
    save_checkpoint,
    to_release_state_dict,
)
from smartiesviz.models.factories import smarties_vit_tiny_patch8
from smartiesviz.models.state_dict import read_state_dict
from smartiesviz.models.tokenizer import SpectrumAwareProjection
from smartiesviz.outputs import file_sha256, remove_stale_partials

RGB = ["S2/B04", "S2/B03", "S2/B02"]


def tiny(seed: int = 0, **kwargs):
    torch.manual_seed(seed)
    kw = dict(img_size=16, embed_dim=32, depth=1, num_heads=2, decoder_embed_dim=16,
              decoder_depth=1, decoder_num_heads=2)  # fmt: skip
    return smarties_vit_tiny_patch8(**{**kw, **kwargs})


def huge(c: int, h: int, w: int) -> torch.Tensor:
    """A ``(1, c, h, w)`` view of one zero: any shape, no memory."""
    return torch.zeros(1, 1, 1, 1).expand(1, c, h, w)


def no_reduction(*args, **kwargs):
    raise AssertionError("the image was read before its size was checked")


def edit_sidecar(path: Path, **changes) -> None:
    side = path.with_suffix(".json")
    data = json.loads(side.read_text())
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = data
        for p in parents:
            node = node[p]
        if value is KeyError:
            del node[last]
        else:
            node[last] = value
    side.write_text(json.dumps(data))


def no_real_model(monkeypatch):
    """Fail if a real (not ``meta``) SmartiesMAE is built by load_checkpoint."""
    real = checkpoint.SmartiesMAE

    def guarded(**kwargs):
        assert torch.get_default_device().type == "meta", "a real model was built before the check"
        return real(**kwargs)

    monkeypatch.setattr(checkpoint, "SmartiesMAE", guarded)
    monkeypatch.setattr(checkpoint, "read_state_dict", no_reduction)


# ---------------------------------------------------------------------- 1. image size limits
def test_a_huge_image_is_refused_before_it_is_read(monkeypatch):
    monkeypatch.setattr(tokenizer, "check_values", no_reduction)
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=r"\(1, 3, 1048576, 1048576\) is too large for one forward "
                       r"pass: 3.3e\+12 input values .*MAX_INPUT_VALUES\)\. Tile the image "
                       r"\(smartiesviz.data.tile\) or use smartiesviz.predict.embed"):  # fmt: skip
        SpectrumAwareProjection(32, 16)(huge(3, 2**20, 2**20), RGB)
    # tokens: 8192x8192 at patch 4 and width 4096 is 2^34 token values (64 GiB)
    with pytest.raises(ValueError, match=r"1.72e\+10 token values \(64 GiB in float32; 4194304 "
                       r"tokens of width 4096\) exceed .*MAX_TOKEN_VALUES"):  # fmt: skip
        SpectrumAwareProjection(4096, 4)(huge(1, 8192, 8192), ["S2/B04"])
    with pytest.raises(ValueError, match="too large for one forward pass"):
        tiny().cls_features(huge(12, 2**20, 2**20), "sentinel2-l2a")
    with pytest.raises(ValueError, match="too large"):  # (B, N, C, D) per band
        SpectrumAwareProjection(4096, 4).band_embeddings(huge(3, 4096, 4096), RGB)
    assert time.perf_counter() - t0 < 2


def test_the_size_limit_is_a_named_setting_and_real_images_pass(monkeypatch):
    proj = SpectrumAwareProjection(32, 16)
    x = torch.randn(2, 3, 64, 64)
    assert proj(x, RGB).shape == (2, 16, 32)
    monkeypatch.setattr(tokenizer, "MAX_TOKEN_VALUES", 1000)
    with pytest.raises(ValueError, match=r"1.02e\+03 token values .* limit of 1e\+03"):
        proj(x, RGB)


# ---------------------------------------------------------------------- 2. headers and sidecars
def raw_safetensors(path: Path, header: dict, data: bytes = b"") -> Path:
    blob = json.dumps(header).encode()
    path.write_bytes(len(blob).to_bytes(8, "little") + blob + data)
    return path


def test_a_header_longer_than_the_file_or_100_mb_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(state_dict, "load_file", no_reduction)
    long = tmp_path / "long.safetensors"
    long.write_bytes((2**40).to_bytes(8, "little") + b"{}")
    big = tmp_path / "big.safetensors"
    with big.open("wb") as fh:  # a sparse file: 101 MiB on paper, nothing on disk
        fh.write((101 * 2**20).to_bytes(8, "little"))
        fh.truncate(102 * 2**20)
    for path, why in ((long, "beyond the file"), (big, "out of range")):
        for load in (load_checkpoint, read_state_dict, lambda p: load_pretrained(tiny(), p)):
            with pytest.raises(CheckpointError, match=rf"{path.name} \(\d+ bytes\) is not a valid "
                               rf"safetensors file: its header length \d+ is {why}"):  # fmt: skip
                load(path)


def test_a_header_declaring_giant_tensors_is_refused_before_loading(tmp_path, monkeypatch):
    monkeypatch.setattr(state_dict, "load_file", no_reduction)
    giant = {"w": {"dtype": "F32", "shape": [2**20, 2**20], "data_offsets": [0, 2**42]}}
    path = raw_safetensors(tmp_path / "giant.safetensors", giant, b"\0" * 16)
    with pytest.raises(CheckpointError, match=r"giant.safetensors: tensor 'w' \(F32 \[1048576, "
                       r"1048576\], 4398046511104 bytes\) has data offsets .* 16 data bytes"):  # fmt: skip
        read_state_dict(path)
    zero = {"w": {"dtype": "F32", "shape": [0, 2**60], "data_offsets": [0, 0]}}
    with pytest.raises(CheckpointError, match=r"tensor 'w' has an invalid shape \[0, 11529"):
        read_state_dict(raw_safetensors(tmp_path / "zero.safetensors", zero))
    gap = {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}
    with pytest.raises(CheckpointError, match=r"do not cover its 16 data bytes exactly"):
        read_state_dict(raw_safetensors(tmp_path / "gap.safetensors", gap, b"\0" * 16))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"architecture__depth": 10**9},
         r"run.json: architecture.depth must be an integer in \[0, 256\], got int 1000000000"),
        ({"architecture__img_size": 8192, "architecture__patch_size": 1},
         r"architecture.img_size 8192 with patch_size 1 is not a whole patch grid of at most"),
        ({"architecture__mlp_ratio": float("nan")},
         r"architecture.mlp_ratio must be a number in \(0, 64.0\], got float nan"),
        ({"architecture__num_heads": 3}, r"embed_dim 32 is not divisible by num_heads 3"),
        ({"architecture__pos_embed_mode": "learned"},
         r"pos_embed_mode must be one of \['sincos', 'bicubic'\], got 'learned'"),
        ({"architecture__width": 4}, r"unknown architecture key\(s\) 'width'"),
        # in range, but 8192 wide and 16 deep (~50 GB): caught on the meta device
        ({"architecture__embed_dim": 8192, "architecture__depth": 16},
         r"run.safetensors does not match its recorded architecture \(embed_dim 32 in file vs "
         r"8192 in model; depth 1 in file vs 16 in model; missing keys: blocks.1.norm1.weight.*"
         r"mis-shaped keys: blocks.0.attn.proj.bias"),
    ],
)  # fmt: skip
def test_a_sidecar_asking_for_a_giant_model_is_refused_before_building(
    tmp_path, monkeypatch, changes, message
):
    path = save_checkpoint(tiny(), tmp_path / "run")
    edit_sidecar(path, **changes)
    no_real_model(monkeypatch)
    with pytest.raises(CheckpointError, match=message) as err:
        load_checkpoint(path)
    assert "\n" not in str(err.value)


def test_a_header_config_asking_for_a_giant_model_is_refused(tmp_path, monkeypatch):
    sd = {k: v.contiguous() for k, v in tiny().state_dict().items()}
    config = dict(tiny().config, img_size=10**6)
    path = tmp_path / "bare.safetensors"
    save_file(sd, str(path), metadata={"config": json.dumps(config)})
    no_real_model(monkeypatch)
    with pytest.raises(CheckpointError, match=r"bare.safetensors \(header config\): architecture."
                       r"img_size must be an integer in \[1, 8192\], got int 1000000; the file is "
                       r"corrupt"):  # fmt: skip
        load_checkpoint(path)


# ---------------------------------------------------------------------- 3. dtypes
def test_complex_and_float8_tensors_are_refused_naming_key_and_dtype(tmp_path):
    sd = to_release_state_dict(tiny())
    hidden = torch.full((2,), complex(float("nan"), 0.0), dtype=torch.complex64)
    path = tmp_path / "complex.safetensors"
    save_file({**sd, "blocks.0.ls.gamma": hidden}, str(path))
    with pytest.raises(CheckpointError, match=r"complex.safetensors: tensor 'blocks.0.ls.gamma' "
                       r"has dtype 'C64'; a SMARTIES checkpoint holds only real tensors"):  # fmt: skip
        load_pretrained(tiny(), path)
    pt = tmp_path / "complex.pt"
    torch.save({"model": {**sd, "norm.bias": sd["norm.bias"].to(torch.complex64)}}, pt)
    for load in (
        lambda: load_pretrained(tiny(), pt),
        lambda: load_pretrained(tiny(), torch.load(pt)["model"]),
    ):
        with pytest.raises(CheckpointError, match=r"tensor 'norm.bias' is torch.complex64"):
            load()
    f8 = {**sd, "norm.bias": sd["norm.bias"].to(torch.float8_e4m3fn)}
    with pytest.raises(CheckpointError, match=r"'norm.bias' is torch.float8_e4m3fn"):
        load_pretrained(tiny(), f8)
    view = tmp_path / "view.pt"
    torch.save({**sd, "norm.bias": torch.zeros(1).expand(10**6)}, view)
    with pytest.raises(CheckpointError, match=r"'norm.bias' of shape \[1000000\] .* is a view "
                       r"repeating 4 stored bytes"):  # fmt: skip
        read_state_dict(view)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_the_finite_check_covers_half_precision(tmp_path, dtype):
    model = tiny().to(dtype)
    with torch.no_grad():
        model.blocks[0].norm1.weight[0] = float("nan")
        model.norm.bias[0] = float("inf")
    path = save_checkpoint(model, tmp_path / "half")
    with pytest.raises(NonFiniteWeightsError, match=r"half.safetensors holds NaN or infinite "
                       r"values in 2 tensor\(s\): blocks.0.norm1.weight, norm.bias"):  # fmt: skip
        load_checkpoint(path)
    with pytest.raises(NonFiniteWeightsError, match="blocks.0.norm1.weight, norm.bias"):
        load_pretrained(tiny(), to_release_state_dict(model))


# ---------------------------------------------------------------------- 4. sidecar types
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"architecture__embed_dim": "768"},
         r"architecture.embed_dim must be an integer in \[1, 8192\], got str '768'"),
        ({"architecture__depth": True}, r"architecture.depth must be an integer .* got bool True"),
        ({"architecture__mlp_ratio": "4"}, r"architecture.mlp_ratio must be a number .* got str"),
        ({"architecture": [32, 1]}, r"key 'architecture' must be a JSON object, got list \[32, 1\]"),
        ({"metadata": ["a"]}, r"key 'metadata' must be a JSON object, got list"),
        ({"sha256": 5}, r"key 'sha256' must be a string, got int 5"),
        ({"stored_pos_embed": {"pos_embed": "1x5"}}, r"stored_pos_embed.pos_embed must be a list"),
        ({"architecture__embed_dim": KeyError}, r"architecture.embed_dim is missing"),
        ({"architecture": KeyError}, r"not a smartiesviz checkpoint sidecar \(no 'architecture'"),
    ],
)  # fmt: skip
def test_a_sidecar_of_wrong_types_gives_one_line_naming_file_key_and_type(
    tmp_path, changes, message
):
    path = save_checkpoint(tiny(), tmp_path / "run")
    edit_sidecar(path, **changes)
    with pytest.raises(CheckpointError, match=rf"run\.json.*{message}") as err:
        load_checkpoint(path)
    assert "\n" not in str(err.value) and "restore it from the training run" in str(err.value)


def test_a_fifo_sidecar_is_refused_without_blocking(tmp_path):
    path = save_checkpoint(tiny(), tmp_path / "run")
    path.with_suffix(".json").unlink()
    os.mkfifo(path.with_suffix(".json"))
    with pytest.raises(ValueError, match=r"checkpoint sidecar .*run\.json' is a FIFO"):
        load_checkpoint(path)


# ---------------------------------------------------------------------- 5. atomic pairs
def test_saved_weights_are_readable_by_all_and_special_outputs_are_refused(tmp_path):
    path = save_checkpoint(tiny(), tmp_path / "m")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # 0644 under umask 022, not 0600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.safetensors"]
    os.mkfifo(tmp_path / "fifo.safetensors")
    with pytest.raises(ValueError, match=r"checkpoint '.*fifo.safetensors' is a FIFO"):
        save_checkpoint(tiny(), tmp_path / "fifo")
    os.mkfifo(tmp_path / "side.json")
    with pytest.raises(ValueError, match=r"checkpoint sidecar '.*side.json' is a FIFO"):
        save_checkpoint(tiny(), tmp_path / "side")
    (tmp_path / "dir.safetensors").mkdir()
    with pytest.raises(ValueError, match=r"dir.safetensors' is a folder"):
        save_checkpoint(tiny(), tmp_path / "dir")
    assert not (tmp_path / "fifo.json").exists() and not (tmp_path / "dir.json").exists()


def test_save_checkpoint_refuses_to_overwrite_the_file_the_model_came_from(tmp_path):
    path = save_checkpoint(tiny(), tmp_path / "m")
    before = {p.name: file_sha256(p) for p in tmp_path.iterdir()}
    model = load_checkpoint(path)
    for target in (path, tmp_path / "m"):
        with pytest.raises(ValueError, match=r"checkpoint '.*m.safetensors' is an input of this "
                           r"job .*choose another output path"):  # fmt: skip
            save_checkpoint(model, target)
    assert {p.name: file_sha256(p) for p in tmp_path.iterdir()} == before
    assert load_checkpoint(save_checkpoint(model, tmp_path / "copy")).config == model.config


def test_a_pair_from_two_saves_is_refused_even_without_verify(tmp_path):
    a = save_checkpoint(tiny(seed=0), tmp_path / "a")
    b = save_checkpoint(tiny(seed=1), tmp_path / "b")
    a.with_suffix(".json").write_bytes(b.with_suffix(".json").read_bytes())
    for verify in (True, False):
        with pytest.raises(CheckpointError, match=r"a.safetensors and its sidecar a.json come from "
                           r"different saves .*Save the model again"):  # fmt: skip
            load_checkpoint(a, verify=verify)
    with pytest.raises(CheckpointError, match="different saves"):
        read_checkpoint_info(a)


def same_weights(model, ref) -> bool:
    got, want = model.state_dict(), ref.state_dict()
    return got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)


def test_an_interrupted_save_before_the_renames_keeps_the_old_pair(tmp_path, monkeypatch):
    old = tiny(seed=0)
    path = save_checkpoint(old, tmp_path / "m")
    before = {p.name: file_sha256(p) for p in tmp_path.iterdir()}

    def killed(src, dst):
        raise KeyboardInterrupt  # stands for a kill before any rename

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tiny(seed=1), path)
    monkeypatch.undo()
    assert {p.name: file_sha256(p) for p in tmp_path.iterdir()} == before  # no partials left
    assert same_weights(load_checkpoint(path), old)


def test_a_save_killed_between_the_two_renames_never_loads_mismatched(tmp_path):
    old, new = tiny(seed=0), tiny(seed=1)
    path = save_checkpoint(old, tmp_path / "m")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child saves, and stops once the sidecar is in place but not the weights
        try:
            real = os.replace

            def replace(src, dst):
                real(src, dst)
                if str(dst).endswith(".json"):
                    os.write(write, b"between")
                    time.sleep(60)

            os.replace = replace
            save_checkpoint(new, path)
        finally:
            os._exit(1)
    try:
        os.close(write)
        ready, _, _ = select.select([read], [], [], 60)
        assert ready and os.read(read, 16) == b"between"
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(read)
    # the new sidecar beside the old weights: refused, never loaded as a mismatched model
    for verify in (True, False):
        with pytest.raises(CheckpointError, match="come from different saves"):
            load_checkpoint(path, verify=verify)
    assert [p.name for p in remove_stale_partials(tmp_path)] == [
        f".m.safetensors.partial-{pid}.safetensors"
    ]
    # saving again heals the pair
    assert same_weights(load_checkpoint(save_checkpoint(new, path)), new)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.safetensors"]
