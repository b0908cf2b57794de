"""Few-click labels → probe → class map: geometry, probes, honest scores, files, cross-sensor."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from affine import Affine
from pyproj import Transformer

from smartiesviz.data.tiling import georeferenced
from smartiesviz.errors import UserError
from smartiesviz.predict import labels as lab

D, NY, NX = 16, 40, 50
UTM33 = "EPSG:32633"
ORIGIN = (400_000.0, 5_340_000.0)


def _grid(values: np.ndarray, crs: str = UTM33, cell: float = 40.0, origin=ORIGIN):
    """A ``(D, ny, nx)`` embedding grid DataArray."""
    transform = Affine(cell, 0, origin[0], 0, -cell, origin[1])
    return georeferenced(values.astype(np.float32), crs, transform, ("feature", range(len(values))))


def _two_halves(seed: int = 0, noise: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """Features whose class is the grid's half (0 left, 1 right): ``(D, NY, NX)`` and truth."""
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(2, D))
    truth = (np.arange(NX)[None, :] >= NX // 2).repeat(NY, 0).astype(int)
    values = means[truth].transpose(2, 0, 1) + noise * rng.normal(size=(D, NY, NX))
    return values, truth


def _lat_lon(grid, row: float, col: float) -> tuple[float, float]:
    x, y = grid.rio.transform() @ (col + 0.5, row + 0.5)
    lon, lat = Transformer.from_crs(grid.rio.crs, "EPSG:4326", always_xy=True).transform(x, y)
    return lat, lon


def _clicks(grid, truth, per_class: int, seed: int = 1, classes=("left", "right")) -> lab.LabelSet:
    rng = np.random.default_rng(seed)
    labels = lab.LabelSet()
    for c, name in enumerate(classes):
        rows, cols = np.nonzero(truth == c)
        for i in rng.choice(rows.size, per_class, replace=False):
            labels.add_point(*_lat_lon(grid, rows[i], cols[i]), name)
    return labels


def test_points_and_polygons_label_the_patches_under_them():
    grid = _grid(_two_halves()[0])
    labels = lab.LabelSet()
    labels.add_point(*_lat_lon(grid, 7, 11), "a")
    # a ring through the centres of rows 2..5 and cols 3..7, pushed out by half a cell: those cells
    corners = [(1.5, 2.5), (1.5, 7.5), (5.5, 7.5), (5.5, 2.5)]
    ring = [_lat_lon(grid, r - 0.5, c - 0.5)[::-1] for r, c in corners]
    labels.add_polygon(ring, "b")
    labels.add_point(*_lat_lon(grid, 500, 500), "a")  # outside the grid: no patch
    s = lab.label_samples(labels, grid)
    cells = {(int(r), int(c)): lab_ for r, c, lab_ in zip(s.rows, s.cols, s.y)}
    assert cells.pop((7, 11)) == 0
    assert set(cells) == {(r, c) for r in range(2, 6) for c in range(3, 8)}
    assert set(cells.values()) == {1}
    assert s.counts() == {"a": 1, "b": 20}
    np.testing.assert_array_equal(s.X[0], grid.values[:, s.rows[0], s.cols[0]])


def test_later_label_wins_and_big_polygons_are_sampled():
    grid = _grid(_two_halves()[0])
    labels = lab.LabelSet()
    labels.add_point(*_lat_lon(grid, 3, 3), "a")
    labels.add_point(*_lat_lon(grid, 3, 3), "b")
    s = lab.label_samples(labels, grid)
    assert len(s) == 1 and s.classes[int(s.y[0])] == "b"
    whole = [_lat_lon(grid, r, c)[::-1] for r, c in [(-1, -1), (-1, NX), (NY, NX), (NY, -1)]]
    feature = lab.LabelSet().add_polygon(whole, "all")
    rows, cols = lab.label_cells(feature, grid.rio.crs, grid.rio.transform(), NY, NX)
    assert rows.size == min(NY * NX, lab.MAX_CELLS_PER_LABEL)
    assert len({(r, c) for r, c in zip(rows, cols)}) == rows.size  # distinct patches


def test_bad_labels_are_refused_with_what_was_given():
    labels = lab.LabelSet()
    with pytest.raises(ValueError, match="LineString"):
        labels.add({"type": "LineString", "coordinates": [[0, 0], [1, 1]]}, "a")
    with pytest.raises(ValueError, match="lon/lat"):
        labels.add({"type": "Point", "coordinates": [400000.0, 5340000.0]}, "a")  # metres
    with pytest.raises(ValueError, match="non-empty"):
        labels.add_point(10, 10, " ")
    assert labels.features == []


@pytest.mark.parametrize("kind", ["logistic", "knn"])
def test_probe_maps_the_scene_from_a_few_labels(kind):
    values, truth = _two_halves()
    values[:, 0, :5] = np.nan  # masked patches: no class
    grid = _grid(values)
    probe = lab.fit_labels(lab.label_samples(_clicks(grid, truth, 4), grid), kind)
    cm = probe.classify(grid)
    assert cm.labels.shape == (NY, NX) and cm.labels.dtype == np.uint8
    assert (cm.labels[0, :5] == lab.NODATA).all() and np.isnan(cm.confidence[0, :5]).all()
    valid = cm.labels != lab.NODATA
    assert (cm.labels[valid] == truth[valid]).mean() > 0.95
    assert np.nanmin(cm.confidence) >= 0.5 - 1e-6 and np.nanmax(cm.confidence) <= 1 + 1e-6
    assert sum(cm.counts().values()) == valid.sum()
    da, conf = cm.to_dataarrays()
    assert da.rio.crs == grid.rio.crs and da.rio.transform() == grid.rio.transform()


def test_a_class_without_labels_is_never_predicted_and_one_class_is_refused():
    values, truth = _two_halves()
    grid = _grid(values)
    labels = _clicks(grid, truth, 3)
    labels.add_class("unlabelled")
    probe = lab.fit_labels(lab.label_samples(labels, grid))
    cm = probe.classify(grid)
    assert cm.counts()["unlabelled"] == 0 and cm.classes[-1] == "unlabelled"
    only_left = lab.LabelSet()
    only_left.add_point(*_lat_lon(grid, 1, 1), "left")
    with pytest.raises(ValueError, match="at least 2 classes"):
        lab.fit_labels(lab.label_samples(only_left, grid))
    with pytest.raises(ValueError, match="kind must be one of"):
        lab.fit_labels(lab.label_samples(labels, grid), "svm")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="8-d embeddings"):
        probe.classify(_grid(values[:8]))


