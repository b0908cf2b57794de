"""Hostile launch arguments, configs and run folders: refused with one line, nothing run or lost."""

from __future__ import annotations

import fcntl
import os
import shlex
import shutil
import subprocess
import sys
import typing
from pathlib import Path
from types import SimpleNamespace

import pytest

import smartiesviz
from smartiesviz.cli import main
from smartiesviz.errors import UserError
from smartiesviz.outputs import file_sha256
from smartiesviz.training import launch
from smartiesviz.training.runlog import LOCK_NAME

TINY = Path(smartiesviz.__file__).parent / "training" / "configs" / "tiny.yaml"
DEAD_PID = 4_999_999  # above Linux's largest pid_max (2**22): never a live process


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    return err


def _hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): file_sha256(p) for p in sorted(folder.rglob("*")) if p.is_file()}


# ----------------------------------------------------------------------------- 1. Slurm launch
def _dry_run(tmp_path: Path, *launch_args: str, pretrain_args: tuple[str, ...] = ()) -> int:
    return main(["launch", "slurm", "--folder", str(tmp_path / "jobs"), *launch_args, "--dry-run",
                 "--", "--config", str(TINY), *pretrain_args])  # fmt: skip


@pytest.mark.parametrize(
    ("launch_args", "pretrain_args", "named"),
    [
        (["--job-name", "run\ntouch PWNED"], (), "--job-name"),
        (["--partition", "gpu\n#SBATCH --account=other"], (), "--partition"),
        (["--account", "lab;touch PWNED"], (), "--account"),
        (["--qos", "$(touch PWNED)"], (), "--qos"),
        (["--constraint", "a100\ntouch PWNED"], (), "--constraint"),
        (["--folder", "/tmp/jobs\ntouch PWNED"], (), "--folder"),
        ([], ("train.steps=3\ntouch PWNED",), "pretrain argument"),
    ],
)
def test_launch_fields_that_would_add_shell_lines_are_refused(
    launch_args, pretrain_args, named, tmp_path, capsys
):
    assert _dry_run(tmp_path, *launch_args, pretrain_args=pretrain_args) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"error: {named} "), err
    assert "is not allowed" in err or "newline" in err
    assert "#!/bin/bash" not in captured.out  # no script printed
    assert not (tmp_path / "jobs").exists()


