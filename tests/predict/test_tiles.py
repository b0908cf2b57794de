import numpy as np
import pytest

from smartiesviz.data.tiling import PatchGrid, core_valid, scatter
from smartiesviz.data.tiling import iter_grid_batches as iter_batches


@pytest.mark.parametrize("overlap", [0, 16, 32])
def test_tile_cores_partition_the_patch_grid(overlap):
    grid = PatchGrid(90, 115, 8, 64, overlap)
    assert grid.shape == (12, 15)  # ceil(90/8), ceil(115/8)
    hits = np.zeros(grid.shape, int)
    for w in grid.windows():
        hits[w.row : w.row + w.rows, w.col : w.col + w.cols] += 1
        assert w.y0 == (w.row - w.margin) * 8 and w.x0 == (w.col - w.margin) * 8
    assert (hits == 1).all()


def test_stream_and_scatter_rebuild_the_scene_exactly(synthetic_cube):
    """Tiles streamed with edge mirroring and scattered back (pixel scale) give the scene back."""
    grid = PatchGrid(90, 115, 8, 64, overlap=16)
    out = np.zeros((12, 12 * 8, 15 * 8), np.float32)
    n = 0
    for windows, x in iter_batches(synthetic_cube, grid, 5, lambda sub: sub.values):
        assert x.shape[1:] == (12, 64, 64) and x.dtype == np.float32
        scatter(out, windows, x, scale=8)
        n += len(windows)
    assert n == len(grid.windows())
    np.testing.assert_array_equal(out[:, :90, :115], synthetic_cube.values)
    # beyond the scene edge the padding mirrors it
    np.testing.assert_array_equal(out[:, 90, :115], synthetic_cube.values[:, 89])


def test_core_valid_excludes_padding():
    grid = PatchGrid(90, 115, 8, 64)
    last = grid.windows()[-1]
    ys, xs = core_valid(last, 8, 90, 115)
    assert (ys.stop - ys.start, xs.stop - xs.start) == (90 - last.row * 8, 115 - last.col * 8)


@pytest.mark.parametrize(
    "kwargs, msg",
    [
        ({"tile_size": 60}, "multiple of the patch size"),
        ({"overlap": 8}, "multiple of 2"),
        ({"overlap": 64}, "smaller than tile_size"),
    ],  # fmt: skip
)
def test_bad_grid_arguments_are_explained(kwargs, msg):
    args = {"height": 100, "width": 100, "patch_size": 8, "tile_size": 64, **kwargs}
    with pytest.raises(ValueError, match=msg):
        PatchGrid(**args)
