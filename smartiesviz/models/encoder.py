"""The SMARTIES downstream encoder, computed as the release's downstream ViT computes it.

:class:`SmartiesEncoder` is what classification and segmentation use after pretraining:

1. spectrum-aware projection: each band's ``S×S`` patch through its range's ``Linear(S², D)``,
   token = 12 × mean over the bands (one convolution with the effective kernel, see
   :mod:`smartiesviz.models.tokenizer`);
2. plus a fixed positional table ``(1, 1+N, D)``: 2-D sin-cos for the patches, zeros for CLS
   (the file's own table when it has one, resampled bicubically to other grids);
3. CLS prepended, timm ``Block``\\ s (mlp_ratio 4, qkv_bias, LayerNorm eps 1e-6);
4. output: the CLS token after the final ``norm`` ``(B, D)`` (default); with ``global_pool=True``
   the mean of the patch tokens through ``fc_norm`` (then ``norm`` is unused, as in MAE's
   fine-tuning ViT); with ``all_tokens=True`` the patch tokens after the last block and
   *before* the final norm as a map ``(B, D, H/S, W/S)``.

The release's notebook says the ``all_tokens`` output includes the CLS token; the release's
code returns the patch tokens only. We follow the code.

How this differs from :meth:`SmartiesMAE.encode`: ``encode`` returns every token *after* the
final norm. The CLS features agree; the dense maps do not (``all_tokens`` is pre-norm).

The timm names ``smarties_encoder_vit_{tiny_patch4,tiny_patch8,small_patch16,base_patch16,
large_patch16}`` (classifier and ``features_only`` models around this encoder) live in
:mod:`smartiesviz.models.encoder_timm`, registered by ``import smartiesviz.models``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, get_args

import torch
from timm.models.vision_transformer import Block
from torch import nn

from smartiesviz.models.checkpoint import (
    CheckpointError,
    LoadReport,
    infer_architecture,
    read_checkpoint_info,
    read_state_dict,
    remap_release_state_dict,
)
from smartiesviz.models.demo import demo_weights_path
from smartiesviz.models.mixup import cross_sensor_mixup
from smartiesviz.models.pos_embed import (
    grid_from_num_tokens,
    interpolate_pos_embed,
    sincos_pos_embed,
)
from smartiesviz.models.state_dict import non_finite_keys
from smartiesviz.models.tokenizer import SpectrumAwareProjection
from smartiesviz.spectrum import NUM_LAYERS, ResolvedBands
from smartiesviz.spectrum.resolve import BandsArg

__all__ = ["SensorType", "SmartiesEncoder", "SENSOR_TYPES", "load_encoder_state"]

SensorType = Literal["S2", "S1", "RGB"]
#: the release's ``sensor_type`` values → our sensor registry (same band order as the release).
SENSOR_TYPES: dict[str, str] = {"S2": "sentinel2-l2a", "S1": "sentinel1-grd", "RGB": "rgb"}
_DROPPED_PREFIXES = ("decoder_", "mask_token", "head.", "head_drop.")
Source = tuple[torch.Tensor, BandsArg]


def _layer_norm(dim: int, **kwargs: Any) -> nn.LayerNorm:
    return nn.LayerNorm(dim, eps=1e-6, **kwargs)


class SmartiesEncoder(nn.Module):
    """SMARTIES ViT encoder for downstream use (no decoder, no masking).

    Args:
        img_size: input size the positional table is built for (square); other sizes divisible by
            ``patch_size`` work (the table is resampled bicubically, as the release does).
        patch_size: patch side ``S``.
        embed_dim: width ``D``.
        depth: number of blocks.
        num_heads: attention heads.
        mlp_ratio: MLP hidden width / ``D``.
        num_layers: learned spectral-range layers (17 in the release).
        global_pool: pool the patch tokens (mean, then ``fc_norm``) instead of taking CLS.
        scheme: interpolation scheme for bands without a learned layer; the default
            ``"as-released"`` reproduces the release's weights (see ``smartiesviz.spectrum``).
        drop_path_rate: stochastic depth for fine-tuning (linearly increasing over blocks).

    Attributes:
        spectrum_projection: :class:`SpectrumAwareProjection`.
        cls_token: ``(1, 1, D)``.
        pos_embed: buffer ``(1, 1+N, D)`` for the ``img_size`` grid.
        blocks: timm ``Block``\\ s.
        norm: final LayerNorm (``Identity`` with ``global_pool``).
        fc_norm: LayerNorm after pooling (``Identity`` without ``global_pool``).
        load_report: :class:`~smartiesviz.models.checkpoint.LoadReport` after
            :meth:`from_pretrained`, else None.
    """

    def __init__(
        self,
        img_size: int = 224,
        patch_size: int = 16,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        num_layers: int = NUM_LAYERS,
        global_pool: bool = False,
        scheme: str = "as-released",
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if img_size % patch_size:
            raise ValueError(f"img_size {img_size} is not divisible by patch_size {patch_size}")
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        self.config: dict[str, Any] = dict(
            img_size=img_size, patch_size=patch_size, embed_dim=embed_dim, depth=depth,
            num_heads=num_heads, mlp_ratio=mlp_ratio, num_layers=num_layers,
            global_pool=global_pool, scheme=scheme,
        )  # fmt: skip
        self.img_size = img_size
        self.patch_size = patch_size
        self.embed_dim = embed_dim
        self.depth = depth
        self.global_pool = global_pool
        self.grid_size = (img_size // patch_size, img_size // patch_size)
        self.spectrum_projection = SpectrumAwareProjection(embed_dim, patch_size, num_layers, scheme)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.register_buffer("pos_embed", sincos_pos_embed(embed_dim, *self.grid_size, cls_token=True))
        dpr = torch.linspace(0, drop_path_rate, depth).tolist() if depth else []
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio, qkv_bias=True, drop_path=dpr[i],
                  norm_layer=_layer_norm)  # fmt: skip
            for i in range(depth)
        )
        self.norm: nn.Module = nn.Identity() if global_pool else _layer_norm(embed_dim)
        self.fc_norm: nn.Module = _layer_norm(embed_dim) if global_pool else nn.Identity()
        self.load_report: LoadReport | None = None
        nn.init.normal_(self.cls_token, std=0.02)

    # ------------------------------------------------------------------ bands and positions
    def resolve(self, sensor_type: SensorType | None = None, bands: BandsArg | None = None) -> ResolvedBands:
        """The bands of an input from the release's ``sensor_type`` or any band argument."""
        if (sensor_type is None) == (bands is None):
            raise ValueError(
                "pass exactly one of sensor_type ('S2', 'S1', 'RGB') or bands (a sensor name, "
                "a list of band specs or range names)"
            )
        if sensor_type is not None:
            if sensor_type not in SENSOR_TYPES:
                raise ValueError(
                    f"sensor_type must be one of {list(get_args(SensorType))}, got {sensor_type!r}; "
                    "for other sensors or band subsets pass bands=[...]"
                )
            bands = SENSOR_TYPES[sensor_type]
        return self.spectrum_projection.resolve(bands)

    def patch_grid(self, x: torch.Tensor) -> tuple[int, int]:
        """``(H/S, W/S)`` of a ``(B, C, H, W)`` batch."""
        h, w = x.shape[-2:]
        if h % self.patch_size or w % self.patch_size:
            raise ValueError(
                f"input size {h}x{w} is not divisible by the patch size {self.patch_size}"
            )
        return h // self.patch_size, w // self.patch_size

    def pos_table(self, grid: tuple[int, int]) -> torch.Tensor:
        """``(1, 1+gh·gw, D)`` positional table for a patch grid (bicubic from ``pos_embed``)."""
        if tuple(grid) == self.grid_size:
            return self.pos_embed
        return interpolate_pos_embed(self.pos_embed, grid, self.grid_size)

    # ------------------------------------------------------------------ stages
    def embed(self, x: torch.Tensor, bands: BandsArg) -> torch.Tensor:
        """Tokens with positions: ``(B, C, H, W)`` → ``(B, N, D)`` (no CLS)."""
        grid = self.patch_grid(x)
        tokens = self.spectrum_projection(x, bands)
        return tokens + self.pos_table(grid)[:, 1:].to(tokens.dtype)

    def encode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Prepend CLS and run the blocks: ``(B, N, D)`` → ``(B, 1+N, D)`` before the final norm."""
        cls = (self.cls_token + self.pos_embed[:, :1]).to(tokens.dtype)
        h = torch.cat([cls.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        for blk in self.blocks:
            h = blk(h)
        return h

    def forward_tokens(self, x: torch.Tensor, bands: BandsArg) -> torch.Tensor:
        """All tokens after the last block, before the final norm: ``(B, 1+N, D)``, CLS first."""
        return self.encode_tokens(self.embed(x, bands))

    def pool(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(B, 1+N, D)`` pre-norm tokens → ``(B, D)``: ``norm(CLS)`` or ``fc_norm(mean(patches))``."""
        if self.global_pool:
            return self.fc_norm(tokens[:, 1:].mean(dim=1))
        return self.norm(tokens[:, 0])

    def token_map(self, tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """``(B, 1+N, D)`` → patch tokens as a map ``(B, D, gh, gw)`` (CLS dropped)."""
        return tokens[:, 1:].transpose(1, 2).reshape(tokens.shape[0], -1, *grid)

    def forward(
        self,
        x: torch.Tensor | Sequence[Source],
        sensor_type: SensorType | None = None,
        bands: BandsArg | None = None,
        all_tokens: bool = False,
    ) -> torch.Tensor:
        """Features of one image batch, or of several co-registered sources concatenated.

        Args:
            x: ``(B, C, H, W)`` in model units; or a list of ``(x_i, bands_i)`` sources (each
                ``bands_i`` may be a sensor type such as ``"S1"``), encoded separately.
            sensor_type: the release's sensor type (``"S2"``: the 12 Sentinel-2 L2A bands
                without B10; ``"S1"``: VV, VH; ``"RGB"``: red, green, blue).
            bands: instead of ``sensor_type``: a sensor name, band specs or range names.
            all_tokens: return the patch-token map instead of pooled features.

        Returns:
            ``(B, D)`` (``(B, k·D)`` for k sources), or with ``all_tokens`` ``(B, D, H/S, W/S)``
            (``(B, k·D, H/S, W/S)``).
        """
        if isinstance(x, torch.Tensor):
            rb = self.resolve(sensor_type, bands)
            tokens = self.forward_tokens(x, rb)
            return self.token_map(tokens, self.patch_grid(x)) if all_tokens else self.pool(tokens)
        if sensor_type is not None or bands is not None:
            raise ValueError("with a list of sources give each source's bands as (x, bands) pairs")
        sources = list(x)
        if not sources or not all(isinstance(s, tuple | list) and len(s) == 2 for s in sources):
            raise ValueError("expected a tensor or a non-empty list of (x, bands) pairs")
        return torch.cat([self(xi, bands=bi, all_tokens=all_tokens) for xi, bi in sources], dim=1)

    def mixup_features(
        self,
        x_a: torch.Tensor,
        bands_a: BandsArg,
        x_b: torch.Tensor,
        bands_b: BandsArg,
        ratio: float = 0.5,
        generator: torch.Generator | None = None,
        mixup_mask: torch.Tensor | None = None,
        all_tokens: bool = False,
    ) -> torch.Tensor:
        """The paper's mixup concatenation for a co-registered pair (its best fusion).

        Tokens of a and b (with positions) are exchanged as in pretraining (mirrored: a' takes a
        fraction ``ratio`` of its positions from b, b' the complement), a' and b' are encoded as
        one batch and their features concatenated.

        Args:
            x_a: ``(B, C_a, H, W)``; bands_a: its bands.
            x_b: ``(B, C_b, H, W)``, same ``B, H, W``; bands_b: its bands.
            ratio: fraction of a' positions taken from b.
            generator: random source of the exchange.
            mixup_mask: explicit ``(B, N)`` bool mask, True where a' keeps a.
            all_tokens: concatenate patch-token maps instead of pooled features.

        Returns:
            ``(B, 2D)`` or ``(B, 2D, H/S, W/S)``.
        """
        if x_b.shape[0] != x_a.shape[0] or x_b.shape[-2:] != x_a.shape[-2:]:
            raise ValueError(
                f"x_b {tuple(x_b.shape)} must match x_a {tuple(x_a.shape)} in batch, height, width"
            )
        mixed_a, mixed_b, _ = cross_sensor_mixup(
            self.embed(x_a, bands_a), self.embed(x_b, bands_b), ratio, generator, mixup_mask
        )
        tokens = self.encode_tokens(torch.cat([mixed_a, mixed_b]))
        out = self.token_map(tokens, self.patch_grid(x_a)) if all_tokens else self.pool(tokens)
        fa, fb = out.chunk(2, dim=0)
        return torch.cat([fa, fb], dim=1)

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(
        cls,
        source: str | Path | Mapping[str, torch.Tensor],
        img_size: int | None = None,
        global_pool: bool = False,
        num_heads: int | None = None,
        **kwargs: Any,
    ) -> SmartiesEncoder:
        """Build the encoder a checkpoint describes and load it.

        Args:
            source: ``"demo"`` (the bundled teaching model); a released pretraining file
                (``smarties-v1-vitb.safetensors``: 318 tensors, the decoder is dropped); an
                encoder-only file; one of our checkpoints (safetensors + JSON sidecar); a
                ``.pt``/``.pth`` state dict (read with ``weights_only=True``); or a state dict.
            img_size: input size; default: the checkpoint's own (224 for the released files, 64
                for the demo). The stored positional table is resampled bicubically to it.
            global_pool: mean-pool patch tokens through ``fc_norm`` (fresh unless the file has
                one) instead of CLS; the file's final ``norm`` is then not used (as in MAE).
            num_heads: attention heads (shapes do not reveal them); default: the sidecar's
                value, else ``D / 64`` (ViT-B 12, ViT-L 16, ViT-S 6, tiny 3).
            **kwargs: other :class:`SmartiesEncoder` arguments (``scheme``, ``drop_path_rate``).

        Returns:
            The encoder in eval mode, ``load_report`` set.

        Raises:
            FileNotFoundError, CheckpointError: unreadable file, non-finite weights (named),
                missing or mis-shaped encoder tensors (named).
        """
        name, raw, side_arch = _read_source(source)
        sd, arch, report = load_encoder_state(raw, name)
        file_grid = arch.get("grid")
        file_img = file_grid[0] * arch["patch_size"] if file_grid else side_arch.get("img_size", 224)
        enc = cls(
            img_size=img_size or file_img,
            patch_size=arch["patch_size"],
            embed_dim=arch["embed_dim"],
            depth=arch["depth"],
            num_heads=num_heads or side_arch.get("num_heads") or max(1, arch["embed_dim"] // 64),
            mlp_ratio=arch.get("mlp_ratio", 4.0),
            num_layers=arch["num_layers"],
            global_pool=global_pool,
            **kwargs,
        )
        enc.load_state(sd, report)
        return enc.eval()

    def load_state(self, sd: dict[str, torch.Tensor], report: LoadReport) -> LoadReport:
        """Fill this encoder from a state dict in our key layout (see :func:`load_encoder_state`).

        The positional table, if any, is resampled bicubically to ``img_size``; without one
        (our checkpoints recompute sin-cos) the sin-cos table of this grid is kept.
        """
        sd = dict(sd)
        table = sd.pop("pos_embed", None)
        if table is not None:
            if table.ndim != 3 or table.shape[-1] != self.embed_dim:
                raise CheckpointError(
                    f"{report.source}: pos_embed {tuple(table.shape)} is not (1, 1+N, {self.embed_dim})"
                )
            old = grid_from_num_tokens(table.shape[1])
            self.pos_embed = interpolate_pos_embed(table.float(), self.grid_size, old).clone()
            report.pos_embed.append(
                f"pos_embed: the file's {old[0]}x{old[1]} table"
                + (f", bicubic to {self.grid_size[0]}x{self.grid_size[1]}" if old != self.grid_size else "")
            )
            report.loaded.append("pos_embed")
        else:
            report.pos_embed.append(f"pos_embed: sin-cos for {self.grid_size[0]}x{self.grid_size[1]}")
        if self.global_pool:
            report.skipped += [k for k in sd if k.startswith("norm.")]
            sd = {k: v for k, v in sd.items() if not k.startswith("norm.")}
        own = {k: v for k, v in self.state_dict().items() if k != "pos_embed"}
        fresh = {k for k in own if k.startswith("fc_norm.")}
        report.missing = [k for k in own if k not in sd and k not in fresh]
        report.unexpected = [k for k in sd if k not in own]
        report.mismatched = [
            (k, tuple(sd[k].shape), tuple(own[k].shape))
            for k in own
            if k in sd and sd[k].shape != own[k].shape
        ]
        if not report.ok:
            raise CheckpointError(f"{report.source} does not fit a SmartiesEncoder:\n{report}")
        fit = {k: sd[k] for k in own if k in sd}
        report.loaded += list(fit)
        with torch.no_grad():
            self.load_state_dict(fit, strict=False)
        self.load_report = report
        return report


def _read_source(
    source: str | Path | Mapping[str, torch.Tensor],
) -> tuple[str, dict[str, torch.Tensor], dict[str, Any]]:
    """``(name, raw state dict, architecture from our sidecar or {})`` for a path, ``"demo"`` or a
    state dict."""
    if isinstance(source, Mapping):
        return "<state dict>", dict(source), {}
    path = demo_weights_path() if str(source) == "demo" else Path(source)
    arch: dict[str, Any] = {}
    if path.suffix == ".safetensors" and path.with_suffix(".json").is_file():
        arch = dict(read_checkpoint_info(path).architecture)
    return str(path), read_state_dict(path), arch


def load_encoder_state(
    raw: Mapping[str, torch.Tensor], source: str = "<state dict>"
) -> tuple[dict[str, torch.Tensor], dict[str, Any], LoadReport]:
    """Encoder tensors of any SMARTIES file, in our key layout, with the architecture they imply.

    Decoder tensors (``decoder_*``, ``mask_token``) and classifier heads are dropped and listed
    in ``report.skipped``; non-finite weights are refused.

    Args:
        raw: ``name → tensor`` in the release's, an encoder-only, or our layout.
        source: name for messages.

    Returns:
        ``(state dict, architecture, report)``; the architecture has ``embed_dim``, ``depth``,
        ``patch_size``, ``num_layers``, ``mlp_ratio`` and, when the file has a table, ``grid``.
    """
    if not raw:
        raise CheckpointError(f"checkpoint {source} is empty")
    bad = non_finite_keys(raw, source)  # refuses non-real tensors first
    if bad:
        shown = ", ".join(bad[:8]) + (f", … (+{len(bad) - 8} more)" if len(bad) > 8 else "")
        raise CheckpointError(f"{source} holds NaN or inf weights in {len(bad)} tensors: {shown}")
    sd = remap_release_state_dict(raw)
    report = LoadReport(source)
    report.skipped = [k for k in sd if k.startswith(_DROPPED_PREFIXES) or k == "decoder_pos_embed"]
    sd = {k: v for k, v in sd.items() if k not in set(report.skipped)}
    arch = infer_architecture(sd)
    need = ("embed_dim", "depth", "patch_size", "num_layers")
    if any(k not in arch for k in need):
        first = ", ".join(list(raw)[:6])
        raise CheckpointError(
            f"{source} is not a SMARTIES encoder checkpoint: could not read "
            f"{', '.join(k for k in need if k not in arch)} from its tensors (first keys: {first})"
        )
    return sd, arch, report
