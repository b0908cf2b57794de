"""SMARTIES masked auto-encoder with cross-sensor token mixup.

Reads like MAE's ``models_mae.py``: tokenize → add pos-embed → mix → mask → encode → decode →
reconstruct → loss, each a short method. What is SMARTIES-specific:

* tokens come from :class:`SpectrumAwareProjection` (one learned layer per spectral range), and
  reconstructions from :class:`SpectrumAwareReprojection` with *each position's own bands*;
* a co-registered pair (a, b) is mixed token-wise (:func:`cross_sensor_mixup`); a' and b' share
  one visible mask and run through the encoder and decoder as one batch of ``2B``;
* in ``"mirrored"`` mode a' and b' together hold every position of a (and of b) exactly once, so
  the decoded tokens are routed back per position and reprojected with the *owner's* bands:
  ``recon_a`` ``(B, C_a, H, W)`` and ``recon_b`` ``(B, C_b, H, W)`` are full reconstructions.

Loss (both modes equal the release's for the same masks and weights): squared error averaged over
bands × pixels of a patch, averaged over the masked patches of the batch.

* ``"mirrored"``: ``0.5·(L_a + L_b)`` with ``L_a`` scored on ``recon_a`` against ``x_a``. Each
  masked position of a is predicted exactly once, by whichever of a'/b' holds it, so this equals
  the release's ``0.5·(L_a' + L_b')``.
* ``"as-released"`` (b' = b): ``0.5·(L_a' + L_b)``; positions of a' that hold b's token are scored
  against ``x_b`` with b's bands. ``recon_a`` is a's reprojection of a''s decoded tokens at every
  position; where a' holds b's token (``~mixup_mask``) that is a cross-sensor estimate of a that the
  release never scores. ``recon_b`` is b's reprojection of b's decoded tokens.
* single image (``x_b=None``): ordinary MAE, ``loss = L_a``, ``mixup_mask`` all True.

Host syncs: none inside ``forward`` for random masks (counts come from shapes; fullgraph
``torch.compile`` works). Explicit ``visible_mask`` arguments are validated once (one read-back).

Importing this module registers the factories with timm, so ``timm.create_model("smarties_vit_base_patch16")``
works after ``import smartiesviz.models.mae`` (or any ``smartiesviz.smarties_vit_*`` access).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.models import register_model
from timm.models.vision_transformer import Block

from smartiesviz.models.mixup import (
    MixupMode,
    check_visible_mask,
    cross_sensor_mixup,
    gather_tokens,
    masking_indices,
    random_visible_mask,
)
from smartiesviz.models.pos_embed import interpolate_pos_embed, sincos_pos_embed
from smartiesviz.models.tokenizer import SpectrumAwareProjection, SpectrumAwareReprojection

__all__ = [
    "MAEOutput",
    "Intermediates",
    "SmartiesMAE",
    "smarties_vit_tiny_patch8",
    "smarties_vit_small_patch16",
    "smarties_vit_base_patch16",
    "smarties_vit_large_patch16",
]

PosEmbedMode = Literal["sincos", "bicubic"]
FusionMethod = Literal["stack", "concat", "mixup"]
Pooling = Literal["cls", "mean"]


@dataclass
class MAEOutput:
    """Result of one :class:`SmartiesMAE` forward pass.

    Attributes:
        loss: scalar tensor.
        recon_a: ``(B, C_a, H, W)`` reconstruction of a's kept bands, normalized units.
        recon_b: ``(B, C_b, H, W)`` reconstruction of b, or None for a single image.
        visible_mask: ``(B, N)`` bool, True where the encoder saw the position (shared by a', b').
        mixup_mask: ``(B, N)`` bool, True where a' holds a's token.
    """

    loss: torch.Tensor
    recon_a: torch.Tensor
    recon_b: torch.Tensor | None
    visible_mask: torch.Tensor
    mixup_mask: torch.Tensor


@dataclass
class Intermediates:
    """Staged encoder activations from :meth:`SmartiesMAE.forward_intermediates`.

    Attributes:
        projected: ``(B, N, D)`` tokens from the spectrum-aware projection.
        pos_embedded: ``(B, N, D)`` tokens after adding the positional encoding.
        blocks: per block, ``(B, 1+N, D)`` output (CLS first).
        norm: ``(B, 1+N, D)`` after the final LayerNorm (what :meth:`encode` returns).
        attention: per block, ``(B, heads, 1+N, 1+N)`` softmax attention, if requested.
        grid: ``(H/S, W/S)`` patch grid.
    """

    projected: torch.Tensor
    pos_embedded: torch.Tensor
    blocks: list[torch.Tensor]
    norm: torch.Tensor
    attention: list[torch.Tensor] | None = None
    grid: tuple[int, int] = field(default=(0, 0))


def _attention_probs(block: Block, x: torch.Tensor) -> torch.Tensor:
    """Softmax attention of a timm ``Block`` for input ``x`` ``(B, N, D)`` → ``(B, h, N, N)``."""
    attn = block.attn
    h = block.norm1(x)
    batch, length, _ = h.shape
    qkv = attn.qkv(h).reshape(batch, length, 3, attn.num_heads, attn.head_dim)
    q, k, _ = qkv.permute(2, 0, 3, 1, 4).unbind(0)
    q, k = attn.q_norm(q), attn.k_norm(k)
    return ((q * attn.scale) @ k.transpose(-2, -1)).softmax(dim=-1)


class SmartiesMAE(nn.Module):
    """SMARTIES pretraining model: spectrum-aware ViT MAE with cross-sensor mixup.

    Args:
        img_size: default input size (square); any ``H, W`` divisible by ``patch_size`` works.
        patch_size: patch side ``S``.
        embed_dim: encoder width ``D``.
        depth: encoder blocks.
        num_heads: encoder heads.
        decoder_embed_dim: decoder width.
        decoder_depth: decoder blocks.
        decoder_num_heads: decoder heads.
        mlp_ratio: MLP hidden size / width.
        num_layers: learned spectral-range layers (17 in the release).
        pos_embed_mode: ``"sincos"`` computes the fixed sin-cos table for the actual patch grid
            (what pretraining used at its own size); ``"bicubic"`` resamples the table of the
            ``img_size`` grid (or a stored table, see ``pos_embed``) bicubically, as the release's
            downstream model does for other input sizes.

    Attributes:
        img_size, patch_size, embed_dim, decoder_embed_dim, num_heads, grid_size: as built.
        config: the constructor arguments (what :func:`save_checkpoint` records).
        pos_embed, decoder_pos_embed: ``None`` (sin-cos computed per grid) or a stored
            ``(1, 1+N0, dim)`` table resampled bicubically (set by :func:`load_pretrained`).
    """

    def __init__(
        self,
        img_size: int = 224,
        patch_size: int = 16,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        decoder_embed_dim: int = 512,
        decoder_depth: int = 8,
        decoder_num_heads: int = 16,
        mlp_ratio: float = 4.0,
        num_layers: int = 17,
        pos_embed_mode: PosEmbedMode = "sincos",
    ) -> None:
        super().__init__()
        if img_size % patch_size:
            raise ValueError(f"img_size {img_size} is not divisible by patch_size {patch_size}")
        if pos_embed_mode not in ("sincos", "bicubic"):
            raise ValueError(
                f"pos_embed_mode must be 'sincos' or 'bicubic', got {pos_embed_mode!r}"
            )
        self.config: dict[str, Any] = dict(
            img_size=img_size,
            patch_size=patch_size,
            embed_dim=embed_dim,
            depth=depth,
            num_heads=num_heads,
            decoder_embed_dim=decoder_embed_dim,
            decoder_depth=decoder_depth,
            decoder_num_heads=decoder_num_heads,
            mlp_ratio=mlp_ratio,
            num_layers=num_layers,
            pos_embed_mode=pos_embed_mode,
        )
        self.img_size = img_size
        self.patch_size = patch_size
        self.embed_dim = embed_dim
        self.decoder_embed_dim = decoder_embed_dim
        self.num_heads = num_heads
        self.pos_embed_mode = pos_embed_mode
        self.grid_size = (img_size // patch_size, img_size // patch_size)

        # encoder
        self.spectrum_projection = SpectrumAwareProjection(embed_dim, patch_size, num_layers)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio, qkv_bias=True, norm_layer=_layer_norm)
            for _ in range(depth)
        )
        self.norm = _layer_norm(embed_dim)
        # decoder
        self.decoder_embed = nn.Linear(embed_dim, decoder_embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_embed_dim))
        self.decoder_blocks = nn.ModuleList(
            Block(
                decoder_embed_dim,
                decoder_num_heads,
                mlp_ratio,
                qkv_bias=True,
                norm_layer=_layer_norm,
            )
            for _ in range(decoder_depth)
        )
        self.decoder_norm = _layer_norm(decoder_embed_dim)
        self.decoder_pred = SpectrumAwareReprojection(decoder_embed_dim, patch_size, num_layers)

        # Fixed sin-cos tables for the default grid (not saved: recomputed exactly on load).
        gh, gw = self.grid_size
        self.register_buffer("_pos_cache", sincos_pos_embed(embed_dim, gh, gw), persistent=False)
        self.register_buffer(
            "_dec_pos_cache", sincos_pos_embed(decoder_embed_dim, gh, gw), persistent=False
        )
        # Optional stored (1, 1+N0, D) tables that replace sin-cos (e.g. a fine-tuned file's learned
        # table); None by default, so they are absent from state_dict unless set.
        self.register_buffer("pos_embed", None)
        self.register_buffer("decoder_pos_embed", None)
        self.initialize_weights()

    # ------------------------------------------------------------------ init
    def initialize_weights(self) -> None:
        """MAE init: xavier-uniform Linear, zero bias, LayerNorm (1, 0), tokens normal(0.02)."""
        nn.init.normal_(self.cls_token, std=0.02)
        nn.init.normal_(self.mask_token, std=0.02)
        self.apply(_init_module)

    # ------------------------------------------------------------------ helpers
    def patch_grid(self, x: torch.Tensor) -> tuple[int, int]:
        """``(H/S, W/S)`` for a ``(B, C, H, W)`` input, with a clear error otherwise."""
        if x.ndim != 4:
            raise ValueError(f"expected an image batch (B, C, H, W), got shape {tuple(x.shape)}")
        h, w = x.shape[-2:]
        s = self.patch_size
        if h % s or w % s:
            raise ValueError(
                f"input size {h}x{w} is not divisible by the patch size {s}; crop or resize to a "
                f"multiple of {s} (e.g. {h - h % s}x{w - w % s})"
            )
        return h // s, w // s

    def resolve(self, bands: Any) -> Any:
        """``ResolvedBands`` for a band argument (sensor name, band specs, or ResolvedBands)."""
        return self.spectrum_projection.resolve(bands)

    def _pos(self, grid: tuple[int, int], decoder: bool, ref: torch.Tensor) -> torch.Tensor:
        """``(1, N, dim)`` positional table for ``grid`` (no CLS row)."""
        dim = self.decoder_embed_dim if decoder else self.embed_dim
        stored = self.decoder_pos_embed if decoder else self.pos_embed
        if stored is not None or self.pos_embed_mode == "bicubic":
            if stored is None:
                gh, gw = self.grid_size
                stored = sincos_pos_embed(dim, gh, gw, cls_token=True, device=ref.device)
            return interpolate_pos_embed(stored, grid)[:, 1:]
        if tuple(grid) == self.grid_size:
            return self._dec_pos_cache if decoder else self._pos_cache
        return sincos_pos_embed(dim, grid[0], grid[1], device=ref.device)

    def _cls(self) -> torch.Tensor:
        """``(1, 1, D)`` CLS token with its positional vector (zero for sin-cos)."""
        if self.pos_embed is not None:
            return self.cls_token + self.pos_embed[:, :1]
        return self.cls_token

    @staticmethod
    def _kept_channels(x: torch.Tensor, rb: Any) -> torch.Tensor:
        """The input channels the tokenizer uses (``rb.keep``) → ``(B, C_kept, H, W)``."""
        keep = rb.keep.tolist() if isinstance(rb.keep, torch.Tensor) else list(rb.keep)
        if keep == list(range(x.shape[1])):
            return x
        return x.index_select(1, torch.as_tensor(keep, dtype=torch.long, device=x.device))

    # ------------------------------------------------------------------ stages
    def embed(self, x: torch.Tensor, bands: Any) -> torch.Tensor:
        """Spectrum-aware tokens plus positional encoding: ``(B, C, H, W)`` → ``(B, N, D)``."""
        grid = self.patch_grid(x)
        tokens = self.spectrum_projection(x, bands)
        return tokens + self._pos(grid, decoder=False, ref=tokens)

    def forward_encoder(
        self, tokens: torch.Tensor, ids_keep: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Encoder on (optionally) the visible tokens.

        Args:
            tokens: ``(B, N, D)`` tokens with positional encoding.
            ids_keep: ``(B, K)`` visible positions, or None for all.

        Returns:
            ``(B, 1+K, D)`` after the final norm, CLS first.
        """
        if ids_keep is not None:
            tokens = gather_tokens(tokens, ids_keep)
        x = torch.cat([self._cls().expand(tokens.shape[0], -1, -1).to(tokens.dtype), tokens], 1)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)

    def forward_decoder(
        self, latent: torch.Tensor, ids_restore: torch.Tensor, grid: tuple[int, int]
    ) -> torch.Tensor:
        """Decoder: embed, insert mask tokens, unshuffle, add pos-embed, blocks, norm.

        Args:
            latent: ``(B, 1+K, D)`` encoder output.
            ids_restore: ``(B, N)`` unshuffle index from :func:`masking_indices`.
            grid: patch grid ``(H/S, W/S)``.

        Returns:
            ``(B, N, D_dec)`` decoded patch tokens (CLS dropped) in position order.
        """
        x = self.decoder_embed(latent)
        batch, length = ids_restore.shape
        masks = self.mask_token.to(x.dtype).expand(batch, length + 1 - x.shape[1], -1)
        patches = gather_tokens(torch.cat([x[:, 1:], masks], dim=1), ids_restore)
        pos = self._pos(grid, decoder=True, ref=x)
        cls = x[:, :1]
        if self.decoder_pos_embed is not None:
            cls = cls + self.decoder_pos_embed[:, :1]
        x = torch.cat([cls, patches + pos], dim=1)
        for blk in self.decoder_blocks:
            x = blk(x)
        return self.decoder_norm(x)[:, 1:]

    def reconstruct(self, decoded: torch.Tensor, bands: Any, grid: tuple[int, int]) -> torch.Tensor:
        """Per-band reprojection of decoded tokens into an image.

        Equal to ``unpatchify(self.decoder_pred(decoded, bands))``, computed as one transposed
        convolution with the bands' effective reprojection kernel, which writes the image layout
        directly (no ``(B, N, C, S²)`` intermediate and no unpatchify copy).

        Args:
            decoded: ``(B, N, D_dec)`` decoded tokens.
            bands: bands to reconstruct (each with its own range layer).
            grid: patch grid ``(h, w)``.

        Returns:
            ``(B, C_kept, h·S, w·S)`` image in normalized units.
        """
        rb = self.resolve(bands)
        weight, bias = self.decoder_pred.combine(rb, decoded)  # (S², C, D_dec), (C, S²)
        chans, s, (gh, gw) = len(rb), self.patch_size, grid
        batch, _, dim = decoded.shape
        kernel = weight.permute(2, 1, 0).reshape(dim, chans, s, s)  # (D_dec, C, S, S)
        # The bias differs per pixel of a patch, so it rides along as the kernel of an extra
        # all-ones input channel: one allocation for the image, none for a separate bias add.
        kernel = torch.cat([kernel, bias.reshape(1, chans, s, s)], dim=0)
        h = decoded.transpose(1, 2).reshape(batch, dim, gh, gw)
        h = torch.cat([h, h.new_ones(batch, 1, gh, gw)], dim=1)
        return F.conv_transpose2d(h, kernel.to(h.dtype), stride=s)  # (B, C, H, W)

    def patch_errors(self, recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Squared error averaged over bands × pixels of each patch: ``(B, C, H, W)`` → ``(B, N)``.

        A fused autograd function: its backward allocates a single image-sized tensor.
        """
        if recon.shape != target.shape:
            raise ValueError(
                f"reconstruction {tuple(recon.shape)} and target {tuple(target.shape)} differ"
            )
        return _PatchSquaredError.apply(recon, target, self.patch_size)

    @staticmethod
    def masked_mean(err: torch.Tensor, visible_mask: torch.Tensor) -> torch.Tensor:
        """Mean of ``(B, N)`` errors over hidden positions (0 when nothing is hidden)."""
        hidden = (~visible_mask).to(err.dtype)
        return (err * hidden).sum() / hidden.sum().clamp_min(1.0)

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        x_a: torch.Tensor,
        bands_a: Any,
        x_b: torch.Tensor | None = None,
        bands_b: Any = None,
        mask_ratio: float = 0.75,
        mixup_ratio: float = 0.5,
        generator: torch.Generator | None = None,
        mixup_mask: torch.Tensor | None = None,
        visible_mask: torch.Tensor | None = None,
        mixup_mode: MixupMode = "mirrored",
        target_a: torch.Tensor | None = None,
        target_bands_a: Any = None,
        target_b: torch.Tensor | None = None,
        target_bands_b: Any = None,
    ) -> MAEOutput:
        """One pretraining step's forward pass.

        Args:
            x_a: ``(B, C_a, H, W)`` image a, normalized.
            bands_a: a's bands (sensor name, band specs, or ResolvedBands).
            x_b: optional ``(B, C_b, H, W)`` co-registered image b.
            bands_b: b's bands (required with ``x_b``).
            mask_ratio: fraction of positions hidden from the encoder.
            mixup_ratio: fraction of a' positions taken from b.
            generator: ``torch.Generator`` for the mixup and masking draws (mixup drawn first).
            mixup_mask: explicit ``(B, N)`` bool mixup mask (True = a' holds a).
            visible_mask: explicit ``(B, N)`` bool visible mask (True = visible), same count
                per sample; shared by a' and b'.
            mixup_mode: ``"mirrored"`` (paper) or ``"as-released"`` (b' = b).
            target_a: optional ``(B, C_t, H, W)`` image to reconstruct instead of ``x_a``, with
                ``target_bands_a``: e.g. all 12 bands of a tile whose input ``x_a`` kept only a
                subset, so that training teaches the decoder to predict bands the input lacked
                (cross-spectral prediction). ``recon_a`` then has the target's bands.
            target_bands_a: the bands of ``target_a``.
            target_b, target_bands_b: the same for image b.

        Returns:
            :class:`MAEOutput`.
        """
        if mixup_mode not in ("mirrored", "as-released"):
            raise ValueError(f"mixup_mode must be 'mirrored' or 'as-released', got {mixup_mode!r}")
        grid = self.patch_grid(x_a)
        batch, length = x_a.shape[0], grid[0] * grid[1]
        rb_a = self.resolve(bands_a)
        tok_a = self.embed(x_a, rb_a)
        if x_b is not None:
            if bands_b is None:
                raise ValueError("x_b was given without bands_b; pass the bands of image b")
            if x_b.ndim != 4 or x_b.shape[0] != batch or x_b.shape[-2:] != x_a.shape[-2:]:
                raise ValueError(
                    f"x_b {tuple(x_b.shape)} must be co-registered with x_a {tuple(x_a.shape)}: "
                    "same batch size, height and width"
                )
            rb_b = self.resolve(bands_b)
            tok_b = self.embed(x_b, rb_b)
            mixed_a, mixed_b, mixup_mask = cross_sensor_mixup(
                tok_a, tok_b, mixup_ratio, generator, mixup_mask, mixup_mode
            )
            tokens = torch.cat([mixed_a, mixed_b], dim=0)  # a' and b' as one batch of 2B
        else:
            if mixup_mask is not None:
                raise ValueError("mixup_mask needs a second image x_b")
            tokens = tok_a
            mixup_mask = torch.ones(batch, length, dtype=torch.bool, device=x_a.device)

        if visible_mask is None:
            visible_mask = random_visible_mask(batch, length, mask_ratio, generator, x_a.device)
            num_visible = round(length * (1.0 - mask_ratio))
        else:
            num_visible = check_visible_mask(visible_mask, batch, length)
            visible_mask = visible_mask.to(x_a.device)
        ids_keep, ids_restore = masking_indices(visible_mask, num_visible)
        reps = tokens.shape[0] // batch
        ids_keep, ids_restore = ids_keep.repeat(reps, 1), ids_restore.repeat(reps, 1)

        latent = self.forward_encoder(tokens, ids_keep)
        decoded = self.forward_decoder(latent, ids_restore, grid)

        rb_a, target_a = self._target(x_a, rb_a, target_a, target_bands_a, "a")
        if x_b is None:
            recon_a = self.reconstruct(decoded, rb_a, grid)
            loss = self.masked_mean(self.patch_errors(recon_a, target_a), visible_mask)
            return MAEOutput(loss, recon_a, None, visible_mask, mixup_mask)

        rb_b, target_b = self._target(x_b, rb_b, target_b, target_bands_b, "b")
        dec_a, dec_b = decoded.chunk(2, dim=0)
        m = mixup_mask.unsqueeze(-1)
        if mixup_mode == "mirrored":
            # a' and b' hold each position of a (and of b) exactly once: route tokens to owners.
            recon_a = self.reconstruct(torch.where(m, dec_a, dec_b), rb_a, grid)
            recon_b = self.reconstruct(torch.where(m, dec_b, dec_a), rb_b, grid)
            loss_a = self.masked_mean(self.patch_errors(recon_a, target_a), visible_mask)
            loss_b = self.masked_mean(self.patch_errors(recon_b, target_b), visible_mask)
        else:
            # release: a' scored against a where it holds a, against b (with b's bands) elsewhere.
            recon_a = self.reconstruct(dec_a, rb_a, grid)
            recon_b = self.reconstruct(dec_b, rb_b, grid)
            cross = self.reconstruct(dec_a, rb_b, grid)
            err_a = torch.where(
                mixup_mask,
                self.patch_errors(recon_a, target_a),
                self.patch_errors(cross, target_b),
            )
            loss_a = self.masked_mean(err_a, visible_mask)
            loss_b = self.masked_mean(self.patch_errors(recon_b, target_b), visible_mask)
        return MAEOutput(0.5 * (loss_a + loss_b), recon_a, recon_b, visible_mask, mixup_mask)

    def _target(
        self, x: torch.Tensor, rb: Any, target: torch.Tensor | None, target_bands: Any, name: str
    ) -> tuple[Any, torch.Tensor]:
        """The bands to reconstruct and their pixels: the input's own, or an explicit target."""
        if target is None:
            if target_bands is not None:
                raise ValueError(f"target_bands_{name} was given without target_{name}")
            return rb, self._kept_channels(x, rb)
        if target_bands is None:
            raise ValueError(f"target_{name} was given without target_bands_{name}")
        rb_t = self.resolve(target_bands)
        if target.ndim != 4 or target.shape[0] != x.shape[0] or target.shape[-2:] != x.shape[-2:]:
            raise ValueError(
                f"target_{name} {tuple(target.shape)} must match x_{name} {tuple(x.shape)} in "
                "batch size, height and width"
            )
        if target.shape[1] != rb_t.n_input:
            raise ValueError(
                f"target_{name} has {target.shape[1]} channels but target_bands_{name} describe "
                f"{rb_t.n_input}"
            )
        return rb_t, self._kept_channels(target, rb_t)

    # ------------------------------------------------------------------ features
    def encode(self, x: torch.Tensor, bands: Any) -> torch.Tensor:
        """Encoder features without masking: ``(B, C, H, W)`` → ``(B, 1+N, D)``, CLS first."""
        return self.forward_encoder(self.embed(x, bands))

    def cls_features(self, x: torch.Tensor, bands: Any) -> torch.Tensor:
        """CLS token after the final norm (the release's default): ``(B, D)``."""
        return self.encode(x, bands)[:, 0]

    def pooled_features(self, x: torch.Tensor, bands: Any) -> torch.Tensor:
        """Mean of the normalized patch tokens (CLS excluded): ``(B, D)``.

        The release's ``avg`` pooling applies a freshly trained ``fc_norm`` after pooling; with
        only pretrained weights we pool the final-norm tokens instead.
        """
        return self.encode(x, bands)[:, 1:].mean(dim=1)

    def patch_feature_map(self, x: torch.Tensor, bands: Any) -> torch.Tensor:
        """Patch tokens as a feature map ``(B, D, H/S, W/S)`` (for segmentation heads)."""
        gh, gw = self.patch_grid(x)
        tokens = self.encode(x, bands)[:, 1:]
        return tokens.transpose(1, 2).reshape(x.shape[0], self.embed_dim, gh, gw)

    def _pool(self, feats: torch.Tensor, pool: Pooling) -> torch.Tensor:
        if pool == "cls":
            return feats[:, 0]
        if pool == "mean":
            return feats[:, 1:].mean(dim=1)
        raise ValueError(f"pool must be 'cls' or 'mean', got {pool!r}")

    def fuse_features(
        self,
        x_a: torch.Tensor,
        bands_a: Any,
        x_b: torch.Tensor,
        bands_b: Any,
        method: FusionMethod = "mixup",
        pool: Pooling = "cls",
        ratio: float = 0.5,
        generator: torch.Generator | None = None,
        mixup_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Multi-modal features of a co-registered pair (paper Table 8).

        Args:
            x_a: ``(B, C_a, H, W)``.
            bands_a: a's bands.
            x_b: ``(B, C_b, H, W)``, same ``B, H, W``.
            bands_b: b's bands.
            method: ``"stack"``: one image with a's and b's bands stacked (the token is then the
                band-count-weighted mean of the two tokens, exactly what the projection gives for
                the stacked image) → ``(B, D)``; ``"concat"``: encode separately and concatenate
                → ``(B, 2D)``; ``"mixup"``: mirrored token mixup, encode a' and b' (one batch), and
                concatenate → ``(B, 2D)`` (best in the paper).
            pool: ``"cls"`` or ``"mean"`` per encoded image.
            ratio: mixup ratio for ``"mixup"``.
            generator: generator for the mixup draw.
            mixup_mask: explicit ``(B, N)`` mixup mask for ``"mixup"``.

        Returns:
            ``(B, D)`` or ``(B, 2D)`` features.
        """
        if x_b.shape[0] != x_a.shape[0] or x_b.shape[-2:] != x_a.shape[-2:]:
            raise ValueError(
                f"x_b {tuple(x_b.shape)} must match x_a {tuple(x_a.shape)} in batch, height, width"
            )
        rb_a, rb_b = self.resolve(bands_a), self.resolve(bands_b)
        if method == "stack":
            n_a, n_b = len(rb_a.keep), len(rb_b.keep)
            grid = self.patch_grid(x_a)
            tok = (
                n_a * self.spectrum_projection(x_a, rb_a)
                + n_b * self.spectrum_projection(x_b, rb_b)
            ) / (n_a + n_b)
            return self._pool(self.forward_encoder(tok + self._pos(grid, False, tok)), pool)
        if method == "concat":
            feats = self.forward_encoder(torch.cat([self.embed(x_a, rb_a), self.embed(x_b, rb_b)]))
        elif method == "mixup":
            mixed_a, mixed_b, _ = cross_sensor_mixup(
                self.embed(x_a, rb_a), self.embed(x_b, rb_b), ratio, generator, mixup_mask
            )
            feats = self.forward_encoder(torch.cat([mixed_a, mixed_b]))
        else:
            raise ValueError(f"method must be 'stack', 'concat' or 'mixup', got {method!r}")
        fa, fb = self._pool(feats, pool).chunk(2, dim=0)
        return torch.cat([fa, fb], dim=1)

    def forward_intermediates(
        self, x: torch.Tensor, bands: Any, return_attention: bool = False
    ) -> Intermediates:
        """Every encoder stage for one image, without masking (for widgets; no hooks needed).

        Args:
            x: ``(B, C, H, W)``.
            bands: x's bands.
            return_attention: also compute each block's softmax attention explicitly.

        Returns:
            :class:`Intermediates`.
        """
        grid = self.patch_grid(x)
        projected = self.spectrum_projection(x, bands)
        pos_embedded = projected + self._pos(grid, decoder=False, ref=projected)
        h = torch.cat(
            [self._cls().expand(x.shape[0], -1, -1).to(pos_embedded.dtype), pos_embedded], 1
        )
        outs, attns = [], [] if return_attention else None
        for blk in self.blocks:
            if attns is not None:
                attns.append(_attention_probs(blk, h))
            h = blk(h)
            outs.append(h)
        return Intermediates(projected, pos_embedded, outs, self.norm(h), attns, grid)


class _PatchSquaredError(torch.autograd.Function):
    """Per-patch mean squared error ``(B, C, H, W)`` × 2 → ``(B, N)`` (≥ float32), memory-lean."""

    @staticmethod
    def forward(ctx: Any, recon: torch.Tensor, target: torch.Tensor, patch: int) -> torch.Tensor:
        ctx.save_for_backward(recon, target)
        ctx.patch = patch
        b, c, h, w = recon.shape
        work = torch.promote_types(recon.dtype, torch.float32)  # bf16/fp16 are scored in fp32
        d = recon.to(work) - target.to(work)
        d.square_()
        return (
            d.reshape(b, c, h // patch, patch, w // patch, patch).mean(dim=(1, 3, 5)).reshape(b, -1)
        )

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:
        recon, target = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None, None
        p = ctx.patch
        b, c, h, w = recon.shape
        work = torch.promote_types(recon.dtype, torch.float32)
        scale = (grad.to(work) * (2.0 / (c * p * p))).reshape(b, 1, h // p, 1, w // p, 1)
        d = recon.to(work) - target.to(work)
        d.view(b, c, h // p, p, w // p, p).mul_(scale)
        return d.to(recon.dtype), None, None


def _layer_norm(dim: int, **kwargs: Any) -> nn.LayerNorm:
    return nn.LayerNorm(dim, eps=1e-6, **kwargs)


def _init_module(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.xavier_uniform_(m.weight)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


# ---------------------------------------------------------------------- factories
_TIMM_ONLY_KWARGS = ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir")


def _create_smarties(variant: str, pretrained: bool = False, **kwargs: Any) -> SmartiesMAE:
    if pretrained:
        raise ValueError(
            f"{variant}: smartiesviz never downloads weights; build the model and call "
            "smartiesviz.load_pretrained(model, 'smarties-v1-vitb.safetensors') with a local file"
        )
    for key in _TIMM_ONLY_KWARGS:
        kwargs.pop(key, None)
    model = SmartiesMAE(**kwargs)
    model.arch_name = variant
    return model


@register_model
def smarties_vit_tiny_patch8(pretrained: bool = False, **kwargs: Any) -> SmartiesMAE:
    """Tiny CPU-sized model: D 192, depth 4, 3 heads; decoder 128 wide, 2 blocks, 4 heads; 64²."""
    model_args = dict(img_size=64, patch_size=8, embed_dim=192, depth=4, num_heads=3,
                      decoder_embed_dim=128, decoder_depth=2, decoder_num_heads=4)  # fmt: skip
    return _create_smarties("smarties_vit_tiny_patch8", pretrained, **dict(model_args, **kwargs))


@register_model
def smarties_vit_small_patch16(pretrained: bool = False, **kwargs: Any) -> SmartiesMAE:
    """ViT-S/16: D 384, depth 12, 6 heads; decoder 256 wide, 4 blocks, 8 heads; 224²."""
    model_args = dict(patch_size=16, embed_dim=384, depth=12, num_heads=6,
                      decoder_embed_dim=256, decoder_depth=4, decoder_num_heads=8)  # fmt: skip
    return _create_smarties("smarties_vit_small_patch16", pretrained, **dict(model_args, **kwargs))


@register_model
def smarties_vit_base_patch16(pretrained: bool = False, **kwargs: Any) -> SmartiesMAE:
    """ViT-B/16, released shapes: D 768, depth 12, 12 heads; decoder 512/8/16; 224²."""
    model_args = dict(patch_size=16, embed_dim=768, depth=12, num_heads=12)
    return _create_smarties("smarties_vit_base_patch16", pretrained, **dict(model_args, **kwargs))


@register_model
def smarties_vit_large_patch16(pretrained: bool = False, **kwargs: Any) -> SmartiesMAE:
    """ViT-L/16, released shapes: D 1024, depth 24, 16 heads; decoder 512/8/16; 224²."""
    model_args = dict(patch_size=16, embed_dim=1024, depth=24, num_heads=16)
    return _create_smarties("smarties_vit_large_patch16", pretrained, **dict(model_args, **kwargs))
