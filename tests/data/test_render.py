"""The one renderer: stretch against a reference, composites by band names, colour maps, PNG."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest

from smartiesviz import render


def test_render_is_numpy_and_pil_only():
    import subprocess

    code = "import sys, smartiesviz.render; print('matplotlib' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_stretch_against_a_reference_uses_the_reference_range():
    ref = np.linspace(0, 100, 10_000, dtype=np.float32).reshape(100, 100)
    out = render.stretch(ref / 2, dtype="float", ref=ref, percentiles=(0, 100))
    np.testing.assert_allclose(out, ref / 200, atol=1e-6)


@pytest.mark.parametrize(
    ("bands", "expected"),
    [
        (["sentinel2-l1c/B02", "sentinel2-l1c/B03", "sentinel2-l1c/B04"], [2, 1, 0]),
        (["rgb/red", "rgb/green", "rgb/blue"], [0, 1, 2]),
        (["landsat8/B2", "landsat8/B3", "landsat8/B4", "landsat8/B5"], [2, 1, 0]),
        (["sentinel1-grd/VV", "sentinel1-grd/VH"], [0, 1, -1]),
    ],
)
def test_rgb_channels_by_band_names(bands, expected):
    assert render.rgb_channels(bands) == expected


def test_display_rgb_of_sar_shows_the_difference():
    x = np.stack([np.full((4, 4), 2.0), np.full((4, 4), 1.0)]).astype(np.float32)
    x[:, 0, 0] = [4.0, 0.0]
    img = render.display_rgb(x, ["VV", "VH"])
    assert img.shape == (4, 4, 3) and img.dtype == np.float32
    assert img[0, 0, 2] == img[..., 2].max()  # VV − VH largest at (0, 0)


def test_colormaps_match_matplotlib():
    matplotlib = pytest.importorskip("matplotlib")
    t = np.linspace(0, 1, 256)
    for name in render.COLORMAPS:
        ours = render.colormap(name)
        theirs = matplotlib.colormaps[name](t)[:, :3]
        assert np.abs(ours - theirs).max() < 0.03, name
    np.testing.assert_allclose(render.colormap("terrain"), matplotlib.colormaps["terrain"](t)[:, :3])
    with pytest.raises(ValueError, match="unknown colour map 'nope'"):
        render.colormap("nope")
    with pytest.raises(ValueError, match="available: viridis"):
        render.png_bytes(np.zeros((2, 2)), cmap="nope")


def test_png_bytes_round_trip_with_transparent_nan():
    from PIL import Image

    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    a[0, 0] = np.nan
    png = render.png_bytes(a, scale=2)
    img = np.asarray(Image.open(io.BytesIO(png)))
    assert img.shape == (6, 8, 4)
    assert img[0, 0, 3] == 0 and img[5, 7, 3] == 255
    assert render.data_url(png).startswith("data:image/png;base64,iVBOR")
    # fixed range: values beyond it saturate at the ends of the map
    ends = render.to_rgba8(np.array([[-5.0, 5.0]]), cmap="gray", vmin=-1, vmax=1)
    assert ends[0, 0, :3].tolist() == [0, 0, 0] and ends[0, 1, :3].tolist() == [255, 255, 255]


def test_outline_patches_marks_only_visible_patches():
    rgb = np.full((8, 8, 3), 0.5, np.float32)
    visible = np.array([[True, False], [False, False]])
    out = render.outline_patches(rgb, visible, 4)
    assert np.all(out[0, :4] == 1.0) and np.all(out[:4, 0] == 1.0)  # outline of patch (0, 0)
    np.testing.assert_allclose(out[1:3, 1:3], 0.5 * render.VISIBLE_DIM)  # its inside, dimmed
    np.testing.assert_array_equal(out[4:, 4:], rgb[4:, 4:])  # hidden patches untouched
