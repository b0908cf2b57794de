"""Released task heads: files written in the release's key layout load as TaskModels whose logits
equal a reference built here from plain torch, following the facts
(``../shared/reference/SMARTIES-facts.md``, "Released task files and their heads").

Each file is a tiny downstream ViT (our MAE's weights in the release layout, decoder dropped)
plus the head keys of the release; the reference takes the features of a
:class:`SmartiesEncoder` loaded from the same file and applies the head by hand.
"""

from __future__ import annotations

from pathlib import Path

import huggingface_hub.constants
import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from safetensors.torch import save_file

from smartiesviz.models.checkpoint import CheckpointError, to_release_state_dict
from smartiesviz.models.classes import BIGEARTHNET19, DFC2020, EUROSAT, RESISC45
from smartiesviz.models.encoder import SmartiesEncoder
from smartiesviz.models.heads import TASK_SPECS, TaskModel, load_task_model, task_spec
from smartiesviz.models.hub import HUB_WEIGHTS
from tests.ecosystem.test_hub import write_cached
from tests.models.conftest import IMG, tiny_model

D, HEADS, S = 64, 4, 8  # tiny_model's width, heads and patch (IMG 32: a 4x4 grid)
S2 = [f"sentinel2-l2a/{b}" for b in "B01 B02 B03 B04 B05 B06 B07 B08 B8A B09 B11 B12".split()]
S1 = ["sentinel1-grd/VV", "sentinel1-grd/VH"]
TUNED = "gsumbul/SMARTIES-v1-finetuned-models"


def task_file(kind: str, classes: int, width: int = D, seed: int = 0) -> dict[str, torch.Tensor]:
    """A downstream file in the release's layout with a ``kind`` head over ``width`` features."""
    sd = {
        k: v
        for k, v in to_release_state_dict(tiny_model(seed)).items()
        if not k.startswith(("decoder", "mask_token"))
    }
    g = torch.Generator().manual_seed(seed + 7)
    if kind == "finetune":
        sd["head.weight"] = torch.randn(classes, width, generator=g) * 0.1
        sd["head.bias"] = torch.randn(classes, generator=g)
    elif kind == "linprobe":
        sd["head.0.running_mean"] = torch.randn(width, generator=g)
        var = torch.rand(width, generator=g) + 0.5
        var[:4] = 1e-5  # small variances make eps (1e-6) visible in the logits
        sd["head.0.running_var"] = var
        sd["head.0.num_batches_tracked"] = torch.tensor(100)
        sd["head.1.weight"] = torch.randn(classes, width, generator=g) * 0.1
        sd["head.1.bias"] = torch.randn(classes, generator=g)
    else:  # segmentation: 1x1 Conv2d
        sd["head.0.weight"] = torch.randn(classes, width, 1, 1, generator=g) * 0.1
        sd["head.0.bias"] = torch.randn(classes, generator=g)
    return sd


def save(tmp_path: Path, sd: dict[str, torch.Tensor], name: str = "task.safetensors") -> Path:
    path = tmp_path / name
    save_file(sd, str(path))
    return path


def encoder(path: Path) -> SmartiesEncoder:
    return SmartiesEncoder.from_pretrained(path, num_heads=HEADS)


