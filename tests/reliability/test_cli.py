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


def test_debug_shows_the_traceback(tmp_path):
    missing = tmp_path / "nope.yaml"
    proc = run_cli("--debug", "pretrain", "--config", str(missing))
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
