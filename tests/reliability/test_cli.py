"""The command line: one ``error:`` line and exit status 2 for user mistakes, fast ``--help``."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from smartiesviz import cli
from smartiesviz.errors import UserError

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m smartiesviz.cli ARGS`` in a fresh interpreter importing this checkout."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "SMARTIESVIZ_DEBUG": ""}
    return subprocess.run(
        [sys.executable, "-m", "smartiesviz.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
    )


def assert_one_error_line(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exit status 2, stderr is exactly one ``error: ...`` line holding every fragment."""
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


def test_yaml_syntax_error_names_the_file(tmp_path):
    config = tmp_path / "broken.yaml"
    config.write_text("train:\n  steps: [1, 2\n")
    proc = run_cli("pretrain", "--config", str(config))
    assert_one_error_line(proc, str(config), "line")


def test_missing_config_file(tmp_path):
    missing = tmp_path / "nope.yaml"
    proc = run_cli("pretrain", "--config", str(missing))
    assert_one_error_line(proc, str(missing), "does not exist")


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_shows_the_traceback(tmp_path, where):
    missing = tmp_path / "nope.yaml"
    args = ["pretrain", "--config", str(missing)]
    proc = run_cli(*(["--debug", *args] if where == "before" else [*args, "--debug"]))
    assert proc.returncode == 2
    assert "Traceback" in proc.stderr and proc.stderr.strip().splitlines()[-1].startswith("error: ")


def _parser_with(func) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    parser.add_argument("--debug", action="store_true")
    parser.set_defaults(func=func)
    return parser


@pytest.mark.parametrize(
    ("exc", "fragment"),
    [
        (UserError("band 'B99' is not a sentinel2-l2a band"), "band 'B99'"),
        (ValueError("config train.steps=-1 is invalid"), "train.steps=-1"),
        (KeyError("unknown sensor 'sentinal2'"), "unknown sensor 'sentinal2'"),
        (FileNotFoundError(2, "No such file or directory", "scene.tif"), "scene.tif"),
        (PermissionError(13, "Permission denied", "/out"), "/out: Permission denied"),
        (IsADirectoryError(21, "Is a directory", "runs"), "runs: Is a directory"),
        (NotADirectoryError(20, "Not a directory", "a.txt/b"), "a.txt/b"),
        (ModuleNotFoundError("No module named 'zarr'", name="zarr"), "'zarr'"),
    ],
)
def test_user_errors_are_one_line(monkeypatch, capsys, exc, fragment):
    def fail(args):
        raise exc

    monkeypatch.setattr(cli, "build_parser", lambda: _parser_with(fail))
    monkeypatch.delenv("SMARTIESVIZ_DEBUG", raising=False)
    assert cli.main([]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and fragment in err
    assert "Traceback" not in err and "[Errno" not in err


def test_multi_line_messages_are_folded(monkeypatch, capsys):
    def fail(args):
        raise UserError("first line\n  second line\n")

    monkeypatch.setattr(cli, "build_parser", lambda: _parser_with(fail))
    assert cli.main([]) == 2
    assert capsys.readouterr().err == "error: first line; second line\n"


def test_bugs_keep_their_traceback_and_a_hint(monkeypatch, capsys):
    def fail(args):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(cli, "build_parser", lambda: _parser_with(fail))
    assert cli.main([]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "ZeroDivisionError" in err
    assert err.strip().splitlines()[-1] == cli.BUG_HINT


def test_bad_config_value_names_the_key(tmp_path):
    proc = run_cli(
        "pretrain",
        "--config",
        str(REPO / "smartiesviz/training/configs/tiny.yaml"),
        "train.steps=-3",
        f"train.output_dir={tmp_path / 'run'}",
    )
    assert_one_error_line(proc, "train.steps", "-3")
    assert not (tmp_path / "run").exists()


def _write_geotiff(path: Path, bands: int = 12, size: int = 64) -> None:
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin

    data = np.random.default_rng(0).random((bands, size, size), dtype=np.float32)
    profile = dict(driver="GTiff", width=size, height=size, count=bands, dtype="float32")
    with rasterio.open(path, "w", crs="EPSG:32633", **profile,
                       transform=from_origin(500_000, 5_000_000, 10, 10)) as dst:  # fmt: skip
        dst.write(data)


def _last_line_is_the_error(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exit 2, no traceback, exactly one ``error:`` line, and it is the last (warnings may precede)."""
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert [line for line in lines if line.startswith("error: ")] == lines[-1:], proc.stderr
    for fragment in fragments:
        assert fragment in lines[-1]
    return lines[-1]


def test_truncated_geotiff_is_one_line_naming_the_file(tmp_path):
    scene = tmp_path / "scene.tif"
    _write_geotiff(scene)
    scene.write_bytes(scene.read_bytes()[: scene.stat().st_size // 2])
    proc = run_cli("embed", str(scene), "--sensor", "sentinel2-l2a", "--out",
                   str(tmp_path / "emb.tif"), "--no-progress", cwd=tmp_path)  # fmt: skip
    _last_line_is_the_error(proc, "scene.tif")


def test_cuda_device_without_a_gpu(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    scene = tmp_path / "scene.tif"
    _write_geotiff(scene)
    before = scene.read_bytes()
    proc = run_cli("embed", str(scene), "--sensor", "sentinel2-l2a", "--out",
                   str(tmp_path / "emb.tif"), "--device", "cuda", cwd=tmp_path)  # fmt: skip
    _last_line_is_the_error(proc, "--device cuda", "no CUDA GPU")
    assert scene.read_bytes() == before and not (tmp_path / "emb.tif").exists()


def test_cuda_train_device_without_a_gpu(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    proc = run_cli("pretrain", "--config", str(REPO / "smartiesviz/training/configs/tiny.yaml"),
                   "train.device=cuda", f"train.output_dir={tmp_path / 'run'}")  # fmt: skip
    _last_line_is_the_error(proc, "train.device", "CUDA")


def _commands() -> list[list[str]]:
    """Every command path of the parser: [], [sensors], [launch], [launch, slurm], ..."""

    def walk(parser: argparse.ArgumentParser, prefix: list[str]) -> list[list[str]]:
        paths = [prefix]
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    paths += walk(sub, [*prefix, name])
        return paths

    return walk(cli.build_parser(), [])


COMMANDS = _commands()


def test_every_command_is_covered():
    names = {" ".join(c) for c in COMMANDS}
    assert {"", "sensors", "pretrain", "launch slurm", "embed", "tour", "lab"} <= names


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "smartiesviz")
def test_help_imports_no_torch_and_is_plain_text(command):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "smartiesviz.cli", *command, "--help"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    imported = {
        line.rsplit("|", 1)[-1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert imported, "importtime printed nothing"
    heavy = sorted(m for m in imported if m.split(".")[0] in ("torch", "torchvision", "timm"))
    assert not heavy, f"`{' '.join(command)} --help` imports {heavy[:5]}"
    text = proc.stdout
    assert text.startswith("usage: smartiesviz")
    for python in ("``", ":mod:", ":func:", ":class:", "None", "True", "False", "=[", "!r"):
        assert python not in text, f"help of {command} shows {python!r}"


def test_unknown_scheme_is_one_line_not_a_table_of_failures():
    proc = run_cli("sensors", "landsat8", "--scheme", "bogus")
    assert_one_error_line(proc, "--scheme bogus", "inverse-distance")
    assert proc.stdout == ""