def _run_script_with_fake_srun(script: str, cwd: Path) -> list[str]:
    """Source ``script`` in bash with ``srun`` recording its arguments; returns them."""
    (cwd / "job.sh").write_text(script)
    record = cwd / "srun-args"
    fake = f'srun() {{ printf "%s\\n" "$@" > {shlex.quote(str(record))}; }}; source ./job.sh'
    done = subprocess.run(["bash", "-c", fake], cwd=cwd, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return record.read_text().splitlines()


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize("name", ["jobs; touch PWNED", "$(touch PWNED)", "`touch PWNED`"])
def test_dry_run_script_quotes_a_folder_with_shell_syntax(name, tmp_path, capsys):
    folder = tmp_path / name
    code = main(["launch", "slurm", "--folder", str(folder), "--dry-run", "--", "--config", str(TINY)])
    assert code == 0
    out = capsys.readouterr().out
    args = _run_script_with_fake_srun(out[out.index("#!/bin/bash") :], tmp_path)
    assert not list(tmp_path.rglob("PWNED"))  # nothing in the folder name ran
    assert args[-1] == str(folder) and f"{folder}/%j_%t_log.out" in args


class _RecordingExecutor:
    """Stands in for ``submitit.SlurmExecutor`` (no Slurm here): records what it is given."""

    made: list[_RecordingExecutor] = []

    def __init__(self, folder, max_num_timeout=3):
        self.folder, self.params = folder, None
        _RecordingExecutor.made.append(self)

    def update_parameters(self, **params):
        self.params = params

    def submit(self, job):
        return SimpleNamespace(job_id="42", num_tasks=1, paths=SimpleNamespace(stdout="o", stderr="e"))


def test_submitit_never_receives_a_bad_job_name(tmp_path, capsys, monkeypatch):
    import submitit.slurm.slurm as submitit_slurm

    monkeypatch.setattr(launch.submitit, "SlurmExecutor", _RecordingExecutor)
    monkeypatch.setattr(_RecordingExecutor, "made", [])
    folder = tmp_path / "jobs; touch PWNED"
    base = ["launch", "slurm", "--folder", str(folder), "--partition", "gpu,gpu-long",
            "--constraint", "[a100&ib|h100]*2"]  # fmt: skip
    bad = main([*base, "--job-name", "x\ntouch PWNED", "--", "--config", str(TINY)])
    assert bad == 2 and "--job-name" in _one_error_line(capsys)
    assert _RecordingExecutor.made == []  # refused before submitit was reached
    assert main([*base, "--job-name", "pretrain-v2.1", "--", "--config", str(TINY)]) == 0
    (executor,) = _RecordingExecutor.made
    # the script submitit itself would submit with these parameters: no line but its own
    script = submitit_slurm._make_sbatch_string(command="python -u -m submitit.core._submit x",
                                                folder=executor.folder, **executor.params)  # fmt: skip
    allowed = {"", "export SUBMITIT_PREEMPT_SIGNAL=USR1", "export SUBMITIT_EXECUTOR=slurm"}
    assert all(line.startswith(("#", "srun ")) or line in allowed for line in script.splitlines())
    assert "#SBATCH --job-name=pretrain-v2.1" in script
    _run_script_with_fake_srun(script, tmp_path)
    assert not list(tmp_path.rglob("PWNED"))


# ----------------------------------------------------------------------------- 2. model names
@pytest.mark.parametrize("name", ["this:s", "os:getcwd", "smartiesviz.models.mae.SmartiesMAE", "SmartiesMAE"])
def test_model_name_is_only_a_registered_factory(name, tmp_path, capsys, monkeypatch):
    monkeypatch.delitem(sys.modules, "this", raising=False)
    code = main(["pretrain", "--config", str(TINY), f"model.name={name}",
                 f"train.output_dir={tmp_path / 'run'}"])  # fmt: skip
    assert code == 2
    err = _one_error_line(capsys)
    assert "model.name" in err and repr(name) in err and "smarties_vit_tiny_patch8" in err
    assert "this" not in sys.modules  # nothing was imported from the config string
    assert not (tmp_path / "run").exists()


def test_build_model_refuses_an_import_path_given_directly():
    from smartiesviz.models import factories
    from smartiesviz.training.config import ModelConfig, ModelName
    from smartiesviz.training.engine import build_model

    assert set(typing.get_args(ModelName)) == set(factories.__all__)  # the two lists agree
    with pytest.raises(UserError, match="'os:getcwd' is not a model factory; known: .*smarties_vit_tiny_patch8"):
        build_model(ModelConfig(name="os:getcwd"))


# ----------------------------------------------------------------------------- 3. YAML safety
def _billion_laughs() -> str:
    text = 'lol0: &lol0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
    for i in range(1, 9):
        text += f"lol{i}: &lol{i} [" + ", ".join([f"*lol{i - 1}"] * 9) + "]\n"
    return text


def _wide_bomb() -> str:  # few aliases (40), but 8**5 values once expanded
    text = "x0: &x0 [1, 2, 3, 4, 5, 6, 7, 8]\n"
    for i in range(1, 6):
        text += f"x{i}: &x{i} [" + ", ".join([f"*x{i - 1}"] * 8) + "]\n"
    return text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (_billion_laughs(), "more than 50 aliases"),
        ("model: {img_size: 32}\n" + _wide_bomb(), "expand it to more than 100000 values"),
        ("a: &a [*a]\n", "recursive alias"),
        ("train:\n  steps: 3\n  seed: 1\n  steps: 300\n", "key 'steps' is given twice (lines 2 and 4)"),
        ("!!python/object/apply:os.system ['touch PWNED']\n", "unsupported YAML"),
    ],
)
def test_hostile_yaml_config_fails_fast_with_one_line(text, expected, tmp_path, capsys):
    config = tmp_path / "cfg.yaml"
    config.write_text(text)
    assert main(["pretrain", "--config", str(config), "--print-config"]) == 2
    err = _one_error_line(capsys)
    assert str(config) in err and expected in err
    assert not list(tmp_path.rglob("PWNED"))


