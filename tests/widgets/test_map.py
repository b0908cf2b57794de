import ipyleaflet
import numpy as np
import pytest

from smartiesviz.widgets import MapExplorer
from smartiesviz.widgets.map import DEFAULT_LAYERS

WINDOW = (900, 900, 128, 192)  # rows, cols, height, width of the S2 scene: 2 × 3 tiles of 64 px


@pytest.fixture(scope="module")
def explorer(tiny_model):
    return MapExplorer(model=tiny_model, window=WINDOW, threads=1)


def test_holds_the_expected_layers_offline(explorer):
    assert explorer.error.message == ""
    for name in DEFAULT_LAYERS:
        assert name in explorer.layers
        overlay = explorer.layers[name].overlay
        assert isinstance(overlay, ipyleaflet.ImageOverlay)
        assert overlay.url.startswith("data:image/png;base64,")
        assert overlay in explorer.map.layers
    bigearthnet = [n for n in explorer.layers if n.startswith("BigEarthNet")]
    assert len(bigearthnet) == 6
    assert not any(
        isinstance(layer, ipyleaflet.TileLayer) for layer in explorer.map.layers
    )  # no basemap


def test_layer_bounds_match_the_scene_window(explorer):
    r, c, h, w = WINDOW
    window = explorer.scene.cube
    assert window.sizes["y"] == h and window.sizes["x"] == w
    west, south, east, north = window.rio.transform_bounds("EPSG:4326")
    pixel_deg = 10 / 111_000 * 3  # a few 10 m pixels
    for name in ("true colour", "reconstruction", "reconstruction error", "k-means classes"):
        (s, wst), (n, e) = explorer.layers[name].bounds
        assert abs(s - south) < pixel_deg * 4 and abs(n - north) < pixel_deg * 4
        assert abs(wst - west) < pixel_deg * 4 and abs(e - east) < pixel_deg * 4
        # longitude around -75 (EPSG:32618, UTM 18N)
        assert -78 < wst < e < -72


def test_bigearthnet_patches_are_at_their_locations(explorer):
    from smartiesviz.widgets import samples as C

    for pair, name in zip(
        C.bigearthnet_pairs(), [n for n in explorer.layers if n.startswith("BigEarthNet")]
    ):
        west, south, east, north = pair.s2.rio.transform_bounds("EPSG:4326")
        (s, w), (n, e) = explorer.layers[name].bounds
        assert abs(s - south) < 1e-3 and abs(e - east) < 1e-3


def test_legend_and_opacity_follow_the_selected_layer(explorer):
    explorer.layer.value = "k-means classes"
    assert "class 0" in explorer.legend.value
    explorer.opacity.value = 0.4
    assert explorer.layers["k-means classes"].overlay.opacity == pytest.approx(0.4)
    explorer.layer.value = "reconstruction error"
    assert "MSE" in explorer.legend.value
    assert explorer.opacity.value == pytest.approx(1.0)


def test_click_selects_a_tile_and_shows_it(explorer, png_of):
    from pyproj import Transformer

    cube = explorer.scene.cube
    tr = Transformer.from_crs(cube.rio.crs, "EPSG:4326", always_xy=True)
    x, y = cube.x.values[64 + 70], cube.y.values[10]  # row 0, col 2 of the 64-px tiles
    lon, lat = tr.transform(float(x), float(y))
    click = {"event": "interaction", "type": "click", "coordinates": [lat, lon]}
    explorer.map._handle_leaflet_event(None, click, None)  # what the browser sends
    assert explorer.error.message == ""
    assert explorer.selected_tile == 2
    assert explorer.tile_view.value[:4] == b"\x89PNG"
    explorer.map._handle_leaflet_event(None, dict(click, coordinates=[0.0, 0.0]), None)
    assert "outside the mapped scene window" in explorer.error.message
    png_of(explorer.figure())
    png_of(explorer.tile_figure(0))


def test_bad_window_is_reported(tiny_model):
    m = MapExplorer(
        threads=1,
        model=tiny_model,
        window=(0, 0, 10, 10),
        layers=("true colour",),
        bigearthnet=False,
    )
    assert "at least 64 px" in m.error.message


def test_tiles_stitch_back_to_the_window(explorer):
    assert explorer.tiles.shape[0] == explorer.rows * explorer.cols == 6
    np.testing.assert_array_equal(explorer._stitch(explorer.tiles), explorer.scene.values)
    assert explorer.tile_recon.shape == explorer.tiles.shape