def images(*channels: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return [torch.randn(2, c, IMG, IMG, generator=g) for c in channels]


def test_finetune_head_is_linear_on_cls_features(tmp_path: Path) -> None:
    sd = task_file("finetune", 10)
    path = save(tmp_path, sd)
    model = load_task_model(path, "eurosat-finetune", num_heads=HEADS)
    (x,) = images(12)
    with torch.no_grad():
        ref = F.linear(
            encoder(path)(x, bands=TASK_SPECS["eurosat-finetune"].sources[0].bands),
            sd["head.weight"],
            sd["head.bias"],
        )
        logits = model(x)
    assert logits.shape == (2, 10)
    torch.testing.assert_close(logits, ref, atol=1e-4, rtol=0)
    assert torch.equal(model.predict(x), ref.argmax(1))
    assert model.reducer == "argmax" and model.task_type == "single-label"
    assert model.classes == EUROSAT and model.sensors == ("S2",)
    assert model.sources[0].bands[-1] == "sentinel2-l2a/B8A" and model.sources[0].stats == "EuroSAT"
    assert "head.weight" in model.load_report.loaded and not model.load_report.missing


def test_linprobe_head_is_frozen_batchnorm_then_linear(tmp_path: Path) -> None:
    sd = task_file("linprobe", 19)
    path = save(tmp_path, sd)
    model = load_task_model(path, "bigearthnets1-linprobe", num_heads=HEADS)
    (x,) = images(2)
    with torch.no_grad():
        feats = encoder(path)(x, bands=S1)
        normed = (feats - sd["head.0.running_mean"]) / torch.sqrt(sd["head.0.running_var"] + 1e-6)
        ref = F.linear(normed, sd["head.1.weight"], sd["head.1.bias"])
        logits = model(x)
    torch.testing.assert_close(logits, ref, atol=1e-4, rtol=0)
    torch.testing.assert_close(model.predict(x), torch.sigmoid(ref), atol=1e-5, rtol=0)
    assert model.reducer == "sigmoid" and model.task_type == "multi-label"
    assert model.classes == BIGEARTHNET19 and model.classes[0] == "Urban fabric"
    assert not model.training and not model.head[0].training  # running statistics, not the batch's


def test_multimodal_probe_concatenates_s2_then_s1(tmp_path: Path) -> None:
    sd = task_file("linprobe", 19, width=2 * D)
    path = save(tmp_path, sd)
    model = load_task_model(path, "bigearthnetmm-linprobe", num_heads=HEADS)
    x_s2, x_s1 = images(12, 2)
    with torch.no_grad():
        enc = encoder(path)
        feats = torch.cat([enc(x_s2, bands=S2), enc(x_s1, bands=S1)], dim=1)  # release order
        normed = (feats - sd["head.0.running_mean"]) / torch.sqrt(sd["head.0.running_var"] + 1e-6)
        ref = F.linear(normed, sd["head.1.weight"], sd["head.1.bias"])
        by_name = model({"S1": x_s1, "S2": x_s2})
        in_order = model([x_s2, x_s1])
    assert model.sensors == ("S2", "S1")
    torch.testing.assert_close(by_name, ref, atol=1e-4, rtol=0)
    assert torch.equal(by_name, in_order)
    with pytest.raises(ValueError, match="2 sources"):
        model(x_s2)
    with pytest.raises(ValueError, match="takes sources"):
        model({"S2": x_s2})


def test_segmentation_head_is_conv_then_upsample_on_prenorm_tokens(tmp_path: Path) -> None:
    sd = task_file("segmentation", 8)
    path = save(tmp_path, sd)
    model = load_task_model(path, "dfc2020-linprobe", num_heads=HEADS)
    (x,) = images(12)
    with torch.no_grad():
        tokens = encoder(path)(x, bands=S2, all_tokens=True)  # (B, D, 4, 4), before the norm
        ref = F.interpolate(
            F.conv2d(tokens, sd["head.0.weight"], sd["head.0.bias"]),
            scale_factor=96 / 14,
            mode="bilinear",
            align_corners=False,
        )
        logits = model(x)
    assert logits.shape == (2, 8, 27, 27)  # floor(4 * 96/14)
    torch.testing.assert_close(logits, ref, atol=1e-4, rtol=0)
    assert torch.equal(model.predict(x), ref.argmax(1))
    assert model.task_type == "segmentation" and model.classes == DFC2020


def test_every_released_head_has_a_task_spec() -> None:
    tuned = [w for w in HUB_WEIGHTS if w.head != "none"]
    assert len(tuned) == 12
    for w in tuned:
        spec = task_spec(w)
        assert (spec.head, spec.num_classes) == (w.head, w.num_classes), w.filename
    assert task_spec("smarties-v1-vitl-resisc45-finetune.safetensors").classes == RESISC45
    assert RESISC45 == tuple(sorted(RESISC45)) and len(set(RESISC45)) == 45
    with pytest.raises(ValueError, match="known tasks"):
        task_spec("eurosat-segmentation")


def test_a_head_of_the_wrong_kind_or_size_is_refused(tmp_path: Path) -> None:
    path = save(tmp_path, task_file("finetune", 10))
    with pytest.raises(CheckpointError, match=r"needs head\.1\.weight"):
        load_task_model(path, "eurosat-linprobe", num_heads=HEADS)
    with pytest.raises(CheckpointError, match="to 19"):
        load_task_model(path, "bigearthnets2-finetune", num_heads=HEADS)
    with pytest.raises(ValueError, match="known tasks"):
        load_task_model(path)  # a local file whose name says no task


def test_hub_name_loads_head_and_task_from_an_offline_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    commit = "0123456789abcdef0123456789abcdef01234567"
    sd = task_file("finetune", 10, seed=1)
    write_cached(cache, TUNED, "smarties-v1-vitb-eurosat-finetune.safetensors", sd, commit)
    model = load_task_model(f"{TUNED}/smarties-v1-vitb-eurosat-finetune", num_heads=HEADS)
    local = load_task_model(save(tmp_path, sd), "eurosat-finetune", num_heads=HEADS)
    assert isinstance(model, TaskModel) and model.spec is TASK_SPECS["eurosat-finetune"]
    assert model.checkpoint_source.commit == commit and model.checkpoint_source.kind == "hub"
    (x,) = images(12)
    with torch.no_grad():
        assert torch.equal(model(x), local(x))