def test_oversized_or_special_yaml_files_are_refused_before_reading(tmp_path, capsys):
    big = tmp_path / "big.yaml"
    big.write_text("# padding\n" * 120_000)  # 1.2 MB of comments
    assert main(["pretrain", "--config", str(big), "--print-config"]) == 2
    assert "more than the 1048576 bytes (1 MiB)" in _one_error_line(capsys)
    fifo = tmp_path / "cfg.fifo"
    os.mkfifo(fifo)  # opening it would block forever
    assert main(["pretrain", "--config", str(fifo), "--print-config"]) == 2
    assert "FIFO" in _one_error_line(capsys)


def test_sensor_yaml_uses_the_same_safe_loader(tmp_path):
    from smartiesviz.spectrum import list_sensors
    from smartiesviz.spectrum.sensors import load_sensors_yaml

    before = list_sensors()
    bomb = tmp_path / "sensors.yaml"
    bomb.write_text("sensors:\n  drone: {family: multispectral}\n" + _billion_laughs())
    with pytest.raises(UserError, match="sensors file .*more than 50 aliases"):
        load_sensors_yaml(bomb)
    dup = tmp_path / "dup.yaml"
    dup.write_text("sensors:\n  drone:\n    family: a\n  drone:\n    family: b\n")
    with pytest.raises(UserError, match="key 'drone' is given twice .lines 2 and 4."):
        load_sensors_yaml(dup)
    assert list_sensors() == before  # nothing registered


# ----------------------------------------------------------------------------- 4. weak values
@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("train.log_every=0", "train.log_every=0 is invalid: expected an integer in [1, "),
        ("train.num_threads=-1", "train.num_threads=-1 is invalid: expected null (torch's default) or in [1, 4096]"),
        ("train.global_batch_size=0", "train.global_batch_size=0 is invalid: expected an integer in [1, 1000000]"),
        ("train.global_batch_size=-8", "train.global_batch_size=-8 is invalid"),
        ("train.global_batch_size=10000000", "train.global_batch_size=10000000 is invalid: expected an integer in [1, 1000000]"),
        ("train.global_batch_size=8.5", "train.global_batch_size=8.5 has the wrong type: expected an integer"),
        ("train.log_every=true", "train.log_every=True has the wrong type: expected an integer"),
        ("train.num_threads=two", "train.num_threads='two' has the wrong type: expected an integer or null"),
        ("data.crop_scale=[a, 1]", "data.crop_scale[0]='a' has the wrong type: expected a number"),
        ("optim.weight_decay=.nan", "optim.weight_decay=nan is invalid: expected a finite number >= 0"),
        ("model.img_size=1000000", "model.img_size=1000000 is invalid: expected an integer in [1, 8192]"),
    ],
)  # fmt: skip
def test_weak_config_values_are_refused_naming_key_and_range(override, expected, capsys):
    assert main(["pretrain", "--config", str(TINY), override, "--print-config"]) == 2
    assert expected in _one_error_line(capsys)


# ----------------------------------------------------------------------------- 5./6. run folders
def _pretrain(out: Path, *extra: str) -> int:
    return main(["pretrain", "--config", str(TINY), f"train.output_dir={out}", "train.steps=2",
                 "train.ckpt_every=1", *extra])  # fmt: skip


