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

Loading: :meth:`SmartiesEncoder.from_pretrained` builds the encoder a checkpoint describes (a
file, a run folder, ``"demo"`` or a released name on the Hugging Face Hub such as
``"gsumbul/SMARTIES-v1-ViT-B"``, see :mod:`smartiesviz.models.hub`); :func:`build_encoder` builds a
named variant and then loads a checkpoint into it, returning the :class:`LoadReport` with the
missing and unexpected keys (the "build then load" call of benchmark wrappers such as PANGAEA's).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, get_args

import torch
from torch import nn

from smartiesviz.models.checkpoint import (
    CheckpointError,
    ForeignCheckpointError,
    LoadReport,
    infer_architecture,
    read_checkpoint_info,
    read_state_dict,
    remap_release_state_dict,
)
from smartiesviz.models.hub import task_head_note
from smartiesviz.models.mixup import cross_sensor_mixup
from smartiesviz.models.pos_embed import (
    grid_from_num_tokens,
    interpolate_pos_embed,
    sincos_pos_embed,
)
from smartiesviz.models.resolve import CheckpointArg, CheckpointSource, resolve_checkpoint
from smartiesviz.models.state_dict import non_finite_keys
from smartiesviz.models.vit import VIT_ARCHS, ViTEncoder, encoder_arch, layer_norm
from smartiesviz.options import DEFAULT_TOKEN_NORM, TokenNorm
from smartiesviz.spectrum import NUM_LAYERS, ResolvedBands
from smartiesviz.spectrum.resolve import BandsArg

__all__ = [
    "SensorType",
    "SmartiesEncoder",
    "SENSOR_TYPES",
    "ENCODER_ARCHS",
    "build_encoder",
    "load_encoder_state",
]

SensorType = Literal["S2", "S1", "RGB"]
#: the release's ``sensor_type`` values → our sensor registry (same band order as the release).
SENSOR_TYPES: dict[str, str] = {"S2": "sentinel2-l2a", "S1": "sentinel1-grd", "RGB": "rgb"}
_DROPPED_PREFIXES = ("decoder_", "mask_token", "head.", "head_drop.")
Source = tuple[torch.Tensor, BandsArg]
#: The encoder shapes by variant name (also spelled ``smarties_encoder_<name>``): the encoder part
#: of the one table, :data:`smartiesviz.models.vit.VIT_ARCHS`.
ENCODER_ARCHS: dict[str, dict[str, Any]] = {name: encoder_arch(name) for name in VIT_ARCHS}


class SmartiesEncoder(ViTEncoder):
    """SMARTIES ViT encoder for downstream use (no decoder, no masking): the shared
    :class:`~smartiesviz.models.vit.ViTEncoder` with the release's positional table and pooling.

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
        checkpoint_source: :class:`~smartiesviz.models.resolve.CheckpointSource` (file, Hub
            repository and commit, sha256) after loading a named checkpoint, else None.
        default_bands: the bands used when ``forward`` gets neither ``sensor_type`` nor
            ``bands`` (set by :func:`build_encoder`'s ``bands=``), else None.
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
        super().__init__(
            img_size, patch_size, embed_dim, depth, num_heads, mlp_ratio, num_layers, scheme,
            drop_path_rate, final_norm=not global_pool,
        )  # fmt: skip
        self.config: dict[str, Any] = dict(
            img_size=img_size, patch_size=patch_size, embed_dim=embed_dim, depth=depth,
            num_heads=num_heads, mlp_ratio=mlp_ratio, num_layers=num_layers,
            global_pool=global_pool, scheme=scheme,
        )  # fmt: skip
        self.global_pool = global_pool
        self.register_buffer("pos_embed", sincos_pos_embed(embed_dim, *self.grid_size, cls_token=True))
        self.fc_norm: nn.Module = layer_norm(embed_dim) if global_pool else nn.Identity()
        self.load_report: LoadReport | None = None
        self.checkpoint_source: CheckpointSource | None = None
        self.default_bands: ResolvedBands | None = None
        nn.init.normal_(self.cls_token, std=0.02)

    # ------------------------------------------------------------------ bands and positions
    def resolve(self, sensor_type: SensorType | None = None, bands: BandsArg | None = None) -> ResolvedBands:
        """The bands of an input from the release's ``sensor_type`` or any band argument (or,
        given neither, :attr:`default_bands` when set)."""
        if sensor_type is None and bands is None and self.default_bands is not None:
            return self.default_bands
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

    def pos_table(self, grid: tuple[int, int]) -> torch.Tensor:
        """``(1, 1+gh·gw, D)`` positional table for a patch grid (bicubic from ``pos_embed``)."""
        if tuple(grid) == self.grid_size:
            return self.pos_embed
        return interpolate_pos_embed(self.pos_embed, grid, self.grid_size)

    def patch_pos(self, grid: tuple[int, int], ref: torch.Tensor) -> torch.Tensor:
        """``(1, N, D)``: the patch rows of :meth:`pos_table`, in ``ref``'s dtype."""
        return self.pos_table(grid)[:, 1:].to(ref.dtype)

    def cls_row(self) -> torch.Tensor:
        """``(1, 1, D)``: CLS token plus the table's CLS row."""
        return self.cls_token + self.pos_embed[:, :1]

    def pool(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(B, 1+N, D)`` pre-norm tokens → ``(B, D)``: ``norm(CLS)`` or ``fc_norm(mean(patches))``."""
        if self.global_pool:
            return self.fc_norm(tokens[:, 1:].mean(dim=1))
        return self.norm(tokens[:, 0])

    def forward(
        self,
        x: torch.Tensor | Sequence[Source],
        sensor_type: SensorType | None = None,
        bands: BandsArg | None = None,
        all_tokens: bool = False,
        token_norm: TokenNorm = DEFAULT_TOKEN_NORM,
    ) -> torch.Tensor:
        """Features of one image batch, or of several co-registered sources concatenated.

        Args:
            x: ``(B, C, H, W)`` in model units; or a list of ``(x_i, bands_i)`` sources (each
                ``bands_i`` may be a sensor type such as ``"S1"``), encoded separately.
            sensor_type: the release's sensor type (``"S2"``: the 12 Sentinel-2 L2A bands
                without B10; ``"S1"``: VV, VH; ``"RGB"``: red, green, blue).
            bands: instead of ``sensor_type``: a sensor name, band specs or range names.
            all_tokens: return the patch-token map instead of pooled features.
            token_norm: the map's tokens before (``"pre-norm"``, the release's ``all_tokens``,
                default) or after the final norm (``"post-norm"``).

        Returns:
            ``(B, D)`` (``(B, k·D)`` for k sources), or with ``all_tokens`` ``(B, D, H/S, W/S)``
            (``(B, k·D, H/S, W/S)``).
        """
        if isinstance(x, torch.Tensor):
            rb = self.resolve(sensor_type, bands)
            tokens = self.forward_tokens(x, rb)
            if all_tokens:
                return self.token_map(tokens, self.patch_grid(x), token_norm)
            return self.pool(tokens)
        if sensor_type is not None or bands is not None:
            raise ValueError("with a list of sources give each source's bands as (x, bands) pairs")
        sources = list(x)
        if not sources or not all(isinstance(s, tuple | list) and len(s) == 2 for s in sources):
            raise ValueError("expected a tensor or a non-empty list of (x, bands) pairs")
        return torch.cat(
            [self(xi, bands=bi, all_tokens=all_tokens, token_norm=token_norm) for xi, bi in sources],
            dim=1,
        )

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
        token_norm: TokenNorm = DEFAULT_TOKEN_NORM,
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
            token_norm: the maps' tokens before or after the final norm (as :meth:`forward`).

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
        grid = self.patch_grid(x_a)
        out = self.token_map(tokens, grid, token_norm) if all_tokens else self.pool(tokens)
        fa, fb = out.chunk(2, dim=0)
        return torch.cat([fa, fb], dim=1)

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(
        cls,
        source: CheckpointArg | Mapping[str, torch.Tensor],
        img_size: int | None = None,
        global_pool: bool | None = None,
        num_heads: int | None = None,
        *,
        revision: str | None = None,
        cache_dir: str | Path | None = None,
        **kwargs: Any,
    ) -> SmartiesEncoder:
        """Build the encoder a checkpoint describes and load it.

        Args:
            source: ``"demo"`` (the bundled teaching model); a released name on the Hugging Face
                Hub (``"gsumbul/SMARTIES-v1-ViT-B"``, ``"gsumbul/SMARTIES-v1-ViT-L"``,
                ``"gsumbul/SMARTIES-v1-finetuned-models/smarties-v1-vitb-eurosat-finetune"``, ...;
                ``@<revision>`` and ``hf://`` accepted; fetched into and served from
                ``huggingface_hub``'s cache, offline with ``HF_HUB_OFFLINE=1``); a released
                pretraining file (``smarties-v1-vitb.safetensors``: 318 tensors, the decoder is
                dropped); a fine-tuned file (its task head is dropped, reported); an
                encoder-only file; one of our checkpoints (safetensors + JSON sidecar) or a run
                folder; a ``.pt``/``.pth`` state dict (read with ``weights_only=True``); or a
                state dict. A local path wins over a Hub name of the same spelling.
            img_size: input size; default: the checkpoint's own (224 for the released files, 64
                for the demo). The stored positional table is resampled bicubically to it.
            global_pool: mean-pool patch tokens through ``fc_norm`` (fresh unless the file has
                one) instead of CLS; the file's final ``norm`` is then not used (as in MAE).
                Default: True only for a file with ``fc_norm`` and no ``norm``.
            num_heads: attention heads (shapes do not reveal them); default: the sidecar's
                value, else ``D / 64`` (ViT-B 12, ViT-L 16, ViT-S 6, tiny 3).
            revision: Hub branch, tag or commit (for Hub names without ``@<revision>``).
            cache_dir: Hugging Face cache folder (default ``HF_HUB_CACHE``).
            **kwargs: other :class:`SmartiesEncoder` arguments (``scheme``, ``drop_path_rate``).

        Returns:
            The encoder in eval mode; ``load_report`` set, and for a named checkpoint
            ``checkpoint_source`` (file, Hub commit, sha256).

        Raises:
            FileNotFoundError: no such file and no known Hub name (the known names are listed),
                or a Hub file neither cached nor reachable.
            CheckpointError: unreadable file, non-finite weights, missing or mis-shaped tensors.
        """
        src, raw, side_arch = _read_source(source, revision, cache_dir)
        sd, arch, report = load_encoder_state(raw, str(src) if src else "<state dict>")
        if global_pool is None:
            global_pool = "fc_norm.weight" in sd and "norm.weight" not in sd
        file_grid = arch.get("grid")
        file_img = file_grid[0] * arch["patch_size"] if file_grid else side_arch.get("img_size", 224)
        heads = num_heads or side_arch.get("num_heads") or max(1, arch["embed_dim"] // 64)
        enc = cls(
            img_size or file_img, arch["patch_size"], arch["embed_dim"], arch["depth"], heads,
            arch.get("mlp_ratio", 4.0), arch["num_layers"], global_pool, **kwargs,
        )  # fmt: skip
        enc.checkpoint_source = src
        enc.load_state(sd, report)
        return enc.eval()

    def load_state(
        self, sd: dict[str, torch.Tensor], report: LoadReport, strict: bool = True
    ) -> LoadReport:
        """Fill this encoder from a state dict in our key layout (see :func:`load_encoder_state`).

        The positional table, if any, is resampled bicubically to ``img_size``; without one
        (our checkpoints recompute sin-cos) the sin-cos table of this grid is kept. The pooling
        norm this encoder does not use (``norm`` with ``global_pool``, else ``fc_norm``) is
        skipped and listed in ``report.skipped``.

        Args:
            sd: ``name → tensor`` in our layout.
            report: filled in place (loaded, missing, unexpected, mismatched).
            strict: refuse any missing, unexpected or mis-shaped key; with False, load what
                fits (refusing only a file of which less than half fits) and report the rest.

        Raises:
            CheckpointError: ``strict`` and the report is not ok; ForeignCheckpointError:
                less than half of the encoder's tensors fit.
        """
        sd = dict(sd)
        self._load_pos_table(sd.pop("pos_embed", None), report)
        unused = "norm." if self.global_pool else "fc_norm."
        report.skipped += [k for k in sd if k.startswith(unused)]
        sd = {k: v for k, v in sd.items() if not k.startswith(unused)}
        own = {k: v for k, v in self.state_dict().items() if k != "pos_embed"}
        fresh = {k for k in own if k.startswith("fc_norm.")}
        report.missing = [k for k in own if k not in sd and k not in fresh]
        report.unexpected = [k for k in sd if k not in own]
        report.mismatched = [
            (k, tuple(sd[k].shape), tuple(own[k].shape))
            for k in own
            if k in sd and sd[k].shape != own[k].shape
        ]
        bad = {k for k, *_ in report.mismatched}
        fit = {k: sd[k] for k in own if k in sd and k not in bad}
        if strict and not report.ok:
            raise CheckpointError(f"{report.source} does not fit a SmartiesEncoder:\n{report}")
        if len(fit) < 0.5 * len(own):
            raise ForeignCheckpointError(
                f"{report.source} does not fit this SmartiesEncoder ({self.embed_dim} wide, "
                f"{self.depth} blocks, patch {self.patch_size}): only {len(fit)} of {len(own)} "
                f"tensors fit:\n{report}"
            )
        report.loaded += list(fit)
        if self.checkpoint_source is not None:
            report.notes.append(f"sha256 {self.checkpoint_source.sha256}")
        weights = self.checkpoint_source.weights if self.checkpoint_source is not None else None
        if note := task_head_note(report.skipped, weights):
            report.notes.append(note)
        with torch.no_grad():
            self.load_state_dict(fit, strict=False)
        self.load_report = report
        return report


    def _load_pos_table(self, table: torch.Tensor | None, report: LoadReport) -> None:
        """The file's ``(1, 1+N, D)`` table, resampled bicubically to this grid (or, without
        one, the sin-cos table kept), noted in ``report``."""
        gh, gw = self.grid_size
        if table is None:
            report.pos_embed.append(f"pos_embed: sin-cos for {gh}x{gw}")
            return
        if table.ndim != 3 or table.shape[-1] != self.embed_dim:
            raise CheckpointError(
                f"{report.source}: pos_embed {tuple(table.shape)} is not (1, 1+N, {self.embed_dim})"
            )
        old = grid_from_num_tokens(table.shape[1])
        self.pos_embed = interpolate_pos_embed(table.float(), self.grid_size, old).clone()
        resampled = f", bicubic to {gh}x{gw}" if old != self.grid_size else ""
        report.pos_embed.append(f"pos_embed: the file's {old[0]}x{old[1]} table{resampled}")
        report.loaded.append("pos_embed")


def _read_source(
    source: CheckpointArg | Mapping[str, torch.Tensor],
    revision: str | None = None,
    cache_dir: str | Path | None = None,
) -> tuple[CheckpointSource | None, dict[str, torch.Tensor], dict[str, Any]]:
    """``(where from or None for a state dict, raw state dict, architecture from our sidecar or
    {})`` for a checkpoint name (:func:`~smartiesviz.models.resolve.resolve_checkpoint`) or a
    state dict."""
    if isinstance(source, Mapping):
        return None, dict(source), {}
    src = resolve_checkpoint(source, revision, cache_dir)
    path = src.path
    arch: dict[str, Any] = {}
    if path.suffix == ".safetensors" and path.with_suffix(".json").is_file():
        arch = dict(read_checkpoint_info(path).architecture)
    return src, read_state_dict(path), arch


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


def _variant_arch(name: str) -> dict[str, Any] | None:
    """:data:`ENCODER_ARCHS` entry of ``vit_base_patch16`` / ``smarties_encoder_vit_base_patch16``
    (``smarties_vit_...`` too), else None."""
    for prefix in ("smarties_encoder_", "smarties_", ""):
        if name.startswith(prefix) and name[len(prefix) :] in ENCODER_ARCHS:
            return dict(ENCODER_ARCHS[name[len(prefix) :]])
    return None


def _variant_state(
    variant: str, arch: Mapping[str, Any], checkpoint: CheckpointArg | Mapping[str, torch.Tensor],
    revision: str | None, cache_dir: str | Path | None,
) -> tuple[CheckpointSource | None, dict[str, torch.Tensor], LoadReport]:  # fmt: skip
    """A checkpoint's encoder state for a variant of :data:`ENCODER_ARCHS`, refused (naming the
    variant that fits) when the file holds another width, depth, patch size or layer count."""
    src, raw, _ = _read_source(checkpoint, revision, cache_dir)
    sd, file_arch, report = load_encoder_state(raw, str(src) if src else "<state dict>")
    want = dict(arch, num_layers=NUM_LAYERS)
    diff = [
        f"{k} {file_arch[k]} in file vs {want[k]} in {variant}"
        for k in ("embed_dim", "depth", "patch_size", "num_layers")
        if file_arch[k] != want[k]
    ]
    if diff:
        fits = [n for n, a in ENCODER_ARCHS.items()
                if all(a[k] == file_arch[k] for k in ("embed_dim", "depth", "patch_size"))]  # fmt: skip
        raise ForeignCheckpointError(
            f"{report.source} does not fit {variant} ({'; '.join(diff)}); "
            + (f"use {fits[0]!r}" if fits else "pass the checkpoint alone to build its shape")
        )
    return src, sd, report


def _build_variant(
    variant: str, arch: dict[str, Any], checkpoint: CheckpointArg | Mapping[str, torch.Tensor] | None,
    strict: bool, revision: str | None, cache_dir: str | Path | None, kwargs: dict[str, Any],
) -> tuple[SmartiesEncoder, LoadReport]:  # fmt: skip
    """A variant built with ``arch``, filled from ``checkpoint`` (its shape checked first) or,
    without one, left with its random weights (all listed as missing)."""
    if checkpoint is None:
        enc = SmartiesEncoder(**arch, **kwargs)
        report = LoadReport("<random init>")
        report.missing = [k for k in enc.state_dict() if k != "pos_embed"]
        report.notes.append(f"no checkpoint: {variant} with random weights")
        return enc, report
    src, sd, report = _variant_state(variant, arch, checkpoint, revision, cache_dir)
    enc = SmartiesEncoder(**arch, **kwargs)
    enc.checkpoint_source = src
    enc.load_state(sd, report, strict=strict)
    return enc, report


def build_encoder(
    model: CheckpointArg,
    bands: BandsArg | None = None,
    checkpoint: CheckpointArg | Mapping[str, torch.Tensor] | None = None,
    img_size: int | None = None,
    *,
    global_pool: bool | None = None,
    strict: bool = False,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    **kwargs: Any,
) -> tuple[SmartiesEncoder, LoadReport]:
    """Build an encoder, then load a checkpoint into it: the call a benchmark wrapper needs.

    Two ways to call it: ``build_encoder("vit_base_patch16", bands=["B04", "B03"],
    checkpoint="gsumbul/SMARTIES-v1-ViT-B")`` or ``build_encoder("gsumbul/SMARTIES-v1-ViT-B")``.

    Args:
        model: a variant of :data:`ENCODER_ARCHS` (``"vit_base_patch16"`` or
            ``"smarties_encoder_vit_base_patch16"``), built, then filled from ``checkpoint``; or
            a checkpoint name (as :meth:`SmartiesEncoder.from_pretrained` takes), built as its
            shapes say.
        bands: the input's bands (any band argument), checked now and used when ``forward``
            gets none (``encoder.default_bands``).
        checkpoint: with a variant: the weights to load (any checkpoint name or a state dict);
            None leaves the random initialisation (the report lists every tensor as missing).
        img_size: input size (default: the variant's, or the checkpoint's).
        global_pool: pool through ``fc_norm`` instead of CLS (default: False; a file's choice).
        strict: refuse any missing, unexpected or mis-shaped key. Default False, as benchmark
            loaders do: what fits is loaded, the rest reported (less than half: refused).
        revision, cache_dir: Hugging Face Hub revision and cache folder.
        **kwargs: other :class:`SmartiesEncoder` arguments (``scheme``, ``drop_path_rate``).

    Returns:
        ``(encoder in eval mode, report)``: ``report.missing``/``.unexpected`` the keys the file
        lacked / the model has no place for; ``.skipped`` the decoder and task-head keys.

    Raises:
        ValueError: a checkpoint name given with ``checkpoint=`` too, or unknown bands.
        ForeignCheckpointError: another architecture than the variant; FileNotFoundError,
            CheckpointError: see :meth:`SmartiesEncoder.from_pretrained`.
    """
    arch = _variant_arch(model) if isinstance(model, str) else None
    if arch is None and checkpoint is not None:
        raise ValueError(
            f"{model!r} is not an encoder variant ({', '.join(ENCODER_ARCHS)}): pass a variant "
            "with checkpoint=..., or the checkpoint alone as the first argument"
        )
    if arch is None:
        enc = SmartiesEncoder.from_pretrained(
            model, img_size, global_pool, revision=revision, cache_dir=cache_dir, **kwargs
        )
        report = enc.load_report
    else:
        arch = dict(arch, img_size=img_size or arch["img_size"], global_pool=bool(global_pool))
        enc, report = _build_variant(str(model), arch, checkpoint, strict, revision, cache_dir, kwargs)
    if bands is not None:
        enc.default_bands = enc.resolve(bands=bands)
    return enc.eval(), report
