"""Load the released SMARTIES checkpoints, and save/load our own.

Key layouts:

=========================================================  ==========================================
release (``smarties-v1-vit{b,l}.safetensors``)              :class:`SmartiesMAE`
=========================================================  ==========================================
``spectrum_projection.spectrum_embeds.{i}.proj.weight``      ``spectrum_projection.layers.{i}.weight``
``decoder_preds.{i}.weight``                                 ``decoder_pred.layers.{i}.weight``
``pos_embed`` / ``decoder_pos_embed`` (fixed sin-cos)        recomputed (see below)
everything else (timm ``Block`` names, norms, tokens)        same name
=========================================================  ==========================================

Positional tables: the release stores its *fixed* sin-cos tables. Our model computes sin-cos on the
fly for whatever patch grid it gets, so :func:`load_pretrained` checks that a stored table equals
sin-cos at the file's grid and then drops it (reported in ``report.pos_embed``). A table that is
*not* sin-cos (e.g. from a fine-tuned model with a learned table) is kept with a warning: it is
stored on the model (``model.pos_embed`` / ``model.decoder_pos_embed``) and resampled bicubically
to each input grid, as the release's downstream model does. To reproduce the release's
downstream numbers at another input size, build the model with ``pos_embed_mode="bicubic"``: the
file's table (e.g. 14x14) is then kept and resampled bicubically to each input grid.

Our own checkpoints (:func:`save_checkpoint`) are a safetensors file plus a sidecar JSON with the
architecture, the spectrum (layer order), free metadata and the file's sha256;
:func:`load_checkpoint` rebuilds the model with one call.
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from smartiesviz.errors import UserError
from smartiesviz.models.pos_embed import grid_from_num_tokens, sincos_pos_embed

__all__ = [
    "CheckpointError",
    "ForeignCheckpointError",
    "LoadReport",
    "remap_release_state_dict",
    "to_release_state_dict",
    "infer_architecture",
    "read_state_dict",
    "load_pretrained",
    "save_checkpoint",
    "load_checkpoint",
]

FORMAT = "smartiesviz-checkpoint"
FORMAT_VERSION = 1
_POS_KEYS = ("pos_embed", "decoder_pos_embed")
_DECODER_PREFIXES = ("decoder_", "mask_token")
_HEAD_PREFIXES = ("head.", "fc_norm.", "head_drop.")
_WRAPPER_PREFIXES = ("module.", "model.", "_orig_mod.", "encoder.", "backbone.")
_SINCOS_ATOL = 1e-5
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


class CheckpointError(UserError, RuntimeError):  # UserError: one `error:` line on the CLI
    """A checkpoint file that cannot be read, or whose contents do not fit the model."""


class ForeignCheckpointError(CheckpointError):
    """A checkpoint of another architecture or another model family."""


@dataclass
class LoadReport:
    """What :func:`load_pretrained` did.

    Attributes:
        source: file path or ``"<state dict>"``.
        loaded: model keys filled from the file.
        missing: model keys the file does not provide.
        unexpected: file keys (after remapping) the model has no place for.
        mismatched: ``(key, shape in file, shape in model)`` for keys with other shapes (not loaded).
        skipped: file keys deliberately ignored (decoder when ``encoder_only``, downstream heads).
        pos_embed: how stored positional tables were treated.
        architecture_diff: readable differences between the file's and the model's architecture.
    """

    source: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    pos_embed: list[str] = field(default_factory=list)
    architecture_diff: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every model key was loaded and nothing was left over or mis-shaped."""
        return not (self.missing or self.unexpected or self.mismatched)

    def __str__(self) -> str:
        lines = [f"checkpoint {self.source}: {len(self.loaded)} tensors loaded"]
        for name, items in (
            ("missing", self.missing),
            ("unexpected", self.unexpected),
            ("skipped", self.skipped),
        ):
            if items:
                lines.append(f"  {name} ({len(items)}): {_first(items)}")
        if self.mismatched:
            shown = ", ".join(
                f"{k} {list(f)} in file vs {list(m)} in model" for k, f, m in self.mismatched[:5]
            )
            lines.append(f"  mismatched shapes ({len(self.mismatched)}): {shown}")
        lines += [f"  {p}" for p in self.pos_embed]
        if self.architecture_diff:
            lines.append("  architecture: " + "; ".join(self.architecture_diff))
        return "\n".join(lines)


