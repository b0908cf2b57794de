"""Spectrum-aware tokenization: each band through the projection layer of its wavelength range.

For an image with bands ``c = 1..C``, band ``c`` resolved to layer weights ``w[c, l]`` (one-hot for
a learned range, convex for an interpolated one), and a patch ``p_c`` of band ``c`` flattened to
``S²`` values, the token is::

    t = 12 · (1/C) Σ_c Σ_l w[c, l] · (W_l p_c + b_l)

Because this is linear in the patches, it equals one ``Conv2d(C → D, kernel S, stride S)`` whose
kernel for channel ``c`` is ``(12/C) Σ_l w[c, l] W_l``. We assemble that *effective* kernel from the
17 layers (a small ``(C, U) × (U, D, S²)`` product over the ``U`` layers in use) and run a single
convolution: no ``(B, N, C, D)`` tensor is ever built, and the cost is that of a plain patch
embedding. The reprojection heads use the same trick with ``Linear(D_dec, S²)`` layers.

The factor 12 is the most bands seen in pretraining; the release tiles each image to 12 band slots,
which leaves the mean, and so the token, unchanged.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from smartiesviz.spectrum import NUM_LAYERS, ResolvedBands, Sensor, resolve_bands
from smartiesviz.spectrum.resolve import BandsArg

TOKEN_SCALE = 12.0


#: Largest ``|value|`` accepted in model units. Normalized inputs are O(1); the model squares its
#: activations (LayerNorm, the loss) and float32 overflows above ~1.8e19, so larger finite values
#: would silently turn into NaN features.
MAX_MAGNITUDE = 1e15
#: Above this ``|value|`` an input is most likely raw digital numbers (e.g. Sentinel-2 DN 0–10000),
#: not normalized units (z-scores): a warning, not an error.
DN_MAGNITUDE = 100.0
#: Most token values (``B · N · D``) one forward pass may build: 2³² float32 values are 16 GiB,
#: e.g. a batch of 16 images of 8192×8192 px at patch 16 and D = 1024. Larger images go through
#: tiling (:func:`smartiesviz.data.tile`) or :func:`smartiesviz.predict.embed`, which stream windows.
MAX_TOKEN_VALUES = 2**32
#: Most input values (``B · C · H · W``) one forward pass reads (2³⁵: 128 GiB of float32).
MAX_INPUT_VALUES = 2**35


def check_size(x: torch.Tensor, patch_size: int, embed_dim: int, per_band: bool = False) -> None:
    """Refuse an image batch whose tokens would exceed :data:`MAX_TOKEN_VALUES`, before any
    allocation or reduction (a huge expanded view costs no memory, but reading it never ends).

    ``per_band``: the tokens are kept per band, ``(B, N, C, D)`` (:meth:`band_embeddings`).
    """
    if x.ndim != 4:
        return  # check_image names the shape
    b, c, h, w = x.shape
    tokens = b * (h // patch_size) * (w // patch_size)
    values = tokens * embed_dim * (c if per_band else 1)
    for what, n, limit, name in (
        ("input values", b * c * h * w, MAX_INPUT_VALUES, "MAX_INPUT_VALUES"),
        ("token values", values, MAX_TOKEN_VALUES, "MAX_TOKEN_VALUES"),
    ):
        if n > limit:
            raise ValueError(
                f"image batch {tuple(x.shape)} is too large for one forward pass: {n:.3g} "
                f"{what} ({n * 4 / 2**30:.3g} GiB in float32; {tokens} tokens of width "
                f"{embed_dim}) exceed the limit of {limit:.3g} "
                f"(smartiesviz.models.tokenizer.{name}). Tile the image (smartiesviz.data.tile) "
                "or use smartiesviz.predict.embed (`smartiesviz embed`), which streams it in windows"
            )


def patch_grid_shape(h: int, w: int, patch_size: int, what: str = "image size") -> tuple[int, int]:
    """``(h/S, w/S)``: the patch grid of an ``h × w`` image; the one "divisible by the patch size"
    check, whose error suggests the crop and the pad size."""
    s = int(patch_size)
    if h % s or w % s:
        raise ValueError(
            f"{what} {h}×{w} is not divisible by the patch size {s}; crop or resize to "
            f"{h // s * s}×{w // s * s} or {-(-h // s) * s}×{-(-w // s) * s}"
        )
    return h // s, w // s


def check_image(x: torch.Tensor, rb: ResolvedBands, patch_size: int) -> None:
    """Validate an image batch's shape and dtype against its bands and the patch size."""
    if x.ndim != 4:
        raise ValueError(f"expected a channel-first batch (B, C, H, W); got shape {tuple(x.shape)}")
    _, c, h, w = x.shape
    if c != rb.n_input:
        raise ValueError(
            f"the image has {c} channels but {rb.n_input} bands were given "
            f"({', '.join(b.name for b in rb.bands) + (' + dropped ' + ', '.join(rb.dropped) if rb.dropped else '')})"
        )
    patch_grid_shape(h, w, patch_size)
    if not x.is_floating_point():
        raise TypeError(
            f"expected a floating-point image in model units; got {x.dtype} (normalize it first)"
        )


