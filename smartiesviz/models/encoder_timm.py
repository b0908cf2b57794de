"""The SMARTIES encoder as a native timm model: ``smarties_encoder_vit_*``.

Registered names (``import smartiesviz.models`` registers them; so does ``import smartiesviz``
when timm is already imported, e.g. ``import timm, smartiesviz``)::

    smarties_encoder_vit_tiny_patch4    D 192, depth 4, 3 heads, patch 4, 64 px (the demo's shape)
    smarties_encoder_vit_tiny_patch8    D 192, depth 4, 3 heads, patch 8, 64 px
    smarties_encoder_vit_small_patch16  D 384, depth 12, 6 heads, 224 px
    smarties_encoder_vit_base_patch16   D 768, depth 12, 12 heads, 224 px (released ViT-B)
    smarties_encoder_vit_large_patch16  D 1024, depth 24, 16 heads, 224 px (released ViT-L)

:class:`SmartiesViT` is timm's ``VisionTransformer`` with the spectrum-aware projection as its
patch embedding (:class:`SpectralPatchEmbed`) for a band set fixed at construction, so it has
timm's whole interface (``forward_features``/``forward_head``, ``forward_intermediates``,
``prune_intermediate_layers``, ``set_grad_checkpointing``, ``group_matcher``, ``features_only``
through timm's ``FeatureGetterNet``, TorchScript, FX) and timm's state-dict names
(``cls_token``, ``pos_embed``, ``blocks.{i}.…``, ``norm``, ``fc_norm``, ``head``; the 17
spectral layers are ``patch_embed.proj.layers.{i}``). It computes what
:class:`~smartiesviz.models.encoder.SmartiesEncoder` computes: CLS after the final norm
(``global_pool="token"``, default) or the patch mean through ``fc_norm`` (``"avg"``).

Feature maps (``features_only=True``, what TorchGeo's and TerraTorch's segmentation models use):
timm's ``FeatureGetterNet``, a list of ``(B, D, H/S, W/S)`` maps after the blocks ``out_indices``
(default: four evenly spaced, the last included), with ``out_channels`` and ``token_norm``: the
maps are ``"pre-norm"`` (the release's ``all_tokens``, default) or, with ``token_norm="post-norm"``,
each through the final norm (timm's ``norm=True``).

Bands: ``bands=`` takes any band argument (``"sentinel2-l2a"``, ``"sentinel2-l2a:B04,B03,B02"``,
``["B04", "B03"]``, ``[(650, 680)]``, see :func:`smartiesviz.spectrum.resolve.parse_bands`).
Without it the band set follows ``in_chans`` (:data:`CHANNEL_SENSORS`); with neither it is the
release's default, Sentinel-2 L2A (12 channels), so ``timm.create_model(name)`` works.

Weights: ``pretrained=True`` loads the released file through timm's own Hugging Face Hub path
(``gsumbul/SMARTIES-v1-ViT-B`` / ``-ViT-L``; cache, ``HF_HUB_OFFLINE`` as huggingface_hub does),
``pretrained_cfg_overlay=dict(file=path)`` a local file, ``checkpoint_path=path`` any file after
building; :func:`checkpoint_filter_fn` converts the release's layout (and ours) to this model's
keys. ``pretrained_file=path`` (or ``"demo"``) is shorthand for the ``file`` overlay.

Data config (``timm.data.resolve_data_config(model=model)``): ``input_size`` ``(C, H, W)`` and a
per-band ``mean``/``std`` in the input's own units (Sentinel-2 digital numbers, reflectance ×
10000; Sentinel-1 dB; RGB 0–255) such that ``(x - mean) / std`` equals the release's
preprocessing ``((x - p1) / (p99 - p1) - m) / s`` exactly, i.e. ``mean = p1 + m·(p99 - p1)`` and
``std = s·(p99 - p1)`` (:func:`release_mean_std`). The release also clips ``(x - p1) / (p99 - p1)``
to ``[0, 1]`` first, which an affine normalisation cannot do: use
:func:`smartiesviz.data.normalize` for the exact preprocessing including the clip.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import yaml
from timm.layers import Format, PatchEmbed, nchw_to
from timm.layers.trace_utils import _assert
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models._features import FeatureGetterNet
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from smartiesviz.models.checkpoint import CheckpointError
from smartiesviz.models.encoder import ENCODER_ARCHS, load_encoder_state
from smartiesviz.models.pos_embed import (
    grid_from_num_tokens,
    interpolate_pos_embed,
    sincos_pos_embed,
)
from smartiesviz.models.tokenizer import TOKEN_SCALE, check_distinct, check_values
from smartiesviz.models.vit import layer_norm
from smartiesviz.options import DEFAULT_TOKEN_NORM, TokenNorm, check_option
from smartiesviz.spectrum import NUM_LAYERS, ResolvedBands, resolve_bands
from smartiesviz.spectrum.resolve import BandsArg

__all__ = [
    "CHANNEL_SENSORS",
    "SmartiesViT",
    "SpectralPatchEmbed",
    "bands_for_channels",
    "checkpoint_filter_fn",
    "create_encoder_model",
    "release_mean_std",
]

#: Band set from ``in_chans`` alone (no ``bands``): 12 is the release's default, Sentinel-2 L2A;
#: 1 follows timm's single-channel convention (a grey image: one wide visible band, the
#: Landsat-8 panchromatic band, 500–680 nm). Other counts need ``bands``.
CHANNEL_SENSORS: dict[int, BandsArg] = {
    12: "sentinel2-l2a", 13: "sentinel2-l1c", 2: "sentinel1-grd", 3: "rgb", 1: ["landsat8/B8"],
}  # fmt: skip
DEFAULT_BANDS = "sentinel2-l2a"
#: Channel counts that more than one common band order shares: Sentinel-2 in the registry's order
#: (B08, B8A, B09, ...) and as TorchGeo's EuroSAT stores it (B8A last). A model built from
#: ``in_chans`` alone with one of these counts refuses to run until its bands are given
#: (``bands=``, or :func:`smartiesviz.integrations.torchgeo.bind_bands` from the dataset).
AMBIGUOUS_CHANNELS = (12, 13)
ORDER_UNKNOWN = (
    "this SMARTIES model was built from a channel count alone (in_chans) and 12/13 Sentinel-2 "
    "channels come in two common orders: the registry's (B01 ... B08, B8A, B09, (B10,) B11, B12) "
    "and TorchGeo EuroSAT's (B01 ... B09, (B10,) B11, B12, B8A: B8A last); give the order: "
    "bands='sentinel2-l2a' (or 'sentinel2-l1c', or the dataset's band names) when creating it, or "
    "smartiesviz.integrations.torchgeo.bind_bands(model, dataset_bands) / SmartiesEuroSATDataModule"
)
#: the timm names' architectures: the one table, ``ENCODER_ARCHS``, without its default input size
_ARCHS: dict[str, dict[str, Any]] = {
    f"smarties_encoder_{name}": {k: v for k, v in arch.items() if k != "img_size"}
    for name, arch in ENCODER_ARCHS.items()
}
#: the release's sensor statistics by registry sensor (``release_stats.yaml`` entry names)
_STATS_ENTRY = {"sentinel2-l2a": "SENTINEL2-L2A", "sentinel2-l1c": "SENTINEL2-L1C",
                "sentinel1-grd": "SENTINEL1-GRD", "rgb": "RGB"}  # fmt: skip


def bands_for_channels(in_chans: int | None, bands: BandsArg | None) -> BandsArg:
    """The band argument for a model: ``bands`` (checked against ``in_chans``) or a default.

    Raises:
        ValueError: ``in_chans`` without a default band set, or not matching ``bands``.
    """
    if bands is None:
        if in_chans is None:
            return DEFAULT_BANDS
        if in_chans not in CHANNEL_SENSORS:
            raise ValueError(
                f"pass bands=... (a sensor name, 'sentinel2-l2a:B04,B03,B02' or a band list): "
                f"in_chans={in_chans} does not imply a band set (known: "
                f"{', '.join(f'{c}: {s}' for c, s in CHANNEL_SENSORS.items())})"
            )
        return CHANNEL_SENSORS[in_chans]
    if in_chans is not None:
        n = resolve_bands(bands).n_input
        if n != in_chans:
            raise ValueError(f"in_chans={in_chans} but bands={bands!r} describe {n} channels")
    return bands


@functools.lru_cache(maxsize=1)
def _release_stats_table() -> dict[str, Any]:
    # the data package's YAML, read as a file: importing smartiesviz.data would be an arrow upwards
    text = resources.files("smartiesviz").joinpath("data/stats/release_stats.yaml").read_text()
    return yaml.safe_load(text)["stats"]


def release_mean_std(bands: BandsArg) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """``(mean, std)`` per input channel in the input's own units, from the release's statistics.

    ``(x - mean) / std`` equals the release's ``((x - p1) / (p99 - p1) - m) / s`` (without its
    clip to ``[0, 1]``): ``mean = p1 + m·(p99 - p1)``, ``std = s·(p99 - p1)``. None when a channel's
    sensor has no released statistics (then normalise with ``smartiesviz.data.normalize``).
    """
    try:  # every channel, the layer-less ones (S2 B10) included: they get statistics too
        rb = resolve_bands(bands, on_unsupported="interpolate")
    except ValueError:
        return None
    table = _release_stats_table()
    sensor_bands = [(b.sensor, b.name) for b in rb.bands]
    mean, std = [], []
    for sensor, name in sensor_bands:
        entry = table.get(_STATS_ENTRY.get(sensor or "", ""), {}).get("bands", {}).get(name)
        if entry is None:
            return None
        span = entry["p99"] - entry["p1"]
        mean.append(entry["p1"] + entry["mean"] * span)
        std.append(entry["std"] * span)
    return tuple(mean), tuple(std)


class SpectralProjection(nn.Module):
    """The 17 spectral layers ``Linear(S², D)`` applied as one convolution for a fixed band set.

    ``(B, C, H, W)`` → ``(B, D, H/S, W/S)``: the kernel for channel ``c`` is
    ``(12 / C) Σ_l w[c, l] W_l`` (see :mod:`smartiesviz.models.tokenizer`). Every layer takes part
    (unused ones with weight 0), so the graph is static for TorchScript and FX and every
    parameter gets a gradient (zero for the layers the bands do not use; see
    :meth:`SmartiesViT.no_weight_decay`).

    Attributes:
        layers: ``nn.ModuleList`` of ``Linear(S², D)``, index = the release's layer index.
        band_weights: buffer ``(C_kept, 17)``: layer weights × ``12 / C_kept``.
        keep: buffer ``(C_kept,)``: input channels used (others have no layer, e.g. S2 B10).
    """

    def __init__(
        self, rb: ResolvedBands, patch_size: int, embed_dim: int, num_layers: int = NUM_LAYERS
    ) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.embed_dim = embed_dim
        self.select = not rb.all_kept
        self.layers = nn.ModuleList(nn.Linear(patch_size * patch_size, embed_dim) for _ in range(num_layers))
        for layer in self.layers:  # TorchGeo's load_state_dict reads the first leaf's in_channels
            layer.in_channels = layer.in_features  # S² pixels of one band's patch: nothing to adapt
        weights = torch.zeros(len(rb), num_layers)
        weights[:, : rb.weights.shape[1]] = rb.weights * (TOKEN_SCALE / len(rb))
        self.register_buffer("band_weights", weights, persistent=False)
        self.register_buffer("keep", torch.tensor(rb.keep, dtype=torch.long), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.select:
            x = x.index_select(1, self.keep)
        ws: list[torch.Tensor] = []
        bs: list[torch.Tensor] = []
        for layer in self.layers:
            ws.append(layer.weight)
            bs.append(layer.bias)
        weight = torch.matmul(self.band_weights, torch.stack(ws, dim=1))  # (D, C, S²)
        bias = torch.matmul(self.band_weights, torch.stack(bs)).sum(0)  # (D,)
        s = self.patch_size
        kernel = weight.reshape(self.embed_dim, -1, s, s)
        return F.conv2d(x, kernel.to(x.dtype), bias.to(x.dtype), stride=s)


class SpectralPatchEmbed(PatchEmbed):
    """timm's ``PatchEmbed`` with the spectrum-aware projection as ``proj``, for fixed bands.

    Same arguments and outputs as ``PatchEmbed`` (``(B, N, D)``, or ``NHWC`` with
    ``dynamic_img_size``), plus ``bands`` (any band argument for the ``in_chans`` channels) and
    ``scheme`` (interpolation of bands without a learned layer; ``"as-released"`` by default).
    Inputs are refused, naming the band, when they hold NaN/inf (eager mode only).
    """

    def __init__(
        self,
        img_size: int | tuple[int, int] | None = 224,
        patch_size: int | tuple[int, int] = 16,
        in_chans: int = 12,
        embed_dim: int = 768,
        bands: BandsArg = DEFAULT_BANDS,
        scheme: str = "as-released",
        num_layers: int = NUM_LAYERS,
        **kwargs: Any,
    ) -> None:
        kwargs.pop("bias", None)  # the spectral layers have their own biases
        super().__init__(img_size, patch_size, in_chans, embed_dim, **kwargs)
        if self.patch_size[0] != self.patch_size[1]:
            raise ValueError(f"patch_size must be square, got {self.patch_size}")
        self.in_chans = in_chans
        self.bands = check_distinct(resolve_bands(bands, scheme))
        if self.bands.n_input != in_chans:
            raise ValueError(f"in_chans={in_chans} but bands={bands!r} describe {self.bands.n_input} channels")
        self.band_text = ", ".join(self.bands.qualified_names + [f"{d} (unused)" for d in self.bands.dropped])
        self.proj = SpectralProjection(self.bands, self.patch_size[0], embed_dim, num_layers)
        self.order_known = True  # False: built from an ambiguous in_chans alone
        self.order_unknown = ORDER_UNKNOWN  # an attribute, so TorchScript can use the message

    @torch.jit.ignore
    def check_input(self, x: torch.Tensor) -> None:
        """Refuse NaN/inf/overflowing values by band (skipped while tracing or compiling)."""
        if torch.fx._symbolic_trace.is_fx_symbolic_tracing() or torch.compiler.is_compiling():
            return
        check_values(x, self.bands)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` → ``(B, N, D)`` (``(B, H/S, W/S, D)`` with ``output_fmt="NHWC"``)."""
        _, c, h, w = x.shape
        _assert(c == self.in_chans, f"Input has {c} channels; the model's {self.in_chans} bands are {self.band_text}")
        _assert(self.order_known, self.order_unknown)
        s = self.patch_size
        if self.img_size is not None:
            if self.strict_img_size:
                _assert(h == self.img_size[0], f"Input height ({h}) doesn't match model ({self.img_size[0]}).")
                _assert(w == self.img_size[1], f"Input width ({w}) doesn't match model ({self.img_size[1]}).")
            elif not self.dynamic_img_pad:
                _assert(h % s[0] == 0, f"Input height ({h}) should be divisible by patch size ({s[0]}).")
                _assert(w % s[1] == 0, f"Input width ({w}) should be divisible by patch size ({s[1]}).")
        if self.dynamic_img_pad:
            x = F.pad(x, (0, (s[1] - w % s[1]) % s[1], 0, (s[0] - h % s[0]) % s[0]))
        if not torch.jit.is_scripting():
            self.check_input(x)
        x = self.proj(x)
        if self.flatten:
            x = x.flatten(2).transpose(1, 2)  # NCHW -> NLC
        elif self.output_fmt != Format.NCHW:
            x = nchw_to(x, self.output_fmt)
        return self.norm(x)


