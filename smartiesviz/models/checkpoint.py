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

Nothing is allocated before it is checked: the safetensors header (dtypes, shapes, offsets
against the file size) and the sidecar's architecture (types and ranges, :data:`ARCH_LIMITS`)
are validated first, and the architecture is built on the ``meta`` device and compared with the
header's shapes before the real model is built. :func:`save_checkpoint` writes the pair
atomically: the sidecar is renamed into place before the weights, and both record a ``save_id``,
so a save killed between the two renames leaves a pair that :func:`load_checkpoint` refuses.
"""

from __future__ import annotations

import json
import os
import uuid
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from smartiesviz._version import __version__
from smartiesviz.holdout import Holdout
from smartiesviz.models.mae import SmartiesMAE
from smartiesviz.models.pos_embed import grid_from_num_tokens, sincos_pos_embed
from smartiesviz.models.state_dict import (
    MAX_HEADER_BYTES,
    CheckpointError,
    ForeignCheckpointError,
    infer_architecture,
    non_finite_keys,
    read_safetensors_header,
    read_state_dict,
    remap_release_state_dict,
    short_list,
    to_release_state_dict,
)
from smartiesviz.options import PosEmbedMode
from smartiesviz.outputs import (
    atomic_path,
    atomic_write_bytes,
    check_input_file,
    check_output,
    file_sha256,
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
    "check_architecture",
    "ARCH_LIMITS",
]

FORMAT = "smartiesviz-checkpoint"
FORMAT_VERSION = 1
_POS_KEYS = ("pos_embed", "decoder_pos_embed")
_DECODER_PREFIXES = ("decoder_", "mask_token")
_HEAD_PREFIXES = ("head.", "fc_norm.", "head_drop.")
_SINCOS_ATOL = 1e-5
#: ``SmartiesMAE`` argument → (type, smallest, largest) accepted from a sidecar or header; far
#: beyond any real SMARTIES model (ViT-L: 1024 wide, 24 deep), but refusing absurd requests.
ARCH_LIMITS: dict[str, tuple[type, float, float]] = {
    "img_size": (int, 1, 8192),
    "patch_size": (int, 1, 256),
    "embed_dim": (int, 1, 8192),
    "depth": (int, 0, 256),
    "num_heads": (int, 1, 1024),
    "decoder_embed_dim": (int, 1, 8192),
    "decoder_depth": (int, 0, 256),
    "decoder_num_heads": (int, 1, 1024),
    "mlp_ratio": (float, 0.0, 64.0),
    "num_layers": (int, 1, 64),
}
#: Most values of one positional table the model builds for its ``img_size`` grid (1 GiB).
MAX_POS_TABLE_VALUES = 2**28


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
        notes: other facts about the load, one line each (e.g. a task head that was dropped).
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
    notes: list[str] = field(default_factory=list)

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
        lines += [f"  {n}" for n in self.notes]
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
    model: SmartiesMAE,
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
    report.non_finite = non_finite_keys(sd, source)
    if report.non_finite:
        raise NonFiniteWeightsError(source, report.non_finite, report)
    report.architecture_diff = _architecture_diff(infer_architecture(sd), model, encoder_only)
    _set_aside(sd, model, encoder_only, report)
    model_sd = model.state_dict()
    expected = [k for k in model_sd if k not in _POS_KEYS and not (encoder_only and _is_decoder(k))]
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
    _refuse_foreign(model, len(fit), len(expected), report)
    if strict and not report.ok:
        hint = ""
        if report.missing and all(_is_decoder(k) for k in report.missing):
            hint = " (the file has no decoder: pass encoder_only=True)"
        raise CheckpointError(f"strict loading failed{hint}:\n{report}")
    with torch.no_grad():
        model.load_state_dict(fit, strict=False)
    return report


def _is_decoder(key: str) -> bool:
    return key.startswith(_DECODER_PREFIXES)


def _set_aside(
    sd: dict[str, torch.Tensor], model: SmartiesMAE, encoder_only: bool, report: LoadReport
) -> None:
    """Take the positional tables (loaded or resampled in place) and the task heads (skipped)
    out of ``sd``; with ``encoder_only`` the decoder's tensors are skipped too."""
    for key, dim in (("pos_embed", model.embed_dim), ("decoder_pos_embed", model.decoder_embed_dim)):
        table = sd.pop(key, None)
        if table is None:
            continue
        if encoder_only and _is_decoder(key):
            report.skipped.append(key)
        else:
            _treat_pos_table(key, table, dim, model, report)
    for key in list(sd):
        if key.startswith(_HEAD_PREFIXES) or (encoder_only and _is_decoder(key)):
            report.skipped.append(key)
            del sd[key]


