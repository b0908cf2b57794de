"""MapExplorer: lazy layers from any scene, offline display, framing, clicks and similarity."""

import ipyleaflet
import numpy as np
import pytest
import rasterio

from smartiesviz.widgets import MapExplorer
from smartiesviz.widgets.map import DEFAULT_LAYERS, display

WINDOW = (900, 900, 128, 192)  # rows, cols, height, width of the S2 scene: 2 × 3 tiles of 64 px


@pytest.fixture(scope="module")
def explorer(tiny_model, tmp_path_factory):
    return MapExplorer(model=tiny_model, window=WINDOW, threads=1, bigearthnet=True,
                       cache=tmp_path_factory.mktemp("map-cache"))  # fmt: skip


def _lonlat(cube, row, col):
    from pyproj import Transformer

    tr = Transformer.from_crs(cube.rio.crs, "EPSG:4326", always_xy=True)
    return tr.transform(float(cube.x.values[col]), float(cube.y.values[row]))


def test_opens_offline_showing_only_the_first_layer(explorer):
    assert explorer.error.message == ""
    assert explorer.layer_names == list(DEFAULT_LAYERS)
    assert "true colour" in explorer.layers and explorer.current == "true colour"
    assert "PCA colour" not in explorer.layers  # not yet: lazy
    overlay = explorer.layers["true colour"].leaflet
    assert isinstance(overlay, ipyleaflet.ImageOverlay)  # no Jupyter server here: PNG overlay
    assert overlay.url.startswith("data:image/png;base64,")
    drawn = [x for x in explorer.map.layers if isinstance(x, (ipyleaflet.ImageOverlay, ipyleaflet.TileLayer))]
    assert drawn == [overlay]  # exactly the chosen layer, no basemap
    bigearthnet = [n for n in explorer.layers if n.startswith("BigEarthNet")]
    assert len(bigearthnet) == 6


def test_map_is_framed_on_the_data_before_rendering(explorer):
    (s, w), (n, e) = explorer.bounds
    lat, lon = explorer.map.center
    assert s < lat < n and w < lon < e
    # the scene fills a good part of a 760 × 500 px view: its width spans 20-100 % of it
    span_px = (e - w) / 360 * 256 * 2**explorer.map.zoom
    assert 0.2 * 760 < span_px <= 760


def test_layer_bounds_match_the_scene_window(explorer):
    r, c, h, w = WINDOW
    window = explorer.cube
    assert window.sizes["y"] == h and window.sizes["x"] == w
    west, south, east, north = window.rio.transform_bounds("EPSG:4326")
    tol = 10 / 111_000 * 12  # a few 10 m pixels
    for name in ("true colour", "reconstruction", "reconstruction error", "k-means classes"):
        (s, wst), (n, e) = explorer.show(name).bounds
        assert abs(s - south) < tol and abs(n - north) < tol
        assert abs(wst - west) < tol and abs(e - east) < tol
        assert -78 < wst < e < -72  # longitude around -75 (EPSG:32618, UTM 18N)


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
    assert explorer.current == "k-means classes" and "class 0" in explorer.legend.value
    explorer.opacity.value = 0.4
    assert explorer.layers["k-means classes"].leaflet.opacity == pytest.approx(0.4)
    explorer.layer.value = "reconstruction error"
    assert "MSE" in explorer.legend.value
    shown = explorer.layers["reconstruction error"].leaflet
    assert shown.opacity == pytest.approx(0.4) and shown in explorer.map.layers
    assert explorer.layers["k-means classes"].leaflet not in explorer.map.layers
    explorer.opacity.value = 1.0


def test_click_selects_a_tile_and_shows_it(explorer, png_of):
    lon, lat = _lonlat(explorer.cube, 10, 64 + 70)  # row 0, col 2 of the 64-px tiles
    click = {"event": "interaction", "type": "click", "coordinates": [lat, lon]}
    explorer.map._handle_leaflet_event(None, click, None)  # what the browser sends
    assert explorer.error.message == ""
    assert explorer.selected_tile == 2
    assert explorer.tile_view.value[:4] == b"\x89PNG"
    explorer.map._handle_leaflet_event(None, dict(click, coordinates=[0.0, 0.0]), None)
    assert "outside the mapped scene" in explorer.error.message
    png_of(explorer.figure())
    png_of(explorer.tile_figure(0))


