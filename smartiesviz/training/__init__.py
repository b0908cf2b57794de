"""Pretraining: YAML configs, the training loop (single process, torchrun/DDP, Slurm via submitit),
crash-safe checkpoints, and the demo model's held-out evaluation.

Modules: :mod:`~smartiesviz.training.config` (typed options, validated once),
:mod:`~smartiesviz.training.steps` (step plans, the deterministic dataset, sources from the config;
samples come from :mod:`smartiesviz.data.sources`), :mod:`~smartiesviz.training.engine` (the loop),
:mod:`~smartiesviz.training.runlog` (signals, logs), :mod:`~smartiesviz.training.checkpointing`,
:mod:`~smartiesviz.training.distributed`, :mod:`~smartiesviz.training.launch` (submitit),
:mod:`~smartiesviz.training.arguments` and :mod:`~smartiesviz.training.cli` (commands ``pretrain``,
``launch slurm``, ``stats``, ``shards build``). Submodules import torch, so they are not imported here.
"""
