"""Fixtures for the prediction tests: a tiny untrained model, synthetic and real cubes, the demo model.

Quality tests use the bundled demo checkpoint (``smartiesviz.load_demo_model``) and the held-out
parts recorded in its metadata; they skip, saying so, when the demo weights are not installed.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """One torch thread: on a shared, busy CPU, tiny ops are many times faster without OpenMP
    hand-offs between threads. Restored after each module so other test folders are unaffected."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


S2_L2A = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]


def make_cube(data: np.ndarray, bands: list[str], sensor: str, res: float = 10.0):
    """A georeferenced (band, y, x) cube in EPSG:32618 at ``res`` metres."""
    import rioxarray  # noqa: F401
    import xarray as xr
    from affine import Affine

    _, h, w = data.shape
    tr = Affine(res, 0, 500_000, 0, -res, 4_000_000)
    da = xr.DataArray(
        data,
        dims=("band", "y", "x"),
        coords={
            "band": bands,
            "y": tr.f + (np.arange(h) + 0.5) * tr.e,
            "x": tr.c + (np.arange(w) + 0.5) * tr.a,
        },
        attrs={"sensor": sensor},
    )
    return da.rio.write_crs("EPSG:32618").rio.write_transform(tr)


@pytest.fixture(scope="session")
def tiny_model():
    import smartiesviz

    torch.manual_seed(0)
    return smartiesviz.smarties_vit_tiny_patch8(img_size=64).eval()


def smooth_s2_cube(height: int, width: int):
    """A 12-band Sentinel-2 L2A cube in model units: smooth fields plus seeded noise."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width]
    smooth = np.sin(yy / 17.0)[None] + np.cos(xx / 23.0)[None]
    data = (smooth * np.linspace(0.5, 1.5, 12)[:, None, None]
            + 0.3 * rng.normal(size=(12, height, width))).astype("float32")  # fmt: skip
    return make_cube(data, S2_L2A, "sentinel2-l2a")


@pytest.fixture(scope="session")
def synthetic_cube():
    """12-band Sentinel-2 L2A cube in model units, 90 × 115 px (not a multiple of the tile)."""
    return smooth_s2_cube(90, 115)


@pytest.fixture(scope="session")
def demo_model():
    import smartiesviz

    try:
        return smartiesviz.load_demo_model()
    except (ImportError, AttributeError, FileNotFoundError, OSError) as err:
        pytest.skip(f"DEMO CHECKPOINT NOT AVAILABLE: quality test skipped ({err})")


@pytest.fixture(scope="session")
def holdout(demo_model):
    """The demo checkpoint's never-trained-on data: an S2 pixel block and a BigEarthNet pair."""
    from smartiesviz.models.demo import demo_holdout

    return demo_holdout()


@pytest.fixture(scope="session")
def tiny_model_path(tiny_model, tmp_path_factory):
    from smartiesviz import save_checkpoint

    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    save_checkpoint(tiny_model, path)
    return path


@pytest.fixture(scope="session")
def s2_rgbn():
    """Blue, green, red and NIR (the 10 m bands, fast to read) of the bundled S2 L1C scene."""
    from smartiesviz import data

    return data.sentinel2_sample(bands=["B02", "B03", "B04", "B08"])
