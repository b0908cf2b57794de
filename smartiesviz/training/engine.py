"""The pretraining loop: data order, masks, optimisation, logging, checkpoints, signals.

Reproducibility design (what makes 1 process and N processes give the same loss curve, and a
resumed run repeat the uninterrupted one exactly):

* Step ``s`` draws its *plan* (which source, paired or single, which band subsets) from a
  generator seeded by ``(seed, s)``: identical on every rank.
* Global sample ``i`` of step ``s`` is built from its own generator seeded by ``(seed, s, i)``:
  crop, resampling, flips, its visible mask and its mixup mask. Rank ``r`` of ``W`` builds the
  contiguous slice ``i ∈ [r·B/W, (r+1)·B/W)`` of the global batch ``B``
  (:class:`GlobalBatchSampler`, the distributed sampler of this loop).
* The model's loss is a mean over samples (each sample has the same number of hidden patches),
  and DDP averages gradients over ranks, so the update equals the single-process one up to float
  summation order.
* The data position is just the step counter; a checkpoint stores it with the model, optimizer,
  scheduler, scaler and every rank's RNG states.
"""

from __future__ import annotations

import csv
import dataclasses
import importlib
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset, Sampler

from smartiesviz.training import checkpointing as ckpt
from smartiesviz.training.config import DataConfig, ModelConfig, PretrainConfig
from smartiesviz.training.distributed import (
    DistInfo,
    all_reduce_mean,
    any_flag,
    barrier,
    broadcast_object,
    cleanup,
    gather_objects,
    init_distributed,
)
from smartiesviz.training.sources import Source, build_source

STOP_SIGNALS = ("SIGTERM", "SIGUSR1")


def derive_seed(*keys: int) -> int:
    """A well-mixed 63-bit seed from integer keys (``numpy.random.SeedSequence``)."""
    words = np.random.SeedSequence([int(k) for k in keys]).generate_state(2, dtype=np.uint32)
    return int(words[0]) << 31 | int(words[1]) >> 1


def _generator(*keys: int) -> torch.Generator:
    return torch.Generator().manual_seed(derive_seed(*keys))


# ----------------------------------------------------------------------------- step plan
@dataclass(frozen=True)
class StepPlan:
    """What every rank does at one step.

    Attributes:
        source: index of the source.
        role: ``pair`` (a with b, mixup), ``a`` or ``b`` (that image alone).
        subset_a: channel indices kept of the first image (the single image for ``a``/``b``).
        subset_b: channel indices kept of the partner (``pair`` only).
    """

    source: int
    role: str
    subset_a: tuple[int, ...]
    subset_b: tuple[int, ...] | None


def _subset(n: int, g: torch.Generator, cfg: DataConfig) -> tuple[int, ...]:
    if n <= 1 or cfg.band_subset_p <= 0 or float(torch.rand((), generator=g)) >= cfg.band_subset_p:
        return tuple(range(n))
    k = int(torch.randint(min(cfg.band_subset_min, n), n + 1, (1,), generator=g))
    return tuple(sorted(torch.randperm(n, generator=g)[:k].tolist()))


def plan_step(
    seed: int, step: int, sources: list[Source], weights: list[float], cfg: DataConfig
) -> StepPlan:
    """The :class:`StepPlan` of ``step`` (a pure function of its arguments)."""
    if step < cfg.curriculum_steps:  # plain full-band single images of the first source
        return StepPlan(0, "a", tuple(range(len(sources[0].bands_a))), None)
    g = _generator(seed, step, 1)
    idx = int(torch.multinomial(torch.tensor(weights, dtype=torch.float64), 1, generator=g))
    src = sources[idx]
    role = "a"
    if src.bands_b is not None:
        role = "pair"
        if float(torch.rand((), generator=g)) < getattr(src, "p_single", 0.0):
            role = "a" if float(torch.rand((), generator=g)) < 0.5 else "b"
    first = src.bands_b if role == "b" else src.bands_a
    subset_a = _subset(len(first), g, cfg)
    subset_b = _subset(len(src.bands_b), g, cfg) if role == "pair" else None
    return StepPlan(idx, role, subset_a, subset_b)


