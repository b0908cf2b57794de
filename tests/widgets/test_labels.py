"""Few-click labelling on the map: draw events, class and confidence layers, undo, files."""

from __future__ import annotations

import ipyleaflet
import numpy as np
import pytest
import rasterio

from smartiesviz.predict import labels as core
from smartiesviz.widgets import MapExplorer

WINDOW = (900, 900, 128, 192)  # 32 x 48 patches of the bundled S2 scene


@pytest.fixture(scope="module")
def explorer(tiny_model, tmp_path_factory):
    return MapExplorer(model=tiny_model, window=WINDOW, threads=1, layers=("true colour",),
                       cache=tmp_path_factory.mktemp("map-cache"))  # fmt: skip


def _at(explorer, fy: float, fx: float) -> tuple[float, float]:
    (s, w), (n, e) = explorer.bounds
    return s + (n - s) * fy, w + (e - w) * fx


def _layer(explorer, name):
    found = [x for x in explorer.map.layers if getattr(x, "name", "") == name]
    return found[0] if found else None


def test_drawing_two_classes_draws_a_class_map_that_follows_each_label(explorer, tmp_path):
    tool = explorer.label(["water", "land"])
    assert explorer.label() is tool and tool in explorer.children
    assert isinstance(tool.draw, ipyleaflet.DrawControl) and tool.draw in explorer.map.controls
    lat, lon = _at(explorer, 0.2, 0.2)
    # what the browser sends when the marker tool drops a point
    tool.draw._handle_leaflet_event(None, {"event": "draw:created", "geo_json": {
        "type": "Feature", "properties": {},
        "geometry": {"type": "Point", "coordinates": [lon, lat]}}},
        None)  # fmt: skip
    assert explorer.error.message == "" and tool.labels.counts() == {"water": 1, "land": 0}
    assert _layer(explorer, "label classes") is None and "n/a" in tool.status.value
    tool.label_class.value = "land"  # the class picker
    tool.add_point(*_at(explorer, 0.8, 0.8))
    first = _layer(explorer, "label classes")
    assert first is not None and first.url.startswith("data:image/png")
    assert tool.class_map.counts()["water"] > 0 and tool.class_map.counts()["land"] > 0
    assert "water: 1" in tool.status.value and "land: 1" in tool.status.value
    assert all(c in explorer.map.legend_widget.value for c in tool.labels.colors)  # leafmap's
    ring = [_at(explorer, fy, fx)[::-1] for fy, fx in [(0.5, 0.1), (0.5, 0.4), (0.7, 0.4)]]
    tool.add({"type": "Polygon", "coordinates": [[*ring, ring[0]]]}, "water")
    second = _layer(explorer, "label classes")
    assert second is not first and second.url != first.url  # the map changed with the label
    assert _layer(explorer, "label classes") in explorer.map.layers
    assert len([x for x in explorer.map.layers if getattr(x, "name", "") == "labels"]) == 1
    explorer.show("true colour")  # switching products keeps the labelling layers on top
    names = [getattr(x, "name", "") for x in explorer.map.layers]
    assert names[-2:] == ["labels", "label classes"] and "true colour" in names
    assert tool.timings["total"] > 0 and set(tool.timings) >= {"fit", "classify", "cv"}


def test_undo_confidence_probe_choice_and_files(explorer, tmp_path):
    tool = explorer.label()
    n = len(tool.labels.features)
    assert n >= 3, "runs after the drawing test"
    tool.show_confidence.value = True
    conf = _layer(explorer, "label confidence")
    assert conf is not None and conf.opacity == pytest.approx(0.8)
    tool.probe.value = "kNN"
    assert tool.probe_fit.kind == "knn" and explorer.error.message == ""
    gone = tool.undo()
    assert gone["geometry"]["type"] == "Polygon" and len(tool.labels.features) == n - 1
    tool.path.value = str(tmp_path / "mine.geojson")
    tool.save_button.click()
    tool.export_button.click()
    assert explorer.error.message == ""
    assert core.read_class_names(tmp_path / "mine_classes.tif") == ["water", "land"]
    with rasterio.open(tmp_path / "mine_classes.tif") as src:
        np.testing.assert_array_equal(src.read(1), tool.class_map.labels)
    before = tool.labels.to_geojson()
    tool.undo()
    tool.load_button.click()  # back to what was saved
    assert tool.labels.to_geojson() == before and explorer.error.message == ""
    tool.path.value = str(tmp_path / "missing.geojson")
    tool.load_button.click()
    assert "missing.geojson" in explorer.error.message
    tool.new_class.value = "built-up"
    tool.add_button.click()
    assert tool.label_class.value == "built-up" and "built-up" in tool.labels.classes
    tool.show_confidence.value = False
    assert _layer(explorer, "label confidence") is None
    explorer.error.clear()


def test_a_label_outside_the_scene_or_of_one_class_gives_no_map(tiny_model, tmp_path):
    ex = MapExplorer(model=tiny_model, window=WINDOW, threads=1, layers=("true colour",),
                     cache=tmp_path)  # fmt: skip
    tool = ex.label({"a": "#000080", "b": "#808000"}, probe="knn")
    tool.add_point(*_at(ex, 0.2, 0.2), "b")
    tool.add_point(*_at(ex, 0.7, 0.7), "a")
    assert tool.class_map.colors == ("#000080", "#808000")  # the map, legend and file share them
    assert "#808000" in ex.map.legend_widget.value
    tool.clear()
    tool.add_point(0.0, 0.0, "a")  # far outside: counted as a label, no patch
    tool.add_point(*_at(ex, 0.5, 0.5), "a")
    assert tool.class_map is None and _layer(ex, "label classes") is None
    assert "(0 patches)" in tool.status.value and "(1 patches)" in tool.status.value
    with pytest.raises(ValueError, match="probe must be one of"):
        ex.labelling = None
        ex.label(probe="forest")


def test_clicks_that_draw_labels_do_not_inspect_tiles(explorer):
    tool = explorer.label()
    assert explorer.click_mode.value == "draw labels"
    lat, lon = _at(explorer, 0.5, 0.5)
    explorer.selected_tile = None
    click = {"event": "interaction", "type": "click", "coordinates": [lat, lon]}
    explorer.map._handle_leaflet_event(None, click, None)
    assert explorer.selected_tile is None and explorer.error.message == ""
    explorer.click_mode.value = "inspect tile"
    explorer.map._handle_leaflet_event(None, click, None)
    assert explorer.selected_tile is not None
    explorer.click_mode.value = "draw labels"
    tool.clear()
    assert tool.class_map is None and _layer(explorer, "label classes") is None
    assert getattr(explorer.map, "legend_control", None) not in explorer.map.controls
