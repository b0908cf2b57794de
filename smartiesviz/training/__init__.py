"""Pretraining: YAML configs, the training loop (single process, torchrun/DDP, Slurm via submitit),
crash-safe checkpoints, and the demo model's held-out evaluation.

Entry points: ``smartiesviz pretrain --config FILE`` and ``smartiesviz launch slurm ...`` (see
:mod:`smartiesviz.training.cli`); from Python, :func:`smartiesviz.training.engine.pretrain` with a
config from :func:`smartiesviz.training.config.load_config`. Submodules import torch, so they are
not imported here.
"""