def plan_bands(plan: StepPlan, sources: list[Source]) -> tuple[list[str], list[str] | None]:
    """Band specs of the images of a step (after the band subsets)."""
    src = sources[plan.source]
    first = src.bands_b if plan.role == "b" else src.bands_a
    bands_a = [first[i] for i in plan.subset_a]
    bands_b = [src.bands_b[i] for i in plan.subset_b] if plan.role == "pair" else None
    return bands_a, bands_b


def _full_band_targets(
    batch: dict[str, torch.Tensor], plan: StepPlan, sources: list[Source], device: torch.device
) -> dict[str, Any]:
    """Model keyword arguments for full-band targets of images that kept a band subset."""
    src = sources[plan.source]
    first = src.bands_b if plan.role == "b" else src.bands_a
    out: dict[str, Any] = {}
    if "target_a" in batch:
        out.update(target_a=batch["target_a"].to(device), target_bands_a=list(first))
    if "target_b" in batch:
        out.update(target_b=batch["target_b"].to(device), target_bands_b=list(src.bands_b))
    return out


# ----------------------------------------------------------------------------- data
class PretrainDataset(Dataset):
    """Map-style dataset keyed by ``(step, global_index)``; every item is deterministic.

    An item is a dict with ``x_a`` ``(C_a, H, W)``, optional ``x_b`` ``(C_b, H, W)``,
    ``visible_mask`` ``(N,)`` bool and ``mixup_mask`` ``(N,)`` bool.
    """

    def __init__(self, cfg: PretrainConfig, sources: list[Source], patch_size: int) -> None:
        self.cfg = cfg
        self.sources = sources
        self.weights = [s.weight for s in cfg.data.sources]
        self.img = cfg.model.img_size
        if self.img % patch_size:
            raise ValueError(
                f"model.img_size={self.img} is not divisible by the patch size {patch_size}"
            )
        self.num_patches = (self.img // patch_size) ** 2
        self._plans: dict[int, StepPlan] = {}
        self._plain = dataclasses.replace(cfg.data, coarsen_p=0.0)  # during the curriculum

    def plan(self, step: int) -> StepPlan:
        if step not in self._plans:
            if len(self._plans) > 64:
                self._plans.clear()
            self._plans[step] = plan_step(
                self.cfg.train.seed, step, self.sources, self.weights, self.cfg.data
            )
        return self._plans[step]

    def __len__(self) -> int:  # endless stream; the sampler decides what is drawn
        return sys.maxsize

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        from smartiesviz.models.mixup import random_mixup_mask, random_visible_mask

        step, index = key
        plan = self.plan(step)
        g = _generator(self.cfg.train.seed, step, index, 2)
        data_cfg = self.cfg.data if step >= self.cfg.data.curriculum_steps else self._plain
        sample = self.sources[plan.source].sample(g, self.img, data_cfg)
        x_a, x_b = sample.x_a, sample.x_b
        if plan.role == "b":
            x_a, x_b = x_b, None
        elif plan.role == "a":
            x_b = None
        t = self.cfg.train
        item = {
            "x_a": x_a[list(plan.subset_a)],
            "visible_mask": random_visible_mask(1, self.num_patches, t.mask_ratio, g)[0],
        }
        full_target = self.cfg.data.full_band_target
        if full_target and len(plan.subset_a) < x_a.shape[0]:
            item["target_a"] = x_a
        if x_b is not None:
            item["x_b"] = x_b[list(plan.subset_b)]
            item["mixup_mask"] = random_mixup_mask(1, self.num_patches, t.mixup_ratio, g)[0]
            if full_target and len(plan.subset_b) < x_b.shape[0]:
                item["target_b"] = x_b
        return item


class GlobalBatchSampler(Sampler[list[tuple[int, int]]]):
    """Yields, for each step, this rank's contiguous share of the global batch as ``(step, i)`` keys.

    Args:
        start_step: first step to yield (the data position when resuming).
        total_steps: one past the last step.
        global_batch_size: ``B``; must be divisible by ``world_size``.
        rank, world_size: this process's place.
    """

    def __init__(
        self,
        start_step: int,
        total_steps: int,
        global_batch_size: int,
        rank: int = 0,
        world_size: int = 1,
    ):
        if global_batch_size % world_size:
            raise ValueError(
                f"train.global_batch_size={global_batch_size} must be divisible by the number of "
                f"processes ({world_size})"
            )
        self.start, self.total = start_step, total_steps
        self.local = global_batch_size // world_size
        self.offset = rank * self.local

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for step in range(self.start, self.total):
            yield [(step, self.offset + j) for j in range(self.local)]

    def __len__(self) -> int:
        return max(0, self.total - self.start)


def collate(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack per-sample dicts into a batch dict."""
    return {k: torch.stack([it[k] for it in items]) for k in items[0]}


# ----------------------------------------------------------------------------- model/optim
def build_model(cfg: ModelConfig) -> nn.Module:
    """Instantiate the model named by ``cfg.name`` (a factory in ``smartiesviz.models.factories`` or
    ``module:callable``) with ``img_size`` and ``kwargs``."""
    if ":" in cfg.name:
        module, attr = cfg.name.split(":", 1)
        factory = getattr(importlib.import_module(module), attr)
    else:
        mae = importlib.import_module("smartiesviz.models.factories")
        factory = getattr(mae, cfg.name, None)
        if factory is None:
            known = [n for n in getattr(mae, "__all__", []) if n.startswith("smarties_")]
            raise ValueError(f"model.name={cfg.name!r} is not a model factory; known: {known}")
    return factory(img_size=cfg.img_size, **cfg.kwargs)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: decay for matrices, none for biases, norms, tokens and position tables."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim <= 1 or name.endswith(".bias") or "token" in name or "pos_embed" in name:
            no_decay.append(p)
        else:
            decay.append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def lr_factor(step: int, total: int, warmup: int, min_ratio: float) -> float:
    """Multiplier of the peak rate at ``step``: linear warmup, then cosine to ``min_ratio``."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


# ----------------------------------------------------------------------------- signals
class StopSignals:
    """Records SIGTERM/SIGUSR1 (and submitit's preemption signal) instead of dying mid-step.

    The loop polls :attr:`received` at step boundaries; after saving a checkpoint it calls
    :meth:`chain`, which hands the signal to the handler that was installed before (submitit's
    checkpoint-and-requeue), if any.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is not threading.main_thread():
            return self  # signal handlers can only be installed from the main thread
        names = list(STOP_SIGNALS)
        if os.environ.get("SUBMITIT_EXECUTOR"):
            names.append("SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"))
        for name in dict.fromkeys(names):
            sig = getattr(signal, name, None)
            if sig is not None:
                self._previous[sig] = signal.signal(sig, self._record)
        return self

    def _record(self, signum: int, frame: Any) -> None:
        self.received = signum

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def chain(self) -> None:
        """Call the previously installed handler of the received signal (if it is a function)."""
        prev = self._previous.get(self.received) if self.received is not None else None
        if callable(prev):
            prev(self.received, None)


# ----------------------------------------------------------------------------- logging
class RunLogger:
    """Rank-0 CSV + TensorBoard + tqdm; every method is a no-op on other ranks."""

    FIELDS = (
        "step",
        "epoch",
        "loss",
        "lr",
        "img_per_s",
        "source",
        "role",
        "n_bands_a",
        "elapsed_s",
    )

    def __init__(self, out: Path, enabled: bool, total: int, start: int, progress: bool) -> None:
        self.enabled = enabled
        self.bar = None
        self.writer = None
        if not enabled:
            return
        out.mkdir(parents=True, exist_ok=True)
        path = out / "metrics.csv"
        new = not path.exists()
        self._csv = open(path, "a", newline="")  # noqa: SIM115 - closed in close()
        self._rows = csv.DictWriter(self._csv, fieldnames=self.FIELDS)
        if new:
            self._rows.writeheader()
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(out / "tensorboard"), purge_step=start + 1)
        except ImportError as err:  # pragma: no cover - tensorboard is a dependency
            print(f"TensorBoard logging disabled: {err}", file=sys.stderr)
        if progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=total, initial=start, desc="pretrain", unit="step", dynamic_ncols=True
            )

    def log(self, row: dict[str, Any], to_file: bool) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(
                loss=f"{row['loss']:.4f}", img_s=f"{row['img_per_s']:.1f}", refresh=False
            )
        if to_file:
            self._rows.writerow(row)
            self._csv.flush()
            if self.writer is not None:
                step = row["step"]
                self.writer.add_scalar("train/loss", row["loss"], step)
                self.writer.add_scalar("train/lr", row["lr"], step)
                self.writer.add_scalar("train/img_per_s", row["img_per_s"], step)

    def message(self, text: str) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(text)
        else:
            print(text, flush=True)

    def close(self) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.close()
        self._csv.close()


# ----------------------------------------------------------------------------- the loop
@dataclass
class RunResult:
    """What :func:`pretrain` returns.

    Attributes:
        status: ``completed`` or ``interrupted``.
        step: last completed step.
        losses: ``{step: loss}`` of the steps run in this call (global mean over ranks).
        output_dir: the run folder. weights: final ``save_checkpoint`` file (or None).
        signal: name of the signal that interrupted the run, if any.
    """

    status: str
    step: int
    losses: dict[int, float]
    output_dir: Path
    weights: Path | None = None
    signal: str | None = None


def _autocast(precision: str, device: torch.device):
    if precision == "fp32":
        return nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def pretrain(
    cfg: PretrainConfig,
    resume: bool = False,
    on_step: Callable[[int, float], None] | None = None,
) -> RunResult:
    """Run (or continue) pretraining as configured; works alone or under torchrun/submitit.

    Args:
        cfg: the validated configuration.
        resume: continue from the newest usable checkpoint in ``train.output_dir`` (a fresh
            start, with a message, when there is none).
        on_step: optional callback ``(step, loss)`` after each step (rank 0 and others alike).

    Returns:
        A :class:`RunResult`.
    """
    t = cfg.train
    info = init_distributed(t.device)
    try:
        return _run(cfg, info, resume, on_step)
    finally:
        cleanup()


def _run(
    cfg: PretrainConfig, info: DistInfo, resume: bool, on_step: Callable[[int, float], None] | None
) -> RunResult:
    t = cfg.train
    if t.num_threads:
        torch.set_num_threads(t.num_threads)
    if t.precision == "fp16" and info.device.type != "cuda":
        raise ValueError("train.precision='fp16' needs CUDA; use 'bf16' or 'fp32' on CPU")
    out = Path(t.output_dir)
    total = cfg.total_steps
    torch.manual_seed(t.seed)  # identical initial weights on every rank
    np.random.seed(t.seed % 2**32)

    model = build_model(cfg.model).to(info.device)
    patch = int(getattr(model, "patch_size", 8))
    opt = torch.optim.AdamW(
        param_groups(model, cfg.optim.weight_decay), lr=cfg.lr, betas=tuple(cfg.optim.betas)
    )
    min_ratio = cfg.optim.min_lr / cfg.lr
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: lr_factor(s, total, cfg.optim.warmup_steps, min_ratio)
    )
    scaler = torch.amp.GradScaler(info.device.type, enabled=t.precision == "fp16")

    start = 0
    if resume:
        found = None
        if info.is_main:
            latest = ckpt.find_latest(out, log=lambda m: print(f"[resume] {m}", flush=True))
            found = str(latest[0]) if latest else None
            if found is None:
                print(
                    f"[resume] no usable checkpoint in {out / 'checkpoints'}; starting from step 0",
                    flush=True,
                )
        found = broadcast_object(found, info)
        if found is not None:
            state = ckpt.load_training_state(found)
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            scaler.load_state_dict(state["scaler"])
            start = int(state["step"])
            rngs = state.get("rng", [])
            if len(rngs) == info.world_size:
                ckpt.restore_rng_state(rngs[info.rank])
            elif info.is_main:
                print(
                    f"[resume] checkpoint has RNG states of {len(rngs)} processes, this run has "
                    f"{info.world_size}; data and masks are unaffected (seeded per step)",
                    flush=True,
                )
            if info.is_main:
                print(f"[resume] continuing from {found} (step {start}/{total})", flush=True)

    sources = [build_source(s, cfg.data) for s in cfg.data.sources]
    dataset = PretrainDataset(cfg, sources, patch)
    sampler = GlobalBatchSampler(start, total, t.global_batch_size, info.rank, info.world_size)
    loader = DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=collate,
        num_workers=cfg.data.num_workers,
        persistent_workers=False,
    )

    net: nn.Module = model
    if info.distributed:
        ids = [info.device.index] if info.device.type == "cuda" else None
        # Band subsets and single/paired steps leave some spectral layers without gradients.
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=ids, find_unused_parameters=True
        )

    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(_yaml(cfg.to_dict()))
    logger = RunLogger(out, info.is_main, total, start, t.progress)
    holdout: dict[str, Any] = {}
    for s in sources:
        holdout.update(s.holdout)

    def training_state(step: int) -> dict[str, Any]:
        rngs = gather_objects(ckpt.capture_rng_state(), info)
        return {
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "scaler": scaler.state_dict(),
            "rng": rngs,
            "world_size": info.world_size,
            "data_position": {
                "step": step,
                "seed": t.seed,
                "global_batch_size": t.global_batch_size,
            },
            "config": cfg.to_dict(),
        }

    def save(step: int) -> None:
        state = training_state(step)  # collective: every rank takes part
        if info.is_main:
            path = ckpt.save_training_state(state, out, step, t.keep_checkpoints)
            logger.message(f"checkpoint: {path}")
        barrier(info)

    losses: dict[int, float] = {}
    step = start
    status, sig_name = "completed", None
    model.train()
    tic = time.perf_counter()
    t0 = tic
    with StopSignals() as stop:
        for batch in loader:
            plan = dataset.plan(step)
            bands_a, bands_b = plan_bands(plan, sources)
            x_a = batch["x_a"].to(info.device, non_blocking=True)
            x_b = batch["x_b"].to(info.device, non_blocking=True) if "x_b" in batch else None
            visible = batch["visible_mask"].to(info.device)
            mixup = batch["mixup_mask"].to(info.device) if "mixup_mask" in batch else None
            targets = _full_band_targets(batch, plan, sources, info.device)
            with _autocast(t.precision, info.device):
                output = net(
                    x_a, bands_a, x_b, bands_b,
                    mask_ratio=t.mask_ratio, mixup_ratio=t.mixup_ratio,
                    mixup_mask=mixup, visible_mask=visible, mixup_mode=t.mixup_mode, **targets,
                )  # fmt: skip
            loss = output.loss
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if cfg.optim.grad_clip > 0:
                scaler.unscale_(opt)
                nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
            scaler.step(opt)
            scaler.update()
            lr = opt.param_groups[0]["lr"]
            sched.step()
            step += 1

            value = float(all_reduce_mean(loss.detach().float(), info))
            if not math.isfinite(value):
                raise FloatingPointError(
                    f"loss is {value} at step {step}; lower optim.base_lr or use fp32"
                )
            losses[step] = value
            now = time.perf_counter()
            row = {
                "step": step,
                "epoch": round(step / cfg.steps_per_epoch, 4),
                "loss": value,
                "lr": lr,
                "img_per_s": t.global_batch_size / max(now - tic, 1e-9),
                "source": sources[plan.source].name,
                "role": plan.role,
                "n_bands_a": len(bands_a),
                "elapsed_s": round(now - t0, 3),
            }
            tic = now
            logger.log(row, to_file=step % t.log_every == 0 or step == total)
            if on_step is not None:
                on_step(step, value)

            if any_flag(stop.received is not None, info):
                sig = stop.received or signal.SIGTERM
                sig_name = signal.Signals(sig).name
                logger.message(f"received {sig_name} at step {step}: writing a checkpoint")
                save(step)
                status = "interrupted"
                break
            if t.ckpt_every and step % t.ckpt_every == 0 and step < total:
                save(step)
        else:
            if step > start:
                save(step)

        weights = None
        if status == "completed" and info.is_main and t.save_final:
            weights = _save_weights(model, out, cfg, step, losses, holdout)
            logger.message(f"final weights: {weights}")
        logger.close()
        if status == "interrupted":
            cleanup()
            stop.chain()  # under submitit: checkpoint-and-requeue (exits on rank 0)
    return RunResult(status, step, losses, out, weights, sig_name)


def _save_weights(
    model: nn.Module,
    out: Path,
    cfg: PretrainConfig,
    step: int,
    losses: dict[int, float],
    holdout: dict[str, Any],
) -> Path:
    from smartiesviz.models.checkpoint import save_checkpoint

    path = out / "model.safetensors"
    tail = list(losses.values())[-50:]
    save_checkpoint(
        model,
        path,
        trained_with="smartiesviz pretrain",
        steps=step,
        final_loss=float(sum(tail) / len(tail)) if tail else None,
        config=cfg.to_dict(),
        holdout=holdout,
    )
    return path


def _yaml(tree: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(tree, sort_keys=False)
