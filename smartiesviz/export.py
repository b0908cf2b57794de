"""Export the SMARTIES encoder for one fixed band set to ONNX.

For a fixed band set the spectrum-aware projection is one convolution (see
:mod:`smartiesviz.models.tokenizer`): :class:`BakedEncoder` stores that *effective* kernel
``(D, C, S, S)``, the encoder's positional table, and the encoder blocks, so the exported graph
is a plain ViT: ``x (B, C, H, W)`` → ``cls (B, D)`` (the CLS after the final norm, or the
``fc_norm`` patch mean) and ``tokens (B, D, H/S, W/S)``: the patch tokens as ``token_norm`` says
(:data:`~smartiesviz.options.TokenNorm`; by default ``"pre-norm"``, the release's
``all_tokens`` map, before the final norm). The blocks run through the shared encoder's stages
(:func:`smartiesviz.models.vit.run_blocks`, :func:`~smartiesviz.models.vit.apply_token_norm`). Batch, height and width are dynamic (``H`` and ``W`` multiples
of ``S``; the table is resampled bicubically in the graph, as the eager encoder does);
``dynamic_size=False`` fixes the size and stores the table of that size. The bands are fixed.

The file carries its own description as ONNX metadata (``metadata_props``; read with
``onnxruntime.InferenceSession(path).get_modelmeta().custom_metadata_map``), all strings:

``bands`` (JSON list, input order), ``unused_bands`` (inputs read but without a SMARTIES layer,
such as Landsat-8 B9 or Sentinel-2 B10: they reach no output), ``normalization`` (JSON: the
release's formula and per-band ``p1, p99, mean, std``, ``null`` for a band the release has no
statistics for), ``checkpoint`` and ``checkpoint_sha256``, ``token_norm`` (the
:data:`~smartiesviz.options.TokenNorm` of ``tokens``: ``"pre-norm"`` is the release's
``all_tokens``; the same key as ``smartiesviz embed``'s GeoTIFF tags), ``cls_output``, ``input``,
``patch_size``, ``embed_dim``, ``pos_embed_grid``, ``dynamic_size``, ``smartiesviz_version``.

Uses PyTorch's ``torch.export``-based ONNX exporter (``torch.onnx.export(dynamo=True)``, which
needs ``onnxscript``; it works offline). The file is written to a temporary name beside ``out``
and renamed when complete (:func:`smartiesviz.outputs.atomic_path`); an existing ``out`` is kept
unless ``overwrite=True``, and never replaced when it is the checkpoint or a special file.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from smartiesviz import __version__, outputs
from smartiesviz.errors import UserError
from smartiesviz.integrations.benchmark_bands import band_release_stats
from smartiesviz.models.demo import demo_weights_path
from smartiesviz.models.encoder import SmartiesEncoder
from smartiesviz.models.vit import apply_token_norm, run_blocks, tokens_to_map
from smartiesviz.options import DEFAULT_TOKEN_NORM, TokenNorm, check_option
from smartiesviz.spectrum import NoLayerError, OutOfSpectrumError
from smartiesviz.spectrum.resolve import BandsArg, parse_bands

__all__ = [
    "BakedEncoder",
    "ExportResult",
    "bake_encoder",
    "export_onnx",
    "onnx_metadata",
    "parse_bands_spec",
]
#: what the ``tokens`` output holds, by token normalisation (the file's ``tokens_output``)
_TOKENS_OUTPUT = {
    "pre-norm": "patch tokens after the last block, before the final norm (the release's "
                "all_tokens), (batch, D, H/S, W/S)",
    "post-norm": "patch tokens after the final norm, (batch, D, H/S, W/S)",
}  # fmt: skip


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_onnx` wrote.

    Attributes:
        path: the ``.onnx`` file.
        bands: the input channels, in order (qualified names).
        input_shape: ``(batch, C, H, W)``; dynamic dimensions are ``-1``.
        embed_dim: ``D``; grid: ``(H/S, W/S)`` of the export's example size.
        max_rel_error: largest relative difference onnxruntime vs eager on random batches (two
            sizes when the size is dynamic), when onnxruntime is installed and ``check=True``
            (else None).
        unused_bands: inputs without a SMARTIES layer (read, reach no output; also in the
            file's metadata).
        metadata: the ONNX metadata written into the file.
    """

    path: Path
    bands: tuple[str, ...]
    input_shape: tuple[int, int, int, int]
    embed_dim: int
    grid: tuple[int, int]
    max_rel_error: float | None
    unused_bands: tuple[str, ...] = ()
    metadata: dict[str, str] | None = None


