"""timm's own model contract (its ``tests/test_models.py``) reproduced on ``smarties_encoder_vit_*``.

CI cannot reach GitHub, so the checks timm runs on its ViTs (our names are treated as timm treats
its non-standard ViTs: ``NON_STD_FILTERS`` and ``FEAT_INTER_FILTERS``) are repeated here on the
tiny variants: forward/backward, default cfg, ``features_only`` (timm's ``FeatureGetterNet``),
``forward_intermediates``, FX, TorchScript, grad checkpointing, layer decay; plus weights through
timm's own paths: ``pretrained=True`` from an offline Hugging Face cache, ``checkpoint_path=``.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import timm
import torch
from huggingface_hub.errors import LocalEntryNotFoundError
from safetensors.torch import save_file
from timm.data import resolve_data_config
from timm.layers import set_layer_config

import smartiesviz.models  # noqa: F401  (registers the names)
from smartiesviz.models.encoder import SmartiesEncoder
from smartiesviz.models.encoder_timm import SmartiesViT
from tests.ecosystem.conftest import mae_sincos

NAME = "smarties_encoder_vit_tiny_patch8"  # D 192, depth 4, patch 8
KW = dict(img_size=32)  # 4 x 4 tokens: fast
NAMES = [f"smarties_encoder_vit_{v}" for v in ("tiny_patch4", "tiny_patch8", "small_patch16", "base_patch16", "large_patch16")]


def _input(model: torch.nn.Module, batch: int = 1) -> torch.Tensor:
    return torch.randn(batch, *model.pretrained_cfg["input_size"])


def test_registry_holds_only_conforming_models() -> None:
    assert set(timm.list_models("smarties*")) == set(NAMES)  # the MAE factories are not timm models
    assert timm.list_pretrained("smarties*") == [
        "smarties_encoder_vit_base_patch16.smarties_v1", "smarties_encoder_vit_large_patch16.smarties_v1",
    ]  # fmt: skip


@pytest.mark.parametrize("name", NAMES)
def test_default_cfgs(name: str) -> None:
    cfg = timm.get_pretrained_cfg(name).to_dict()
    assert cfg["num_classes"] == 0 and cfg["input_size"][0] == 12 and cfg["fixed_input_size"]
    assert len(cfg["mean"]) == len(cfg["std"]) == 12 and cfg["classifier"] == "head"
    if "base" in name or "large" in name:
        size = "B" if "base" in name else "L"
        assert cfg["hf_hub_id"] == f"gsumbul/SMARTIES-v1-ViT-{size}"
        assert cfg["hf_hub_filename"] == f"smarties-v1-vit{size.lower()}.safetensors"


def test_data_config_is_the_release_normalisation() -> None:
    """``(x - mean) / std`` equals the release's ``((x - p1) / (p99 - p1) - m) / s`` on Sentinel-2 L2A."""
    from smartiesviz.data.preprocess import release_stats

    model = timm.create_model(NAME)  # no arguments: Sentinel-2 L2A, 12 channels
    assert model.in_chans == 12 and model.bands.names[8] == "B8A"
    data = resolve_data_config(model=model)
    assert data["input_size"] == (12, 64, 64)
    st = release_stats("sentinel2-l2a").arrays(model.bands.names)
    x = torch.linspace(50, 2000, 12, dtype=torch.float64)  # inside [p1, p99] for every band
    want = ((x - st["p1"]) / (st["p99"] - st["p1"]) - st["mean"]) / st["std"]
    got = (x - torch.tensor(data["mean"])) / torch.tensor(data["std"])
    assert torch.allclose(got, torch.as_tensor(want), atol=1e-9)


