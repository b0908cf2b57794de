"""Export the SMARTIES encoder for one fixed band set to ONNX.

For a fixed band set the spectrum-aware projection is one convolution (see
:mod:`smartiesviz.models.tokenizer`): :class:`BakedEncoder` stores that *effective* kernel
``(D, C, S, S)``, the positional table of one input size, and the encoder blocks, so the exported
graph is a plain ViT: ``x (B, C, H, W)`` → ``cls (B, D)`` (the CLS after the final norm, or the
``fc_norm`` patch mean) and ``tokens (B, D, H/S, W/S)`` (the release's ``all_tokens`` map). The
batch size stays dynamic; bands and input size are fixed.

Uses PyTorch's ``torch.export``-based ONNX exporter (``torch.onnx.export(dynamo=True)``, which
needs ``onnxscript``; it works offline). The file is written to a temporary name beside ``out``
and renamed when complete (:func:`smartiesviz.outputs.atomic_path`); an existing ``out`` is kept
unless ``overwrite=True``, and never replaced when it is the checkpoint or a special file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from smartiesviz import outputs
from smartiesviz.models.demo import demo_weights_path
from smartiesviz.models.encoder import SmartiesEncoder
from smartiesviz.spectrum import SPECTRAL_RANGES, NoLayerError, OutOfSpectrumError
from smartiesviz.spectrum.resolve import BandsArg

__all__ = ["BakedEncoder", "ExportResult", "bake_encoder", "export_onnx", "parse_bands_spec"]


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_onnx` wrote.

    Attributes:
        path: the ``.onnx`` file.
        bands: the input channels, in order (qualified names; dropped ones are read but unused).
        input_shape: ``(batch, C, H, W)`` with ``batch`` dynamic (``-1``).
        embed_dim: ``D``; grid: ``(H/S, W/S)``.
        max_rel_error: largest relative difference onnxruntime vs eager on a random batch, when
            onnxruntime is installed and ``check=True`` (else None).
    """

    path: Path
    bands: tuple[str, ...]
    input_shape: tuple[int, int, int, int]
    embed_dim: int
    grid: tuple[int, int]
    max_rel_error: float | None


def parse_bands_spec(spec: str) -> BandsArg:
    """A command-line band spec → a band argument.

    ``"sentinel2-l2a"`` / ``"S2"``: a sensor's bands; ``"sentinel2-l2a:B04,B03,B02"``: bands of
    a sensor; ``"red_2,near_infrared_1"`` or ``"landsat8/B10,sentinel2-l2a/B04"``: band specs.
    """
    spec = spec.strip()
    if not spec:
        raise ValueError("--bands is empty; give a sensor name or comma-separated bands")
    if ":" in spec:
        sensor, names = spec.split(":", 1)
        return [f"{sensor.strip()}/{b.strip()}" for b in names.split(",") if b.strip()]
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    return parts[0] if len(parts) == 1 and "/" not in parts[0] and not _is_range(parts[0]) else parts


def _is_range(name: str) -> bool:
    return name.lower() in SPECTRAL_RANGES