def parse_bands_spec(spec: str) -> BandsArg:
    """A command-line band spec → a band argument (:func:`smartiesviz.spectrum.resolve.parse_bands`:
    ``"S2"``, ``"sentinel2-l2a:B04,B03,B02"``, ``"red_2,near_infrared_1"``, ``"650-680nm"``)."""
    if not spec.strip():
        raise ValueError("--bands is empty; give a sensor name or comma-separated bands")
    return parse_bands(spec)


class BakedEncoder(nn.Module):
    """The encoder for one band set, projection baked into one convolution.

    Args:
        encoder: a :class:`SmartiesEncoder` (its blocks and norms are shared, not copied).
        bands: the input's bands.
        img_size: the (square) example input size (the only size when ``dynamic_size=False``).
        dynamic_size: resample the encoder's positional table to each input's grid in the
            forward pass (bicubic, as the eager encoder does) instead of storing one size's table.
        token_norm: the ``tokens`` output before (``"pre-norm"``, default) or after the final norm.

    Forward: ``x (B, C, H, W)`` → ``(cls (B, D), tokens (B, D, H/S, W/S))``.

    Attributes:
        band_names: qualified input band names, in order; unused_bands: those without a layer;
        token_norm: as given.
    """

    def __init__(
        self, encoder: SmartiesEncoder, bands: BandsArg, img_size: int, dynamic_size: bool = True,
        token_norm: TokenNorm = DEFAULT_TOKEN_NORM,
    ) -> None:  # fmt: skip
        super().__init__()
        self.token_norm = check_option("token_norm", token_norm, TokenNorm)
        if token_norm == "post-norm" and encoder.global_pool:
            raise ValueError(
                "token_norm='post-norm' needs the final norm; this encoder pools through fc_norm "
                "(global_pool): use token_norm='pre-norm'"
            )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # layer-less bands: named by unused_bands instead
                rb = encoder.resolve(bands=bands)
        except (NoLayerError, OutOfSpectrumError, KeyError, ValueError) as err:
            why = err.args[0] if isinstance(err, KeyError) and err.args else err  # unquoted
            shown = ",".join(map(str, bands)) if isinstance(bands, (list, tuple)) else bands
            raise ValueError(f"cannot bake the band set {shown!r}: {why}") from err
        if img_size % encoder.patch_size:
            raise ValueError(
                f"cannot bake img_size {img_size}: not a multiple of the patch size {encoder.patch_size}"
            )
        s = encoder.patch_size
        self.grid = (img_size // s, img_size // s)
        self.patch_size, self.img_size, self.embed_dim = s, img_size, encoder.embed_dim
        kept, dropped = iter(rb.qualified_names), iter(rb.dropped)  # both in input order
        self.band_names = tuple(next(kept) if i in rb.keep else next(dropped) for i in range(rb.n_input))
        self.unused_bands = tuple(rb.dropped)
        self.n_input = rb.n_input
        self.dynamic_size = dynamic_size
        self.pos_grid = encoder.grid_size  # the grid of the table that is resampled
        with torch.no_grad():
            kernel, bias = encoder.spectrum_projection.effective_kernel(rb, encoder.cls_token)
            pos = encoder.pos_embed if dynamic_size else encoder.pos_table(self.grid)
            gh, gw = self.pos_grid if dynamic_size else self.grid
            pos_map = pos[:, 1:].float().transpose(1, 2).reshape(1, -1, gh, gw)  # (1, D, gh, gw)
        self.register_buffer("keep", torch.tensor(rb.keep, dtype=torch.long), persistent=False)
        self.all_kept = rb.all_kept
        self.register_buffer("kernel", kernel.detach().clone())
        self.register_buffer("bias", bias.detach().clone())
        self.register_buffer("pos", pos_map.detach().clone())
        self.register_buffer("cls_row", encoder.cls_row().detach().clone())
        self.blocks, self.norm, self.fc_norm = encoder.blocks, encoder.norm, encoder.fc_norm
        self.global_pool = encoder.global_pool

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.all_kept:
            x = x.index_select(1, self.keep)
        t = F.conv2d(x, self.kernel, self.bias, stride=self.patch_size)  # (B, D, gh, gw)
        gh, gw = t.shape[-2:]
        pos = self.pos
        if self.dynamic_size:  # always resampled: no branch on the (symbolic) size in the graph
            pos = F.interpolate(pos, size=(gh, gw), mode="bicubic", align_corners=False)
        t = (t + pos.to(t.dtype)).flatten(2).transpose(1, 2)
        h = run_blocks(self.cls_row, t, self.blocks)
        pooled = self.fc_norm(h[:, 1:].mean(dim=1)) if self.global_pool else self.norm(h[:, 0])
        tokens = tokens_to_map(apply_token_norm(h, self.norm, self.token_norm), (gh, gw))
        return pooled, tokens


def bake_encoder(
    checkpoint: str | Path | SmartiesEncoder,
    bands: BandsArg,
    img_size: int | None = None,
    dynamic_size: bool = True,
    token_norm: TokenNorm = DEFAULT_TOKEN_NORM,
) -> BakedEncoder:
    """:class:`BakedEncoder` from a checkpoint (path or ``"demo"``) or an encoder, in eval mode."""
    if isinstance(checkpoint, SmartiesEncoder):
        encoder = checkpoint
    else:
        encoder = SmartiesEncoder.from_pretrained(checkpoint, img_size=img_size)
    size = img_size or encoder.img_size
    return BakedEncoder(encoder, bands, size, dynamic_size, token_norm).eval()


def onnx_metadata(
    model: BakedEncoder, checkpoint: str | Path | SmartiesEncoder
) -> dict[str, str]:
    """The metadata :func:`export_onnx` writes into the file (string → string; JSON where noted
    in the module docstring)."""
    path = _checkpoint_path(checkpoint)
    stats: dict[str, Any] = {}
    for name in model.band_names:
        try:
            stats[name] = dict(band_release_stats(name))
        except (UserError, KeyError, ValueError):
            stats[name] = None  # e.g. Landsat-8: the release has no statistics for it
    s = model.patch_size
    return {
        "bands": json.dumps(list(model.band_names)),
        "unused_bands": json.dumps(list(model.unused_bands)),
        "normalization": json.dumps({
            "formula": "clip((x - p1) / (p99 - p1), 0, 1), then (x - mean) / std; p1/p99 in the "
                       "sensor's units (DN, dB), mean/std in [0, 1]",
            "stats": "release",
            "bands": stats,
        }),  # fmt: skip
        "checkpoint": path.name if path else "<in-memory encoder>",
        "checkpoint_sha256": outputs.file_sha256(path) if path else "",
        "token_norm": model.token_norm,
        "tokens_output": _TOKENS_OUTPUT[model.token_norm],
        "cls_output": "mean of patch tokens through fc_norm" if model.global_pool
                      else "CLS token after the final norm",
        "input": f"x (batch, {model.n_input}, H, W) float32 in model units (normalized); "
                 + (f"H and W multiples of {s}" if model.dynamic_size
                    else f"H = W = {model.img_size}"),
        "patch_size": str(s),
        "embed_dim": str(model.embed_dim),
        "pos_embed_grid": "x".join(map(str, model.pos_grid if model.dynamic_size else model.grid)),
        "dynamic_size": json.dumps(model.dynamic_size),
        "smartiesviz_version": __version__,
    }  # fmt: skip


def export_onnx(
    checkpoint: str | Path | SmartiesEncoder,
    bands: BandsArg,
    out: str | Path,
    img_size: int | None = None,
    overwrite: bool = False,
    opset: int | None = None,
    check: bool = True,
    dynamic_size: bool = True,
    token_norm: TokenNorm = DEFAULT_TOKEN_NORM,
) -> ExportResult:
    """Export the encoder for ``bands`` to ``out`` (ONNX; dynamic batch, height and width).

    Args:
        checkpoint: a checkpoint path, ``"demo"``, or a :class:`SmartiesEncoder`.
        bands: the input's bands (sensor name, band specs, range names).
        out: target ``.onnx`` path.
        img_size: example input size, and the positional table's size (default: the
            checkpoint's); the only size with ``dynamic_size=False``.
        overwrite: replace an existing ``out``.
        opset: ONNX opset (default: the exporter's).
        check: compare onnxruntime with eager on random batches (when onnxruntime is installed).
        dynamic_size: height and width dynamic (multiples of the patch size).
        token_norm: the ``tokens`` output before (``"pre-norm"``, the release's ``all_tokens``,
            default) or after the final norm; recorded as the file's ``token_norm`` metadata.

    Bands without a SMARTIES layer (Landsat-8 B9, Sentinel-2 B10) stay inputs, so the file takes
    the sensor's full stack, but reach no output: they are named in a warning, in
    ``result.unused_bands`` and in the file's ``unused_bands`` metadata. The metadata
    (:func:`onnx_metadata`) also records the bands in order, the release's normalisation, the
    checkpoint's sha256 and the ``token_norm`` of ``tokens``.

    Returns:
        :class:`ExportResult`.

    Raises:
        FileExistsError: ``out`` exists and ``overwrite`` is False.
        ValueError: the band set or size cannot be baked; ``out`` is the checkpoint (also through
            a link), a folder or a special file such as ``/dev/null``.
    """
    out = _check_arguments(checkpoint, out, img_size, overwrite, token_norm)
    model = bake_encoder(checkpoint, bands, img_size, dynamic_size, token_norm)
    if model.unused_bands:
        names = ", ".join(model.unused_bands)
        why = "(named in the file's 'unused_bands' metadata)"
        warnings.warn(f"bands without a SMARTIES layer stay inputs but reach no output: {names} {why}",
                      UserWarning, stacklevel=2)  # fmt: skip
    metadata = onnx_metadata(model, checkpoint)
    x = torch.randn(2, model.n_input, model.img_size, model.img_size, generator=torch.Generator().manual_seed(0))
    dims: dict[int, Any] = {0: torch.export.Dim("batch", min=1)}
    if dynamic_size:
        s = model.patch_size  # H = S·rows keeps the size a multiple of S in the exported program
        dims.update({2: s * torch.export.Dim("rows", min=1), 3: s * torch.export.Dim("cols", min=1)})
    _write_onnx(model, x, dims, out, opset, metadata)
    err = _check_onnxruntime(out, model, x) if check else None
    size = -1 if dynamic_size else model.img_size
    shape = (-1, model.n_input, size, size)
    return ExportResult(
        out, model.band_names, shape, model.embed_dim, model.grid, err, model.unused_bands, metadata
    )


def _check_arguments(
    checkpoint: str | Path | SmartiesEncoder, out: str | Path, img_size: int | None,
    overwrite: bool, token_norm: TokenNorm,
) -> Path:  # fmt: skip
    """The checked ``out`` path; every refusal of :func:`export_onnx` before a file is read."""
    inputs = _checkpoint_files(checkpoint)
    if inputs and str(checkpoint) != "demo":  # a FIFO would block; a folder is no checkpoint
        outputs.check_input_file(inputs[0], "--checkpoint")
    out = outputs.check_output(out, inputs, overwrite=True, what="--out")
    if out.exists() and not overwrite:  # the other refusals (input, folder, /dev/null) are above
        raise FileExistsError(f"{out} exists; pass --overwrite (overwrite=True) to replace it")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"output folder {out.parent} does not exist")
    if img_size is not None and (isinstance(img_size, bool) or int(img_size) < 1):
        raise ValueError(f"--img-size must be a positive integer; got {img_size!r}")
    check_option("token_norm", token_norm, TokenNorm)
    return out