def _refuse_foreign(model: SmartiesMAE, n_fit: int, n_expected: int, report: LoadReport) -> None:
    """Refuse a file of another architecture, or of which less than half the tensors fit."""
    if not report.architecture_diff and n_fit >= 0.5 * max(n_expected, 1):
        return
    offending = report.unexpected + [k for k, *_ in report.mismatched] + report.missing
    diff = "; ".join(report.architecture_diff) or "no SMARTIES architecture recognised"
    raise ForeignCheckpointError(
        f"{report.source} does not fit this {type(model).__name__} ({diff}). Only {n_fit} of "
        f"{n_expected} model tensors match; first offending keys: {short_list(offending)}. "
        "Build the matching architecture (e.g. smarties_vit_large_patch16 for a ViT-L file)"
        + (" or pass strict=False to load what fits" if not report.architecture_diff else "")
    )


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
        save_id: a random id the safetensors header also records (``""`` when not recorded):
            a sidecar whose id differs from its weights' comes from another save.
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
    save_id: str = ""

    @property
    def holdout(self) -> Holdout:
        """The data the model never trained on (``metadata.holdout``; empty when not recorded)."""
        return Holdout.from_metadata(self.metadata.get("holdout"))

    @classmethod
    def from_json(cls, data: Any, source: str | Path) -> CheckpointInfo:
        """Read the sidecar layout written by :func:`save_checkpoint`.

        Raises:
            CheckpointError: not a JSON object, its ``architecture`` is missing, or a key has the
                wrong type or value (names ``source``, the key and the expected type).
        """
        if not isinstance(data, Mapping) or "architecture" not in data:
            raise CheckpointError(
                f"{source} is not a smartiesviz checkpoint sidecar (no 'architecture' object); "
                f"{_FIX_SIDECAR}"
            )

        def get(key: str, kind: type, default: Any) -> Any:
            value = data.get(key)
            if value is None:
                return default
            if not isinstance(value, kind) or isinstance(value, bool):
                raise CheckpointError(
                    f"{source}: key {key!r} must be {_TYPE_NAMES[kind]}, got "
                    f"{type(value).__name__} {_short(value)}; {_FIX_SIDECAR}"
                )
            return value

        architecture = check_architecture(get("architecture", dict, {}), source)
        stored = get("stored_pos_embed", dict, {})
        for key, shape in stored.items():
            if not (isinstance(shape, list) and all(type(d) is int and d >= 0 for d in shape)):
                raise CheckpointError(
                    f"{source}: stored_pos_embed.{key} must be a list of integers, got "
                    f"{_short(shape)}; {_FIX_SIDECAR}"
                )
        return cls(
            arch=get("arch", str, ""),
            architecture=architecture,
            spectrum=dict(get("spectrum", dict, {})),
            metadata=dict(get("metadata", dict, {})),
            sha256=get("sha256", str, ""),
            file=get("file", str, ""),
            format_version=get("format_version", int, FORMAT_VERSION),
            smartiesviz_version=get("smartiesviz_version", str, ""),
            stored_pos_embed=dict(stored),
            save_id=get("save_id", str, ""),
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
            "save_id": self.save_id,
        }

    def __getitem__(self, key: str) -> Any:
        return self.to_json()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_json())

    def __len__(self) -> int:
        return len(self.to_json())


