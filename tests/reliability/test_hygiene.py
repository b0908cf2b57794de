"""Nothing is left behind: the session hygiene checks of tests/conftest.py, and the tour."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from smartiesviz.cli import main

REPO = Path(__file__).resolve().parents[2]


def _inner_pytest(tmp_path: Path, body: str, **env: str) -> subprocess.CompletedProcess:
    """Run pytest on one test file with tests/conftest.py loaded as a plugin."""
    test = tmp_path / "inner" / "test_inner.py"
    test.parent.mkdir()
    test.write_text(body)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider",
         "-q", str(test)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO), "SMARTIESVIZ_REQUIRE_BROWSER": "",
             "SMARTIESVIZ_HYGIENE": "", **env},
    )  # fmt: skip


def test_a_temp_file_left_behind_fails_the_run_and_is_removed(tmp_path):
    before = set(os.listdir(tempfile.gettempdir()))
    proc = _inner_pytest(
        tmp_path,
        "import tempfile\n\ndef test_leaks():\n    tempfile.mkstemp(prefix='leaked-')\n",
    )
    assert proc.returncode == 1, proc.stdout
    assert "1 passed" in proc.stdout and "left in the temporary directory: leaked-" in proc.stdout
    assert set(os.listdir(tempfile.gettempdir())) == before  # the inner run cleaned up


def test_report_mode_lists_leftovers_without_failing(tmp_path):
    proc = _inner_pytest(
        tmp_path,
        "import tempfile\n\ndef test_leaks():\n    tempfile.mkdtemp(prefix='leaked-')\n",
        SMARTIESVIZ_HYGIENE="report",
    )
    assert proc.returncode == 0, proc.stdout
    assert "left in the temporary directory: leaked-" in proc.stdout


def test_a_clean_run_passes(tmp_path):
    proc = _inner_pytest(tmp_path, "def test_ok(tmp_path):\n    (tmp_path / 'x').write_text('x')\n")
    assert proc.returncode == 0, proc.stdout
    assert "hygiene" not in proc.stdout


BROWSER_TEST = """import pytest

@pytest.mark.browser
def test_browser():
    pytest.skip("Chromium is not installed (apt-get install chromium)")
"""


def test_a_skipped_browser_test_fails_when_required(tmp_path):
    proc = _inner_pytest(tmp_path, BROWSER_TEST, SMARTIESVIZ_REQUIRE_BROWSER="1")
    assert proc.returncode == 1, proc.stdout
    assert "SMARTIESVIZ_REQUIRE_BROWSER=1" in proc.stdout and "apt-get install chromium" in proc.stdout


def test_a_skipped_browser_test_is_a_skip_otherwise(tmp_path):
    proc = _inner_pytest(tmp_path, BROWSER_TEST, SMARTIESVIZ_REQUIRE_BROWSER="")
    assert proc.returncode == 0 and "1 skipped" in proc.stdout, proc.stdout


LEAKY = """import os, tempfile
from pathlib import Path
fd, name = tempfile.mkstemp(prefix="leaky-")
os.write(fd, b"x" * 1000); os.close(fd)
Path("written-into-cwd.txt").write_text("cwd")
print("TMP", tempfile.gettempdir())"""


@pytest.mark.timeout(300)
def test_tour_writes_only_into_its_output_folder(tmp_path, monkeypatch):
    system_tmp = tmp_path / "system-tmp"
    system_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(system_tmp))
    monkeypatch.setattr(tempfile, "tempdir", None)
    tutorials = tmp_path / "tutorials"
    tutorials.mkdir()
    nb = new_notebook(cells=[new_markdown_cell("# Leaky"), new_code_cell(LEAKY)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tutorials / "01-leaky.ipynb")
    before = (tutorials / "01-leaky.ipynb").read_bytes()
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "report"

    assert main(["tour", "--tutorials", str(tutorials), "--out", str(out)]) == 0

    assert list(system_tmp.iterdir()) == []
    assert sorted(p.name for p in out.iterdir()) == ["01-leaky.html", "figures", "index.html", "logs"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report", "system-tmp", "tutorials"]
    assert (tutorials / "01-leaky.ipynb").read_bytes() == before
    assert str(out) in (out / "01-leaky.html").read_text()  # the kernel's TMPDIR was inside out


def test_tour_output_dir_that_is_a_file(tmp_path, capsys):
    (tmp_path / "tutorials").mkdir()
    nbformat.write(new_notebook(cells=[new_code_cell("1")]), tmp_path / "tutorials" / "01-a.ipynb")
    (tmp_path / "report").write_text("a file")
    proc = subprocess.run(
        [sys.executable, "-m", "smartiesviz.cli", "tour", "--tutorials", str(tmp_path / "tutorials"),
         "--out", str(tmp_path / "report")],
        capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and "report" in proc.stderr
    assert (tmp_path / "report").read_text() == "a file"


def test_a_modified_tracked_file_fails_the_run(tmp_path):
    """In a throw-away git checkout holding a copy of tests/conftest.py."""
    import shutil

    repo = tmp_path / "repo"
    (repo / "tests").mkdir(parents=True)
    shutil.copy(REPO / "tests" / "conftest.py", repo / "tests" / "conftest.py")
    (repo / "tracked.txt").write_text("original\n")
    (repo / "tests" / "test_edit.py").write_text(
        "from pathlib import Path\n\ndef test_edit():\n"
        "    (Path(__file__).parents[1] / 'tracked.txt').write_text('changed')\n"
    )
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "init"], check=True)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "tests"],
        cwd=repo, capture_output=True, text=True, timeout=300,
        env={**os.environ, "SMARTIESVIZ_REQUIRE_BROWSER": "", "SMARTIESVIZ_HYGIENE": ""},
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout
    assert "the run changed tracked.txt (git status 'clean' -> 'M')" in proc.stdout
