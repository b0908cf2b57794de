"""SMARTIES masked auto-encoder with cross-sensor token mixup.

Reads like MAE's ``models_mae.py``; :meth:`SmartiesMAE.forward` runs named stages::

    check_inputs → embed (tokenize + pos-embed) → mix → mask → forward_encoder → forward_decoder
    → forward_loss

Mask convention (the one used everywhere in smartiesviz): a mask is a ``(B, N)`` bool tensor over
the patch positions in row-major order, and **True means kept**:

* ``visible_mask``: True where the encoder sees the position (one mask shared by a' and b');
* ``mixup_mask``: True where a' holds a's own token (and, in ``"mirrored"`` mode, b' holds b's);
  False where the tokens were exchanged.

What is SMARTIES-specific:

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

The factories (``smarties_vit_*``, registered with timm) live in
:mod:`smartiesviz.models.factories`; multi-modal feature fusion in :mod:`smartiesviz.models.features`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from smartiesviz.models import features
from smartiesviz.models.losses import patch_squared_error
from smartiesviz.models.mixup import (
    MaskingResult,
    cross_sensor_mixup,
    gather_tokens,
    random_masking,
)
from smartiesviz.models.pos_embed import interpolate_pos_embed, sincos_pos_embed
from smartiesviz.models.tokenizer import SpectrumAwareReprojection
from smartiesviz.models.vit import ViTEncoder, layer_norm, vit_blocks
from smartiesviz.options import (
    FusionMethod,
    MixupMode,
    Pooling,
    PosEmbedMode,
    TokenNorm,
    check_option,
)
from smartiesviz.spectrum import ResolvedBands
from smartiesviz.spectrum.resolve import BandsArg

__all__ = ["MAEOutput", "ImageInput", "SmartiesMAE"]


@dataclass
class MAEOutput:
    """Result of one :class:`SmartiesMAE` forward pass (masks as in the module docstring).

    Attributes:
        loss: scalar tensor.
        recon_a: ``(B, C_a, H, W)`` reconstruction of a's kept bands, normalized units.
        recon_b: ``(B, C_b, H, W)`` reconstruction of b, or None for a single image.
        visible_mask: ``(B, N)`` bool visible mask (shared by a', b').
        mixup_mask: ``(B, N)`` bool mixup mask.
    """

    loss: torch.Tensor
    recon_a: torch.Tensor
    recon_b: torch.Tensor | None
    visible_mask: torch.Tensor
    mixup_mask: torch.Tensor


class ImageInput(NamedTuple):
    """One checked image of a forward pass (a NamedTuple: free under ``torch.compile``).

    Attributes:
        x: ``(B, C, H, W)`` input, normalized.
        bands: its resolved bands.
        target: ``(B, C_t, H, W)`` image to reconstruct: ``x`` itself, or an explicit target.
        target_bands: the target's resolved bands.
    """

    x: torch.Tensor
    bands: ResolvedBands
    target: torch.Tensor
    target_bands: ResolvedBands

    def target_pixels(self) -> torch.Tensor:
        """The target channels the reprojection produces (``target_bands.keep``)."""
        return _kept_channels(self.target, self.target_bands)


class SmartiesMAE(ViTEncoder):
    """SMARTIES pretraining model: spectrum-aware ViT MAE with cross-sensor mixup.

    The encoder is the shared :class:`~smartiesviz.models.vit.ViTEncoder` (``encode``,
    ``cls_features``, ``pooled_features``, ``patch_feature_map``, ``intermediate_maps``); this
    class adds masking, mixup, the decoder and the loss.

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
        check_option("pos_embed_mode", pos_embed_mode, PosEmbedMode)
        # the encoder first (projection, CLS, blocks, norm): the random initialisation's order
        super().__init__(img_size, patch_size, embed_dim, depth, num_heads, mlp_ratio, num_layers)
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
        self.decoder_embed_dim = decoder_embed_dim
        self.pos_embed_mode = pos_embed_mode
        # decoder
        self.decoder_embed = nn.Linear(embed_dim, decoder_embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_embed_dim))
        self.decoder_blocks = vit_blocks(
            decoder_embed_dim, decoder_depth, decoder_num_heads, mlp_ratio
        )
        self.decoder_norm = layer_norm(decoder_embed_dim)
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
    def resolve(self, bands: BandsArg) -> ResolvedBands:
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

    def patch_pos(self, grid: tuple[int, int], ref: torch.Tensor) -> torch.Tensor:
        """The encoder's ``(1, N, D)`` positional table for ``grid`` (see :meth:`_pos`)."""
        return self._pos(grid, decoder=False, ref=ref)

    def cls_row(self) -> torch.Tensor:
        """``(1, 1, D)`` CLS token with its positional vector (zero for sin-cos)."""
        if self.pos_embed is not None:
            return self.cls_token + self.pos_embed[:, :1]
        return self.cls_token

    # ------------------------------------------------------------------ stages
    def forward_encoder(
        self,
        tokens: torch.Tensor,
        ids_keep: torch.Tensor | None = None,
        token_norm: TokenNorm = "post-norm",
    ) -> torch.Tensor:
        """Encoder on (optionally) the visible tokens.

        Args:
            tokens: ``(B, N, D)`` tokens with positional encoding.
            ids_keep: ``(B, K)`` visible positions, or None for all.
            token_norm: ``"post-norm"`` applies the final LayerNorm (pretraining, CLS features);
                ``"pre-norm"`` returns the last block's output (the release's ``all_tokens``).

        Returns:
            ``(B, 1+K, D)``, CLS first.
        """
        return self.normed(self.encode_tokens(tokens, ids_keep), token_norm)

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
        return patch_squared_error(recon, target, self.patch_size)

    @staticmethod
    def masked_mean(err: torch.Tensor, visible_mask: torch.Tensor) -> torch.Tensor:
        """Mean of ``(B, N)`` errors over hidden positions (0 when nothing is hidden)."""
        hidden = (~visible_mask).to(err.dtype)
        return (err * hidden).sum() / hidden.sum().clamp_min(1.0)

    # ------------------------------------------------------------------ forward
    def forward(
        self, x_a: torch.Tensor, bands_a: BandsArg, x_b: torch.Tensor | None = None,
        bands_b: BandsArg | None = None, mask_ratio: float = 0.75, mixup_ratio: float = 0.5,
        generator: torch.Generator | None = None, mixup_mask: torch.Tensor | None = None,
        visible_mask: torch.Tensor | None = None, mixup_mode: MixupMode = "mirrored",
        target_a: torch.Tensor | None = None, target_bands_a: BandsArg | None = None,
        target_b: torch.Tensor | None = None, target_bands_b: BandsArg | None = None,
    ) -> MAEOutput:  # fmt: skip
        """One pretraining step's forward pass (arguments: see :meth:`check_inputs`).

        Returns:
            :class:`MAEOutput`.
        """
        a, b = self.check_inputs(
            x_a, bands_a, x_b, bands_b, mixup_mask, mixup_mode,
            target_a, target_bands_a, target_b, target_bands_b,
        )  # fmt: skip
        grid = self.patch_grid(x_a)
        tokens_a = self.embed(a.x, a.bands)
        tokens_b = None if b is None else self.embed(b.x, b.bands)
        tokens, mixup_mask = self.mix(
            tokens_a, tokens_b, mixup_ratio, generator, mixup_mask, mixup_mode
        )
        masking = self.mask(tokens, x_a.shape[0], mask_ratio, generator, visible_mask)
        latent = self.forward_encoder(masking.visible)
        decoded = self.forward_decoder(latent, masking.ids_restore, grid)
        return self.forward_loss(decoded, a, b, masking.visible_mask, mixup_mask, mixup_mode, grid)

    def check_inputs(
        self, x_a: torch.Tensor, bands_a: BandsArg, x_b: torch.Tensor | None,
        bands_b: BandsArg | None, mixup_mask: torch.Tensor | None, mixup_mode: MixupMode,
        target_a: torch.Tensor | None, target_bands_a: BandsArg | None,
        target_b: torch.Tensor | None, target_bands_b: BandsArg | None,
    ) -> tuple[ImageInput, ImageInput | None]:  # fmt: skip
        """Check the arguments of :meth:`forward` (every check of the forward pass lives here).

        Args:
            x_a: ``(B, C_a, H, W)`` image a, normalized.
            bands_a: a's bands (sensor name, band specs, or ResolvedBands).
            x_b: optional ``(B, C_b, H, W)`` co-registered image b.
            bands_b: b's bands (required with ``x_b``).
            mixup_mask: explicit ``(B, N)`` bool mixup mask (needs ``x_b``; any count).
            mixup_mode: ``"mirrored"`` (paper) or ``"as-released"`` (b' = b).
            target_a: optional ``(B, C_t, H, W)`` image to reconstruct instead of ``x_a``, with
                ``target_bands_a``: e.g. all 12 bands of a tile whose input ``x_a`` kept only a
                subset, so that training teaches the decoder to predict bands the input lacked
                (cross-spectral prediction). ``recon_a`` then has the target's bands.
            target_bands_a: the bands of ``target_a``.
            target_b, target_bands_b: the same for image b.

        Also, in :meth:`forward`: ``mask_ratio`` (fraction of positions hidden from the
        encoder), ``mixup_ratio`` (fraction of a' positions taken from b), ``generator`` (for the
        mixup and masking draws, mixup drawn first) and ``visible_mask`` (explicit ``(B, N)``
        bool visible mask with the same count per sample; checked where it is used, by
        :func:`random_masking`, so that its one read-back happens once).

        Returns:
            ``(a, b)``: :class:`ImageInput` records; ``b`` is None for a single image.
        """
        check_option("mixup_mode", mixup_mode, MixupMode)
        self.patch_grid(x_a)
        a = self._image_input(x_a, bands_a, target_a, target_bands_a, "a")
        if x_b is None:
            given = {"bands_b": bands_b, "mixup_mask": mixup_mask, "target_b": target_b,
                     "target_bands_b": target_bands_b}  # fmt: skip
            if extra := [k for k, v in given.items() if v is not None]:
                raise ValueError(f"{', '.join(extra)} given without a second image x_b")
            return a, None
        if bands_b is None:
            raise ValueError("x_b was given without bands_b; pass the bands of image b")
        if x_b.ndim != 4 or x_b.shape[0] != x_a.shape[0] or x_b.shape[-2:] != x_a.shape[-2:]:
            raise ValueError(
                f"x_b {tuple(x_b.shape)} must be co-registered with x_a {tuple(x_a.shape)}: "
                "same batch size, height and width"
            )
        return a, self._image_input(x_b, bands_b, target_b, target_bands_b, "b")

    def _image_input(
        self, x: torch.Tensor, bands: BandsArg, target: torch.Tensor | None,
        target_bands: BandsArg | None, name: str,
    ) -> ImageInput:  # fmt: skip
        """One image's record: its bands, and what to reconstruct (itself or the explicit target)."""
        rb = self.resolve(bands)
        if target is None:
            if target_bands is not None:
                raise ValueError(f"target_bands_{name} was given without target_{name}")
            return ImageInput(x, rb, x, rb)
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
        return ImageInput(x, rb, target, rb_t)

    def mix(
        self, tokens_a: torch.Tensor, tokens_b: torch.Tensor | None, ratio: float,
        generator: torch.Generator | None, mixup_mask: torch.Tensor | None, mode: MixupMode,
    ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """Cross-sensor mixup: ``(B, N, D)`` tokens of a (and b) → the encoder's batch and the mask.

        Returns:
            ``(tokens, mixup_mask)``: ``(2B, N, D)`` a' and b' as one batch (``(B, N, D)`` a for a
            single image) and the ``(B, N)`` mixup mask (all True for a single image).
        """
        if tokens_b is None:
            return tokens_a, torch.ones(tokens_a.shape[:2], dtype=torch.bool, device=tokens_a.device)
        mixed_a, mixed_b, mixup_mask = cross_sensor_mixup(
            tokens_a, tokens_b, ratio, generator, mixup_mask, mode
        )
        return torch.cat([mixed_a, mixed_b], dim=0), mixup_mask

    def mask(
        self, tokens: torch.Tensor, batch: int, mask_ratio: float,
        generator: torch.Generator | None, visible_mask: torch.Tensor | None,
    ) -> MaskingResult:  # fmt: skip
        """MAE random masking of ``(G·B, N, D)`` tokens, one visible mask per sample shared by the
        ``G`` groups (a' and b'): see :func:`random_masking`."""
        groups = tokens.shape[0] // batch
        return random_masking(tokens, mask_ratio, generator, visible_mask, groups)

    def forward_loss(
        self, decoded: torch.Tensor, a: ImageInput, b: ImageInput | None,
        visible_mask: torch.Tensor, mixup_mask: torch.Tensor, mode: MixupMode,
        grid: tuple[int, int],
    ) -> MAEOutput:  # fmt: skip
        """Reconstructions and the loss (see the module docstring) from the decoded tokens.

        Args:
            decoded: ``(B, N, D_dec)`` (single image) or ``(2B, N, D_dec)`` (a' then b') tokens.
        """
        target_a = a.target_pixels()
        if b is None:
            recon_a = self.reconstruct(decoded, a.target_bands, grid)
            loss = self.masked_mean(self.patch_errors(recon_a, target_a), visible_mask)
            return MAEOutput(loss, recon_a, None, visible_mask, mixup_mask)
        target_b = b.target_pixels()
        dec_a, dec_b = decoded.chunk(2, dim=0)
        if mode == "mirrored":
            # a' and b' hold each position of a (and of b) exactly once: route tokens to owners.
            m = mixup_mask.unsqueeze(-1)
            recon_a = self.reconstruct(torch.where(m, dec_a, dec_b), a.target_bands, grid)
            recon_b = self.reconstruct(torch.where(m, dec_b, dec_a), b.target_bands, grid)
            err_a = self.patch_errors(recon_a, target_a)
        else:
            # release: a' scored against a where it holds a, against b (with b's bands) elsewhere.
            recon_a = self.reconstruct(dec_a, a.target_bands, grid)
            recon_b = self.reconstruct(dec_b, b.target_bands, grid)
            cross = self.reconstruct(dec_a, b.target_bands, grid)
            err_a = torch.where(
                mixup_mask,
                self.patch_errors(recon_a, target_a),
                self.patch_errors(cross, target_b),
            )
        loss_a = self.masked_mean(err_a, visible_mask)
        loss_b = self.masked_mean(self.patch_errors(recon_b, target_b), visible_mask)
        return MAEOutput(0.5 * (loss_a + loss_b), recon_a, recon_b, visible_mask, mixup_mask)

    # ------------------------------------------------------------------ features
    def fuse_features(
        self, x_a: torch.Tensor, bands_a: BandsArg, x_b: torch.Tensor, bands_b: BandsArg,
        method: FusionMethod = "mixup", pool: Pooling = "cls", ratio: float = 0.5,
        generator: torch.Generator | None = None, mixup_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:  # fmt: skip
        """Multi-modal features of a co-registered pair (paper Table 8): ``(B, D)`` or ``(B, 2D)``.

        See :func:`smartiesviz.models.features.fuse_features` for the arguments.
        """
        return features.fuse_features(
            self, x_a, bands_a, x_b, bands_b, method, pool, ratio, generator, mixup_mask
        )


def _init_module(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.xavier_uniform_(m.weight)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


def _kept_channels(x: torch.Tensor, rb: ResolvedBands) -> torch.Tensor:
    """The input channels the tokenizer uses (``rb.keep``) → ``(B, C_kept, H, W)``."""
    keep = rb.keep.tolist() if isinstance(rb.keep, torch.Tensor) else list(rb.keep)
    if keep == list(range(x.shape[1])):
        return x
    return x.index_select(1, torch.as_tensor(keep, dtype=torch.long, device=x.device))