def test_held_out_accuracy_is_honest():
    values, truth = _two_halves(noise=0.3)
    grid = _grid(values)
    good = lab.cross_validate(lab.label_samples(_clicks(grid, truth, 10), grid))
    assert good.accuracy is not None and good.accuracy > 0.9 and good.folds == 5
    assert "held-out accuracy" in str(good)
    # labels drawn at random over features that carry no class: about chance, never great
    rng = np.random.default_rng(3)
    noise = _grid(rng.normal(size=(D, NY, NX)))
    scores = []
    for seed in range(3):
        fake = rng.integers(0, 3, (NY, NX))
        s = lab.label_samples(_clicks(noise, fake, 20, seed, ("a", "b", "c")), noise)
        scores.append(lab.cross_validate(s).accuracy - 1 / 3)
    assert abs(float(np.mean(scores))) < 0.15, scores
    few = lab.cross_validate(lab.label_samples(_clicks(grid, truth, 1), grid))
    assert few.accuracy is None and str(few).startswith("held-out accuracy: n/a")


def test_a_polygon_is_held_out_whole():
    values, truth = _two_halves()
    grid = _grid(values)
    labels = _clicks(grid, truth, 2)
    square = [_lat_lon(grid, r, c)[::-1] for r, c in [(10, 2), (10, 9), (20, 9), (20, 2)]]
    labels.add_polygon(square, "left")
    s = lab.label_samples(labels, grid)
    score = lab.cross_validate(s)
    assert score.labels == 5 and score.patches == len(s) > 50
    assert score.folds == 2  # the right class has 2 labels: 2 folds, not one per patch


def test_labels_round_trip_through_geojson(tmp_path):
    grid = _grid(_two_halves()[0])
    labels = _clicks(grid, _two_halves()[1], 2)
    labels.add_polygon([(13.0, 48.0), (13.1, 48.0), (13.1, 48.1)], "field")
    labels.add_class("empty")
    path = labels.save(tmp_path / "labels.geojson")
    back = lab.LabelSet.load(path)
    assert back == labels and back.counts()["empty"] == 0
    assert json.loads(path.read_text())["type"] == "FeatureCollection"
    assert [p.name for p in tmp_path.iterdir()] == ["labels.geojson"]  # no partial file left
    with pytest.raises(UserError, match="already exists"):
        labels.save(path, overwrite=False)
    (tmp_path / "bad.geojson").write_text('{"type": "Feature"}')
    with pytest.raises(ValueError, match="bad.geojson: expected a FeatureCollection"):
        lab.LabelSet.load(tmp_path / "bad.geojson")


