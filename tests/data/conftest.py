"""Session fixtures: the bundled samples are read once, BigEarthNet is extracted into a fresh
temporary cache (so the extraction path is exercised every run)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def ben_cache(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("smartiesviz-cache")
    mp.setenv("SMARTIESVIZ_CACHE", str(root))
    yield root
    mp.undo()


@pytest.fixture(scope="session")
def s2_scene():
    from smartiesviz.data import sentinel2_sample

    return sentinel2_sample()


@pytest.fixture(scope="session")
def s2_small(s2_scene):
    """A 13 × 200 × 180 window of the Sentinel-2 scene (georeferenced)."""
    return s2_scene.isel(y=slice(400, 600), x=slice(300, 480)).copy()


@pytest.fixture(scope="session")
def l8_scene():
    from smartiesviz.data import landsat8_sample

    return landsat8_sample()


@pytest.fixture(scope="session")
def ben_pairs(ben_cache):
    from smartiesviz.data import bigearthnet_pairs

    return bigearthnet_pairs()
