"""Pretraining configuration: nested dataclasses read from YAML, with dotted ``key=value`` overrides.

A config file mirrors :class:`PretrainConfig`::

    model: {name: smarties_vit_tiny_patch8, img_size: 64, kwargs: {depth: 6}}
    data: {sources: [{kind: s2_scene, partner: rgb}], band_subset_p: 0.5}
    optim: {base_lr: 1.5e-4, warmup_steps: 100}
    train: {global_batch_size: 32, steps: 2000, precision: fp32, output_dir: runs/demo}

Unknown keys are errors that name the key and list the known ones, so a typo never silently
falls back to a default.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from smartiesviz.errors import UserError
from smartiesviz.yamlfile import load_yaml

# the factories of smartiesviz.models.factories (its __all__; a test keeps the two equal): a config
# names one of these, nothing else is ever imported from a config string
ModelName = Literal[
    "smarties_vit_tiny_patch8", "smarties_vit_tiny_patch4",  # the demo sizes
    "smarties_vit_small_patch16", "smarties_vit_base_patch16", "smarties_vit_large_patch16",
]  # fmt: skip
Precision = Literal["fp32", "bf16", "fp16"]
Device = Literal["auto", "cpu", "cuda"]
MixupMode = Literal["mirrored", "as-released"]
SourceKind = Literal["s2_scene", "bigearthnet", "synthetic", "pairs", "images", "shards"]
Partner = Literal["rgb", "s1"]
Edge = Literal["top", "bottom", "left", "right"]
OnBad = Literal["error", "skip"]
PRECISIONS = typing.get_args(Precision)
MODEL_NAMES = typing.get_args(ModelName)
# upper bounds that catch typos (an extra zero or two) before they exhaust memory or time
MAX_BATCH = 1_000_000
MAX_STEPS = 1_000_000_000
MAX_THREADS = 4096
MAX_IMG_SIZE = 8192
SOURCE_KINDS = typing.get_args(SourceKind)
# the keys each kind of source needs (validated in PretrainConfig.validate)
REQUIRED_KEYS: dict[str, tuple[str, ...]] = {
    "pairs": ("list", "root_a", "root_b", "sensor_a", "sensor_b"),
    "images": ("list", "root", "sensor"),
    "shards": ("path",),
}


@dataclass
class ModelConfig:
    """Which model to pretrain.

    Attributes:
        name: a factory in ``smartiesviz.models.factories`` (e.g. ``smarties_vit_tiny_patch8``);
            only these names are accepted (a config never imports code).
        img_size: input size in pixels (tiles are cropped/resampled to this size).
        kwargs: extra keyword arguments for the factory (depth, embed_dim, decoder sizes, ...).
        init: a ``save_checkpoint`` ``.safetensors`` file of the same architecture whose weights
            start the run (continued training, e.g. demo v2 from demo v1); ``None``: random init.
    """

    name: ModelName = "smarties_vit_tiny_patch8"
    img_size: int = 64
    kwargs: dict[str, Any] = field(default_factory=dict)
    init: str | None = None


@dataclass
class SourceConfig:
    """One stream of training images.

    Attributes:
        kind: ``s2_scene`` (tiles of the bundled Sentinel-2 L1C scene outside its held-out block),
            ``bigearthnet`` (the bundled BigEarthNet S2/S1 pairs except the held-out one),
            ``synthetic`` (smooth random fields; for tests), or the user's files: ``pairs`` (a
            pair list with ``list``, ``root_a``, ``root_b``, ``sensor_a``, ``sensor_b``),
            ``images`` (``list``: a list file or a glob, ``root``, ``sensor``) or ``shards``
            (``path``: a folder written by ``smartiesviz shards build``). ``{kind: pairs, list:
            bundled:bigearthnet}`` reads the bundled BigEarthNet examples as a pair list.
        weight: relative probability that a step draws its batch from this source.
        partner: second sensor for cross-sensor mixup: ``rgb`` (simulated from S2 B04/B03/B02,
            ``s2_scene`` only), ``s1`` (``bigearthnet`` only), or ``None`` (single images).
        p_single: probability that a step of a paired source trains one of the two images alone,
            so single-sensor inputs are seen too.
        p_b: probability that such a single-image step trains image b (e.g. S1) rather than a.
        b_level_shift: half-width of a random offset, one per image, added to every band of the
            partner image b (model units). For Sentinel-1 (dB, scaled so that 1 dB is about 0.2)
            it is a random radiometric gain: with a few training images, it keeps the model
            from predicting each image's remembered level instead of the level it sees. 0: off.
        channels: number of bands of a ``synthetic`` source.
        list, root_a, root_b, sensor_a, sensor_b, root, sensor, path: the user's files (above).
        shuffle: ``shards`` only: size of the shuffle window (samples).
    """

    kind: SourceKind = "s2_scene"
    weight: float = 1.0
    partner: Partner | None = None
    p_single: float = 0.0
    p_b: float = 0.5
    b_level_shift: float = 0.0
    channels: int = 4
    list: str | None = None
    root_a: str | None = None
    root_b: str | None = None
    sensor_a: str | None = None
    sensor_b: str | None = None
    root: str | None = None
    sensor: str | None = None
    path: str | None = None
    shuffle: int = 1000


@dataclass
class DataConfig:
    """Data sources, hold-out split and augmentations.

    Attributes:
        sources: the training streams (see :class:`SourceConfig`).
        samples_per_epoch: images per epoch (streams are endless random crops, so an epoch is a
            bookkeeping unit for ``train.epochs`` and the logs).
        holdout_edge: side of the S2 scene whose block is held out: ``top``, ``bottom``, ``left``
            or ``right``.
        holdout_fraction: fraction of the scene's height (top/bottom) or width (left/right) held out.
        holdout_gap: pixels between the training region and the held-out block.
        holdout_pair: index (in ``bigearthnet_pairs()`` order) or name of the held-out pair.
        crop_scale: paired random-resized-crop area range for BigEarthNet pairs.
        band_subset_p: probability that an image of a step keeps only a random subset of its bands.
        band_subset_min: fewest bands kept by a subset.
        band_subset_max: most bands kept by a subset (0: all of the image's bands).
        visible_subset_p: probability that an image holding B02, B03 and B04 keeps exactly these
            visible bands (drawn before ``band_subset_p``); with ``full_band_target`` the decoder
            learns NIR/SWIR/red edge from RGB alone.
        visible_plus_p: probability that such an image keeps the visible trio plus 1-3 random
            other bands (so the model learns to tell RGB alone from RGB with infrared given).
        full_band_target: with a band subset, still reconstruct (and score) all the image's bands,
            so the decoder learns to predict bands the input lacked (cross-spectral prediction).
            Off: the release's behaviour, where only the input's own bands are reconstructed.
        coarsen_p: probability that a scene tile is resampled to a coarser pixel size.
        coarsen_m: range of coarse pixel sizes in metres (native S2 is 10 m).
        curriculum_steps: the first steps train only on full-band, native-resolution single
            images of the first source; the other sources, partners, band subsets and coarsening
            join afterwards (a small model learns the basic reconstruction much faster that way).
        num_workers: DataLoader worker processes (0: build batches in the training process).
        prefetch_factor: batches each worker prepares ahead.
        pin_memory: page-locked batches (faster host-to-GPU copies).
        on_bad: what to do with unusable list entries or shards: ``error`` (refuse to start,
            naming them) or ``skip`` (train without them; listed in ``skipped-entries.txt``).
        verify_shards: ``full`` (SHA-256 of every shard against its index before step 1) or
            ``size`` (byte sizes only: catches truncation, not flipped bytes; for archives too
            large to hash at every start).
        stats: a YAML file written by ``smartiesviz stats`` (per sensor and band p1/p99/mean/std);
            its sensors are normalized with it instead of the released statistics.
    """

    sources: list[SourceConfig] = field(default_factory=lambda: [SourceConfig()])
    samples_per_epoch: int = 4096
    holdout_edge: Edge = "top"
    holdout_fraction: float = 0.25
    holdout_gap: int = 32
    holdout_pair: int | str = -1
    crop_scale: list[float] = field(default_factory=lambda: [0.25, 1.0])
    band_subset_p: float = 0.0
    band_subset_min: int = 1
    band_subset_max: int = 0
    visible_subset_p: float = 0.0
    visible_plus_p: float = 0.0
    full_band_target: bool = False
    coarsen_p: float = 0.0
    coarsen_m: list[float] = field(default_factory=lambda: [20.0, 60.0])
    curriculum_steps: int = 0
    num_workers: int = 0
    prefetch_factor: int = 2
    pin_memory: bool = False
    on_bad: OnBad = "error"
    verify_shards: Literal["full", "size"] = "full"
    stats: str | None = None


@dataclass
class OptimConfig:
    """AdamW with linear warmup then cosine decay, updated every step.

    Attributes:
        base_lr: learning rate for a global batch of 256; the used rate is ``base_lr * batch / 256``.
        lr: absolute learning rate; overrides the scaling rule when set.
        min_lr: floor of the cosine schedule.
        warmup_steps: linear warmup length in steps.
        weight_decay: AdamW decay for weights (not for biases, norms and tokens).
        betas: AdamW betas.
        grad_clip: clip the global gradient norm to this value (0: off).
    """

    base_lr: float = 1.5e-4
    lr: float | None = None
    min_lr: float = 0.0
    warmup_steps: int = 100
    weight_decay: float = 0.05
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    grad_clip: float = 0.0


@dataclass
class TrainConfig:
    """Loop settings.

    Attributes:
        global_batch_size: images per optimizer step summed over all processes.
        steps: optimizer steps; if 0, ``epochs * samples_per_epoch / global_batch_size``.
        epochs: used only when ``steps`` is 0.
        mask_ratio: fraction of patches hidden from the encoder.
        mixup_ratio: fraction of a' positions taken from b in cross-sensor mixup.
        mixup_mode: ``mirrored`` (paper) or ``as-released``.
        visible_target_weight: weight of an extra loss on the *visible* patches of target bands
            the input lacked (``data.full_band_target``): MAE scores only hidden patches, so
            without it nothing teaches a band to be decoded where the encoder saw the position
            (``cross_spectral_prediction``'s visible mode). 0: off.
        kept_band_weight: weight of an extra loss on the *hidden* patches of the bands the input
            kept, in steps with a full-band target. The MAE loss averages over all target bands,
            so a 3-of-12-band input puts three quarters of it on the bands it lacks, and the
            model learns to reconstruct the bands it has less faithfully. 0: off.
        precision: ``fp32``, ``bf16`` (autocast) or ``fp16`` (autocast + GradScaler, CUDA only).
        seed: seeds data order, augmentations, masks and model init.
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
        num_threads: torch intra-op threads (None: torch's default).
        log_every: steps between CSV/TensorBoard rows.
        ckpt_every: steps between checkpoints (0: only at the end and on signals).
        keep_checkpoints: how many recent checkpoints to keep.
        output_dir: run folder (logs, checkpoints, final weights).
        save_final: also write the final model with ``save_checkpoint`` (safetensors + JSON).
        progress: show a tqdm bar on rank 0.
        compile: wrap the model in ``torch.compile``.
    """

    global_batch_size: int = 32
    steps: int = 0
    epochs: int = 1
    mask_ratio: float = 0.75
    mixup_ratio: float = 0.5
    mixup_mode: MixupMode = "mirrored"
    visible_target_weight: float = 0.0
    kept_band_weight: float = 0.0
    precision: Precision = "fp32"
    seed: int = 0
    device: Device = "auto"
    num_threads: int | None = None
    log_every: int = 10
    ckpt_every: int = 500
    keep_checkpoints: int = 2
    output_dir: str = "runs/pretrain"
    save_final: bool = True
    progress: bool = True
    compile: bool = False


@dataclass
class PretrainConfig:
    """The whole pretraining configuration (see the module docstring for the YAML layout)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @property
    def total_steps(self) -> int:
        """Optimizer steps of the run (``train.steps`` or derived from ``train.epochs``)."""
        if self.train.steps > 0:
            return self.train.steps
        return self.train.epochs * self.steps_per_epoch

    @property
    def steps_per_epoch(self) -> int:
        """Steps per (bookkeeping) epoch, at least 1."""
        return max(1, self.data.samples_per_epoch // self.train.global_batch_size)

    @property
    def lr(self) -> float:
        """Peak learning rate: ``optim.lr`` or ``base_lr * global_batch_size / 256``."""
        if self.optim.lr is not None:
            return self.optim.lr
        return self.optim.base_lr * self.train.global_batch_size / 256

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (YAML/JSON serialisable)."""
        return dataclasses.asdict(self)

    def validate(self) -> PretrainConfig:
        """Check value ranges; raise ``ValueError`` naming the key, the value and what is expected."""
        t, d = self.train, self.data
        _validate_schedule(t, d, self.optim)
        _in_range(self.model.img_size, "model.img_size", 1, MAX_IMG_SIZE)
        _check(len(d.sources) >= 1, "data.sources", d.sources, "at least one source")
        for i, s in enumerate(d.sources):
            _validate_source(s, f"data.sources[{i}]")
        _validate_sampling(t, d)
        _check(self.lr > 0 and math.isfinite(self.lr), "optim.lr", self.lr, "a positive number")
        return self


def _validate_schedule(t: TrainConfig, d: DataConfig, o: OptimConfig) -> None:
    """Batch, steps, logging, seed, optimiser and output folder (checked in this order)."""
    _in_range(t.global_batch_size, "train.global_batch_size", 1, MAX_BATCH)
    _in_range(t.steps, "train.steps", 0, MAX_STEPS)
    _check(t.epochs >= 1 or t.steps > 0, "train.epochs", t.epochs, ">= 1 when train.steps is 0")
    _in_range(t.epochs, "train.epochs", 0, MAX_STEPS)
    _in_range(t.log_every, "train.log_every", 1, MAX_STEPS)
    _in_range(t.ckpt_every, "train.ckpt_every", 0, MAX_STEPS)
    _check(t.num_threads is None or 1 <= t.num_threads <= MAX_THREADS, "train.num_threads",
           t.num_threads, f"null (torch's default) or in [1, {MAX_THREADS}]")  # fmt: skip
    _in_range(t.seed, "train.seed", 0, 2**63 - 1)
    _in_range(d.samples_per_epoch, "data.samples_per_epoch", 1, MAX_STEPS)
    _in_range(d.holdout_gap, "data.holdout_gap", 0, 1_000_000)
    _in_range(o.warmup_steps, "optim.warmup_steps", 0, MAX_STEPS)
    for key in ("min_lr", "weight_decay", "grad_clip"):
        value = getattr(o, key)
        _check(value >= 0 and math.isfinite(value), f"optim.{key}", value, "a finite number >= 0")
    betas_ok = len(o.betas) == 2 and all(isinstance(b, int | float) and 0 <= b < 1 for b in o.betas)
    _check(betas_ok, "optim.betas", o.betas, "[beta1, beta2], each in [0, 1)")
    _check(0.0 <= t.mask_ratio < 1.0, "train.mask_ratio", t.mask_ratio, "in [0, 1)")
    _check(0.0 <= t.mixup_ratio <= 1.0, "train.mixup_ratio", t.mixup_ratio, "in [0, 1]")
    out = Path(t.output_dir)
    _check(not out.exists() or out.is_dir(), "train.output_dir", t.output_dir,
           "a folder (this path is a file)")  # fmt: skip
    _check(t.keep_checkpoints >= 1, "train.keep_checkpoints", t.keep_checkpoints, ">= 1")


def _validate_source(s: SourceConfig, where: str) -> None:
    """One ``data.sources[i]`` (``where``): required keys of its kind, sizes, weights, partner."""
    bundled = s.kind == "pairs" and s.list == "bundled:bigearthnet"
    for key in REQUIRED_KEYS.get(s.kind, ()) if not bundled else ():
        _check(getattr(s, key) is not None, f"{where}.{key}", None, f"set for a {s.kind!r} source")
    _in_range(s.shuffle, f"{where}.shuffle", 1, MAX_BATCH)
    _in_range(s.channels, f"{where}.channels", 1, 1024)
    _check(s.weight > 0, f"{where}.weight", s.weight, "> 0")
    _check(0.0 <= s.p_single <= 1.0, f"{where}.p_single", s.p_single, "in [0, 1]")
    _check(0.0 <= s.p_b <= 1.0, f"{where}.p_b", s.p_b, "in [0, 1]")
    _check(s.b_level_shift >= 0, f"{where}.b_level_shift", s.b_level_shift, ">= 0")
    allowed = {"s2_scene": (None, "rgb"), "bigearthnet": (None, "s1"),
               "synthetic": (None, "s1")}.get(s.kind, (None,))  # fmt: skip
    _check(s.partner in allowed, f"{where}.partner", s.partner, f"one of {allowed}")


def _validate_sampling(t: TrainConfig, d: DataConfig) -> None:
    """Hold-out, band subsets, visible-band targets, coarsening and crops (in this order)."""
    _check(0.0 <= d.holdout_fraction < 1.0, "data.holdout_fraction", d.holdout_fraction,
           "in [0, 1)")  # fmt: skip
    _check(0.0 <= d.band_subset_p <= 1.0, "data.band_subset_p", d.band_subset_p, "in [0, 1]")
    _check(d.curriculum_steps >= 0, "data.curriculum_steps", d.curriculum_steps, ">= 0")
    _check(d.num_workers >= 0, "data.num_workers", d.num_workers, ">= 0")
    _check(d.prefetch_factor >= 1, "data.prefetch_factor", d.prefetch_factor, ">= 1")
    _check(d.band_subset_min >= 1, "data.band_subset_min", d.band_subset_min, ">= 1")
    _check(d.band_subset_max == 0 or d.band_subset_max >= d.band_subset_min,
           "data.band_subset_max", d.band_subset_max, "0 or >= data.band_subset_min")  # fmt: skip
    _check(0.0 <= d.visible_subset_p <= 1.0, "data.visible_subset_p", d.visible_subset_p,
           "in [0, 1]")  # fmt: skip
    _check(0.0 <= d.visible_plus_p <= 1.0 - d.visible_subset_p, "data.visible_plus_p",
           d.visible_plus_p, "in [0, 1 - data.visible_subset_p]")  # fmt: skip
    _check(t.visible_target_weight >= 0, "train.visible_target_weight",
           t.visible_target_weight, ">= 0")  # fmt: skip
    _check(t.kept_band_weight >= 0, "train.kept_band_weight", t.kept_band_weight, ">= 0")
    _check(0.0 <= d.coarsen_p <= 1.0, "data.coarsen_p", d.coarsen_p, "in [0, 1]")
    _check(len(d.coarsen_m) == 2 and 10.0 <= d.coarsen_m[0] <= d.coarsen_m[1], "data.coarsen_m",
           d.coarsen_m, "[min_m, max_m] with 10 <= min_m <= max_m")  # fmt: skip
    _check(len(d.crop_scale) == 2 and 0.0 < d.crop_scale[0] <= d.crop_scale[1] <= 1.0,
           "data.crop_scale", d.crop_scale, "[lo, hi] with 0 < lo <= hi <= 1")  # fmt: skip


def _check(ok: bool, key: str, value: Any, expected: str) -> None:
    if not ok:
        raise UserError(f"config {key}={value!r} is invalid: expected {expected}")


def _in_range(value: int, key: str, lo: int, hi: int) -> None:
    _check(lo <= value <= hi, key, value, f"an integer in [{lo}, {hi}]")


def _build(cls: type, data: Any, where: str) -> Any:
    """Build dataclass ``cls`` from a mapping, recursing into nested dataclasses and lists of them."""
    if not isinstance(data, dict):
        raise ValueError(f"config section {where or '<root>'} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        prefix = f"{where}." if where else ""
        raise ValueError(
            f"unknown config key(s) {[prefix + k for k in unknown]}; "
            f"known keys in {where or 'the root'}: {sorted(known)}"
        )
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        key = f"{where}.{name}" if where else name
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _build(hint, value or {}, key)
        elif typing.get_origin(hint) is list and dataclasses.is_dataclass(typing.get_args(hint)[0]):
            if not isinstance(value, list):
                raise ValueError(f"config {key} must be a list, got {value!r}")
            item = typing.get_args(hint)[0]
            kwargs[name] = [_build(item, v, f"{key}[{i}]") for i, v in enumerate(value)]
        else:
            kwargs[name] = _coerce(value, hint, key)
    return cls(**kwargs)


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Light type check/coercion of a scalar config value (ints accepted for floats)."""
    origin = typing.get_origin(hint)
    options = typing.get_args(hint) if origin in (typing.Union, types.UnionType) else (hint,)
    if value is None:
        if type(None) in options or hint is Any:
            return None
        raise UserError(f"config {key} must not be null: expected {_type_name(hint)}")
    for opt in options:
        base = typing.get_origin(opt) or opt
        if opt is Any:
            return value
        if base is Literal:
            if value in typing.get_args(opt):
                return value
            continue
        if base is float and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if base is float and isinstance(value, str):  # PyYAML reads "3e-4" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if base is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if base is bool and isinstance(value, bool):
            return value
        if base is list and isinstance(value, list) and typing.get_args(opt):
            item = typing.get_args(opt)[0]
            return [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
        if base in (str, list, dict) and isinstance(value, base):
            return value
    literals = [a for o in options if typing.get_origin(o) is Literal for a in typing.get_args(o)]
    if literals:
        raise UserError(f"config {key}={value!r} is invalid: expected one of {tuple(literals)}")
    raise UserError(f"config {key}={value!r} has the wrong type: expected {_type_name(hint)}")


_TYPE_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string",
               list: "a list", dict: "a mapping", type(None): "null"}  # fmt: skip


def _type_name(hint: Any) -> str:
    """``int | None`` → ``"an integer or null"``: how messages name an expected type."""
    origin = typing.get_origin(hint)
    options = typing.get_args(hint) if origin in (typing.Union, types.UnionType) else (hint,)
    return " or ".join(_TYPE_NAMES.get(typing.get_origin(o) or o, str(o)) for o in options)


def _list_index(node: list[Any], part: str, dotted: str) -> int:
    """``part`` as an index of ``node``, or a ValueError naming the override key."""
    try:
        i = int(part)
        node[i]  # noqa: B018 - raises IndexError when out of range
    except (ValueError, IndexError):
        raise ValueError(
            f"override {dotted!r}: {part!r} is not an index of a list of {len(node)} item(s) "
            f"(use 0..{len(node) - 1})"
        ) from None
    return i


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node: Any = tree
    for part in parts[:-1]:
        if isinstance(node, list):
            node = node[_list_index(node, part, dotted)]
            continue
        node = node.setdefault(part, {})
        if not isinstance(node, dict | list):
            raise ValueError(f"override {dotted!r}: {part!r} is not a section")
    last = parts[-1]
    if isinstance(node, list):
        node[_list_index(node, last, dotted)] = value
    else:
        node[last] = value


def parse_overrides(overrides: list[str] | tuple[str, ...]) -> list[tuple[str, Any]]:
    """Parse ``key.sub=value`` strings; values are read as YAML (``3``, ``1e-4``, ``[1, 2]``, ``null``).

    Raises:
        ValueError: for an item without ``=``.
    """
    parsed = []
    for item in overrides:
        if "=" not in item:
            raise ValueError(
                f"override {item!r} is not of the form key.sub=value (e.g. train.steps=100)"
            )
        key, raw = item.split("=", 1)
        parsed.append((key.strip(), load_yaml(raw, f"override {item!r}") if raw != "" else ""))
    return parsed


def load_config(
    path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()
) -> PretrainConfig:
    """Read a YAML config, apply dotted overrides, validate.

    Args:
        path: YAML file (None: all defaults).
        overrides: ``["train.steps=100", "optim.base_lr=3e-4", "data.sources.0.weight=2"]``.

    Returns:
        The validated :class:`PretrainConfig`.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: unknown keys, wrong types or out-of-range values (the message names the key).
    """
    tree: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"config file {str(path)!r} does not exist")
        tree = load_yaml(path, "config file") or {}  # size, alias and duplicate-key checks
        if not isinstance(tree, dict):
            raise ValueError(
                f"config file {str(path)!r} must hold a mapping, got {type(tree).__name__}"
            )
    for key, value in parse_overrides(overrides):
        _set_dotted(tree, key, value)
    return config_from_dict(tree)


def config_from_dict(tree: dict[str, Any]) -> PretrainConfig:
    """Build and validate a :class:`PretrainConfig` from a nested dict (e.g. ``cfg.to_dict()``)."""
    return _build(PretrainConfig, tree, "").validate()