def test_forward_head_features_and_classifier_reset() -> None:
    """timm's test_model_default_cfgs_non_std and test_model_forward."""
    model = timm.create_model(NAME, num_classes=7, **KW).eval()
    x = _input(model)
    feats = model.forward_features(x)
    pre = model.forward_head(feats, pre_logits=True)
    assert feats.shape == (1, 1 + 16, model.num_features) and pre.shape == (1, model.head_hidden_size)
    assert model(x).shape == (1, 7) and "head.weight" in model.state_dict()
    assert all(f"{fc}.weight" in model.state_dict() for fc in model.pretrained_cfg["first_conv"])
    model.reset_classifier(0)
    assert model.num_classes == 0 and model(x).shape == pre.shape
    assert timm.create_model(NAME, num_classes=0, **KW)(x).shape == (1, model.num_features)
    assert timm.create_model(NAME, num_classes=0, global_pool="", **KW)(x).shape == feats.shape


def test_backward_reaches_every_parameter() -> None:
    """timm's test_model_backward: every parameter gets a gradient (unused spectral layers: zero)."""
    model = timm.create_model(NAME, num_classes=42, bands="S1", **KW).train()
    out = model(_input(model, 2))
    out.mean().backward()
    assert out.shape == (2, 42)
    assert all(p.grad is not None for p in model.parameters())
    layers = model.patch_embed.proj.layers
    assert layers[15].weight.grad.abs().sum() > 0 and not layers[0].weight.grad.any()  # VV used, B01 not


def test_grad_checkpointing_keeps_outputs() -> None:
    model = timm.create_model(NAME, **KW).eval()
    x = _input(model)
    ref = model(x)
    model.set_grad_checkpointing()
    assert torch.allclose(model(x), ref, atol=1e-5)
    model.train()
    model(x.requires_grad_()).sum().backward()
    assert x.grad is not None


def test_forward_intermediates_and_prune() -> None:
    """timm's test_model_forward_intermediates."""
    model = timm.create_model(NAME, **KW).eval()
    x = _input(model)
    final, inter = model.forward_intermediates(x, output_fmt="NCHW")
    assert [tuple(t.shape) for t in inter] == [(1, 192, 4, 4)] * 4
    assert torch.allclose(final, model.forward_features(x))
    nlc = model.forward_intermediates(x, indices=[1], norm=True, output_fmt="NLC", intermediates_only=True)
    assert len(nlc) == 1 and nlc[0].shape == (1, 16, 192)
    assert len(timm.models.FeatureInfo(model.feature_info, len(model.feature_info)).channels()) == 4
    assert model.prune_intermediate_layers([1]) == [1] and len(model.blocks) == 2


def test_features_only_through_timms_feature_wrapper() -> None:
    """timm's test_model_forward_intermediates_features; the maps are the encoder's all_tokens."""
    model = timm.create_model(NAME, features_only=True, **KW).eval()
    assert type(model).__name__ == "FeatureGetterNet"
    assert model.feature_info.channels() == model.out_channels == [192] * 4
    assert model.feature_info.reduction() == [8] * 4
    outs = model(_input(model))
    assert [tuple(o.shape) for o in outs] == [(1, 192, 4, 4)] * 4
    demo = timm.create_model("smarties_encoder_vit_tiny_patch4", features_only=True, out_indices=[-1],
                             pretrained_file="demo").eval()  # fmt: skip
    x = torch.randn(1, 12, 64, 64)
    with torch.no_grad():
        enc = SmartiesEncoder.from_pretrained("demo")(x, sensor_type="S2", all_tokens=True)
        assert torch.allclose(demo(x)[0], enc, atol=1e-5)


def test_fx_trace_matches_eager() -> None:
    """timm's test_model_forward_fx (torchvision's feature extractor with timm's tracer settings)."""
    from timm.models import get_notrace_functions, get_notrace_modules
    from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

    model = timm.create_model(NAME, **KW).eval()
    tracer = dict(leaf_modules=get_notrace_modules(), autowrap_functions=get_notrace_functions(),
                  param_shapes_constant=True)  # fmt: skip
    train_nodes, eval_nodes = get_graph_node_names(model, tracer_kwargs=tracer)
    fx = create_feature_extractor(model, train_return_nodes=[train_nodes[-1]], eval_return_nodes=[eval_nodes[-1]],
                                  tracer_kwargs=tracer)  # fmt: skip
    x = _input(model)
    with torch.inference_mode():
        assert torch.equal(next(iter(fx(x).values())), model(x))


