"""State dicts on disk: reading weight files, the release's key layout, non-finite weights.

Key layouts (:func:`remap_release_state_dict` and :func:`to_release_state_dict` convert):

=========================================================  ==========================================
release (``smarties-v1-vit{b,l}.safetensors``)              :class:`SmartiesMAE`
=========================================================  ==========================================
``spectrum_projection.spectrum_embeds.{i}.proj.weight``      ``spectrum_projection.layers.{i}.weight``
``decoder_preds.{i}.weight``                                 ``decoder_pred.layers.{i}.weight``
``pos_embed`` / ``decoder_pos_embed`` (fixed sin-cos)        recomputed by the model
everything else (timm ``Block`` names, norms, tokens)        same name
=========================================================  ==========================================

The positional tables are handled by :func:`smartiesviz.models.checkpoint.load_pretrained`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from smartiesviz.models.pos_embed import grid_from_num_tokens, sincos_pos_embed

__all__ = [
    "CheckpointError",
    "ForeignCheckpointError",
    "remap_release_state_dict",
    "to_release_state_dict",
    "infer_architecture",
    "read_state_dict",
    "non_finite_keys",
    "check_tensors",
    "read_safetensors_header",
    "short_list",
]

#: Largest safetensors header read (safetensors' own limit), and most tensors in one file.
MAX_HEADER_BYTES = 100 * 2**20
MAX_TENSORS = 100_000
#: safetensors dtypes a SMARTIES model loads, with their byte sizes; others (complex, float8, ...)
#: are refused by name: a complex tensor would also hide a NaN from the finite check.
_SAFETENSORS_DTYPES = {
    "BOOL": 1, "U8": 1, "I8": 1, "I16": 2, "I32": 4, "I64": 8,
    "F16": 2, "BF16": 2, "F32": 4, "F64": 8,
}  # fmt: skip
_REAL_DTYPES = {
    torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64,
    torch.float16, torch.bfloat16, torch.float32, torch.float64,
}  # fmt: skip

_WRAPPER_PREFIXES = ("module.", "model.", "_orig_mod.", "encoder.", "backbone.")
_OWN_TOP_LEVEL = {
    "spectrum_projection", "blocks", "norm", "decoder_embed", "decoder_blocks", "decoder_norm",
    "decoder_pred", "decoder_preds", "spectrum_embeds", "patch_embed", "head", "fc_norm",
}  # fmt: skip

_RENAMES: tuple[tuple[re.Pattern[str], str], ...] = (
    # release projection layers (with or without the ``spectrum_projection.`` / ``.proj`` parts)
    (
        re.compile(
            r"^(?:spectrum_projection\.|patch_embed\.)?spectrum_embeds\.(\d+)\.(?:proj\.)?(weight|bias)$"
        ),
        r"spectrum_projection.layers.\1.\2",
    ),
    (re.compile(r"^decoder_preds?\.(\d+)\.(weight|bias)$"), r"decoder_pred.layers.\1.\2"),
)


class CheckpointError(ValueError, RuntimeError):
    """A checkpoint file that cannot be read, or whose contents do not fit the model.

    A ``ValueError`` (a bad file is a user error: the CLI prints one ``error:`` line) and, as
    before, a ``RuntimeError``.
    """


class ForeignCheckpointError(CheckpointError):
    """A checkpoint of another architecture or another model family."""


def short_list(keys: list[str], n: int = 5) -> str:
    """The first ``n`` keys, comma-separated, with a count of the rest."""
    more = f", … (+{len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


# ---------------------------------------------------------------------- key layouts
def _strip_wrappers(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove prefixes shared by every key (``module.``, ``model.``, ``_orig_mod.``, ...).

    Besides the usual wrapper names, any single first component shared by *all* keys that is
    not one of our own top-level names (e.g. a Hugging Face wrapper's attribute) is removed too.
    """
    out = dict(sd)
    changed = True
    while changed and out:
        changed = False
        for prefix in _WRAPPER_PREFIXES:
            if all(k.startswith(prefix) for k in out):
                out = {k[len(prefix) :]: v for k, v in out.items()}
                changed = True
        firsts = {k.split(".", 1)[0] for k in out}
        if (
            len(firsts) == 1
            and all("." in k for k in out)
            and next(iter(firsts)) not in _OWN_TOP_LEVEL
        ):
            out = {k.split(".", 1)[1]: v for k, v in out.items()}
            changed = True
    return out


