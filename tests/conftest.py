"""Hygiene of the whole test run (issue 15): nothing left behind, nothing tracked modified.

- The run gets a private temporary folder: ``TMPDIR`` (inherited by subprocesses, notebook
  kernels and browsers) and :func:`tempfile.gettempdir` point into it. At the end, anything left
  in it (pytest's own ``tmp_path`` folders and torch's compile cache aside) fails the run, listed
  by name and size; then the folder is removed, so the system temporary directory is left as it
  was found.
- ``git status`` of the checkout (with the content of every listed file) is compared before and
  after: a test that modifies a tracked file or leaves an untracked one fails the run.
- ``SMARTIESVIZ_REQUIRE_BROWSER=1`` (set by ``.ci/run``) turns a skipped browser test into a
  failure and fails the run when no browser test passed.
- torch's process-wide settings (fp32 matmul precision, threads, default dtype, deterministic
  flags; :mod:`smartiesviz.torch_globals`) are recorded at the start: a test, or a module imported
  while collecting, that changes them fails and the settings are put back (issue 28: an import that
  lowered the matmul precision made the suite red on CPUs with bf16).
- ``SMARTIESVIZ_HYGIENE=report`` lists the temporary-directory and git findings without failing
  the run (the private temporary folder is removed either way).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REQUIRE_BROWSER = "SMARTIESVIZ_REQUIRE_BROWSER"
# caches other libraries keep in the temporary directory on purpose (removed with it at the end):
# torch creates torchinductor_<user> when torch._dynamo is imported (timm imports it);
# onnxruntime's native library writes a session-id file .ses when it is imported
LIBRARY_CACHES = ("torchinductor_", ".ses")
_STATE = pytest.StashKey[dict]()
_TORCH = pytest.StashKey[dict]()


def _git_state() -> dict[str, str] | None:
    """``{path: "<status> <sha256 of content>"}`` for every path ``git status`` lists."""
    try:
        out = subprocess.run(
            ["git", "status", "--porcelain", "-uall", "-z"],
            cwd=REPO, capture_output=True, check=True, timeout=60,
        ).stdout.decode()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None  # not a git checkout (e.g. an sdist): nothing to compare
    state = {}
    for entry in filter(None, out.split("\0")):
        status, path = entry[:2], entry[3:]
        file = REPO / path
        digest = hashlib.sha256(file.read_bytes()).hexdigest() if file.is_file() else "-"
        state[path] = f"{status} {digest}"
    return state


def _size(path: Path) -> int:
    if path.is_symlink() or not path.is_dir():
        return path.lstat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*"))


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):  # the controller checks for its workers
        return
    private = Path(tempfile.mkdtemp(prefix="smartiesviz-tests-"))
    config.stash[_STATE] = {
        "tmp": private,
        "old_tmpdir": os.environ.get("TMPDIR"),
        "git": _git_state(),
        "browser_passed": 0,
    }
    os.environ["TMPDIR"] = str(private)
    tempfile.tempdir = None  # gettempdir() reads TMPDIR again
    from smartiesviz.torch_globals import snapshot

    config.stash[_TORCH] = snapshot()


def _torch_drift(expected: dict | None) -> list[str]:
    """``name: was -> now`` for each torch global setting that differs from ``expected``; puts
    them back."""
    if expected is None:
        return []
    from smartiesviz.torch_globals import restore, snapshot

    now = snapshot()
    drift = [f"{k}: {expected[k]!r} -> {now[k]!r}" for k in expected if now[k] != expected[k]]
    restore(expected)
    return drift


def pytest_collection_finish(session: pytest.Session) -> None:
    drift = _torch_drift(session.config.stash.get(_TORCH, None))
    state = session.config.stash.get(_STATE, None)
    if drift and state is not None:
        state["collection_drift"] = drift


@pytest.fixture(autouse=True)
def _torch_globals_kept():
    """Fail a test that changes torch's global settings (they are put back either way).

    Compared around each test, so a module-scoped fixture may set a value for its module (it is
    set before this fixture starts and put back after it ends)."""
    from smartiesviz.torch_globals import snapshot

    before = snapshot()
    yield
    drift = _torch_drift(before)
    if drift:
        pytest.fail(f"the test changed torch's global settings: {'; '.join(drift)}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if item.get_closest_marker("browser") is None:
        return report
    state = item.config.stash.get(_STATE, None)
    if report.passed and report.when == "call" and state is not None:
        state["browser_passed"] += 1
    if report.skipped and os.environ.get(REQUIRE_BROWSER) == "1":
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"browser test skipped but {REQUIRE_BROWSER}=1: {reason}"
    return report


def _problems(state: dict) -> list[str]:
    problems = []
    private: Path = state["tmp"]
    leftovers = sorted(
        p for p in private.iterdir() if not p.name.startswith(("pytest-of-", *LIBRARY_CACHES))
    )
    for path in leftovers:
        problems.append(
            f"left in the temporary directory: {path.name} ({_size(path) / 1e6:.1f} MB)"
        )
    before, after = state["git"], _git_state()
    if before is not None and after is not None:
        for path in sorted(before.keys() | after.keys()):
            if before.get(path) != after.get(path):
                was, now = (s.rsplit(" ", 1)[0].strip() if s else "clean"
                            for s in (before.get(path), after.get(path)))  # fmt: skip
                problems.append(f"the run changed {path} (git status {was!r} -> {now!r})")
    for line in state.get("collection_drift", []):
        problems.append(f"torch's global settings changed outside a test: {line}")
    if os.environ.get(REQUIRE_BROWSER) == "1" and state["browser_passed"] == 0:
        problems.append(f"{REQUIRE_BROWSER}=1 but no browser test passed")
    return problems


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state = session.config.stash.get(_STATE, None)
    if state is None:
        return
    for line in _torch_drift(session.config.stash.get(_TORCH, None)):
        state.setdefault("collection_drift", []).append(f"(at the end of the run) {line}")
    try:
        problems = _problems(state)
    finally:
        shutil.rmtree(state["tmp"], ignore_errors=True)
        if state["old_tmpdir"] is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = state["old_tmpdir"]
        tempfile.tempdir = None
    state["problems"] = problems
    if os.environ.get("SMARTIESVIZ_HYGIENE") == "report":
        problems = [p for p in problems if REQUIRE_BROWSER in p]
    if problems and session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(_STATE, None)
    problems = (state or {}).get("problems")
    if problems:
        terminalreporter.section("hygiene (tests/conftest.py)", red=True, bold=True)
        for line in problems:
            terminalreporter.line(line, red=True)
