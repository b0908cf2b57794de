"""binder/ must install exactly the runtime dependencies declared in pyproject.toml."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parent.parent
BINDER = ROOT / "binder"


def _key(requirement: Requirement) -> tuple[str, str]:
    return canonicalize_name(requirement.name), str(requirement.specifier)


def _pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return dict(_key(Requirement(line)) for line in project["dependencies"])


def _binder_requirements() -> dict[str, str]:
    found: dict[str, str] = {}
    for raw in (BINDER / "requirements.txt").read_text().splitlines():
        line = raw.split(" #")[0].strip()
        if not line or line.startswith(("#", "-")):  # comments and pip options (index URLs)
            continue
        name, spec = _key(Requirement(line))
        assert name not in found, f"binder/requirements.txt lists {name} twice"
        found[name] = spec
    return found


def test_binder_names_the_same_dependencies_as_pyproject() -> None:
    expected, actual = _pyproject_requirements(), _binder_requirements()
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    assert not missing and not extra, (
        f"binder/requirements.txt differs from pyproject.toml: missing {missing}, extra {extra}"
    )
    differing = {n: (expected[n], actual[n]) for n in expected if expected[n] != actual[n]}
    assert not differing, f"version specifiers differ (pyproject, binder): {differing}"


def test_binder_installs_the_package_and_pins_python() -> None:
    post_build = BINDER / "postBuild"
    assert os.access(post_build, os.X_OK), "binder/postBuild must be executable"
    commands = [
        line.strip()
        for line in post_build.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert any("pip install" in c and "-e ." in c for c in commands), commands
    runtime = (BINDER / "runtime.txt").read_text().strip()
    minimum = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    version = runtime.removeprefix("python-")
    from packaging.specifiers import SpecifierSet

    assert version in SpecifierSet(minimum), f"binder/runtime.txt {runtime!r} vs {minimum!r}"