_FIX_SIDECAR = (
    "restore it from the training run, or delete it to use the architecture stored in the "
    "safetensors header"
)
_TYPE_NAMES = {dict: "a JSON object", str: "a string", int: "an integer", float: "a number"}


def _short(value: Any, n: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= n else text[: n - 3] + "..."


def check_architecture(arch: Mapping[str, Any], source: str | Path) -> dict[str, Any]:
    """The :class:`SmartiesMAE` arguments of a sidecar or header, checked before anything is
    built: every key of :data:`ARCH_LIMITS` present, of its type and within its range; heads
    dividing widths; the positional table of the ``img_size`` grid within
    :data:`MAX_POS_TABLE_VALUES`.

    Raises:
        CheckpointError: naming ``source``, the key, the value and what is expected.
    """
    fix = _FIX_SIDECAR if str(source).endswith(".json") else "the file is corrupt"
    if unknown := sorted(set(arch) - set(ARCH_LIMITS) - {"pos_embed_mode"}):
        raise CheckpointError(
            f"{source}: unknown architecture key(s) {', '.join(map(repr, unknown))} "
            f"(known: {', '.join(ARCH_LIMITS)}, pos_embed_mode); {fix}"
        )
    out: dict[str, Any] = {}
    for key, (kind, lo, hi) in ARCH_LIMITS.items():
        if key not in arch:
            raise CheckpointError(f"{source}: architecture.{key} is missing; {fix}")
        value = arch[key]
        kinds = (int, float) if kind is float else (int,)
        if (
            isinstance(value, bool) or not isinstance(value, kinds)
            or not lo <= value <= hi or (kind is float and value <= lo)
        ):  # NaN fails every comparison  # fmt: skip
            what = "a number in (0" if kind is float else f"an integer in [{lo}"
            raise CheckpointError(
                f"{source}: architecture.{key} must be {what}, {hi}], got "
                f"{type(value).__name__} {_short(value)}; {fix}"
            )
        out[key] = value
    mode = arch.get("pos_embed_mode", "sincos")
    if mode not in PosEmbedMode.__args__:
        raise CheckpointError(
            f"{source}: architecture.pos_embed_mode must be one of {list(PosEmbedMode.__args__)}, "
            f"got {_short(mode)}; {fix}"
        )
    if "pos_embed_mode" in arch:
        out["pos_embed_mode"] = mode
    for dim, heads in (("embed_dim", "num_heads"), ("decoder_embed_dim", "decoder_num_heads")):
        if out[dim] % out[heads]:
            raise CheckpointError(
                f"{source}: architecture.{dim} {out[dim]} is not divisible by {heads} "
                f"{out[heads]}; {fix}"
            )
    grid = out["img_size"] // out["patch_size"]
    if (
        out["img_size"] % out["patch_size"]
        or grid * grid * max(out["embed_dim"], out["decoder_embed_dim"]) > MAX_POS_TABLE_VALUES
    ):
        raise CheckpointError(
            f"{source}: architecture.img_size {out['img_size']} with patch_size "
            f"{out['patch_size']} is not a whole patch grid of at most {MAX_POS_TABLE_VALUES} "
            f"positional values; {fix}"
        )
    return out


def _sidecar(path: Path) -> Path:
    return path.with_suffix(".json")


def read_checkpoint_info(path: str | Path) -> CheckpointInfo:
    """The :class:`CheckpointInfo` of a checkpoint: its sidecar JSON (``path`` or the ``.json``).

    When the weights (``.safetensors``) are beside it, their header's ``save_id`` must match.

    Raises:
        FileNotFoundError: no sidecar.
        CheckpointError: the sidecar is not valid JSON, not a checkpoint sidecar, has a key of
            the wrong type or value, or comes from another save than the weights (names them).
    """
    sidecar = _sidecar(Path(path))
    if not sidecar.exists():
        raise FileNotFoundError(f"checkpoint sidecar not found: {sidecar}")
    check_input_file(sidecar, "checkpoint sidecar")
    if sidecar.stat().st_size > MAX_HEADER_BYTES:
        raise CheckpointError(
            f"checkpoint sidecar {sidecar} is {sidecar.stat().st_size} bytes, more than "
            f"{MAX_HEADER_BYTES}; {_FIX_SIDECAR}"
        )
    try:
        data = json.loads(sidecar.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(
            f"checkpoint sidecar {sidecar} is not valid JSON ({err}); {_FIX_SIDECAR}"
        ) from err
    info = CheckpointInfo.from_json(data, sidecar)
    weights = sidecar.with_suffix(".safetensors")
    if weights.is_file():
        _check_pair(weights, info, read_safetensors_header(weights)[1])
    return info


def _check_pair(path: Path, info: CheckpointInfo, header: Mapping[str, str]) -> None:
    """Refuse weights and a sidecar written by different saves (e.g. a save killed midway)."""
    file_id = header.get("save_id", "")
    if (info.save_id or file_id) and info.save_id != file_id:
        name = _sidecar(path).name
        raise CheckpointError(
            f"{path} and its sidecar {name} come from different saves (save_id "
            f"{file_id or 'none'} in the weights, {info.save_id or 'none'} in the sidecar): a "
            "save_checkpoint was interrupted or one file was replaced. Save the model again, or "
            f"delete {name} to load the weights with the architecture in their header"
        )


def _file_mode() -> int:
    """The mode ``open()`` would give a new file under the current umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def save_checkpoint(model: SmartiesMAE, path: str | Path, **metadata: Any) -> Path:
    """Write ``model`` as safetensors plus a sidecar JSON (:class:`CheckpointInfo`), atomically.

    Both files are written to temporary names; the sidecar is renamed into place first, then
    the weights. A save killed at any point leaves the old pair, the new pair, or the new sidecar
    beside the old weights, which :func:`load_checkpoint` refuses (their ``save_id`` differs).
    The weights are readable by all (mode 0644), for shared clusters.

    Args:
        model: a :class:`SmartiesMAE`.
        path: target file; ``.safetensors`` is appended when missing. The JSON is written beside it
            with the same stem. An existing pair is replaced, but not the checkpoint ``model``
            was loaded from, a folder or a special file.
        **metadata: JSON-serialisable facts to keep with the weights (source, licence, bands,
            normalisation, training run, ...).

    Returns:
        The safetensors path.
    """
    path = Path(path)
    if path.suffix != ".safetensors":
        path = path.with_name(path.name + ".safetensors")
    source = model.checkpoint_path
    own: list[Path] = [Path(source), _sidecar(Path(source))] if source else []
    check_output(path, own, overwrite=True, what="checkpoint")
    sidecar = check_output(_sidecar(path), own, overwrite=True, what="checkpoint sidecar")
    try:
        meta_json = json.dumps(metadata)
    except TypeError as err:
        raise TypeError(f"checkpoint metadata must be JSON-serialisable: {err}") from err
    config = dict(model.config, pos_embed_mode=model.pos_embed_mode)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_id = uuid.uuid4().hex
    projection = model.spectrum_projection
    with atomic_path(path) as tmp:
        header = {"format": FORMAT, "config": json.dumps(config), "save_id": save_id}
        save_file(state, str(tmp), metadata=header)
        os.chmod(tmp, _file_mode())  # safetensors creates 0600; follow the umask like open() does
        _fsync(tmp)
        info = CheckpointInfo(
            arch=model.arch_name,
            architecture=config,
            spectrum={
                "layers": [r.name for r in LEARNED_RANGES][: config["num_layers"]],
                "token_scale": float(projection.token_scale),
                "scheme": projection.scheme,
            },
            metadata=json.loads(meta_json),
            sha256=file_sha256(tmp),
            file=path.name,
            smartiesviz_version=__version__,
            stored_pos_embed={k: list(state[k].shape) for k in _POS_KEYS if k in state},
            save_id=save_id,
        )
        atomic_write_bytes(sidecar, (json.dumps(info.to_json(), indent=2) + "\n").encode())
    return path


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_checkpoint(path: str | Path, verify: bool = True) -> SmartiesMAE:
    """Rebuild a :class:`SmartiesMAE` from :func:`save_checkpoint` output, in eval mode.

    Everything is checked before it is allocated: the safetensors header, the sidecar (or
    header) architecture, the pair's ``save_id``, and the architecture's tensor shapes (built on
    the ``meta`` device) against the header's.

    Args:
        path: the ``.safetensors`` file (its ``.json`` sidecar is read when present; without it
            the architecture stored in the safetensors header is used).
        verify: check the file's sha256 against the sidecar.

    Returns:
        The model, on CPU, in eval mode; ``model.checkpoint_info`` is its :class:`CheckpointInfo`
        and ``model.checkpoint_path`` the file (which :func:`save_checkpoint` will not replace).

    Raises:
        CheckpointError: corrupt file or sidecar, checksum mismatch, pair from different saves,
            not a smartiesviz checkpoint, or NaN/infinite weights (:class:`NonFiniteWeightsError`).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    check_input_file(path, "checkpoint")
    shapes, header = read_safetensors_header(path)
    if _sidecar(path).exists():
        info = read_checkpoint_info(path)
        if verify and info.sha256 and info.sha256 != file_sha256(path):
            raise CheckpointError(
                f"{path}: sha256 does not match its sidecar {_sidecar(path).name} (file changed or "
                "truncated); pass verify=False to load anyway"
            )
    else:
        info = CheckpointInfo(arch="", architecture=_header_config(path, header), file=path.name)
    _check_shapes(path, info.architecture, shapes)
    state = read_state_dict(path)
    if bad := non_finite_keys(state, str(path)):
        raise NonFiniteWeightsError(str(path), bad)
    model = SmartiesMAE(**info.architecture)
    if info.arch:
        model.arch_name = info.arch
    for key in _POS_KEYS:
        if key in state:
            setattr(model, key, torch.empty_like(state[key]))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:  # dtypes or anything the shape check did not see
        raise CheckpointError(f"{path} does not match its recorded architecture ({err})") from err
    model.checkpoint_info = info
    model.checkpoint_path = path
    return model.eval()


def _check_shapes(
    path: Path, architecture: Mapping[str, Any], shapes: Mapping[str, list[int]]
) -> None:
    """Compare the architecture's tensors (built on ``meta``: no memory) with the header's."""
    with torch.device("meta"):
        meta = SmartiesMAE(**architecture)
    expected = {k: list(v.shape) for k, v in meta.state_dict().items()}
    expected.update({k: shapes[k] for k in _POS_KEYS if k in shapes})  # stored tables: any grid
    if expected == dict(shapes):
        return
    file_sd = {k: torch.empty(s, device="meta") for k, s in shapes.items()}
    details = _architecture_diff(infer_architecture(file_sd), meta, encoder_only=False) + [
        f"{name} keys: {short_list(keys)}"
        for name, keys in (
            ("missing", [k for k in expected if k not in shapes]),
            ("unexpected", [k for k in shapes if k not in expected]),
            ("mis-shaped", [k for k in shapes if k in expected and shapes[k] != expected[k]]),
        )
        if keys
    ]
    raise CheckpointError(f"{path} does not match its recorded architecture ({'; '.join(details)})")


def _header_config(path: Path, header: Mapping[str, str]) -> dict[str, Any]:
    """The architecture :func:`save_checkpoint` stores in the safetensors header, checked."""
    if "config" not in header:
        raise CheckpointError(
            f"{path} is not a smartiesviz checkpoint (no architecture recorded); for released "
            "weights build the model and call load_pretrained(model, path)"
        )
    try:
        config = json.loads(header["config"])
    except ValueError as err:
        raise CheckpointError(
            f"{path}: the architecture in its header is not JSON ({err})"
        ) from err
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: the architecture in its header is not a JSON object")
    return check_architecture(config, f"{path} (header config)")