def _first(keys: list[str], n: int = 5) -> str:
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

    if "cls_token" in sd:
        arch["embed_dim"] = int(sd["cls_token"].shape[-1])
    elif "blocks.0.norm1.weight" in sd:
        arch["embed_dim"] = int(sd["blocks.0.norm1.weight"].shape[0])
    if depth := count("blocks"):
        arch["depth"] = depth
    if "blocks.0.mlp.fc1.weight" in sd:
        fc1 = sd["blocks.0.mlp.fc1.weight"]
        arch["mlp_ratio"] = fc1.shape[0] / fc1.shape[1]
    w = sd.get("spectrum_projection.layers.0.weight")
    if w is not None:
        arch["patch_size"] = int(round(w.shape[1] ** 0.5))
        arch["num_layers"] = count("spectrum_projection.layers")
    if "mask_token" in sd:
        arch["decoder_embed_dim"] = int(sd["mask_token"].shape[-1])
    elif "decoder_embed.weight" in sd:
        arch["decoder_embed_dim"] = int(sd["decoder_embed.weight"].shape[0])
    if depth := count("decoder_blocks"):
        arch["decoder_depth"] = depth
    if "pos_embed" in sd:
        try:
            arch["grid"] = grid_from_num_tokens(sd["pos_embed"].shape[1])
        except ValueError:
            pass
    return arch


def _architecture_diff(
    file_arch: Mapping[str, Any], model: torch.nn.Module, encoder_only: bool
) -> list[str]:
    cfg = dict(model.config)
    diffs = []
    for key in (
        "embed_dim",
        "depth",
        "mlp_ratio",
        "patch_size",
        "num_layers",
        "decoder_embed_dim",
        "decoder_depth",
    ):
        if encoder_only and key.startswith("decoder"):
            continue
        if key in file_arch and key in cfg and float(file_arch[key]) != float(cfg[key]):
            diffs.append(f"{key} {file_arch[key]:g} in file vs {cfg[key]:g} in model")
    return diffs


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
            f"{source} does not hold a state dict (name → tensor): entries {_first([str(b) for b in bad])} "
            "are not tensors"
        )
    raise CheckpointError(
        f"{source} holds a {type(obj).__name__}, expected a state dict (name → tensor)"
    )


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
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        return _unwrap(torch.load(path, map_location="cpu", weights_only=True), str(path))
    except CheckpointError:
        raise
    except Exception as err:  # safetensors/pickle/zip errors have many types
        kind = "safetensors" if is_safetensors else "torch"
        raise CheckpointError(
            f"could not read {path} ({size} bytes) as a {kind} checkpoint: the file is corrupt, "
            f"truncated, or of another format ({type(err).__name__}: {err})"
        ) from err


# ---------------------------------------------------------------------- loading
def _treat_pos_table(
    key: str, table: torch.Tensor, dim: int, model: torch.nn.Module, report: LoadReport
) -> None:
    if table.ndim != 3 or table.shape[0] != 1 or table.shape[-1] != dim:
        report.mismatched.append((key, tuple(table.shape), (1, -1, dim)))
        return
    try:
        grid = grid_from_num_tokens(table.shape[1])
    except ValueError:
        report.unexpected.append(key)
        report.pos_embed.append(
            f"{key}: {table.shape[1]} rows is not CLS + a square grid; not used"
        )
        return
    ref = sincos_pos_embed(dim, *grid, cls_token=True)
    err = (table.float() - ref).abs().max().item()
    if err <= _SINCOS_ATOL and model.pos_embed_mode == "bicubic" and grid != model.grid_size:
        # the release's downstream model resamples *the file's* table: keep it as the source
        setattr(model, key, table.detach().to(model.cls_token.device, torch.float32).clone())
        report.pos_embed.append(
            f"{key}: fixed sin-cos for a {grid[0]}x{grid[1]} grid kept as the source of bicubic "
            "resampling (pos_embed_mode='bicubic', as the release's downstream model)"
        )
        report.loaded.append(key)
        return
    if err <= _SINCOS_ATOL:
        setattr(model, key, None)  # forget any table stored by an earlier load
        report.pos_embed.append(
            f"{key}: fixed sin-cos for a {grid[0]}x{grid[1]} grid (max diff {err:.1e}); the model "
            "recomputes sin-cos exactly for every input grid"
        )
        return
    warnings.warn(
        f"{key} in the checkpoint is not the fixed sin-cos table (max difference {err:.3g}); keeping it "
        f"and resampling it bicubically from {grid[0]}x{grid[1]} to each input grid",
        stacklevel=3,
    )
    setattr(model, key, table.detach().to(model.cls_token.device, torch.float32).clone())
    report.pos_embed.append(
        f"{key}: stored table ({grid[0]}x{grid[1]}, not sin-cos) kept, bicubic-resampled"
    )
    report.loaded.append(key)