def test_torchscript_matches_eager() -> None:
    """timm's test_model_forward_torchscript."""
    with set_layer_config(scriptable=True):
        model = timm.create_model(NAME, **KW).eval()
    scripted = torch.jit.script(model)
    x = _input(model)
    with torch.no_grad():
        assert torch.allclose(scripted(x), model(x), atol=1e-5)


def test_layer_decay_groups_follow_the_blocks() -> None:
    """group_matcher makes timm's layer-wise lr decay work; unused spectral layers get no decay."""
    from timm.optim import create_optimizer_v2

    model = timm.create_model(NAME, num_classes=3, bands="RGB", **KW)
    opt = create_optimizer_v2(model, "adamw", lr=1e-3, weight_decay=0.05, layer_decay=0.5)
    ids = {id(p): n for n, p in model.named_parameters()}
    scale = {ids[id(p)]: (g["lr_scale"], g["weight_decay"]) for g in opt.param_groups for p in g["params"]}
    depth = len(model.blocks)
    assert scale["cls_token"][0] == pytest.approx(0.5 ** (depth + 1))  # stem: layer 0
    assert scale["blocks.0.attn.qkv.weight"] == (pytest.approx(0.5**depth), 0.05)
    assert scale["blocks.3.attn.qkv.weight"][0] == pytest.approx(0.5)
    assert scale["head.weight"][0] == 1.0
    assert scale["patch_embed.proj.layers.5.weight"][1] == 0.05  # RGB red: used, decayed
    assert scale["patch_embed.proj.layers.0.weight"][1] == 0.0  # S2 B01: unused, kept as loaded


