"""Fixtures of the reliability tests: a private, empty sample cache (never the user's)."""

from __future__ import annotations

import pytest


@pytest.fixture
def temp_cache(tmp_path, monkeypatch):
    """``$SMARTIESVIZ_CACHE`` pointed at an empty folder; in-memory samples forgotten around it."""
    from smartiesviz.data import samples
    from smartiesviz.data.cache import ENV_VAR

    root = tmp_path / "cache"
    monkeypatch.setenv(ENV_VAR, str(root))
    samples.clear_cache()
    yield root
    samples.clear_cache()
