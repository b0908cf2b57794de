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
    "short_list",
]

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



def non_finite_keys(sd: Mapping[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors holding a NaN or an infinity (in ``sd``'s order)."""
    return [
        key
        for key, value in sd.items()
        if value.is_floating_point() and not bool(torch.isfinite(value).all())
    ]
