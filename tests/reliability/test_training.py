"""Training under hostile inputs and faults: nothing lost or repeated, one-line errors."""

from __future__ import annotations

import csv
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import smartiesviz
from smartiesviz.cli import main
from smartiesviz.models.checkpoint import load_checkpoint
from smartiesviz.training import checkpointing as ckpt
from smartiesviz.training.config import load_config
from smartiesviz.training.engine import pretrain

TINY = Path(smartiesviz.__file__).parent / "training" / "configs" / "tiny.yaml"


def _steps_in_csv(run: Path) -> list[int]:
    with open(run / "metrics.csv") as f:
        return [int(r["step"]) for r in csv.DictReader(f)]


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    return err


def test_kill_then_resume_does_not_repeat_steps_in_metrics(tmp_path):
    out = tmp_path / "run"
    args = ["--config", str(TINY), f"train.output_dir={out}", "train.steps=300", "train.ckpt_every=5",
            "train.save_final=false"]  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "smartiesviz.cli", "pretrain", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    try:
        deadline = time.time() + 90
        while time.time() < deadline:  # logged past a checkpoint: these rows come again on resume
            # any committed checkpoint: step 5's own marker is pruned ~0.2 s after it appears
            markers = ckpt.checkpoint_dir(out).glob("step-*.json")
            if any(int(m.stem.removeprefix("step-")) >= 5 for m in markers) and (out / "metrics.csv").exists():
                if max(_steps_in_csv(out), default=0) % 5 >= 2:
                    break
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.02)
        proc.kill()
    finally:
        proc.wait()
    logged = _steps_in_csv(out)
    checkpointed = max(int(p.stem.split("-")[1]) for p in ckpt.checkpoint_dir(out).glob("*.json"))
    assert max(logged) > checkpointed  # steps after the checkpoint were logged, then lost
    cfg = load_config(TINY, [f"train.output_dir={out}", f"train.steps={checkpointed + 4}",
                             "train.ckpt_every=5", "train.save_final=false"])  # fmt: skip
    pretrain(cfg, resume=True)
    steps = _steps_in_csv(out)
    assert steps == sorted(set(steps)) == list(range(1, checkpointed + 5))


def test_resume_of_a_finished_run_keeps_its_final_weights(tmp_path):
    cfg = load_config(TINY, [f"train.output_dir={tmp_path / 'run'}", "train.steps=3"])
    done = pretrain(cfg)
    before = done.weights.read_bytes()
    final_loss = load_checkpoint(done.weights).checkpoint_info["metadata"]["final_loss"]
    assert final_loss is not None
    again = pretrain(cfg, resume=True)
    assert again.status == "completed" and again.step == 3 and again.weights == done.weights
    assert done.weights.read_bytes() == before
    assert load_checkpoint(done.weights).checkpoint_info["metadata"]["final_loss"] == final_loss


def test_yaml_syntax_error_names_the_file_and_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  img_size: 32\ntrain: {steps: [1, 2\n")
    assert main(["pretrain", "--config", str(bad)]) == 2
    err = _one_error_line(capsys)
    assert str(bad) in err and "line " in err and "YAML syntax error" in err


def test_bad_override_index_names_the_key(tmp_path, capsys):
    assert main(["pretrain", "--config", str(TINY), "data.sources.7.weight=2"]) == 2
    err = _one_error_line(capsys)
    assert "data.sources.7.weight" in err and "'7' is not an index" in err
    assert main(["pretrain", "--config", str(TINY), "data.sources.x.weight=2"]) == 2
    assert "data.sources.x.weight" in _one_error_line(capsys)


def test_output_dir_that_is_a_file(tmp_path, capsys):
    target = tmp_path / "taken"
    target.write_text("not a folder")
    assert main(["pretrain", "--config", str(TINY), f"train.output_dir={target}"]) == 2
    err = _one_error_line(capsys)
    assert "train.output_dir" in err and "is a file" in err
    assert target.read_text() == "not a folder"


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_device_without_a_gpu(tmp_path, capsys):
    args = ["pretrain", "--config", str(TINY), f"train.output_dir={tmp_path / 'r'}", "train.device=cuda"]
    assert main(args) == 2
    err = _one_error_line(capsys)
    assert "train.device='cuda'" in err and "no CUDA GPU" in err


def test_changed_architecture_on_resume_names_what_changed(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["pretrain", "--config", str(TINY), f"train.output_dir={out}", "train.steps=2"]) == 0
    capsys.readouterr()
    code = main(["pretrain", "--config", str(TINY), f"train.output_dir={out}", "train.steps=4",
                 "model.kwargs.embed_dim=48", "--resume"])  # fmt: skip
    assert code == 2
    err = _one_error_line(capsys)
    assert "architecture changed" in err and "model.kwargs.embed_dim: 32 -> 48" in err