def test_a_folder_holding_a_run_needs_resume_or_overwrite(tmp_path, capsys):
    out = tmp_path / "run"
    assert _pretrain(out) == 0
    assert not (out / LOCK_NAME).exists()  # the lock goes with the run
    capsys.readouterr()
    before = _hashes(out)
    assert _pretrain(out, "train.seed=7") == 2
    err = _one_error_line(capsys)
    assert str(out) in err and "holds another run" in err and "--resume" in err and "--overwrite" in err
    assert _hashes(out) == before  # weights, checkpoints and metrics untouched
    assert _pretrain(out, "--resume", "--overwrite") == 2
    assert "give only one" in _one_error_line(capsys)
    # --overwrite: the old run's files go, including checkpoints the new run would never write
    old = out / "checkpoints" / "step-00000099.pt"
    old.write_bytes(b"from the old run")
    old.with_suffix(".json").write_text("{}")
    assert _pretrain(out, "train.seed=7", "train.steps=1", "--overwrite") == 0
    assert not old.exists() and not old.with_suffix(".json").exists()
    rows = (out / "metrics.csv").read_text().splitlines()[1:]
    assert [r.split(",")[0] for r in rows] == ["1"]  # only the new run's step
    assert file_sha256(out / "model.safetensors") != before["model.safetensors"]


def test_a_second_run_on_a_held_folder_fails_at_once(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    with open(out / LOCK_NAME, "w") as held:  # another pretrain holds the folder
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write(f"{os.getpid()}\n")
        held.flush()
        assert _pretrain(out) == 2
        err = _one_error_line(capsys)
        assert str(out) in err and "in use by another pretrain" in err and f"pid {os.getpid()}" in err
        assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]  # nothing written
    (out / LOCK_NAME).unlink()


def test_start_and_resume_remove_stale_temporary_files(tmp_path, capsys):
    out = tmp_path / "run"
    ckpts = out / "checkpoints"
    ckpts.mkdir(parents=True)
    stale = [ckpts / f".step-00000004.pt.partial-{DEAD_PID}.pt", ckpts / f".step-00000004.json.tmp-{DEAD_PID}",
             out / f".metrics.csv.partial-{DEAD_PID}.csv", out / f".model.safetensors.partial-{DEAD_PID}.safetensors"]  # fmt: skip
    for p in stale:
        p.write_bytes(b"half written when the run was killed")
    assert _pretrain(out) == 0  # a fresh start
    assert [p for p in stale if p.exists()] == []
    for p in stale:
        p.write_bytes(b"half written when the run was killed")
    assert _pretrain(out, "--resume") == 0  # a resume (of a finished run: nothing else to do)
    assert [p for p in stale if p.exists()] == []
    assert not [p.name for p in out.rglob(".*") if "partial" in p.name or ".tmp-" in p.name]


# ----------------------------------------------------------------------------- 7. stats --out
def _stats_setup(tmp_path: Path) -> tuple[Path, Path]:
    images = tmp_path / "images.txt"
    images.write_text("a.tif\nb.tif\n")
    config = tmp_path / "stats.yaml"
    config.write_text(f"data:\n  sources:\n    - {{kind: images, list: {images}, root: {tmp_path}, "
                      "sensor: sentinel2-l2a}\n")  # fmt: skip
    return config, images


def test_stats_never_writes_over_its_inputs_or_special_files(tmp_path, capsys):
    config, images = _stats_setup(tmp_path)
    (tmp_path / "config-link.yaml").symlink_to(config)
    os.link(images, tmp_path / "images-hardlink.txt")
    (tmp_path / "folder").mkdir()
    (tmp_path / "old-stats.yaml").write_text("kept\n")
    before = _hashes(tmp_path)
    cases = [(config, "is an input"), (images, "is an input"), (tmp_path / "config-link.yaml", "is an input"),
             (tmp_path / "images-hardlink.txt", "is an input"), ("/dev/null", "character device"),
             (tmp_path / "folder", "is a folder"), (tmp_path / "old-stats.yaml", "--overwrite")]  # fmt: skip
    for out, expected in cases:
        overwrite = [] if expected == "--overwrite" else ["--overwrite"]  # inputs: even with it
        assert main(["stats", "--config", str(config), "--out", str(out), *overwrite]) == 2, out
        err = _one_error_line(capsys)
        assert "--out" in err and str(out) in err and expected in err, err
    assert _hashes(tmp_path) == before