def remap_release_state_dict(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a released (or wrapped) SMARTIES state dict to :class:`SmartiesMAE` keys.

    Pure function: tensors are not copied or changed. Handles the release's pretraining layout,
    encoder-only/Hugging Face-style files with the same tensor names, and ``module.``/``model.``/
    ``_orig_mod.``/``encoder.``/``backbone.`` prefixes shared by all keys. ``pos_embed`` and
    ``decoder_pos_embed`` keep their names (see :func:`load_pretrained`). Keys already in our
    layout pass through, so the function is idempotent.

    Args:
        sd: ``name → tensor``.

    Returns:
        A new dict with our key names.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in _strip_wrappers(sd).items():
        new = key
        for pattern, repl in _RENAMES:
            new = pattern.sub(repl, new)
        if new in out:
            raise CheckpointError(f"two checkpoint keys map to {new!r} (one of them is {key!r})")
        out[new] = value
    return out


def to_release_state_dict(
    model: torch.nn.Module, include_pos_embed: bool = True
) -> dict[str, torch.Tensor]:
    """Our model's state dict in the release's layout (for interoperability and tests).

    Args:
        model: a :class:`SmartiesMAE`.
        include_pos_embed: add ``pos_embed``/``decoder_pos_embed`` ``(1, 1+N, dim)`` for the model's
            ``img_size`` grid (sin-cos, or the stored tables), as the release's files hold them.

    Returns:
        ``name → tensor`` with release names.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in model.state_dict().items():
        m = re.match(r"^spectrum_projection\.layers\.(\d+)\.(weight|bias)$", key)
        if m:
            key = f"spectrum_projection.spectrum_embeds.{m[1]}.proj.{m[2]}"
        m = re.match(r"^decoder_pred\.layers\.(\d+)\.(weight|bias)$", key)
        if m:
            key = f"decoder_preds.{m[1]}.{m[2]}"
        out[key] = value
    if include_pos_embed:
        gh, gw = model.grid_size
        for key, dim in (
            ("pos_embed", model.embed_dim),
            ("decoder_pos_embed", model.decoder_embed_dim),
        ):
            if key not in out:
                out[key] = sincos_pos_embed(dim, gh, gw, cls_token=True)
    return out


def infer_architecture(sd: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """Architecture figures readable from a state dict in our layout (missing ones omitted)."""
    arch: dict[str, Any] = {}

    def count(prefix: str) -> int:
        idx = {int(m[1]) for k in sd if (m := re.match(rf"^{re.escape(prefix)}\.(\d+)\.", k))}
        return max(idx) + 1 if idx else 0

    # widths: the first of these tensors present gives them, (key, axis) in order of preference
    for name, sources in (
        ("embed_dim", (("cls_token", -1), ("blocks.0.norm1.weight", 0))),
        ("decoder_embed_dim", (("mask_token", -1), ("decoder_embed.weight", 0))),
    ):
        if found := [int(sd[k].shape[axis]) for k, axis in sources if k in sd]:
            arch[name] = found[0]
    for name, prefix in (("depth", "blocks"), ("decoder_depth", "decoder_blocks")):
        if n := count(prefix):
            arch[name] = n
    if "blocks.0.mlp.fc1.weight" in sd:
        fc1 = sd["blocks.0.mlp.fc1.weight"]
        arch["mlp_ratio"] = fc1.shape[0] / fc1.shape[1]
    w = sd.get("spectrum_projection.layers.0.weight")
    if w is not None:
        arch["patch_size"] = int(round(w.shape[1] ** 0.5))
        arch["num_layers"] = count("spectrum_projection.layers")
    if "pos_embed" in sd:
        try:
            arch["grid"] = grid_from_num_tokens(sd["pos_embed"].shape[1])
        except ValueError:
            pass
    return arch


# ---------------------------------------------------------------------- reading files
def _unwrap(obj: Any, source: str) -> dict[str, torch.Tensor]:
    if isinstance(obj, Mapping):
        for key in ("model", "state_dict", "model_state_dict"):
            if isinstance(obj.get(key), Mapping) and not isinstance(obj.get(key), torch.Tensor):
                return _unwrap(obj[key], source)
        bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
        if not bad:
            return dict(obj)
        raise CheckpointError(
            f"{source} does not hold a state dict (name → tensor): entries {short_list([str(b) for b in bad])} "
            "are not tensors"
        )
    raise CheckpointError(
        f"{source} holds a {type(obj).__name__}, expected a state dict (name → tensor)"
    )


def _is_count(v: Any) -> bool:
    return type(v) is int and v >= 0


def _is_dim(v: Any) -> bool:  # bounded even where another dimension is 0 (no bytes)
    return _is_count(v) and v < 2**40


def _check_entry(path: Path, key: str, entry: Any, data: int) -> tuple[list[int], list[int]]:
    """``(shape, data offsets)`` of one header entry, checked: a real dtype, a valid shape and
    offsets that fit the file's ``data`` bytes."""
    entry = entry if isinstance(entry, dict) else {}
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if dtype not in _SAFETENSORS_DTYPES:
        raise CheckpointError(
            f"{path}: tensor {key!r} has dtype {dtype!r}; a SMARTIES checkpoint holds only "
            f"real tensors ({', '.join(_SAFETENSORS_DTYPES)}), not complex or float8 ones"
        )
    if not (isinstance(shape, list) and len(shape) <= 8 and all(map(_is_dim, shape))):
        raise CheckpointError(f"{path}: tensor {key!r} has an invalid shape {shape!r}")
    nbytes = math.prod(shape) * _SAFETENSORS_DTYPES[dtype]
    if not (
        isinstance(offsets, list) and len(offsets) == 2 and all(map(_is_count, offsets))
        and offsets[1] - offsets[0] == nbytes and offsets[1] <= data
    ):  # fmt: skip
        raise CheckpointError(
            f"{path}: tensor {key!r} ({dtype} {shape}, {nbytes} bytes) has data offsets "
            f"{offsets!r} that do not fit the {data} data bytes of the file (truncated or corrupt)"
        )
    return shape, offsets


def read_safetensors_header(path: str | Path) -> tuple[dict[str, list[int]], dict[str, str]]:
    """``(tensor name → shape, __metadata__)`` of a safetensors file, checked against the file
    before any tensor is read: header length, dtypes (real only), shapes and byte offsets.

    Raises:
        CheckpointError: naming the file and the offending key and value.
    """
    path = Path(path)
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        if n < 2 or n > MAX_HEADER_BYTES or 8 + n > size:
            raise CheckpointError(
                f"{path} ({size} bytes) is not a valid safetensors file: its header length "
                f"{n} is {'beyond the file' if 8 + n > size else 'out of range'} (at most "
                f"{MAX_HEADER_BYTES} bytes); the file is corrupt, truncated or of another format"
            )
        raw = fh.read(n)
    try:
        header = json.loads(raw)
    except ValueError as err:  # JSON and Unicode errors
        raise CheckpointError(f"{path}: the safetensors header is not valid JSON ({err})") from err
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: the safetensors header is not a JSON object")
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise CheckpointError(f"{path}: the safetensors __metadata__ is not an object of strings")
    if len(header) > MAX_TENSORS:
        raise CheckpointError(f"{path}: {len(header)} tensors, more than {MAX_TENSORS}")
    data, shapes, spans = size - 8 - n, {}, []
    for key, entry in header.items():
        shapes[key], offsets = _check_entry(path, key, entry, data)
        spans.append(offsets)
    spans.sort()
    if sum(e - b for b, e in spans) != data or any(
        a[1] != b[0] for a, b in zip(spans, spans[1:], strict=False)
    ):
        raise CheckpointError(
            f"{path}: the tensors in its header do not cover its {data} data bytes exactly "
            "(truncated, padded or corrupt file)"
        )
    return shapes, meta


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read ``name → tensor`` from a ``.safetensors`` file or a ``.pt``/``.pth``/``.bin``/``.ckpt``
    file (``torch.load(weights_only=True)``; ``{"model": ...}``/``{"state_dict": ...}`` unwrapped).

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: the file is corrupt, truncated, or not a state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(16)
    is_safetensors = path.suffix == ".safetensors" or head[8:9] == b"{"
    try:
        if is_safetensors:
            read_safetensors_header(path)  # refuse giant or non-real tensors before reading any
            sd = load_file(str(path), device="cpu")
        else:
            sd = _unwrap(torch.load(path, map_location="cpu", weights_only=True), str(path))
        return check_tensors(sd, str(path))
    except CheckpointError:
        raise
    except Exception as err:  # safetensors/pickle/zip errors have many types
        kind = "safetensors" if is_safetensors else "torch"
        raise CheckpointError(
            f"could not read {path} ({size} bytes) as a {kind} checkpoint: the file is corrupt, "
            f"truncated, or of another format ({type(err).__name__}: {err})"
        ) from err


def check_tensors(
    sd: Mapping[str, torch.Tensor], source: str = "<state dict>"
) -> dict[str, torch.Tensor]:
    """``sd`` as a dict when every tensor is a dense real one that owns its values.

    Refuses complex, float8 and quantized tensors (a complex NaN passes a float finite check),
    sparse ones, and views that repeat their storage (a pickled ``expand``: a huge shape over a
    few bytes, which any reduction would then walk), naming the key.
    """
    for key, value in sd.items():
        if value.dtype not in _REAL_DTYPES or value.layout != torch.strided:
            raise CheckpointError(
                f"{source}: tensor {key!r} is {value.dtype} ({value.layout}); a SMARTIES "
                "checkpoint holds only dense real (float, int, bool) tensors"
            )
        nbytes = value.numel() * value.element_size()
        if value.device.type != "meta" and nbytes > value.untyped_storage().nbytes():
            raise CheckpointError(
                f"{source}: tensor {key!r} of shape {list(value.shape)} ({nbytes} bytes) is a "
                f"view repeating {value.untyped_storage().nbytes()} stored bytes; save it with "
                ".contiguous() or .clone()"
            )
    return dict(sd)


def non_finite_keys(sd: Mapping[str, torch.Tensor], source: str = "<state dict>") -> list[str]:
    """Names of the floating-point tensors holding a NaN or an infinity (in ``sd``'s order),
    every floating dtype included (bf16, fp16); tensors that are not real are refused first
    (:func:`check_tensors`)."""
    check_tensors(sd, source)
    return [
        key
        for key, value in sd.items()
        if value.is_floating_point() and not bool(torch.isfinite(value).all())
    ]