def test_similarity_at_a_patch_is_one_there_and_in_range(explorer):
    lon, lat = _lonlat(explorer.cube, 70, 100)
    sim = explorer.similarity_at(lat, lon)
    assert explorer.error.message == "" and explorer.current == "similarity"
    r, c = sim.attrs["query_row"], sim.attrs["query_col"]
    assert (r, c) == (70 // 8, 100 // 8)
    assert sim.values[r, c] == pytest.approx(1.0)
    assert np.nanmin(sim.values) >= -1 and np.nanmax(sim.values) <= 1
    assert np.nanmin(sim.values) < 0.9  # not every patch alike
    before = explorer.layers["similarity"].leaflet.url
    explorer.threshold.value = 0.5
    assert explorer.layers["similarity"].leaflet.url != before and "below 0.50" in explorer.legend.value
    explorer.click_mode.value = "find similar"
    lon2, lat2 = _lonlat(explorer.cube, 10, 10)
    explorer.map._handle_leaflet_event(None, {"event": "interaction", "type": "click",
                                              "coordinates": [lat2, lon2]}, None)  # fmt: skip
    explorer.click_mode.value = "inspect tile"
    assert explorer.store.layers["similarity"].path.exists()


def test_add_layer_shows_a_users_raster(explorer):
    emb = explorer.store.embeddings()
    with rasterio.open(emb) as src:
        band0 = src.read(1)
    da = explorer.cube.isel(band=0, y=slice(0, band0.shape[0]), x=slice(0, band0.shape[1]))
    da = da.copy(data=band0).rio.write_transform(explorer.cube.rio.transform() @ __import__("affine").Affine.scale(8))
    lay = explorer.add_layer(da, "feature 0", cmap="plasma")
    assert explorer.current == "feature 0" and "feature 0" in explorer.layer_names
    assert lay.leaflet in explorer.map.layers


def test_bad_window_is_reported(tiny_model, tmp_path):
    m = MapExplorer(threads=1, model=tiny_model, window=(0, 0, 10, 10), layers=("true colour",),
                    cache=tmp_path)  # fmt: skip
    assert "at least 64 px" in m.error.message


def test_view_for_frames_bounds():
    (lat, lon), zoom = display.view_for(((40.0, -75.0), (40.2, -74.8)))
    assert lat == pytest.approx(40.1, abs=0.01) and lon == pytest.approx(-74.9)
    assert 9 <= zoom <= 12


def write_mosaic(path, n: int = 2):
    """An n × n mosaic of the bundled scene's 10 m bands (B02 B03 B04 B08) as a uint16 GeoTIFF,
    tile (i, j) shifted by its size: ~3.9k × 3.9k px for n = 2, written one tile at a time."""
    from rasterio.windows import Window

    from smartiesviz import data

    cube = data.sentinel2_sample(bands=["B02", "B03", "B04", "B08"])
    _, h, w = cube.shape
    t = cube.rio.transform()
    profile = dict(driver="GTiff", height=n * h, width=n * w, count=4, dtype="uint16",
                   crs=cube.rio.crs, transform=t, tiled=True, blockxsize=256, blockysize=256)  # fmt: skip
    values = np.clip(np.nan_to_num(cube.values), 0, 65535).astype("uint16")
    with rasterio.open(path, "w", **profile) as dst:
        for i in range(n):
            for j in range(n):
                dst.write(values, window=Window(j * w, i * h, w, h))
        dst.descriptions = tuple(str(b) for b in cube.band.values)
    return path, (n * h, n * w)


def test_2x2_mosaic_geotiff_opens_and_similarity_at_its_centre(tmp_path):
    """Acceptance (issue 11): a ~3.9k × 3.9k px GeoTIFF, streamed; a small fast model."""
    import smartiesviz

    model = smartiesviz.smarties_vit_tiny_patch8(
        img_size=128, patch_size=32, embed_dim=32, depth=1, num_heads=2,
        decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=2,
    ).eval()  # fmt: skip
    path, (h, w) = write_mosaic(tmp_path / "mosaic.tif")
    assert min(h, w) > 3800
    m = MapExplorer(str(path), sensor="sentinel2-l1c", model=model, cache=tmp_path / "cache")
    assert m.error.message == "" and m.cube.shape == (4, h, w)
    assert not isinstance(m.cube.variable._data, np.ndarray)  # opened lazily, not read whole
    (s, wst), (n, e) = m.bounds
    sim = m.similarity_at((s + n) / 2, (wst + e) / 2)
    assert m.error.message == ""
    assert sim.shape == (-(-h // 32), -(-w // 32))
    assert np.nanmin(sim.values) >= -1 and np.nanmax(sim.values) <= 1
    r, c = sim.attrs["query_row"], sim.attrs["query_col"]
    assert abs(r - sim.shape[0] / 2) <= 1 and abs(c - sim.shape[1] / 2) <= 1
    assert sim.values[r, c] == pytest.approx(1.0)
    # the mosaic repeats the scene: the same place in another copy is (nearly) as similar
    twin = sim.values[(r + h // 2 // 32) % sim.shape[0], c]
    assert twin > 0.5


def test_the_map_is_a_leafmap_map_offline_with_our_layers_in_its_layer_manager(explorer):
    import leafmap

    assert isinstance(explorer.map, leafmap.Map) and explorer.map.baseclass == "ipyleaflet"
    assert not [x for x in explorer.map.layers if getattr(x, "base", False)]  # no network basemap
    explorer.show("true colour")
    listed = [getattr(c, "description", "") for row in explorer.map._layer_manager_widget.children
              for c in getattr(row, "children", [row])]  # fmt: skip
    assert "true colour" in listed
    assert explorer.layers["true colour"].leaflet in explorer.map.layers


def test_split_compares_two_layers_side_by_side_and_show_ends_it(explorer):
    import ipyleaflet

    control = explorer.split("true colour", "reconstruction")
    assert explorer.error.message == ""
    assert isinstance(control, ipyleaflet.SplitMapControl) and control in explorer.map.controls
    left, right = control.left_layer, control.right_layer
    assert (left.name, right.name) == ("true colour (left)", "reconstruction (right)")
    assert left in explorer.map.layers and right in explorer.map.layers
    assert left.pane != right.pane and {left.pane, right.pane} <= set(explorer.map.panes)
    assert "left: <b>true colour</b>" in explorer.legend.value
    explorer.show("reconstruction error")
    assert control not in explorer.map.controls and left not in explorer.map.layers
    assert explorer.layers["reconstruction error"].leaflet in explorer.map.layers


def test_importing_the_widgets_does_not_import_leafmap():
    import subprocess
    import sys

    code = "import sys, smartiesviz.widgets; print('leafmap' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
