"""The pretraining loop: model and optimiser, resume, the step, logging, checkpoints, signals.

:func:`pretrain` runs named stages: :func:`_prepare` (threads, seeds, precision), :func:`_build`
(model, optimiser, schedule, scaler), :func:`_resume`, :func:`_loader` (the deterministic data of
:mod:`smartiesviz.training.steps`), then :func:`_train_step` per batch and :func:`_finish`.
The reproducibility design (1 process == N processes, resume == uninterrupted) is described in
:mod:`smartiesviz.training.steps`; a checkpoint stores the step (the data position) with the model,
optimiser, scheduler, scaler and every rank's RNG states.
"""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Callable
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn as nn
import yaml
from torch.utils.data import DataLoader

from smartiesviz.data.datasets import collate
from smartiesviz.data.holdout import Holdout
from smartiesviz.data.sources import Source
from smartiesviz.errors import UserError
from smartiesviz.models import factories
from smartiesviz.models.checkpoint import read_state_dict, save_checkpoint
from smartiesviz.outputs import atomic_write_bytes
from smartiesviz.training import checkpointing as ckpt
from smartiesviz.training.config import ModelConfig, PretrainConfig
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
from smartiesviz.training.runlog import RunLogger, StopSignals, claim_run_folder
from smartiesviz.training.steps import (
    GlobalBatchSampler,
    PretrainDataset,
    StepPlan,
    build_sources,
    full_band_targets,
    plan_bands,
)


# ----------------------------------------------------------------------------- model/optim
def build_model(cfg: ModelConfig) -> nn.Module:
    """Instantiate the factory of ``smartiesviz.models.factories`` named by ``cfg.name`` with
    ``img_size`` and ``kwargs``. Only the registered names are accepted: nothing is imported from
    a config string."""
    known = list(factories.__all__)
    if cfg.name not in known:
        raise UserError(f"config model.name={cfg.name!r} is not a model factory; known: {known}")
    try:
        return getattr(factories, cfg.name)(img_size=cfg.img_size, **cfg.kwargs)
    except TypeError as err:  # an unknown or mistyped keyword of model.kwargs
        if not cfg.kwargs:
            raise
        raise UserError(f"config model.kwargs={cfg.kwargs!r} does not fit {cfg.name}: {err}") from None


