"""A user's few labels → a class map: points and polygons per class, a probe over patch embeddings.

The workflow of "land cover in 20 clicks":

1. :class:`LabelSet`: labels as GeoJSON features in WGS84 (lon/lat), each with a class; classes in
   the order they were added (class ``i`` is value ``i`` of every class map); undo; save/load as
   GeoJSON (atomic).
2. :func:`label_samples`: the labels placed on a scene's patch-embedding grid (a DataArray or a
   GeoTIFF written by :func:`~smartiesviz.predict.embed.embed_to_file`, such as the map's cache):
   a point labels the patch under it, a polygon every patch whose centre it holds. Labels live in
   geography, not in pixels, so labels drawn over one scene label any other scene of the same
   place, from any sensor (cross-sensor transfer).
3. :func:`fit_labels`: a scikit-learn probe (``"logistic"`` regression on standardized features,
   or ``"knn"``, cosine distance) on the labelled patches; :func:`cross_validate` scores it on the
   user's own labels, holding out whole labels (a polygon's patches never sit on both sides).
4. :meth:`LabelProbe.classify`: class and confidence of every patch of a grid, streamed a block of
   rows at a time (memory bounded by the block and the two output grids);
   :meth:`ClassMap.save_geotiff` writes the class map with class names and a colour table.

The core never imports Jupyter; the map's labelling tool is
:mod:`smartiesviz.widgets.map.labels`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from smartiesviz import outputs
from smartiesviz.options import check_option
from smartiesviz.predict.similarity import grid_of, row_blocks, strips

if TYPE_CHECKING:  # pragma: no cover
    import xarray as xr

#: ``"logistic"``: multinomial logistic regression on standardized features, classes weighted
#: equally whatever their patch counts; ``"knn"``: the k nearest labelled patches by cosine
#: distance, weighted by inverse distance.
ProbeKind = Literal["logistic", "knn"]
#: Class colours, in class order (then repeated): tab10, the map's class colours too.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
           "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")  # fmt: skip
NODATA = 255  # class-map value of patches without a valid embedding
MAX_CELLS_PER_LABEL = 1000  # a large polygon contributes a seeded sample of its patches
READ_VALUES = 4_000_000  # at most this many values read at once when fetching labelled patches
MIN_LABELS_PER_CLASS = 2  # labels (clicks) per class before a held-out accuracy means anything
GEOMETRIES = ("Point", "MultiPoint", "Polygon", "MultiPolygon")


# --------------------------------------------------------------------------------- the labels
@dataclass
class LabelSet:
    """Labels a user drew: GeoJSON features (lon/lat, EPSG:4326), each naming a class.

    Attributes:
        classes: class names in the order added (class ``i`` is value ``i`` of a class map).
        colors: one ``#rrggbb`` colour per class.
        features: GeoJSON ``Feature`` dicts, ``properties["class"]`` a class name and
            ``properties["id"]`` a number unique within the set.
    """

    classes: list[str] = field(default_factory=list)
    colors: list[str] = field(default_factory=list)
    features: list[dict[str, Any]] = field(default_factory=list)

    def add_class(self, name: str, color: str | None = None) -> str:
        """Add a class (no-op when it exists) and return its name."""
        name = str(name).strip()
        if not name:
            raise ValueError("a class needs a non-empty name")
        if name not in self.classes:
            self.classes.append(name)
            self.colors.append(color or PALETTE[(len(self.classes) - 1) % len(PALETTE)])
        return name

    def add(self, geometry: dict[str, Any], label: str) -> dict[str, Any]:
        """Add a GeoJSON geometry (or Feature) in lon/lat as a label of class ``label`` (added to
        :attr:`classes` when new); returns the stored Feature."""
        geometry = (
            geometry.get("geometry", geometry) if geometry.get("type") == "Feature" else geometry
        )
        kind = geometry.get("type")
        if kind not in GEOMETRIES:
            raise ValueError(f"a label must be one of {GEOMETRIES}; got geometry type {kind!r}")
        lon, lat = np.asarray(_coords(geometry), float).reshape(-1, 2).T
        if lon.size == 0 or not (np.all(np.abs(lat) <= 90) and np.all(np.abs(lon) <= 180)):
            raise ValueError(f"label coordinates must be lon/lat degrees (EPSG:4326); got "
                             f"{geometry.get('coordinates')!r:.80}")  # fmt: skip
        label = self.add_class(label)
        ids = [f["properties"]["id"] for f in self.features]
        geom = {"type": kind, "coordinates": geometry["coordinates"]}
        feature = {"type": "Feature", "geometry": geom,
                   "properties": {"class": label, "id": max(ids, default=-1) + 1}}  # fmt: skip
        self.features.append(feature)
        return feature

    def add_point(self, lat: float, lon: float, label: str) -> dict[str, Any]:
        """Label the patch under ``(lat, lon)`` (what a click does)."""
        return self.add({"type": "Point", "coordinates": [float(lon), float(lat)]}, label)

    def add_polygon(self, lonlat: Sequence[tuple[float, float]], label: str) -> dict[str, Any]:
        """Label the patches inside a ring of ``(lon, lat)`` vertices (closed if open)."""
        ring = [[float(x), float(y)] for x, y in lonlat]
        if len(ring) < 3:
            raise ValueError(f"a polygon needs at least 3 vertices; got {len(ring)}")
        if ring[0] != ring[-1]:
            ring.append(ring[0])
        return self.add({"type": "Polygon", "coordinates": [ring]}, label)

    def undo(self) -> dict[str, Any] | None:
        """Remove and return the last label (``None`` when there is none)."""
        return self.features.pop() if self.features else None

    def counts(self) -> dict[str, int]:
        """Labels (features) per class, every class listed."""
        out = dict.fromkeys(self.classes, 0)
        for f in self.features:
            out[f["properties"]["class"]] += 1
        return out

    def to_geojson(self) -> dict[str, Any]:
        """A GeoJSON FeatureCollection (classes and colours in its ``properties``)."""
        features = [json.loads(json.dumps(f)) for f in self.features]  # deep copies
        props = {"classes": list(self.classes), "colors": list(self.colors)}
        return {"type": "FeatureCollection", "features": features, "properties": props}

    @classmethod
    def from_geojson(cls, obj: dict[str, Any], where: str = "GeoJSON") -> LabelSet:
        """The labels of a FeatureCollection written by :meth:`to_geojson` (or any collection of
        points/polygons whose features carry a ``class`` property)."""
        if obj.get("type") != "FeatureCollection":
            raise ValueError(f"{where}: expected a FeatureCollection; got type {obj.get('type')!r}")
        props = obj.get("properties") or {}
        out = cls()
        for name, color in zip(props.get("classes", []), props.get("colors", [])):
            out.add_class(name, color)
        for i, f in enumerate(obj.get("features", [])):
            label = (f.get("properties") or {}).get("class")
            if label is None:
                raise ValueError(f"{where}: feature {i} has no 'class' property")
            out.add(f["geometry"], label)
        return out

    def save(self, path: str | os.PathLike, overwrite: bool = True) -> Path:
        """Write the labels as GeoJSON (atomically: a temporary file renamed into place)."""
        path = outputs.check_output(path, overwrite=overwrite)
        outputs.atomic_write_bytes(path, json.dumps(self.to_geojson(), indent=1).encode())
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> LabelSet:
        """Labels saved by :meth:`save` (or a compatible GeoJSON file)."""
        path = outputs.check_input_file(path, "labels")
        try:
            obj = json.loads(Path(path).read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid GeoJSON ({err})") from None
        return cls.from_geojson(obj, str(path))


def _coords(geometry: dict[str, Any]) -> list[float]:
    """Every coordinate number of a geometry, flattened."""
    flat: list[float] = []

    def walk(c: Any) -> None:
        if isinstance(c, (int, float)):
            flat.append(float(c))
        else:
            for x in c:
                walk(x)

    walk(geometry.get("coordinates", []))
    return flat[: len(flat) - len(flat) % 2]


# --------------------------------------------------------------------------- labels → patches
class PatchFeatures:
    """Embeddings of single patches of a grid, read on demand and kept (what a refit reuses).

    Args:
        embeddings: ``(D, ny, nx)`` DataArray, or a GeoTIFF path (read a window at a time, never
            whole: memory grows with the labelled patches, not with the scene).
    """

    def __init__(self, embeddings: Any) -> None:
        self.source = embeddings
        self.crs, self.transform, self.dim, self.ny, self.nx = grid_of(embeddings)
        self._kept: dict[tuple[int, int], np.ndarray] = {}

    def vectors(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """The ``(n, D)`` float32 embeddings of cells ``(rows[i], cols[i])`` (NaN where masked)."""
        rows, cols = np.asarray(rows, int), np.asarray(cols, int)
        missing = sorted({(r, c) for r, c in zip(rows.tolist(), cols.tolist())} - self._kept.keys())
        if missing:
            self._read(missing)
        if not len(rows):
            return np.zeros((0, self.dim), np.float32)
        return np.stack([self._kept[(r, c)] for r, c in zip(rows.tolist(), cols.tolist())])

    def _read(self, cells: list[tuple[int, int]]) -> None:
        r = np.array([c[0] for c in cells])
        c = np.array([c[1] for c in cells])
        r0, r1, c0, c1 = r.min(), r.max() + 1, c.min(), c.max() + 1
        if self.dim * (r1 - r0) * (c1 - c0) > READ_VALUES:  # scattered: one bounded read per row
            for row in np.unique(r):
                self._read([cell for cell in cells if cell[0] == row])
            return
        if isinstance(self.source, (str, os.PathLike)):
            import rasterio  # heavy optional: windowed reads of an embeddings GeoTIFF
            from rasterio.windows import Window

            with rasterio.open(self.source) as src:
                block = src.read(window=Window(int(c0), int(r0), int(c1 - c0), int(r1 - r0)))
        else:
            block = np.asarray(self.source.values[:, r0:r1, c0:c1])
        block = block.astype(np.float32, copy=False)
        for rr, cc in cells:
            self._kept[(rr, cc)] = block[:, rr - r0, cc - c0].copy()


@dataclass
class Samples:
    """Labelled patches of one grid: ``X`` ``(n, D)`` float32 embeddings, ``y`` ``(n,)`` class
    indices into ``classes``, ``groups`` ``(n,)`` the label (feature id) each came from, and the
    grid cells ``rows``, ``cols``. A patch under several labels keeps the last one."""

    X: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.y.size)

    def counts(self) -> dict[str, int]:
        """Labelled patches per class."""
        n = np.bincount(self.y, minlength=len(self.classes))
        return {c: int(k) for c, k in zip(self.classes, n)}

    @staticmethod
    def concat(parts: Sequence[Samples]) -> Samples:
        """Samples of several grids (e.g. the six BigEarthNet patches) as one set."""
        if not parts:
            raise ValueError("no samples to concatenate")
        classes = parts[0].classes
        if any(p.classes != classes for p in parts):
            raise ValueError("samples to concatenate must come from one LabelSet (same classes)")
        cat = [
            np.concatenate([getattr(p, k) for p in parts])
            for k in ("X", "y", "groups", "rows", "cols")
        ]
        return Samples(*cat, classes=classes)


def label_cells(feature: dict[str, Any], crs: Any, transform: Any, ny: int, nx: int,
                ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """``(rows, cols)`` of the grid cells a label covers: the cell under each point, or every cell
    whose centre lies in a polygon (the cell under the polygon's first vertex when none does).
    At most :data:`MAX_CELLS_PER_LABEL` cells (a seeded sample); empty when outside the grid."""
    from pyproj import Transformer  # lazy: PROJ database

    geom = feature.get("geometry", feature)
    to_grid = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    pts = np.asarray(_coords(geom), float).reshape(-1, 2)
    x, y = to_grid.transform(pts[:, 0], pts[:, 1])
    inv = ~transform
    if geom["type"] in ("Point", "MultiPoint"):
        cols, rows = (np.floor(v).astype(int) for v in inv @ (np.asarray(x), np.asarray(y)))
    else:
        rows, cols = _polygon_cells(geom, to_grid, transform, ny, nx)
        if not rows.size:
            cols, rows = (np.floor(v[:1]).astype(int) for v in inv @ (np.asarray(x), np.asarray(y)))
    inside = (rows >= 0) & (rows < ny) & (cols >= 0) & (cols < nx)
    rows, cols = rows[inside], cols[inside]
    if rows.size > MAX_CELLS_PER_LABEL:
        pick = np.random.default_rng(int(feature.get("properties", {}).get("id", 0)))
        keep = np.sort(pick.choice(rows.size, MAX_CELLS_PER_LABEL, replace=False))
        rows, cols = rows[keep], cols[keep]
    return rows, cols


def _polygon_cells(geom: dict[str, Any], to_grid: Any, transform: Any, ny: int, nx: int,
                   ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Cells whose centre is inside a (Multi)Polygon, rasterized on its bounding window."""
    from affine import Affine
    from rasterio import features

    polys = geom["coordinates"] if geom["type"] == "MultiPolygon" else [geom["coordinates"]]
    shapes = []
    for poly in polys:
        rings = [np.asarray(ring, float)[:, :2] for ring in poly]
        rings = [np.column_stack(to_grid.transform(r[:, 0], r[:, 1])) for r in rings]
        shapes.append({"type": "Polygon", "coordinates": [r.tolist() for r in rings]})
    xy = np.concatenate([np.asarray(s["coordinates"][0]) for s in shapes])
    cols, rows = ~transform @ (xy[:, 0], xy[:, 1])  # the polygon's window, in grid cells
    c0, r0 = max(0, int(np.floor(cols.min()))), max(0, int(np.floor(rows.min())))
    c1, r1 = min(nx, int(np.ceil(cols.max()))), min(ny, int(np.ceil(rows.max())))
    if c1 <= c0 or r1 <= r0:
        return np.zeros(0, int), np.zeros(0, int)
    at = transform @ Affine.translation(c0, r0)
    mask = features.geometry_mask(shapes, (r1 - r0, c1 - c0), at, invert=True)
    rows, cols = np.nonzero(mask)
    return rows + r0, cols + c0


def label_samples(labels: LabelSet, embeddings: Any) -> Samples:
    """The labels on a patch-embedding grid (DataArray, GeoTIFF path or :class:`PatchFeatures`).

    Labels outside the grid and masked (NaN) patches are left out."""
    feats = embeddings if isinstance(embeddings, PatchFeatures) else PatchFeatures(embeddings)
    index = {c: i for i, c in enumerate(labels.classes)}
    cells: dict[tuple[int, int], tuple[int, int]] = {}  # cell → (class, feature id); last wins
    for f in labels.features:
        rows, cols = label_cells(f, feats.crs, feats.transform, feats.ny, feats.nx)
        for r, c in zip(rows.tolist(), cols.tolist()):
            cells.pop((r, c), None)
            cells[(r, c)] = (index[f["properties"]["class"]], int(f["properties"]["id"]))
    rows = np.array([k[0] for k in cells], int)
    cols = np.array([k[1] for k in cells], int)
    X = feats.vectors(rows, cols)
    ok = np.isfinite(X).all(1)
    y = np.array([v[0] for v in cells.values()], np.int64).reshape(-1)
    g = np.array([v[1] for v in cells.values()], np.int64).reshape(-1)
    return Samples(X[ok], y[ok], g[ok], rows[ok], cols[ok], tuple(labels.classes))


# ------------------------------------------------------------------------------- probe and map
def _estimator(kind: ProbeKind, n: int, k: int) -> Any:
    from sklearn.linear_model import LogisticRegression  # lazy: scikit-learn loads SciPy
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import Normalizer, StandardScaler

    if kind == "logistic":
        # balanced: a 500-patch polygon of one class must not drown a few clicks of another
        return make_pipeline(
            StandardScaler(), LogisticRegression(C=0.1, max_iter=300, class_weight="balanced")
        )
    return make_pipeline(Normalizer(), KNeighborsClassifier(min(k, n), weights="distance"))


def _one_thread() -> Any:
    """BLAS/OpenMP on one thread while fitting: the problems are small, and extra threads only
    spin on a shared machine (5× slower fits measured on a loaded 2-core machine)."""
    from threadpoolctl import threadpool_limits  # a scikit-learn dependency

    return threadpool_limits(limits=1)


@dataclass
class LabelProbe:
    """A probe fitted on labelled patches; classes without labels get probability 0.

    Attributes:
        kind: ``"logistic"`` or ``"knn"``.
        classes, colors: every class of the label set (a class map's value ``i`` is ``classes[i]``).
        estimator: the fitted scikit-learn pipeline; ``fitted`` the class indices it knows.
    """

    kind: ProbeKind
    classes: tuple[str, ...]
    colors: tuple[str, ...]
    estimator: Any
    fitted: np.ndarray

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """``(n, D)`` embeddings → ``(n, len(classes))`` float32 probabilities."""
        out = np.zeros((len(X), len(self.classes)), np.float32)
        if len(X):
            out[:, self.fitted] = self.estimator.predict_proba(np.asarray(X, np.float32))
        return out

    def classify(self, embeddings: Any) -> ClassMap:
        """Class and confidence (the class's probability) of every patch of a grid (DataArray or
        GeoTIFF path), streamed a block of rows at a time."""
        crs, transform, dim, ny, nx = grid_of(embeddings)
        n_in = getattr(self.estimator, "n_features_in_", dim)
        if dim != n_in:
            raise ValueError(f"the grid has {dim}-d embeddings; the probe was fitted on {n_in}-d "
                             "ones "
                             "(another model?)")  # fmt: skip
        labels = np.full((ny, nx), NODATA, np.uint8)
        conf = np.full((ny, nx), np.nan, np.float32)
        for r, h, proba, ok in self._blocks(embeddings):
            lab, cf = labels[r : r + h].reshape(-1), conf[r : r + h].reshape(-1)
            lab[ok], cf[ok] = proba.argmax(1), proba.max(1)
            labels[r : r + h], conf[r : r + h] = lab.reshape(h, nx), cf.reshape(h, nx)
        return ClassMap(labels, conf, self.classes, self.colors, crs, transform, self.kind)

    def _blocks(self, embeddings: Any) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
        """``(row0, rows, proba (n_valid, C), valid (rows * nx,))`` per block of grid rows.

        A logistic probe is linear before its softmax: its logits are summed over chunks of
        features, so a GeoTIFF is read in whole file blocks, each once (:func:`strips`); kNN
        needs every feature of a patch at once (:func:`row_blocks`)."""
        if self.kind != "logistic":
            for r, block in row_blocks(embeddings):
                d, h, w = block.shape
                X = block.reshape(d, h * w).T
                ok = np.isfinite(X).all(1)
                yield r, h, self.predict_proba(X[ok]), ok
            return
        scaler, lr = self.estimator[0], self.estimator[-1]
        W = (lr.coef_ / scaler.scale_).T.astype(np.float32)  # (D, K) on raw features
        b = (lr.intercept_ - (scaler.mean_ / scaler.scale_) @ lr.coef_.T).astype(np.float32)
        for r, h, chunks in strips(embeddings):
            z, ok = None, None
            for b0, block in chunks():
                k = block.shape[0]
                X = block.reshape(k, -1)
                part = X.T @ W[b0 : b0 + k]
                finite = np.isfinite(X).all(0)
                z, ok = (part, finite) if z is None else (z + part, ok & finite)
            z = z[ok] + b
            if z.shape[1] == 1:  # two classes: one logit, sigmoid
                z = np.hstack([-z, z]) / 2
            z -= z.max(1, keepdims=True)
            e = np.exp(z)
            out = np.zeros((z.shape[0], len(self.classes)), np.float32)
            out[:, self.fitted] = e / e.sum(1, keepdims=True)
            yield r, h, out, ok

    def accuracy(self, samples: Samples) -> float:
        """Share of ``samples`` (e.g. the same labels on another sensor's grid) predicted right."""
        if not len(samples):
            raise ValueError("no labelled patch on this grid: the labels do not overlap it")
        return float((self.predict_proba(samples.X).argmax(1) == samples.y).mean())


def fit_labels(samples: Samples, kind: ProbeKind = "logistic", k: int = 5,
               colors: Sequence[str] | None = None) -> LabelProbe:  # fmt: skip
    """Fit a probe on labelled patches (at least two classes with labels)."""
    check_option("kind", kind, ProbeKind)
    present = np.unique(samples.y)
    if present.size < 2:
        have = [samples.classes[i] for i in present]
        raise ValueError(
            f"a probe needs labelled patches of at least 2 classes; got {have or 'none'}"
        )
    with _one_thread():
        est = _estimator(kind, len(samples), k).fit(samples.X, samples.y)
    fitted = np.asarray(est.classes_, int)
    cols = (
        tuple(colors)
        if colors
        else tuple(PALETTE[i % len(PALETTE)] for i in range(len(samples.classes)))
    )
    return LabelProbe(kind, samples.classes, cols, est, fitted)


@dataclass(frozen=True)
class CVScore:
    """Accuracy on held-out labels: ``accuracy`` ``None`` (with ``reason``) when too few labels.

    ``chance`` is the share of the most common class among the scored patches: a probe that
    learned nothing scores about that."""

    accuracy: float | None
    folds: int
    labels: int
    patches: int
    chance: float | None
    reason: str = ""

    def __str__(self) -> str:
        if self.accuracy is None:
            return f"held-out accuracy: n/a ({self.reason})"
        return (f"held-out accuracy {self.accuracy:.0%} ({self.folds}-fold over {self.labels} "
                f"labels, {self.patches} patches; always guessing the commonest class: "
                f"{self.chance:.0%})")  # fmt: skip


def cross_validate(samples: Samples, kind: ProbeKind = "logistic", k: int = 5,
                   folds: int = 5, seed: int = 0) -> CVScore:  # fmt: skip
    """Accuracy over held-out labels: whole labels (a polygon with all its patches) are held out,
    stratified by class, ``min(folds, labels of the rarest class)`` folds. ``n/a`` unless at
    least 2 classes have :data:`MIN_LABELS_PER_CLASS` labels each."""
    from sklearn.model_selection import StratifiedGroupKFold  # lazy: scikit-learn

    check_option("kind", kind, ProbeKind)
    per_class = {
        int(c): np.unique(samples.groups[samples.y == c]).size for c in np.unique(samples.y)
    }
    n_labels = int(np.unique(samples.groups).size)
    scored = [c for c, n in per_class.items() if n >= MIN_LABELS_PER_CLASS]
    if len(scored) < 2:
        reason = f"needs {MIN_LABELS_PER_CLASS} labels in each of 2 classes or more"
        return CVScore(None, 0, n_labels, len(samples), None, reason)
    keep = np.isin(samples.y, scored)
    X, y, g = samples.X[keep], samples.y[keep], samples.groups[keep]
    n_splits = int(min(folds, min(per_class[c] for c in scored)))
    split = StratifiedGroupKFold(n_splits, shuffle=True, random_state=seed)
    hits, scored_at = np.zeros(y.size, bool), np.zeros(y.size, bool)
    with _one_thread():
        for train, test in split.split(X, y, g):
            if np.unique(y[train]).size < 2:  # a fold left one class to train on: not scored
                continue
            est = _estimator(kind, train.size, k).fit(X[train], y[train])
            hits[test], scored_at[test] = est.predict(X[test]) == y[test], True
    if not scored_at.any():
        return CVScore(None, 0, n_labels, len(samples), None, "no fold had 2 classes to train on")
    hits, y, g = hits[scored_at], y[scored_at], g[scored_at]
    chance = float(np.bincount(y).max() / y.size)
    return CVScore(float(hits.mean()), n_splits, int(np.unique(g).size), int(y.size), chance)


@dataclass
class ClassMap:
    """Classes and confidences on a patch grid.

    Attributes:
        labels: ``(ny, nx)`` uint8 class indices, :data:`NODATA` (255) where no valid embedding.
        confidence: ``(ny, nx)`` float32 probability of the chosen class (NaN where no data).
        classes, colors: class names and colours (value ``i`` is ``classes[i]``).
        crs, transform: the grid's georeference; ``kind``: the probe that made it.
    """

    labels: np.ndarray
    confidence: np.ndarray
    classes: tuple[str, ...]
    colors: tuple[str, ...]
    crs: Any
    transform: Any
    kind: str = "logistic"

    def counts(self) -> dict[str, int]:
        """Patches per class."""
        n = np.bincount(self.labels[self.labels != NODATA], minlength=len(self.classes))
        return {c: int(k) for c, k in zip(self.classes, n)}

    def to_dataarrays(self) -> tuple[xr.DataArray, xr.DataArray]:
        """``(classes, confidence)`` as georeferenced ``(y, x)`` DataArrays."""
        from smartiesviz.data.tiling import georeferenced

        attrs = {"classes": list(self.classes), "probe": self.kind}
        return (georeferenced(self.labels, self.crs, self.transform, name="class", attrs=attrs),
                georeferenced(self.confidence, self.crs, self.transform, name="confidence",
                              attrs=attrs))  # fmt: skip

    def save_geotiff(self, path: str | os.PathLike, overwrite: bool = False,
                     confidence: bool = False) -> Path:  # fmt: skip
        """Write the class map as a single-band uint8 GeoTIFF (atomically): a colour table with
        the class colours, nodata 255, class names as tags (``CLASS_<i>`` and ``classes``, a JSON
        list). With ``confidence``, the confidence goes beside it as ``<stem>_confidence.tif``."""
        import rasterio  # heavy optional: GeoTIFF writer

        from smartiesviz.predict import rasterfile

        path = outputs.check_output(path, overwrite=overwrite)
        ny, nx = self.labels.shape
        profile = rasterfile.geotiff_profile(ny, nx, 1, "uint8", self.crs, self.transform, NODATA)
        cmap = {i: _rgba(c) for i, c in enumerate(self.colors)}
        tags = {f"CLASS_{i}": c for i, c in enumerate(self.classes)}
        with rasterfile.gdal_env(), outputs.atomic_path(path) as tmp:
            with rasterio.open(tmp, "w", **profile) as dst:
                dst.write(self.labels, 1)
                dst.write_colormap(1, cmap)
                dst.set_band_description(1, "class")
                dst.update_tags(classes=json.dumps(list(self.classes)), probe=self.kind, **tags)
        if confidence:
            out = path.with_name(f"{path.stem}_confidence.tif")
            outputs.check_output(out, overwrite=overwrite)
            prof = rasterfile.geotiff_profile(
                ny, nx, 1, "float32", self.crs, self.transform, float("nan")
            )
            with rasterfile.gdal_env(), outputs.atomic_path(out) as tmp:
                with rasterio.open(tmp, "w", **prof) as dst:
                    dst.write(self.confidence, 1)
                    dst.set_band_description(1, "confidence of the class")
        return path


def _rgba(color: str) -> tuple[int, int, int, int]:
    c = color.lstrip("#")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16), 255


def read_class_names(path: str | os.PathLike) -> list[str]:
    """The class names a GeoTIFF written by :meth:`ClassMap.save_geotiff` carries."""
    import rasterio  # heavy optional: GeoTIFF reader

    with rasterio.open(path) as src:
        tags = src.tags()
    if "classes" not in tags:
        raise ValueError(f"{path} has no 'classes' tag: not a class map written by smartiesviz")
    return list(json.loads(tags["classes"]))