class SmartiesViT(VisionTransformer):
    """timm ``VisionTransformer`` with SMARTIES' spectrum-aware patch embedding.

    Args:
        bands: the input's bands (any band argument), fixed for every call.
        scheme: interpolation scheme for bands without a learned layer.
        num_layers: learned spectral layers (17 in the release).
        **kwargs: ``VisionTransformer`` arguments (``img_size``, ``patch_size``, ``embed_dim``,
            ``depth``, ``num_heads``, ``num_classes``, ``global_pool`` ``"token"``/``"avg"``,
            ``drop_rate``, ``drop_path_rate``, ``dynamic_img_size`` ...).

    Forward: ``(B, C, H, W)`` in model units → ``(B, num_classes)`` (``(B, D)`` when
    ``num_classes=0``); ``forward_features`` → ``(B, 1+N, D)`` after the final norm.

    Attributes:
        bands: the :class:`~smartiesviz.spectrum.ResolvedBands` of the input channels.
    """

    def __init__(
        self,
        bands: BandsArg = DEFAULT_BANDS,
        scheme: str = "as-released",
        num_layers: int = NUM_LAYERS,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("norm_layer", layer_norm)
        embed = functools.partial(SpectralPatchEmbed, bands=bands, scheme=scheme, num_layers=num_layers)
        super().__init__(embed_layer=embed, **kwargs)
        self.bands = self.patch_embed.bands
        with torch.no_grad():  # MAE's fixed 2-D sin-cos table (zero CLS row), then learned as in timm
            self.pos_embed.copy_(sincos_pos_embed(self.embed_dim, *self.patch_embed.grid_size, cls_token=True))
            nn.init.normal_(self.cls_token, std=0.02)
        # the spectral layers are not a channel-indexed stem: timm must not adapt them to in_chans
        self._traits = dict(getattr(self, "_traits", {}), first_conv=None)
        self.register_load_state_dict_pre_hook(_convert_on_load)

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        """timm's set plus the spectral layers these bands do not use (zero gradient: no decay)."""
        used = {int(i) for i in torch.nonzero(self.patch_embed.proj.band_weights.sum(0)).flatten()}
        unused = {
            f"patch_embed.proj.layers.{i}.{p}"
            for i in range(len(self.patch_embed.proj.layers)) if i not in used
            for p in ("weight", "bias")
        }  # fmt: skip
        return super().no_weight_decay() | unused


# ---------------------------------------------------------------------- checkpoints
_TIMM_PROJ = "patch_embed.proj.layers."
_OUR_PROJ = "spectrum_projection.layers."


def checkpoint_filter_fn(state_dict: Mapping[str, torch.Tensor], model: SmartiesViT) -> dict[str, torch.Tensor]:
    """Any SMARTIES state dict → this model's keys (pure; timm's ``pretrained_filter_fn``).

    Accepts the release's pretraining layout (``smarties-v1-vit{b,l}.safetensors``: decoder
    dropped, ``spectrum_projection.spectrum_embeds.{i}.proj`` → ``patch_embed.proj.layers.{i}``),
    encoder-only and our own checkpoints, wrapped ones (``module.``, ``model.``, ...), and this
    model's own layout (idempotent). ``pos_embed`` is resampled bicubically to the model's grid
    (or the model's sin-cos table is used when the file has none); ``head.*`` is kept when it fits
    the model's head; ``fc_norm`` is fresh (the model's own) for an ``avg`` model built from a
    file without one, whose ``norm`` is then unused.

    Raises:
        CheckpointError: non-finite weights, not a SMARTIES encoder, or another shape than the
            model's (naming the variant that fits).
    """
    raw = {(_OUR_PROJ + k[len(_TIMM_PROJ):] if k.startswith(_TIMM_PROJ) else k): v for k, v in state_dict.items()}
    heads = {k: v for k, v in raw.items() if k in ("head.weight", "head.bias")}
    sd, arch, _ = load_encoder_state(raw, "checkpoint")
    _check_architecture(arch, model)
    own = model.state_dict()
    out = {(_TIMM_PROJ + k[len(_OUR_PROJ):] if k.startswith(_OUR_PROJ) else k): v for k, v in sd.items()}
    table = out.pop("pos_embed", None)
    grid = model.patch_embed.grid_size
    if table is None:
        out["pos_embed"] = own["pos_embed"]
    else:
        old = grid_from_num_tokens(table.shape[1])
        out["pos_embed"] = table if tuple(old) == tuple(grid) else interpolate_pos_embed(table.float(), grid, old)
    for key, value in heads.items():
        if key in own and own[key].shape == value.shape:
            out[key] = value
    if isinstance(model.norm, nn.Identity):
        out = {k: v for k, v in out.items() if not k.startswith("norm.")}
    for key in own:
        if key.startswith("fc_norm.") and key not in out:
            out[key] = own[key]
    return out


def _check_architecture(arch: Mapping[str, Any], model: SmartiesViT) -> None:
    got = {k: arch.get(k) for k in ("embed_dim", "depth", "patch_size")}
    want = dict(embed_dim=model.embed_dim, depth=len(model.blocks), patch_size=model.patch_embed.patch_size[0])
    if got != want:
        name = next((n for n, a in _ARCHS.items() if all(a[k] == v for k, v in want.items())),
                    type(model).__name__)  # fmt: skip
        fits = [n for n, a in _ARCHS.items() if all(a[k] == v for k, v in got.items())]
        raise CheckpointError(
            f"the checkpoint holds a {got} encoder but {name} is {want}" + (f"; use {fits[0]}" if fits else "")
        )


def _convert_on_load(module: SmartiesViT, state_dict: dict, prefix: str, *args: Any) -> None:
    """``load_state_dict`` pre-hook: a foreign layout (the release's file through timm's
    ``checkpoint_path=``, an encoder-only file, a table for another grid) is converted in place."""
    own = module.state_dict()
    sub = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    native = all(k in own for k in sub) and (
        "pos_embed" not in sub or sub["pos_embed"].shape == own["pos_embed"].shape
    )
    if native or not any(k.startswith(("blocks.", "cls_token")) or "spectrum" in k for k in sub):
        return
    for key in sub:
        del state_dict[prefix + key]
    state_dict.update({prefix + k: v for k, v in checkpoint_filter_fn(sub, module).items()})


# ---------------------------------------------------------------------- timm registration
def _cfg(**kwargs: Any) -> dict[str, Any]:
    mean, std = release_mean_std(DEFAULT_BANDS)  # type: ignore[misc]
    return {
        "url": "", "num_classes": 0, "input_size": (12, 224, 224), "pool_size": None,
        "fixed_input_size": True, "crop_pct": 1.0, "interpolation": "bicubic",
        "mean": mean, "std": std,
        "first_conv": tuple(f"patch_embed.proj.layers.{i}" for i in range(NUM_LAYERS)),
        "classifier": "head",
        "paper_name": "SMARTIES: Spectrum-Aware Multi-Sensor Auto-Encoder for Remote Sensing Images (ICCV 2025)",
        "origin_url": "https://github.com/gsumbul/SMARTIES",
        "notes": (
            "input: Sentinel-2 L2A, 12 bands B01-B12 without B10, digital numbers (reflectance x 10000)",
            "mean/std: the release's percentile scaling and standardisation as one affine map, "
            "without its clip to [p1, p99]; smartiesviz.data.normalize applies the clip too",
        ),
        **kwargs,
    }  # fmt: skip


default_cfgs = generate_default_cfgs({
    "smarties_encoder_vit_tiny_patch4": _cfg(input_size=(12, 64, 64)),
    "smarties_encoder_vit_tiny_patch8": _cfg(input_size=(12, 64, 64)),
    "smarties_encoder_vit_small_patch16": _cfg(),
    "smarties_encoder_vit_base_patch16.smarties_v1": _cfg(
        hf_hub_id="gsumbul/SMARTIES-v1-ViT-B", hf_hub_filename="smarties-v1-vitb.safetensors"),
    "smarties_encoder_vit_large_patch16.smarties_v1": _cfg(
        hf_hub_id="gsumbul/SMARTIES-v1-ViT-L", hf_hub_filename="smarties-v1-vitl.safetensors"),
})  # fmt: skip


def _default_out_indices(depth: int) -> tuple[int, ...]:
    """Four evenly spaced blocks ending with the last (UPerNet-style), fewer for shallow models."""
    n = min(4, depth)
    return tuple(round((i + 1) * depth / n) - 1 for i in range(n))


def _create(variant: str, pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """Build a registered variant through timm's ``build_model_with_cfg``."""
    file = kwargs.pop("pretrained_file", None)
    if file is not None:
        from smartiesviz.models.demo import demo_weights_path  # the shipped demo file's path

        path = demo_weights_path() if str(file) == "demo" else Path(file)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint file not found: {path}")
        overlay = dict(kwargs.pop("pretrained_cfg_overlay", None) or {}, file=str(path))
        kwargs["pretrained_cfg_overlay"] = overlay
        pretrained = True
    order_known = kwargs.get("bands") is not None or kwargs.get("in_chans") not in AMBIGUOUS_CHANNELS
    bands = bands_for_channels(kwargs.pop("in_chans", None), kwargs.pop("bands", None))
    in_chans = resolve_bands(bands, on_unsupported="drop").n_input
    arch = _ARCHS[variant]
    token_norm = _feature_token_norm(kwargs)
    if kwargs.get("features_only"):
        kwargs.setdefault("out_indices", _default_out_indices(kwargs.get("depth", arch["depth"])))
    model = build_model_with_cfg(
        SmartiesViT, variant, pretrained,
        pretrained_filter_fn=checkpoint_filter_fn,
        feature_cfg=dict(feature_cls="getter", norm=token_norm == "post-norm"),
        **dict(arch, bands=bands, in_chans=in_chans, **kwargs),
    )  # fmt: skip
    _describe_data(model, bands)
    for module in model.modules():
        if isinstance(module, SpectralPatchEmbed):
            module.order_known = order_known
    if isinstance(model, FeatureGetterNet):
        model.out_channels = model.feature_info.channels()  # what TerraTorch reads
        model.token_norm = token_norm  # what the maps hold (TerraTorch reads no such attribute)
    return model


def _feature_token_norm(kwargs: dict[str, Any]) -> TokenNorm:
    """Pop and check ``token_norm``: the ``features_only`` maps before (``"pre-norm"``, the
    release's ``all_tokens``, default) or after the final norm (timm's ``norm=True``)."""
    token_norm = kwargs.pop("token_norm", None)
    if token_norm is not None and not kwargs.get("features_only"):
        raise ValueError(
            "token_norm applies to features_only=True models (their maps); a classifier's "
            "forward_features is always post-norm and forward_intermediates takes norm="
        )
    return check_option("token_norm", token_norm or DEFAULT_TOKEN_NORM, TokenNorm)


def _describe_data(model: nn.Module, bands: BandsArg) -> None:
    """Make ``model.pretrained_cfg`` describe this model's input (bands, mean/std) so that
    ``timm.data.resolve_data_config(model=model)`` tells the truth for non-default bands."""
    cfg = dict(model.pretrained_cfg)
    stats = release_mean_std(bands)
    n = resolve_bands(bands, on_unsupported="drop").n_input
    vit = model.model if isinstance(model, FeatureGetterNet) else model
    size = vit.patch_embed.img_size or cfg["input_size"][1:]
    cfg["input_size"] = (n, *size)
    if stats is None:  # no released statistics: identity, never ImageNet's 3-channel defaults
        stats = ((0.0,) * n, (1.0,) * n)
        cfg["notes"] = ("input: model units (normalise first, e.g. smartiesviz.data.normalize)",)
    cfg["mean"], cfg["std"] = stats
    model.pretrained_cfg = model.default_cfg = cfg


def create_encoder_model(variant: str, pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """``timm.create_model(variant, pretrained, **kwargs)`` for a ``smarties_encoder_vit_*`` name
    (what the TorchGeo and TerraTorch adapters call); ``features_only=True`` models carry
    ``out_channels``."""
    import timm

    return timm.create_model(variant, pretrained, **kwargs)


@register_model
def smarties_encoder_vit_tiny_patch4(pretrained: bool = False, **kwargs: Any) -> SmartiesViT:
    """SMARTIES encoder, D 192, depth 4, 3 heads, patch 4, 64 px (the bundled demo's shape)."""
    return _create("smarties_encoder_vit_tiny_patch4", pretrained, **kwargs)


@register_model
def smarties_encoder_vit_tiny_patch8(pretrained: bool = False, **kwargs: Any) -> SmartiesViT:
    """SMARTIES encoder, D 192, depth 4, 3 heads, patch 8, 64 px."""
    return _create("smarties_encoder_vit_tiny_patch8", pretrained, **kwargs)


@register_model
def smarties_encoder_vit_small_patch16(pretrained: bool = False, **kwargs: Any) -> SmartiesViT:
    """SMARTIES encoder, ViT-S/16: D 384, depth 12, 6 heads, 224 px."""
    return _create("smarties_encoder_vit_small_patch16", pretrained, **kwargs)


@register_model
def smarties_encoder_vit_base_patch16(pretrained: bool = False, **kwargs: Any) -> SmartiesViT:
    """SMARTIES encoder, ViT-B/16 (released ``gsumbul/SMARTIES-v1-ViT-B``): D 768, depth 12, 224 px."""
    return _create("smarties_encoder_vit_base_patch16", pretrained, **kwargs)


@register_model
def smarties_encoder_vit_large_patch16(pretrained: bool = False, **kwargs: Any) -> SmartiesViT:
    """SMARTIES encoder, ViT-L/16 (released ``gsumbul/SMARTIES-v1-ViT-L``): D 1024, depth 24, 224 px."""
    return _create("smarties_encoder_vit_large_patch16", pretrained, **kwargs)

