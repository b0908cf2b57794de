"""A click on the map inspects the tile whose window holds the clicked point, for any tile size.

Regression (issue 25): ``MapExplorer.tile_at`` divided by the model's input size (64) while the
inspector tiled by the job's ``tile_size``, so with ``tile_size=128`` a click at pixel (10, 70)
reconstructed tile 1 (columns 128-255) and a click at (70, 10) failed ("tile 2 is outside").
"""

import numpy as np
import pytest
from pyproj import Transformer

from smartiesviz.predict.embed import EmbedOptions
from smartiesviz.widgets import MapExplorer

WINDOW = (900, 900, 128, 192)  # rows, cols, height, width of the bundled S2 scene
# (clicked pixel (row, col) of the window, expected tile window (y0, x0) in pixels)
CASES = {
    "default": (None, [((10, 70), (0, 64)), ((70, 10), (64, 0)), ((100, 150), (64, 128))]),
    "tile_size=128": (EmbedOptions(tile_size=128),
                      [((10, 70), (0, 0)), ((70, 10), (0, 0)), ((100, 150), (0, 128))]),
    # overlap 32: cores of 96 px, each tile reads 16 px of context on every side
    "tile_size=128, overlap=32": (EmbedOptions(tile_size=128, overlap=32),
                                  [((10, 70), (-16, -16)), ((100, 150), (80, 80))]),
}  # fmt: skip


def _latlon(cube, row, col):
    tr = Transformer.from_crs(cube.rio.crs, "EPSG:4326", always_xy=True)
    lon, lat = tr.transform(float(cube.x.values[col]), float(cube.y.values[row]))
    return lat, lon


@pytest.mark.parametrize("case", list(CASES))
def test_click_reconstructs_the_tile_whose_window_holds_the_point(case, tiny_model, tmp_path):
    options, clicks = CASES[case]
    m = MapExplorer(model=tiny_model, window=WINDOW, threads=1, layers=("true colour",),
                    cache=tmp_path, options=options)  # fmt: skip
    assert m.error.message == ""
    t = m._job.tile_size
    assert t == (options.tile_size if options else 64) and m.grid.size == t
    cube, job = m.cube, m._job
    for (row, col), (y0, x0) in clicks:
        lat, lon = _latlon(cube, row, col)
        index = m.select_at(lat, lon)
        assert m.error.message == "" and m.selected_tile == index == m.tile_at(lat, lon)
        assert m.grid.window(index) == (y0, x0, t)
        assert y0 <= row < y0 + t and x0 <= col < x0 + t
        ys, xs = m.grid.core(index)
        assert row in range(ys.start, ys.stop) and col in range(xs.start, xs.stop)
        # the tile shown is the scene's pixels of that window (normalized; its in-scene part)
        tile = m._tile
        assert tile.x.shape[-2:] == tile.recon.shape[-2:] == (t, t)
        ya, xa = max(y0, 0), max(x0, 0)
        raw = job.cube.isel(y=slice(ya, y0 + t), x=slice(xa, x0 + t))  # the job's bands
        want = np.asarray(job.normalizer(raw), np.float32)
        want = want[[job.band_specs.index(b) for b in tile.bands]]
        h, w = want.shape[-2:]
        got = tile.x[:, ya - y0 : ya - y0 + h, xa - x0 : xa - x0 + w]
        np.testing.assert_array_equal(got, want)
        # the outline drawn on the map holds the clicked point
        (s, wst), (n, e) = m._rect.bounds
        assert s <= lat <= n and wst <= lon <= e
    # the tiles cover the scene: every pixel's tile window holds it
    rows, cols = m.grid.shape
    assert rows * cols == len(job.windows)
    for row in range(0, WINDOW[2], 7):
        for col in range(0, WINDOW[3], 7):
            y0, x0, _ = m.grid.window(m.grid.index_at(row, col))
            assert y0 <= row < y0 + t and x0 <= col < x0 + t
    with pytest.raises(ValueError, match="outside"):
        m.grid.window(rows * cols)
