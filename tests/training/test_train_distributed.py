"""DDP under torchrun (gloo, 2 processes) gives the single-process loss curve."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys

import pytest

from smartiesviz.training.distributed import export_slurm_env, first_slurm_host
from smartiesviz.training.engine import pretrain


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_torchrun_matches_one_process(
    tiny_cfg, tiny_config_path, tmp_path, read_losses
):
    steps = "train.steps=5"
    single = pretrain(tiny_cfg(steps, "train.save_final=false", out="one"))
    out = tmp_path / "two"
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable)) or "torchrun"
    cmd = [torchrun, "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
           "-m", "smartiesviz.cli", "pretrain", "--config", str(tiny_config_path),
           f"train.output_dir={out}", steps, "train.save_final=false"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["TMPDIR"] = str(tmp_path)  # torchrun's elastic agent leaves a torchelastic_* folder there
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = read_losses(out)
    assert sorted(two) == sorted(single.losses) == [1, 2, 3, 4, 5]
    for step, loss in single.losses.items():
        assert two[step] == pytest.approx(loss, rel=1e-5, abs=1e-6)
    # both ranks joined one job and rank 0 alone wrote the logs and checkpoints
    assert proc.stdout.count("done: 5 steps") == 2
    assert len(list((out / "checkpoints").glob("*.pt"))) == 2


def test_slurm_environment_is_translated():
    env = {"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1",
           "SLURM_JOB_NODELIST": "gpu[12-13]", "SLURM_JOB_ID": "4242"}  # fmt: skip
    assert export_slurm_env(env)
    assert (env["RANK"], env["WORLD_SIZE"], env["LOCAL_RANK"]) == ("5", "8", "1")
    assert env["MASTER_ADDR"] == "gpu12" and env["MASTER_PORT"] == str(20000 + 4242)
    assert not export_slurm_env({"SLURM_PROCID": "0", "SLURM_NTASKS": "1"})
    assert first_slurm_host("node7,node8") == "node7"
    assert first_slurm_host("a[003,005-007]b") == "a003b"
