"""Load the released SMARTIES checkpoints into a model, and save/load our own.

Released files (:func:`load_pretrained`): keys are renamed from the release's layout (see
:mod:`smartiesviz.models.state_dict`) and checked against the model, with a :class:`LoadReport`.

Positional tables: the release stores its *fixed* sin-cos tables. Our model computes sin-cos on the
fly for whatever patch grid it gets, so :func:`load_pretrained` checks that a stored table equals
sin-cos at the file's grid and then drops it (reported in ``report.pos_embed``). A table that is
*not* sin-cos (e.g. from a fine-tuned model with a learned table) is kept with a warning: it is
stored on the model (``model.pos_embed`` / ``model.decoder_pos_embed``) and resampled bicubically
to each input grid, as the release's downstream model does. To reproduce the release's
downstream numbers at another input size, build the model with ``pos_embed_mode="bicubic"``: the
file's table (e.g. 14x14) is then kept and resampled bicubically to each input grid.

Our own checkpoints (:func:`save_checkpoint`) are a safetensors file plus a sidecar JSON with the
architecture, the spectrum (layer order), free metadata and the file's sha256, read back as one
typed :class:`CheckpointInfo`; :func:`load_checkpoint` rebuilds the model with one call.

Either loader refuses a file with NaN or infinite weights (:class:`NonFiniteWeightsError`, naming
the tensors): such a file gives NaN features for every input.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from smartiesviz import __version__
from smartiesviz.data.holdout import Holdout
from smartiesviz.models.mae import SmartiesMAE
from smartiesviz.models.pos_embed import grid_from_num_tokens, sincos_pos_embed
from smartiesviz.models.state_dict import (
    CheckpointError,
    ForeignCheckpointError,
    infer_architecture,
    non_finite_keys,
    read_state_dict,
    remap_release_state_dict,
    short_list,
    to_release_state_dict,
)
from smartiesviz.spectrum import LEARNED_RANGES

__all__ = [
    "CheckpointError",
    "ForeignCheckpointError",
    "NonFiniteWeightsError",
    "LoadReport",
    "CheckpointInfo",
    "remap_release_state_dict",
    "to_release_state_dict",
    "infer_architecture",
    "read_state_dict",
    "load_pretrained",
    "save_checkpoint",
    "load_checkpoint",
    "read_checkpoint_info",
]

FORMAT = "smartiesviz-checkpoint"
FORMAT_VERSION = 1
_POS_KEYS = ("pos_embed", "decoder_pos_embed")
_DECODER_PREFIXES = ("decoder_", "mask_token")
_HEAD_PREFIXES = ("head.", "fc_norm.", "head_drop.")
_SINCOS_ATOL = 1e-5


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
        non_finite: file keys holding NaN or infinite values (the load is then refused).
    """

    source: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    pos_embed: list[str] = field(default_factory=list)
    architecture_diff: list[str] = field(default_factory=list)
    non_finite: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every model key was loaded and nothing was left over or mis-shaped."""
        return not (self.missing or self.unexpected or self.mismatched or self.non_finite)

    def __str__(self) -> str:
        lines = [f"checkpoint {self.source}: {len(self.loaded)} tensors loaded"]
        for name, items in (
            ("missing", self.missing),
            ("unexpected", self.unexpected),
            ("skipped", self.skipped),
        ):
            if items:
                lines.append(f"  {name} ({len(items)}): {short_list(items)}")
        if self.mismatched:
            shown = ", ".join(
                f"{k} {list(f)} in file vs {list(m)} in model" for k, f, m in self.mismatched[:5]
            )
            lines.append(f"  mismatched shapes ({len(self.mismatched)}): {shown}")
        lines += [f"  {p}" for p in self.pos_embed]
        if self.architecture_diff:
            lines.append("  architecture: " + "; ".join(self.architecture_diff))
        return "\n".join(lines)



class NonFiniteWeightsError(CheckpointError):
    """A checkpoint holding NaN or infinite weights.

    Attributes:
        keys: the offending tensors' names.
        report: the :class:`LoadReport` so far (``report.ok`` is False), or None.
    """

    def __init__(self, source: str, keys: list[str], report: LoadReport | None = None) -> None:
        super().__init__(
            f"{source} holds NaN or infinite values in {len(keys)} tensor(s): {short_list(keys)}. "
            "The file is corrupt or comes from a diverged run; use an earlier checkpoint"
        )
        self.keys = list(keys)
        self.report = report


# ---------------------------------------------------------------------- released files
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
        NonFiniteWeightsError: a tensor of the file holds NaN or inf (whatever ``strict`` says).
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
    report.non_finite = non_finite_keys(sd)
    if report.non_finite:
        raise NonFiniteWeightsError(source, report.non_finite, report)
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
            f"{len(expected)} model tensors match; first offending keys: {short_list(offending)}. "
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
@dataclass(frozen=True)
class CheckpointInfo(Mapping[str, Any]):
    """What one of our checkpoints records beside its weights (its sidecar JSON), typed.

    Also a read-only mapping over the sidecar's JSON keys, so ``info["metadata"]["steps"]`` keeps
    working for code written against the plain JSON.

    Attributes:
        arch: the factory that built the model (``"smarties_vit_tiny_patch8"``), or its class name.
        architecture: the :class:`SmartiesMAE` constructor arguments.
        spectrum: ``{"layers": [range names in layer order], "token_scale", "scheme"}``.
        metadata: the free JSON metadata given to :func:`save_checkpoint` (training run, config,
            ``holdout``, ...).
        sha256: hex digest of the safetensors file (``""`` when not recorded).
        file: the safetensors file name.
        format_version: version of this layout.
        smartiesviz_version: the version that wrote the file.
        stored_pos_embed: ``key → shape`` of positional tables stored in the file.
    """

    arch: str
    architecture: dict[str, Any]
    spectrum: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    sha256: str = ""
    file: str = ""
    format_version: int = FORMAT_VERSION
    smartiesviz_version: str = ""
    stored_pos_embed: dict[str, list[int]] = field(default_factory=dict)

    @property
    def holdout(self) -> Holdout:
        """The data the model never trained on (``metadata.holdout``; empty when not recorded)."""
        return Holdout.from_metadata(self.metadata.get("holdout"))

    @classmethod
    def from_json(cls, data: Any, source: str | Path) -> CheckpointInfo:
        """Read the sidecar layout written by :func:`save_checkpoint`.

        Raises:
            CheckpointError: not a JSON object, or its ``architecture`` is missing (names ``source``).
        """
        if not isinstance(data, Mapping) or not isinstance(data.get("architecture"), Mapping):
            raise CheckpointError(
                f"{source} is not a smartiesviz checkpoint sidecar (no 'architecture' object); "
                "restore it from the training run, or delete it to use the architecture stored in "
                "the safetensors header"
            )
        return cls(
            arch=str(data.get("arch") or ""),
            architecture=dict(data["architecture"]),
            spectrum=dict(data.get("spectrum") or {}),
            metadata=dict(data.get("metadata") or {}),
            sha256=str(data.get("sha256") or ""),
            file=str(data.get("file") or ""),
            format_version=int(data.get("format_version", FORMAT_VERSION)),
            smartiesviz_version=str(data.get("smartiesviz_version") or ""),
            stored_pos_embed=dict(data.get("stored_pos_embed") or {}),
        )

    def to_json(self) -> dict[str, Any]:
        """The sidecar layout (JSON-serialisable), in the order :func:`save_checkpoint` writes it."""
        return {
            "format": FORMAT,
            "format_version": self.format_version,
            "smartiesviz_version": self.smartiesviz_version,
            "arch": self.arch,
            "architecture": self.architecture,
            "stored_pos_embed": self.stored_pos_embed,
            "spectrum": self.spectrum,
            "metadata": self.metadata,
            "file": self.file,
            "sha256": self.sha256,
        }

    def __getitem__(self, key: str) -> Any:
        return self.to_json()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_json())

    def __len__(self) -> int:
        return len(self.to_json())


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _sidecar(path: Path) -> Path:
    return path.with_suffix(".json")


def read_checkpoint_info(path: str | Path) -> CheckpointInfo:
    """The :class:`CheckpointInfo` of a checkpoint: its sidecar JSON (``path`` or the ``.json``).

    Raises:
        FileNotFoundError: no sidecar.
        CheckpointError: the sidecar is not valid JSON or not a checkpoint sidecar (names it).
    """
    sidecar = _sidecar(Path(path))
    try:
        data = json.loads(sidecar.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"checkpoint sidecar not found: {sidecar}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(
            f"checkpoint sidecar {sidecar} is not valid JSON ({err}); restore it from the training "
            "run, or delete it to use the architecture stored in the safetensors header"
        ) from err
    return CheckpointInfo.from_json(data, sidecar)


def save_checkpoint(model: SmartiesMAE, path: str | Path, **metadata: Any) -> Path:
    """Write ``model`` as safetensors plus a sidecar JSON (:class:`CheckpointInfo`).

    Args:
        model: a :class:`SmartiesMAE`.
        path: target file; ``.safetensors`` is appended when missing. The JSON is written beside it
            with the same stem.
        **metadata: JSON-serialisable facts to keep with the weights (source, licence, bands,
            normalisation, training run, ...).

    Returns:
        The safetensors path.
    """
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
    info = CheckpointInfo(
        arch=getattr(model, "arch_name", type(model).__name__),
        architecture=config,
        spectrum={
            "layers": [r.name for r in LEARNED_RANGES][: config["num_layers"]],
            "token_scale": float(getattr(projection, "token_scale", 12.0)),
            "scheme": getattr(projection, "scheme", None),
        },
        metadata=json.loads(meta_json),
        sha256=_sha256(path),
        file=path.name,
        smartiesviz_version=__version__,
        stored_pos_embed={k: list(state[k].shape) for k in _POS_KEYS if k in state},
    )
    _sidecar(path).write_text(json.dumps(info.to_json(), indent=2) + "\n")
    return path


def load_checkpoint(path: str | Path, verify: bool = True) -> SmartiesMAE:
    """Rebuild a :class:`SmartiesMAE` from :func:`save_checkpoint` output, in eval mode.

    Args:
        path: the ``.safetensors`` file (its ``.json`` sidecar is read when present; without it
            the architecture stored in the safetensors header is used).
        verify: check the file's sha256 against the sidecar.

    Returns:
        The model, on CPU, in eval mode; ``model.checkpoint_info`` is its :class:`CheckpointInfo`.

    Raises:
        CheckpointError: corrupt file or sidecar, checksum mismatch, not a smartiesviz checkpoint,
            or NaN/infinite weights (:class:`NonFiniteWeightsError`).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    if _sidecar(path).is_file():
        info = read_checkpoint_info(path)
        if verify and info.sha256 and info.sha256 != _sha256(path):
            raise CheckpointError(
                f"{path}: sha256 does not match its sidecar {_sidecar(path).name} (file changed or "
                "truncated); pass verify=False to load anyway"
            )
    else:
        info = CheckpointInfo(arch="", architecture=_header_config(path), file=path.name)
    state = read_state_dict(path)
    if bad := non_finite_keys(state):
        raise NonFiniteWeightsError(str(path), bad)
    model = SmartiesMAE(**info.architecture)
    if info.arch:
        model.arch_name = info.arch
    for key in _POS_KEYS:
        if key in state:
            setattr(model, key, torch.empty_like(state[key]))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        expected = model.state_dict()
        details = _architecture_diff(infer_architecture(state), model, encoder_only=False) + [
            f"{name} keys: {short_list(keys)}"
            for name, keys in (
                ("missing", [k for k in expected if k not in state]),
                ("unexpected", [k for k in state if k not in expected]),
                ("mis-shaped", [k for k in state if k in expected
                                and state[k].shape != expected[k].shape]),
            )
            if keys
        ]  # fmt: skip
        raise CheckpointError(
            f"{path} does not match its recorded architecture ({'; '.join(details)})"
        ) from err
    model.checkpoint_info = info
    return model.eval()


def _header_config(path: Path) -> dict[str, Any]:
    """The architecture :func:`save_checkpoint` stores in the safetensors header."""
    try:
        with safe_open(str(path), framework="pt") as fh:
            header = fh.metadata() or {}
    except Exception as err:  # safetensors raises several error types for a bad header
        raise CheckpointError(f"could not read {path}: corrupt or not safetensors ({err})") from err
    if "config" not in header:
        raise CheckpointError(
            f"{path} is not a smartiesviz checkpoint (no architecture recorded); for released "
            "weights build the model and call load_pretrained(model, path)"
        )
    return json.loads(header["config"])