def check_values(x: torch.Tensor, rb: ResolvedBands) -> torch.Tensor | None:
    """Refuse NaN, inf and overflowing values, per band; return the per-band peak ``|x|``.

    Two reductions per band (max and min, which propagate NaN), no ``(B, C, H, W)`` temporary.
    On CUDA the check is asserted asynchronously (no host sync) and None is returned.

    Returns:
        ``(C,)`` largest ``|value|`` of each channel (CPU), or None (CUDA).

    Raises:
        ValueError: naming each offending band with its count of NaN/inf values or its largest
            magnitude, and what to do.
    """
    x = x.detach()
    peak = torch.maximum(x.amax(dim=(0, 2, 3)), -x.amin(dim=(0, 2, 3)))  # (C,), NaN if any NaN
    ok = peak <= MAX_MAGNITUDE
    if x.is_cuda:
        torch._assert_async(ok.all(), "input holds NaN, inf or values beyond ±1e15 (model units)")
        return None
    if bool(ok.all()):
        return peak
    bad = []
    for name, n, p in zip(_all_names(rb), (~torch.isfinite(x)).sum(dim=(0, 2, 3)).tolist(),
                          peak.tolist(), strict=True):  # fmt: skip
        if n:
            bad.append(f"{name}: {n} NaN or inf")
        elif not p <= MAX_MAGNITUDE:
            bad.append(f"{name}: |x| up to {p:.3g}")
    raise ValueError(
        f"input contains NaN or inf values, or values beyond ±{MAX_MAGNITUDE:g} that overflow "
        f"float32 arithmetic in the model (per band: {'; '.join(bad)}). Mask nodata and "
        "normalize first, e.g. with smartiesviz.data.normalize, which fills and reports nodata"
    )


def check_bands(bands: BandsArg) -> BandsArg:
    """Refuse what is not a band argument before resolving it (e.g. an int for a list)."""
    if isinstance(bands, str | Sensor | ResolvedBands):
        return bands
    if not isinstance(bands, Iterable) or isinstance(bands, bytes | Mapping):
        raise TypeError(
            "bands must be a sensor name ('sentinel2-l2a'), a list of band specs "
            "(['sentinel2-l2a/B04', 'sentinel2-l2a/B03'], release range names such as 'red_1', or "
            f"(min_nm, max_nm) pairs) or a ResolvedBands; got {type(bands).__name__} {bands!r}"
        )
    return bands


def check_distinct(rb: ResolvedBands) -> ResolvedBands:
    """Refuse a band list that repeats some bands more often than others.

    The token is a mean over bands, so ``[B04, B04, B03]`` would silently weigh B04 double. A list
    in which *every* band appears equally often (the release's tiling of ``[red, green, blue]`` to
    12 slots) leaves the mean, and so the token, unchanged, and is accepted.
    """
    names = rb.qualified_names
    counts = {n: names.count(n) for n in names}
    if len(set(counts.values())) > 1:
        twice = [n for n, k in counts.items() if k > min(counts.values())]
        raise ValueError(
            f"band(s) {', '.join(twice)} appear more often than the others in the band list "
            f"{names}; pass each band once (the token is a mean over bands, so a repeated band "
            "would count double)"
        )
    return rb


def _all_names(rb: ResolvedBands) -> list[str]:
    names = dict(zip(rb.keep, rb.names, strict=True))
    dropped = iter(rb.dropped)
    return [names[i] if i in names else next(dropped, f"channel {i}") for i in range(rb.n_input)]