def load_pretrained(
    model: torch.nn.Module,
    path_or_state_dict: str | Path | Mapping[str, torch.Tensor],
    strict: bool = True,
    encoder_only: bool = False,
) -> LoadReport:
    """Load released SMARTIES weights (or ours) into a :class:`SmartiesMAE`.

    Args:
        model: the model to fill (in place).
        path_or_state_dict: a ``.safetensors``/``.pt`` file, or a state dict in any supported layout.
        strict: refuse (with the full report) on any missing, unexpected or mis-shaped key;
            with ``False``, load what fits (as the release's downstream loader does) and report
            the rest.
        encoder_only: load only the encoder (projection layers, CLS, blocks, final norm); the
            file's decoder tensors are skipped and the model's decoder keeps its values.

    Returns:
        :class:`LoadReport`.

    Raises:
        ForeignCheckpointError: the file is for another architecture (with a readable diff) or
            another model (naming its first keys that do not fit).
        CheckpointError / FileNotFoundError: unreadable file; with ``strict``, any mismatch.
    """
    if isinstance(path_or_state_dict, Mapping):
        source, raw = "<state dict>", dict(path_or_state_dict)
    else:
        source, raw = str(path_or_state_dict), read_state_dict(path_or_state_dict)
    if not raw:
        raise CheckpointError(f"checkpoint {source} is empty")
    sd = remap_release_state_dict(raw)
    report = LoadReport(source)
    report.architecture_diff = _architecture_diff(infer_architecture(sd), model, encoder_only)

    def is_decoder(k: str) -> bool:
        return k.startswith(_DECODER_PREFIXES)

    for key, dim in (
        ("pos_embed", model.embed_dim),
        ("decoder_pos_embed", model.decoder_embed_dim),
    ):
        table = sd.pop(key, None)
        if table is None:
            continue
        if encoder_only and is_decoder(key):
            report.skipped.append(key)
        else:
            _treat_pos_table(key, table, dim, model, report)

    for key in list(sd):
        if key.startswith(_HEAD_PREFIXES) or (encoder_only and is_decoder(key)):
            report.skipped.append(key)
            del sd[key]

    model_sd = model.state_dict()
    expected = [k for k in model_sd if k not in _POS_KEYS and not (encoder_only and is_decoder(k))]
    fit: dict[str, torch.Tensor] = {}
    for key in expected:
        if key not in sd:
            report.missing.append(key)
        elif tuple(sd[key].shape) != tuple(model_sd[key].shape):
            report.mismatched.append((key, tuple(sd[key].shape), tuple(model_sd[key].shape)))
        else:
            fit[key] = sd[key]
    report.unexpected += [k for k in sd if k not in model_sd]
    report.loaded += list(fit)

    if report.architecture_diff or len(fit) < 0.5 * max(len(expected), 1):
        offending = report.unexpected + [k for k, *_ in report.mismatched] + report.missing
        diff = "; ".join(report.architecture_diff) or "no SMARTIES architecture recognised"
        raise ForeignCheckpointError(
            f"{source} does not fit this {type(model).__name__} ({diff}). Only {len(fit)} of "
            f"{len(expected)} model tensors match; first offending keys: {_first(offending)}. "
            "Build the matching architecture (e.g. smarties_vit_large_patch16 for a ViT-L file)"
            + (" or pass strict=False to load what fits" if not report.architecture_diff else "")
        )
    if strict and not report.ok:
        hint = ""
        if report.missing and all(is_decoder(k) for k in report.missing):
            hint = " (the file has no decoder: pass encoder_only=True)"
        raise CheckpointError(f"strict loading failed{hint}:\n{report}")
    with torch.no_grad():
        model.load_state_dict(fit, strict=False)
    return report


