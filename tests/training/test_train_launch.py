"""`smartiesviz launch slurm`: sbatch dry run, submitit local executor, failure reporting."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from smartiesviz.cli import main


def test_dry_run_prints_a_valid_sbatch_script(tiny_config_path, tmp_path, capsys):
    code = main(["launch", "slurm", "--nodes", "2", "--gpus-per-node", "4", "--partition", "gpu",
                 "--time", "120", "--folder", str(tmp_path / "logs" / "%j"), "--dry-run", "--",
                 "--config", str(tiny_config_path), "train.steps=3"])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    script = out[out.index("#!/bin/bash") :]
    for line in ("#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=4", "#SBATCH --gpus-per-node=4",
                 "#SBATCH --partition=gpu", "#SBATCH --time=120", "#SBATCH --signal=USR1@120",
                 "export SUBMITIT_PREEMPT_SIGNAL=USR1", "srun --unbuffered", "-m submitit.core._submit"):  # fmt: skip
        assert line in script, line
    assert f"--config {tiny_config_path}" in out and "train.steps=3" in out
    assert "nothing submitted" in out and "%j" in script  # logs per job id
    if shutil.which("bash"):
        check = subprocess.run(["bash", "-n"], input=script, text=True, capture_output=True)
        assert check.returncode == 0, check.stderr
    assert not (tmp_path / "logs").exists()  # nothing was written, nothing submitted


def test_dry_run_rejects_a_bad_config_before_submitting(tiny_config_path, capsys):
    code = main(
        ["launch", "slurm", "--dry-run", "--", "--config", str(tiny_config_path), "train.stepz=3"]
    )
    assert code == 2
    assert "unknown config key(s) ['train.stepz']" in capsys.readouterr().err


def test_local_executor_runs_a_job_to_completion(tiny_config_path, tmp_path, capsys):
    run = tmp_path / "run"
    code = main(["launch", "slurm", "--local", "--gpus-per-node", "0", "--folder", str(tmp_path / "jobs"),
                 "--", "--config", str(tiny_config_path), f"train.output_dir={run}", "train.steps=2"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    assert "stdout" in out and "stderr" in out and str(tmp_path / "jobs") in out  # where logs go
    assert "'status': 'completed'" in out
    assert (run / "model.safetensors").is_file() and (
        run / "checkpoints" / "step-00000002.pt"
    ).is_file()


def test_local_executor_reports_a_failed_job(tiny_config_path, tmp_path, capsys):
    code = main(["launch", "slurm", "--local", "--gpus-per-node", "0", "--folder", str(tmp_path / "jobs"),
                 "--", "--config", str(tiny_config_path), f"train.output_dir={tmp_path / 'run'}",
                 f"model.init={tmp_path / 'no_such_weights.safetensors'}"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1
    assert "FAILED" in err and "no_such_weights.safetensors" in err and "does not exist" in err
    assert str(tmp_path / "jobs") in err  # the log file the error came from


def test_requeue_resumes_the_same_run():
    from smartiesviz.training.launch import PretrainJob

    job = PretrainJob(["--config", "c.yaml", "train.steps=9"])
    again = job.checkpoint().function
    assert again.argv == ["--config", "c.yaml", "train.steps=9", "--resume"]
    assert again.checkpoint().function.argv.count("--resume") == 1


@pytest.mark.parametrize("args", [["--nodes", "0"], ["--gpus-per-node", "-1"]])
def test_bad_cluster_sizes(args, tiny_config_path, capsys):
    assert (
        main(["launch", "slurm", *args, "--dry-run", "--", "--config", str(tiny_config_path)]) == 2
    )
    assert "--nodes must be" in capsys.readouterr().err