def test_class_map_exports_as_a_georeferenced_geotiff_with_class_names(tmp_path):
    values, truth = _two_halves()
    grid = _grid(values)
    labels = _clicks(grid, truth, 3, classes=("water", "forest"))
    cm = lab.fit_labels(lab.label_samples(labels, grid), colors=labels.colors).classify(grid)
    out = cm.save_geotiff(tmp_path / "classes.tif", confidence=True)
    with rasterio.open(out) as src:
        assert src.crs == grid.rio.crs and src.transform == grid.rio.transform()
        assert src.count == 1 and src.dtypes[0] == "uint8" and src.nodata == lab.NODATA
        np.testing.assert_array_equal(src.read(1), cm.labels)
        assert src.colormap(1)[1][:3] == tuple(
            int(labels.colors[1][i : i + 2], 16) for i in (1, 3, 5)
        )
        assert src.tags()["CLASS_0"] == "water" and src.descriptions == ("class",)
    assert lab.read_class_names(out) == ["water", "forest"]
    with rasterio.open(tmp_path / "classes_confidence.tif") as src:
        np.testing.assert_allclose(src.read(1), cm.confidence)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["classes.tif", "classes_confidence.tif"]
    with pytest.raises(UserError, match="already exists"):
        cm.save_geotiff(out)


def test_labels_drawn_on_one_grid_classify_another_sensors_grid(tmp_path):
    """Same place, another sensor: another CRS, cell size and origin, other features per class."""
    values, truth = _two_halves()
    s2 = _grid(values)
    rng = np.random.default_rng(5)
    # the other sensor's grid: 60 m cells in UTM zone 32 over the same ground, its own features
    to33 = Transformer.from_crs("EPSG:32632", UTM33, always_xy=True)
    x0, y0 = to33.transform(*ORIGIN, direction="INVERSE")
    ny, nx, t1 = 26, 33, Affine(60.0, 0, x0, 0, -60.0, y0)
    cols, rows = np.meshgrid(np.arange(nx) + 0.5, np.arange(ny) + 0.5)
    x33, _ = to33.transform(*(t1 @ (cols, rows)))
    s1_truth = (x33 >= ORIGIN[0] + 40.0 * (NX // 2)).astype(int)  # the right half, seen from UTM 32
    assert 0.3 < s1_truth.mean() < 0.7
    means = rng.normal(size=(2, 8))
    s1 = _grid(means[s1_truth].transpose(2, 0, 1) + 0.3 * rng.normal(size=(8, ny, nx)),
               "EPSG:32632", 60.0, (x0, y0))  # fmt: skip
    labels = _clicks(s2, truth, 6)
    on_s1 = lab.label_samples(labels, s1)
    assert len(on_s1) == 12  # every click lands on the other grid too
    assert (s1_truth[on_s1.rows, on_s1.cols] == on_s1.y).mean() > 0.8  # the same ground
    probe = lab.fit_labels(on_s1, "knn")  # a probe on the other sensor's own features
    cm = probe.classify(s1)
    assert (cm.labels == s1_truth).mean() > 0.9
    # a GeoTIFF grid streams the same result (bounded memory: read a block of rows at a time)
    path = tmp_path / "s1.tif"
    s1.rio.to_raster(path)
    np.testing.assert_array_equal(probe.classify(path).labels, cm.labels)
    assert len(lab.label_samples(labels, path)) == 12


def test_bigearthnet_pairs_share_their_labels_cell_for_cell():
    """The bundled S1/S2 pairs are co-registered: a label lands on the same patch of both."""
    from smartiesviz import data

    pair = data.bigearthnet_pairs()[0]
    grids = [_grid(np.zeros((2, 30, 30)), str(c.rio.crs), 40.0,
                   (c.rio.transform().c, c.rio.transform().f))
             for c in (pair.s2, pair.s1)]  # fmt: skip
    labels = lab.LabelSet()
    for r, c in [(2, 3), (15, 20), (29, 0)]:
        labels.add_point(*_lat_lon(grids[0], r, c), "x")
    s2, s1 = (lab.label_samples(labels, g) for g in grids)
    assert [(int(r), int(c)) for r, c in zip(s1.rows, s1.cols)] == [(2, 3), (15, 20), (29, 0)]
    np.testing.assert_array_equal(s2.rows, s1.rows)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_the_streamed_logistic_map_equals_the_probes_own_probabilities(n_classes, tmp_path):
    """classify() sums the logistic logits over feature chunks: same as predict_proba."""
    rng = np.random.default_rng(n_classes)
    grid = _grid(rng.normal(size=(D, NY, NX)))
    grid.values[:, 3, 4] = np.nan
    truth = rng.integers(0, n_classes, (NY, NX))
    names = ("a", "b", "c")[:n_classes]
    probe = lab.fit_labels(lab.label_samples(_clicks(grid, truth, 8, 2, names), grid))
    path = tmp_path / "grid.tif"
    grid.rio.to_raster(path)
    for source in (grid, path):
        cm = probe.classify(source)
        X = grid.values.reshape(D, -1).T
        ok = np.isfinite(X).all(1)
        p = probe.predict_proba(X[ok])
        np.testing.assert_array_equal(cm.labels.reshape(-1)[ok], p.argmax(1))
        np.testing.assert_allclose(cm.confidence.reshape(-1)[ok], p.max(1), rtol=1e-4)
        assert cm.labels[3, 4] == lab.NODATA