class BakedEncoder(nn.Module):
    """The encoder for one band set and input size, projection baked into one convolution.

    Args:
        encoder: a :class:`SmartiesEncoder` (its blocks and norms are shared, not copied).
        bands: the input's bands.
        img_size: the (square) input size.

    Forward: ``x (B, C, H, W)`` → ``(cls (B, D), tokens (B, D, H/S, W/S))``.
    """

    def __init__(self, encoder: SmartiesEncoder, bands: BandsArg, img_size: int) -> None:
        super().__init__()
        try:
            rb = encoder.resolve(bands=bands)
        except (NoLayerError, OutOfSpectrumError, KeyError, ValueError) as err:
            why = err.args[0] if isinstance(err, KeyError) and err.args else err  # unquoted
            raise ValueError(f"cannot bake the band set {bands!r}: {why}") from err
        if img_size % encoder.patch_size:
            raise ValueError(
                f"cannot bake img_size {img_size}: not a multiple of the patch size {encoder.patch_size}"
            )
        s = encoder.patch_size
        self.grid = (img_size // s, img_size // s)
        self.patch_size, self.img_size, self.embed_dim = s, img_size, encoder.embed_dim
        self.band_names = tuple(rb.qualified_names)
        self.n_input = rb.n_input
        with torch.no_grad():
            kernel, bias = encoder.spectrum_projection.effective_kernel(rb, encoder.cls_token)
            pos = encoder.pos_table(self.grid)
        self.register_buffer("keep", torch.tensor(rb.keep, dtype=torch.long), persistent=False)
        self.all_kept = rb.all_kept
        self.register_buffer("kernel", kernel.detach().clone())
        self.register_buffer("bias", bias.detach().clone())
        self.register_buffer("pos", pos[:, 1:].detach().clone())
        self.register_buffer("cls_row", (encoder.cls_token + pos[:, :1]).detach().clone())
        self.blocks, self.norm, self.fc_norm = encoder.blocks, encoder.norm, encoder.fc_norm
        self.global_pool = encoder.global_pool

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.all_kept:
            x = x.index_select(1, self.keep)
        t = F.conv2d(x, self.kernel, self.bias, stride=self.patch_size).flatten(2).transpose(1, 2)
        h = torch.cat([self.cls_row.expand(x.shape[0], -1, -1), t + self.pos], dim=1)
        for blk in self.blocks:
            h = blk(h)
        pooled = self.fc_norm(h[:, 1:].mean(dim=1)) if self.global_pool else self.norm(h[:, 0])
        tokens = h[:, 1:].transpose(1, 2).reshape(x.shape[0], self.embed_dim, *self.grid)
        return pooled, tokens


def bake_encoder(
    checkpoint: str | Path | SmartiesEncoder, bands: BandsArg, img_size: int | None = None
) -> BakedEncoder:
    """:class:`BakedEncoder` from a checkpoint (path or ``"demo"``) or an encoder, in eval mode."""
    if isinstance(checkpoint, SmartiesEncoder):
        encoder = checkpoint
    else:
        encoder = SmartiesEncoder.from_pretrained(checkpoint, img_size=img_size)
    return BakedEncoder(encoder, bands, img_size or encoder.img_size).eval()


def export_onnx(
    checkpoint: str | Path | SmartiesEncoder,
    bands: BandsArg,
    out: str | Path,
    img_size: int | None = None,
    overwrite: bool = False,
    opset: int | None = None,
    check: bool = True,
) -> ExportResult:
    """Export the encoder for ``bands`` at ``img_size`` to ``out`` (ONNX, dynamic batch).

    Args:
        checkpoint: a checkpoint path, ``"demo"``, or a :class:`SmartiesEncoder`.
        bands: the input's bands (sensor name, band specs, range names).
        out: target ``.onnx`` path.
        img_size: input size (default: the checkpoint's).
        overwrite: replace an existing ``out``.
        opset: ONNX opset (default: the exporter's).
        check: compare onnxruntime with eager on a random batch (when onnxruntime is installed).

    Returns:
        :class:`ExportResult`.

    Raises:
        FileExistsError: ``out`` exists and ``overwrite`` is False.
        ValueError: the band set or size cannot be baked; ``out`` is the checkpoint (also through
            a link), a folder or a special file such as ``/dev/null``.
    """
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
    model = bake_encoder(checkpoint, bands, img_size)
    x = torch.randn(2, model.n_input, model.img_size, model.img_size, generator=torch.Generator().manual_seed(0))
    outputs.remove_stale_partials(out.parent, out.name)  # left by a killed earlier export
    with outputs.atomic_path(out) as tmp:
        torch.onnx.export(
            model, (x,), str(tmp), dynamo=True, external_data=False, opset_version=opset,
            input_names=["x"], output_names=["cls", "tokens"], verbose=False,
            dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1)}},
        )  # fmt: skip
    err = _check_onnxruntime(out, model, x) if check else None
    shape = (-1, model.n_input, model.img_size, model.img_size)
    return ExportResult(out, model.band_names, shape, model.embed_dim, model.grid, err)


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
    x = torch.cat([x, x[:1] * 0.5])  # another batch size than the export's
    got = session.run(None, {"x": x.numpy()})
    with torch.no_grad():
        ref = model(x)
    return max(
        float((torch.from_numpy(g) - r).abs().max() / r.abs().max().clamp_min(1e-12))
        for g, r in zip(got, ref, strict=True)
    )