def init_weights(model: nn.Module, path: str) -> None:
    """Start ``model`` from the weights of a ``save_checkpoint`` file of the same architecture
    (``model.init``); raises naming the file and the mismatching keys otherwise."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"model.init file {path!r} does not exist")
    state = read_state_dict(path)
    own = model.state_dict()
    bad = sorted(k for k in set(own) | set(state)
                 if k not in own or k not in state or own[k].shape != state[k].shape)  # fmt: skip
    if bad:
        raise ValueError(f"model.init {path!r} does not fit model.name/img_size/kwargs: "
                         f"{len(bad)} key(s) differ, e.g. {bad[:3]}")  # fmt: skip
    model.load_state_dict(state)


def target_band_loss(
    model: nn.Module, output: Any, batch: dict[str, Any], plan: StepPlan,
    scored: torch.Tensor, channels: Literal["kept", "lacking"],
) -> torch.Tensor | None:  # fmt: skip
    """Mean squared error on the ``scored`` ``(B, N)`` patches of either the target bands the
    input kept or those it lacked, for images with a full-band target (``data.full_band_target``);
    ``None`` when no image of the step has one.

    The recipe's two extra terms: the lacking bands on the *visible* patches
    (``train.visible_target_weight``) and the kept bands on the *hidden* patches
    (``train.kept_band_weight``). ``output.recon_a``/``recon_b`` ``(B, C_t, H, W)`` hold the
    target's bands; the kept ones are the step's band subset.
    """
    terms = []
    for key, recon, subset in (("target_a", output.recon_a, plan.subset_a),
                               ("target_b", output.recon_b, plan.subset_b)):  # fmt: skip
        if key not in batch or recon is None or subset is None:
            continue
        target = batch[key].to(recon.device)
        kept = set(subset)
        picked = [c for c in range(target.shape[1]) if (c in kept) == (channels == "kept")]
        if not picked or recon.shape != target.shape:
            continue
        idx = torch.tensor(picked, device=recon.device)
        err = model.patch_errors(recon.index_select(1, idx), target.index_select(1, idx))
        terms.append(model.masked_mean(err, ~scored))  # masked_mean averages where "hidden"
    return sum(terms) / len(terms) if terms else None


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


@dataclass
class Run:
    """Everything one training run holds (built by :func:`_build`)."""

    cfg: PretrainConfig
    info: DistInfo
    model: nn.Module
    net: nn.Module
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    out: Path
    total: int
    start: int = 0
    losses: dict[int, float] = field(default_factory=dict)


def _autocast(precision: str, device: torch.device):
    if precision == "fp32":
        return nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def pretrain(
    cfg: PretrainConfig,
    resume: bool = False,
    on_step: Callable[[int, float], None] | None = None,
    overwrite: bool = False,
) -> RunResult:
    """Run (or continue) pretraining as configured; works alone or under torchrun/submitit.

    Args:
        cfg: the validated configuration.
        resume: continue from the newest usable checkpoint in ``train.output_dir`` (a fresh
            start, with a message, when there is none).
        on_step: optional callback ``(step, loss)`` after each step (rank 0 and others alike).
        overwrite: replace the run that ``train.output_dir`` holds (without it, or ``resume``,
            such a folder is refused).

    Returns:
        A :class:`RunResult`.

    Raises:
        UserError: the folder holds another run, or another pretrain is writing it.
    """
    info = init_distributed(cfg.train.device)
    try:
        with ExitStack() as held:
            _claim(held, cfg, info, resume, overwrite)
            held.callback(torch.set_num_threads, torch.get_num_threads())  # train.num_threads: this run only
            _prepare(cfg, info)
            run = _build(cfg, info)
            if resume:
                _resume(run)
            if run.start >= run.total:
                return _already_done(run)
            sources = build_sources(cfg, run.out)
            return _train(run, sources, on_step)
    finally:
        cleanup()


def _claim(held: ExitStack, cfg: PretrainConfig, info: DistInfo, resume: bool, overwrite: bool) -> None:
    """Rank 0 holds the run folder (:func:`claim_run_folder`) until ``held`` closes; every rank
    raises its refusal."""
    problem = None
    if info.is_main:
        try:
            held.enter_context(claim_run_folder(Path(cfg.train.output_dir), resume, overwrite))
        except (UserError, OSError) as err:
            if not info.distributed:
                raise
            problem = str(err)
    problem = broadcast_object(problem, info)
    if problem:
        raise UserError(problem)


def _prepare(cfg: PretrainConfig, info: DistInfo) -> None:
    """Threads, seeds and the precision check (identical initial weights on every rank)."""
    t = cfg.train
    if t.num_threads:
        torch.set_num_threads(t.num_threads)
    if t.precision == "fp16" and info.device.type != "cuda":
        raise ValueError("train.precision='fp16' needs CUDA; use 'bf16' or 'fp32' on CPU")
    torch.manual_seed(t.seed)
    np.random.seed(t.seed % 2**32)


def _build(cfg: PretrainConfig, info: DistInfo) -> Run:
    """Model (optionally compiled, wrapped in DDP), AdamW, warmup-cosine schedule, grad scaler."""
    total = cfg.total_steps
    model = build_model(cfg.model)
    if cfg.model.init is not None:
        init_weights(model, cfg.model.init)
    model = model.to(info.device)
    opt = torch.optim.AdamW(
        param_groups(model, cfg.optim.weight_decay), lr=cfg.lr, betas=tuple(cfg.optim.betas)
    )
    min_ratio = cfg.optim.min_lr / cfg.lr
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: lr_factor(s, total, cfg.optim.warmup_steps, min_ratio)
    )
    scaler = torch.amp.GradScaler(info.device.type, enabled=cfg.train.precision == "fp16")
    net: nn.Module = model
    if info.distributed:
        ids = [info.device.index] if info.device.type == "cuda" else None
        # Band subsets and single/paired steps leave some spectral layers without gradients.
        net = nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)
    if cfg.train.compile:
        net = torch.compile(net)
    return Run(cfg, info, model, net, opt, sched, scaler, Path(cfg.train.output_dir), total)


def _changed_architecture(saved: dict[str, Any] | None, cfg: PretrainConfig) -> list[str]:
    """``model.*`` keys whose values differ between a checkpoint's config and ``cfg``."""
    if not saved:
        return []
    old, new = dict(saved.get("model", {})), cfg.to_dict()["model"]
    old_kw, new_kw = dict(old.pop("kwargs", {}) or {}), dict(new.pop("kwargs", {}) or {})
    diff = [f"model.{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new))
            if old.get(k) != new.get(k)]  # fmt: skip
    diff += [f"model.kwargs.{k}: {old_kw.get(k)!r} -> {new_kw.get(k)!r}"
             for k in sorted(set(old_kw) | set(new_kw)) if old_kw.get(k) != new_kw.get(k)]  # fmt: skip
    return diff