# ---------------------------------------------------------------------- our own format
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _sidecar(path: Path) -> Path:
    return path.with_suffix(".json")


def save_checkpoint(model: torch.nn.Module, path: str | Path, **metadata: Any) -> Path:
    """Write ``model`` as safetensors plus a sidecar JSON (architecture, spectrum, metadata, sha256).

    Args:
        model: a :class:`SmartiesMAE`.
        path: target file; ``.safetensors`` is appended when missing. The JSON is written beside it
            with the same stem.
        **metadata: JSON-serialisable facts to keep with the weights (source, licence, bands,
            normalisation, training run, ...).

    Returns:
        The safetensors path.
    """
    from safetensors.torch import save_file

    from smartiesviz import __version__
    from smartiesviz.spectrum import LEARNED_RANGES

    path = Path(path)
    if path.suffix != ".safetensors":
        path = path.with_name(path.name + ".safetensors")
    try:
        meta_json = json.dumps(metadata)
    except TypeError as err:
        raise TypeError(f"checkpoint metadata must be JSON-serialisable: {err}") from err
    config = dict(model.config, pos_embed_mode=model.pos_embed_mode)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata={"format": FORMAT, "config": json.dumps(config)})
    projection = model.spectrum_projection
    sidecar = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "smartiesviz_version": __version__,
        "arch": getattr(model, "arch_name", type(model).__name__),
        "architecture": config,
        "stored_pos_embed": {k: list(state[k].shape) for k in _POS_KEYS if k in state},
        "spectrum": {
            "layers": [r.name for r in LEARNED_RANGES][: config["num_layers"]],
            "token_scale": float(getattr(projection, "token_scale", 12.0)),
            "scheme": getattr(projection, "scheme", None),
        },
        "metadata": json.loads(meta_json),
        "file": path.name,
        "sha256": _sha256(path),
    }
    _sidecar(path).write_text(json.dumps(sidecar, indent=2) + "\n")
    return path


def load_checkpoint(path: str | Path, verify: bool = True) -> torch.nn.Module:
    """Rebuild a :class:`SmartiesMAE` from :func:`save_checkpoint` output, in eval mode.

    Args:
        path: the ``.safetensors`` file (its ``.json`` sidecar is read when present; without it
            the architecture stored in the safetensors header is used).
        verify: check the file's sha256 against the sidecar.

    Returns:
        The model, on CPU, in eval mode; ``model.checkpoint_info`` holds the sidecar.

    Raises:
        CheckpointError: corrupt file, checksum mismatch, or not a smartiesviz checkpoint.
    """
    from safetensors import safe_open

    from smartiesviz.models.mae import SmartiesMAE

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    info: dict[str, Any] = {}
    if _sidecar(path).is_file():
        info = json.loads(_sidecar(path).read_text())
        if verify and info.get("sha256") and info["sha256"] != _sha256(path):
            raise CheckpointError(
                f"{path}: sha256 does not match its sidecar {_sidecar(path).name} (file changed or "
                "truncated); pass verify=False to load anyway"
            )
        config = info.get("architecture")
    else:
        try:
            with safe_open(str(path), framework="pt") as fh:
                header = fh.metadata() or {}
        except Exception as err:
            raise CheckpointError(
                f"could not read {path}: corrupt or not safetensors ({err})"
            ) from err
        config = json.loads(header["config"]) if "config" in header else None
    if not config:
        raise CheckpointError(
            f"{path} is not a smartiesviz checkpoint (no architecture recorded); for released "
            "weights build the model and call load_pretrained(model, path)"
        )
    state = read_state_dict(path)
    model = SmartiesMAE(**config)
    if info.get("arch"):
        model.arch_name = info["arch"]
    for key in _POS_KEYS:
        if key in state:
            setattr(model, key, torch.empty_like(state[key]))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"{path} does not match its recorded architecture: {err}") from err
    model.checkpoint_info = info
    return model.eval()