def _write_onnx(
    model: BakedEncoder, x: torch.Tensor, dims: dict[int, Any], out: Path, opset: int | None,
    metadata: dict[str, str],
) -> None:  # fmt: skip
    """Export ``model`` (example input ``x``, dynamic ``dims``) to ``out`` atomically, with
    ``metadata``."""
    outputs.remove_stale_partials(out.parent, out.name)  # left by a killed earlier export
    with outputs.atomic_path(out) as tmp:
        torch.onnx.export(
            model, (x,), str(tmp), dynamo=True, external_data=False, opset_version=opset,
            input_names=["x"], output_names=["cls", "tokens"], verbose=False,
            dynamic_shapes={"x": dims},
        )  # fmt: skip
        _write_metadata(tmp, metadata)


def _write_metadata(path: Path, metadata: dict[str, str]) -> None:
    import onnx  # the export extra, as onnxscript for the exporter itself

    proto = onnx.load(str(path))
    onnx.helper.set_model_props(proto, {**{p.key: p.value for p in proto.metadata_props}, **metadata})
    onnx.save(proto, str(path))


def _checkpoint_path(checkpoint: str | Path | SmartiesEncoder) -> Path | None:
    """The weights file behind a checkpoint argument (an encoder's own source when it was loaded
    from a file), or None."""
    if isinstance(checkpoint, SmartiesEncoder):
        report = checkpoint.load_report
        source = Path(report.source) if report is not None else None
        return source if source is not None and source.is_file() else None
    return _checkpoint_files(checkpoint)[0]


def _checkpoint_files(checkpoint: str | Path | SmartiesEncoder) -> list[Path]:
    """The files a checkpoint argument reads (the weights and their JSON sidecar)."""
    if isinstance(checkpoint, SmartiesEncoder):
        return []
    path = demo_weights_path() if str(checkpoint) == "demo" else Path(checkpoint)
    return [path, path.with_suffix(".json")]


def _check_onnxruntime(path: Path, model: BakedEncoder, x: torch.Tensor) -> float | None:
    try:
        import onnxruntime  # optional: only to verify the exported file
    except ImportError:
        return None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    batches = [torch.cat([x, x[:1] * 0.5])]  # another batch size than the export's
    if model.dynamic_size:  # and another (non-square) size
        batches.append(torch.randn(1, x.shape[1], x.shape[2] + model.patch_size, x.shape[3]))
    errors = []
    for xb in batches:
        got = session.run(None, {"x": xb.numpy()})
        with torch.no_grad():
            ref = model(xb)
        errors += [
            float((torch.from_numpy(g) - r).abs().max() / r.abs().max().clamp_min(1e-12))
            for g, r in zip(got, ref, strict=True)
        ]
    return max(errors)