def _resume(run: Run) -> None:
    """Load the newest usable checkpoint of the run folder into ``run`` (rank 0 finds it)."""
    info, found = run.info, None
    if info.is_main:
        latest = ckpt.find_latest(run.out, log=lambda m: print(f"[resume] {m}", flush=True))
        found = str(latest[0]) if latest else None
        if found is None:
            print(f"[resume] no usable checkpoint in {run.out / 'checkpoints'}; starting from step 0",
                  flush=True)  # fmt: skip
    found = broadcast_object(found, info)
    if found is None:
        return
    state = ckpt.load_training_state(found)
    changed = _changed_architecture(state.get("config"), run.cfg)
    if changed:
        raise ValueError(f"cannot resume from {found}: the architecture changed ({'; '.join(changed)}); "
                         "use the checkpoint's model settings or a new train.output_dir")  # fmt: skip
    run.model.load_state_dict(state["model"])
    run.opt.load_state_dict(state["optimizer"])
    run.sched.load_state_dict(state["scheduler"])
    run.scaler.load_state_dict(state["scaler"])
    run.start = int(state["step"])
    rngs = state.get("rng", [])
    if len(rngs) == info.world_size:
        ckpt.restore_rng_state(rngs[info.rank])
    elif info.is_main:
        print(f"[resume] checkpoint has RNG states of {len(rngs)} processes, this run has "
              f"{info.world_size}; data and masks are unaffected (seeded per step)", flush=True)  # fmt: skip
    if info.is_main:
        print(f"[resume] continuing from {found} (step {run.start}/{run.total})", flush=True)


def _already_done(run: Run) -> RunResult:
    """A resumed run whose checkpoint is at the last step: keep its final weights untouched."""
    weights = run.out / "model.safetensors"
    if run.info.is_main:
        print(f"[resume] the run already finished ({run.start}/{run.total} steps); nothing to do",
              flush=True)  # fmt: skip
    return RunResult("completed", run.start, {}, run.out, weights if weights.is_file() else None)


def _loader(run: Run, dataset: PretrainDataset) -> DataLoader:
    """This rank's batches from ``run.start`` on, built by ``data.num_workers`` workers."""
    d, t, info = run.cfg.data, run.cfg.train, run.info
    sampler = GlobalBatchSampler(run.start, run.total, t.global_batch_size, info.rank, info.world_size)
    workers = {"prefetch_factor": d.prefetch_factor} if d.num_workers > 0 else {}
    return DataLoader(dataset, batch_sampler=sampler, collate_fn=collate, num_workers=d.num_workers,
                      pin_memory=d.pin_memory and info.device.type == "cuda",
                      persistent_workers=False, **workers)  # fmt: skip


def _training_state(run: Run, step: int) -> dict[str, Any]:
    t = run.cfg.train
    return {
        "model": run.model.state_dict(),
        "optimizer": run.opt.state_dict(),
        "scheduler": run.sched.state_dict(),
        "scaler": run.scaler.state_dict(),
        "rng": gather_objects(ckpt.capture_rng_state(), run.info),  # collective
        "world_size": run.info.world_size,
        "data_position": {"step": step, "seed": t.seed, "global_batch_size": t.global_batch_size},
        "config": run.cfg.to_dict(),
    }


def _save(run: Run, step: int, logger: RunLogger) -> None:
    state = _training_state(run, step)  # collective: every rank takes part
    if run.info.is_main:
        path = ckpt.save_training_state(state, run.out, step, run.cfg.train.keep_checkpoints)
        logger.message(f"checkpoint: {path}")
    barrier(run.info)