# ---------------------------------------------------------------------- weights through timm's paths
def release_state_dict(dim: int, depth: int, patch_size: int, grid: int) -> dict[str, torch.Tensor]:
    """Random encoder weights in the release's pretraining layout (decoder: one tiny block)."""
    g = torch.Generator().manual_seed(0)

    def r(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * 0.05

    sd = {"cls_token": r(1, 1, dim), "pos_embed": torch.from_numpy(mae_sincos(dim, grid)).float()[None],
          "mask_token": r(1, 1, 32), "decoder_embed.weight": r(32, dim), "decoder_embed.bias": r(32),
          "norm.weight": 1 + r(dim), "norm.bias": r(dim)}  # fmt: skip
    for i in range(17):
        sd[f"spectrum_projection.spectrum_embeds.{i}.proj.weight"] = r(dim, patch_size**2)
        sd[f"spectrum_projection.spectrum_embeds.{i}.proj.bias"] = r(dim)
        sd[f"decoder_preds.{i}.weight"] = r(patch_size**2, 32)
    for i in range(depth):
        sd.update({f"blocks.{i}.norm1.weight": 1 + r(dim), f"blocks.{i}.norm1.bias": r(dim),
                   f"blocks.{i}.attn.qkv.weight": r(3 * dim, dim), f"blocks.{i}.attn.qkv.bias": r(3 * dim),
                   f"blocks.{i}.attn.proj.weight": r(dim, dim), f"blocks.{i}.attn.proj.bias": r(dim),
                   f"blocks.{i}.norm2.weight": 1 + r(dim), f"blocks.{i}.norm2.bias": r(dim),
                   f"blocks.{i}.mlp.fc1.weight": r(4 * dim, dim), f"blocks.{i}.mlp.fc1.bias": r(4 * dim),
                   f"blocks.{i}.mlp.fc2.weight": r(dim, 4 * dim), f"blocks.{i}.mlp.fc2.bias": r(dim)})  # fmt: skip
    return sd


def _hub_cache(root: Path, repo: str, filename: str, sd: dict[str, torch.Tensor]) -> Path:
    """The Hugging Face cache layout: models--org--name/{refs/main, snapshots/<sha>/file}."""
    sha = "0123456789abcdef0123456789abcdef01234567"
    folder = root / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(sha)
    (folder / "snapshots" / sha).mkdir(parents=True)
    save_file(sd, str(folder / "snapshots" / sha / filename))
    return folder


@pytest.fixture
def offline_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An offline Hub whose cache is ``tmp_path/hub`` (no request may leave the machine)."""
    import huggingface_hub.constants as hf

    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hf, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(cache))
    return cache


def _cls_features(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.forward_head(model.forward_features(x), pre_logits=True)


def test_pretrained_true_loads_the_released_layout_from_the_hub_cache(offline_hub: Path) -> None:
    """ViT-B's own cfg (``gsumbul/SMARTIES-v1-ViT-B``), shrunk to one block and 32 px."""
    sd = release_state_dict(dim=768, depth=1, patch_size=16, grid=14)
    _hub_cache(offline_hub, "gsumbul/SMARTIES-v1-ViT-B", "smarties-v1-vitb.safetensors", sd)
    model = timm.create_model("smarties_encoder_vit_base_patch16", pretrained=True, depth=1, img_size=32).eval()
    ref = SmartiesEncoder.from_pretrained(sd, img_size=32, num_heads=12).eval()
    x = torch.randn(1, 12, 32, 32)
    assert torch.equal(model.blocks[0].mlp.fc1.weight, sd["blocks.0.mlp.fc1.weight"])
    assert torch.allclose(_cls_features(model, x), ref(x, sensor_type="S2"), atol=1e-4)
    with pytest.raises(LocalEntryNotFoundError):  # a file not in the cache is never fetched
        timm.create_model("smarties_encoder_vit_large_patch16", pretrained=True, depth=1, img_size=32)


def test_file_overlay_and_checkpoint_path_load_the_released_layout(tmp_path: Path) -> None:
    sd = release_state_dict(dim=192, depth=4, patch_size=4, grid=4)  # tiny_patch4, a 16-px table
    path = tmp_path / "smarties-v1-tiny.safetensors"
    save_file(sd, str(path))
    ref = SmartiesEncoder.from_pretrained(sd, img_size=64, num_heads=3).eval()
    x = torch.randn(1, 12, 64, 64)
    name = "smarties_encoder_vit_tiny_patch4"
    overlay = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=str(path))).eval()
    by_path = timm.create_model(name, checkpoint_path=str(path)).eval()
    for model in (overlay, by_path):
        assert torch.allclose(_cls_features(model, x), ref(x, sensor_type="S2"), atol=1e-5)
    with pytest.raises(ValueError, match="holds a .* encoder but smarties_encoder_vit_tiny_patch8 .*; use " + name):
        timm.create_model("smarties_encoder_vit_tiny_patch8", pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))


def test_state_dict_round_trips_with_timm_vit_names(tmp_path: Path) -> None:
    """Our keys are timm ViT's where they exist; a saved model loads back by checkpoint_path."""
    model = timm.create_model(NAME, num_classes=5, **KW).eval()
    keys = set(model.state_dict())
    vit = set(timm.create_model("vit_tiny_patch16_224", num_classes=5, depth=4).state_dict())
    assert keys - vit == {f"patch_embed.proj.layers.{i}.{p}" for i in range(17) for p in ("weight", "bias")}
    assert vit - keys == {"patch_embed.proj.weight", "patch_embed.proj.bias"}
    path = tmp_path / "model.pth"
    torch.save(model.state_dict(), path)
    again = timm.create_model(NAME, num_classes=5, checkpoint_path=str(path), **KW).eval()
    x = _input(model)
    assert isinstance(again, SmartiesViT) and torch.equal(again(x), model(x))
    assert not math.isnan(float(again(x).sum()))