def patchify(x: torch.Tensor, patch_size: int) -> torch.Tensor:
    """``(B, C, H, W)`` → ``(B, N, C, S²)``, patches row-major, pixels row-major in each patch."""
    b, c, h, w = x.shape
    s = patch_size
    x = x.reshape(b, c, h // s, s, w // s, s)
    return x.permute(0, 2, 4, 1, 3, 5).reshape(b, (h // s) * (w // s), c, s * s)


def unpatchify(patches: torch.Tensor, grid: tuple[int, int], patch_size: int) -> torch.Tensor:
    """``(B, N, C, S²)`` → ``(B, C, H, W)`` for a ``grid = (H/S, W/S)``; inverse of :func:`patchify`."""
    b, n, c, _ = patches.shape
    gh, gw = grid
    if gh * gw != n:
        raise ValueError(f"grid {grid} holds {gh * gw} patches but {n} were given")
    s = patch_size
    x = patches.reshape(b, gh, gw, c, s, s).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, c, gh * s, gw * s)


class _LayerBank(nn.Module):
    """17 ``nn.Linear`` layers in released order, combined by band weights."""

    def __init__(self, in_features: int, out_features: int, num_layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(in_features, out_features) for _ in range(num_layers))

    def band_weights(
        self, rb: ResolvedBands, ref: torch.Tensor, scale: float = 1.0
    ) -> torch.Tensor:
        """``rb.weights`` restricted to the used layers, ``(C, U)``, times ``scale``."""
        w = rb.weights[:, list(rb.used_layers)] * scale
        return w.to(device=ref.device, dtype=self.layers[0].weight.dtype)

    def combine(
        self, rb: ResolvedBands, ref: torch.Tensor, scale: float = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-band effective weights ``(out, C, in)`` and summed-ready biases ``(C, out)``.

        One batched matmul over the ``U`` used layers: ``(C, U) @ (out, U, in) → (out, C, in)``.
        """
        w = self.band_weights(rb, ref, scale)
        weight = torch.stack([self.layers[i].weight for i in rb.used_layers], dim=1)  # (out, U, in)
        bias = torch.stack([self.layers[i].bias for i in rb.used_layers])  # (U, out)
        return torch.matmul(w, weight), w @ bias


class SpectrumAwareProjection(_LayerBank):
    """Tokenize images of any sensor: ``(B, C, H, W)`` + bands → ``(B, N, D)``.

    Args:
        embed_dim: token width ``D``.
        patch_size: patch side ``S``; each layer is ``Linear(S², D)``.
        num_layers: number of learned layers (17 in the release).
        scheme: default interpolation scheme for bands without a learned layer.
        token_scale: the factor on the mean over bands (12 in the release).

    Attributes:
        layers: ``nn.ModuleList`` of ``Linear(S², D)``, index = released layer index.
    """

    def __init__(
        self,
        embed_dim: int,
        patch_size: int,
        num_layers: int = NUM_LAYERS,
        scheme: str = "inverse-distance",
        token_scale: float = TOKEN_SCALE,
    ) -> None:
        super().__init__(patch_size * patch_size, embed_dim, num_layers)
        self.embed_dim = embed_dim
        self.patch_size = patch_size
        self.scheme = scheme
        self.token_scale = token_scale
        #: check inputs for NaN/inf/overflow (an error) and raw DN (a warning once); skipped
        #: under ``torch.compile``
        self.check_finite = True
        self._warned_unnormalized = False
        self._kernel_cache: dict = {}

    def resolve(self, bands: BandsArg) -> ResolvedBands:
        """``ResolvedBands`` for a band argument; refuses non-band arguments and repeated bands."""
        return check_distinct(resolve_bands(check_bands(bands), self.scheme))

    def check_input(self, x: torch.Tensor, rb: ResolvedBands) -> None:
        """Size, shape, dtype and (unless ``check_finite`` is off or compiling) value checks."""
        check_size(x, self.patch_size, self.embed_dim)
        check_image(x, rb, self.patch_size)
        if not self.check_finite or torch.compiler.is_compiling():
            return
        peak = check_values(x, rb)
        if not self._warned_unnormalized:
            self._warn_if_unnormalized(x, rb, peak)

    def _warn_if_unnormalized(
        self, x: torch.Tensor, rb: ResolvedBands, peak: torch.Tensor | None
    ) -> None:
        """Warn (once per projection) when values look like raw digital numbers.

        On CPU the per-band peaks of :func:`check_values` are reused; on CUDA the first call reads
        the peak of a strided subsample back (one host sync) and later calls skip the check.
        """
        if peak is None:
            self._warned_unnormalized = True  # CUDA: check the first batch only
            top, value = None, float(x[:, :, ::7, ::7].detach().abs().amax())
        else:
            top = int(peak.argmax())
            value = float(peak[top])
        if value > DN_MAGNITUDE:
            self._warned_unnormalized = True
            where = f" (band {_all_names(rb)[top]})" if top is not None else ""
            warnings.warn(
                f"input values reach {value:.4g}{where}, but the model expects normalized units "
                "(z-scores, mostly within ±5): this looks like raw digital numbers (e.g. "
                "Sentinel-2 DN 0–10000). Normalize first with smartiesviz.data.normalize(cube)",
                UserWarning,
                stacklevel=4,
            )

    def effective_kernel(
        self, rb: ResolvedBands, ref: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Conv kernel ``(D, C, S, S)`` and bias ``(D,)`` equivalent to the per-band layers.

        Without autograd (inference, widgets) the kernel is cached per band set until a layer's
        weights change (tracked by their in-place version counters).
        """
        key = None
        if not torch.is_grad_enabled():
            key = (
                id(rb),
                ref.device,
                tuple(self.layers[i].weight._version for i in rb.used_layers),
                tuple(self.layers[i].bias._version for i in rb.used_layers),
            )
            cached = self._kernel_cache.get(key)
            if cached is not None and cached[0] is rb:
                return cached[1], cached[2]
        weight, bias = self.combine(rb, ref, self.token_scale / len(rb))  # (D, C, S²), (C, D)
        s = self.patch_size
        kernel = weight.view(self.embed_dim, len(rb), s, s)
        bias = bias.sum(0)
        if key is not None:
            if len(self._kernel_cache) > 32:
                self._kernel_cache.clear()
            self._kernel_cache[key] = (rb, kernel, bias)
        return kernel, bias

    def band_embeddings(self, x: torch.Tensor, bands: BandsArg) -> torch.Tensor:
        """Each band's embedding separately, ``(B, N, C, D)``: for teaching and tests only."""
        rb = self.resolve(bands)
        check_size(x, self.patch_size, self.embed_dim, per_band=True)
        self.check_input(x, rb)
        weight, bias = self.combine(rb, x)  # (D, C, S²), (C, D)
        patches = patchify(x[:, list(rb.keep)], self.patch_size)  # (B, N, C, S²)
        return torch.einsum("bncs,dcs->bncd", patches, weight) + bias

    def forward(self, x: torch.Tensor, bands: BandsArg) -> torch.Tensor:
        """Args: x ``(B, C, H, W)`` in model units; bands for its C channels. Returns ``(B, N, D)``."""
        rb = self.resolve(bands)
        self.check_input(x, rb)
        if not rb.all_kept:
            x = x[:, list(rb.keep)]
        kernel, bias = self.effective_kernel(rb, x)
        tokens = F.conv2d(
            x, kernel.to(x.dtype), bias.to(x.dtype), stride=self.patch_size
        )  # (B, D, H/S, W/S)
        return tokens.flatten(2).transpose(1, 2)


class SpectrumAwareReprojection(_LayerBank):
    """Per-band reconstruction heads: decoded tokens ``(B, N, D_dec)`` → ``(B, N, C, S²)``.

    Band ``c`` of a position is ``Σ_l w[c, l] (V_l h + a_l)`` with ``V_l`` the ``Linear(D_dec, S²)``
    of layer ``l``: the same band resolution as the tokenizer, computed as one linear map.
    """

    def __init__(
        self,
        in_dim: int,
        patch_size: int,
        num_layers: int = NUM_LAYERS,
        scheme: str = "inverse-distance",
    ) -> None:
        super().__init__(in_dim, patch_size * patch_size, num_layers)
        self.patch_size = patch_size
        self.scheme = scheme

    def forward(self, h: torch.Tensor, bands: BandsArg) -> torch.Tensor:
        rb = resolve_bands(bands, self.scheme)
        weight, bias = self.combine(rb, h)  # (S², C, D_dec), (C, S²)
        p, c, d = weight.shape
        out = F.linear(h, weight.transpose(0, 1).reshape(c * p, d), bias.reshape(c * p))
        return out.unflatten(-1, (c, p))