def _train_step(run: Run, batch: dict[str, Any], plan: StepPlan, sources: list[Source]) -> torch.Tensor:
    """One optimiser step on this rank's share of the global batch; returns the local loss."""
    t, dev = run.cfg.train, run.info.device
    bands_a, bands_b = plan_bands(plan, sources)
    x_a = batch["x_a"].to(dev, non_blocking=True)
    x_b = batch["x_b"].to(dev, non_blocking=True) if "x_b" in batch else None
    mixup = batch["mixup_mask"].to(dev) if "mixup_mask" in batch else None
    with _autocast(t.precision, dev):
        output = run.net(
            x_a, bands_a, x_b, bands_b,
            mask_ratio=t.mask_ratio, mixup_ratio=t.mixup_ratio, mixup_mask=mixup,
            visible_mask=batch["visible_mask"].to(dev), mixup_mode=t.mixup_mode,
            **full_band_targets(batch, plan, sources, dev),
        )  # fmt: skip
    loss = output.loss
    visible = batch["visible_mask"].to(dev)
    for weight, scored, channels in ((t.visible_target_weight, visible, "lacking"),
                                     (t.kept_band_weight, ~visible, "kept")):  # fmt: skip
        extra = target_band_loss(run.model, output, batch, plan, scored, channels) if weight else None
        if extra is not None:
            loss = loss + weight * extra
    run.opt.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    if run.cfg.optim.grad_clip > 0:
        run.scaler.unscale_(run.opt)
        nn.utils.clip_grad_norm_(run.model.parameters(), run.cfg.optim.grad_clip)
    run.scaler.step(run.opt)
    run.scaler.update()
    run.sched.step()
    return loss


def _train(run: Run, sources: list[Source], on_step: Callable[[int, float], None] | None) -> RunResult:
    """The loop over batches: step, log, checkpoint, stop on signals, then :func:`_finish`."""
    cfg, t, info = run.cfg, run.cfg.train, run.info
    dataset = PretrainDataset(cfg, sources, int(run.model.patch_size))
    loader = _loader(run, dataset)
    if info.is_main:
        run.out.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(run.out / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False).encode())
    logger = RunLogger(run.out, info.is_main, run.total, run.start, t.progress)
    step, status, sig_name = run.start, "completed", None
    run.model.train()
    tic = t0 = time.perf_counter()
    with StopSignals() as stop:
        for batch in loader:
            plan = dataset.plan(step)
            lr = run.opt.param_groups[0]["lr"]
            loss = _train_step(run, batch, plan, sources)
            step += 1
            value = float(all_reduce_mean(loss.detach().float(), info))
            if not math.isfinite(value):
                raise FloatingPointError(f"loss is {value} at step {step}; lower optim.base_lr or use fp32")
            run.losses[step] = value
            now = time.perf_counter()
            row = {"step": step, "epoch": round(step / cfg.steps_per_epoch, 4), "loss": value, "lr": lr,
                   "img_per_s": t.global_batch_size / max(now - tic, 1e-9),
                   "source": sources[plan.source].name, "role": plan.role,
                   "n_bands_a": len(plan.subset_a), "elapsed_s": round(now - t0, 3)}  # fmt: skip
            tic = now
            logger.log(row, to_file=step % t.log_every == 0 or step == run.total)
            if on_step is not None:
                on_step(step, value)
            if any_flag(stop.received is not None, info):
                sig_name = signal.Signals(stop.received or signal.SIGTERM).name
                logger.message(f"received {sig_name} at step {step}: writing a checkpoint")
                _save(run, step, logger)
                status = "interrupted"
                break
            if t.ckpt_every and step % t.ckpt_every == 0 and step < run.total:
                _save(run, step, logger)
        else:
            if step > run.start:
                _save(run, step, logger)
        return _finish(run, sources, logger, stop, step, status, sig_name)


def _finish(run: Run, sources: list[Source], logger: RunLogger, stop: StopSignals, step: int,
            status: str, sig_name: str | None) -> RunResult:  # fmt: skip
    """Final weights (completed runs, rank 0), close the logs, hand a signal on to submitit."""
    weights = None
    if status == "completed" and run.info.is_main and run.cfg.train.save_final:
        holdout = Holdout()
        for s in sources:
            holdout = holdout.merged(s.holdout)
        weights = _save_weights(run, step, holdout)
        logger.message(f"final weights: {weights}")
    logger.close()
    if status == "interrupted":
        cleanup()
        stop.chain()  # under submitit: checkpoint-and-requeue (exits on rank 0)
    return RunResult(status, step, run.losses, run.out, weights, sig_name)


def _save_weights(run: Run, step: int, holdout: Holdout) -> Path:
    path = run.out / "model.safetensors"
    tail = list(run.losses.values())[-50:]
    save_checkpoint(
        run.model,
        path,
        trained_with="smartiesviz pretrain",
        steps=step,
        final_loss=float(sum(tail) / len(tail)) if tail else None,
        config=run.cfg.to_dict(),
        holdout=holdout.to_metadata(),
    )
    return path
