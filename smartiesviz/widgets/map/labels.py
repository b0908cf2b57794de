"""Few-click labelling on the map explorer: draw labels per class, get a class map at once.

:class:`LabelTool` adds ipyleaflet's draw control (points, polygons, rectangles) to a
:class:`~smartiesviz.widgets.map.explorer.MapExplorer`'s leafmap map, with a class picker, undo,
the probe's choice (logistic regression or kNN), per-class counts and the accuracy on held-out
labels. After each label it refits the probe on the scene's cached patch embeddings and redraws
a class-map layer and a confidence layer over the current product. Labels save and load as
GeoJSON; the class map exports as a GeoTIFF. The work is done by the core,
:mod:`smartiesviz.predict.labels`.
"""

from __future__ import annotations

import html
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ipywidgets as W
import numpy as np

from smartiesviz.data.tiling import georeferenced
from smartiesviz.predict import labels as core
from smartiesviz.predict.map_layers import LayerFile
from smartiesviz.render import data_url
from smartiesviz.widgets.map import display

IN_MEMORY_BYTES = 256 * 2**20  # embedding grids up to this size are held in memory for refits
CLASSES_LAYER, CONFIDENCE_LAYER, LABELS_LAYER = "label classes", "label confidence", "labels"
PROBES = {"logistic": "logistic", "kNN": "knn"}


class LabelTool(W.VBox):
    """Label a scene in a few clicks (see the module docstring); made by ``MapExplorer.label()``.

    Args:
        explorer: the map explorer to label on.
        classes: class names offered at first (more with :meth:`add_class` or the "add" button),
            or a dict of class name → ``#rrggbb`` colour (default colours: tab10).
        probe: ``"logistic"`` or ``"knn"``.

    Controls: ``label_class`` (ToggleButtons), ``new_class`` (Text) and ``add_button``,
    ``undo_button``, ``probe`` (ToggleButtons), ``show_confidence`` (Checkbox), ``path`` (Text)
    with ``save_button``, ``load_button`` and ``export_button``; ``status`` (HTML: counts and
    held-out accuracy).
    State: ``labels`` (:class:`~smartiesviz.predict.labels.LabelSet`), ``probe_fit`` (the last
    :class:`~smartiesviz.predict.labels.LabelProbe`), ``class_map``, ``score``
    (:class:`~smartiesviz.predict.labels.CVScore`), ``timings`` (seconds of the last refit).
    """

    def __init__(self, explorer: Any, classes: Sequence[str] | dict[str, str] = (),
                 probe: str = "logistic") -> None:  # fmt: skip
        import ipyleaflet  # widgets only
        import sklearn.linear_model  # noqa: F401 - loaded now (seconds): the first refit is quick
        import sklearn.neighbors  # noqa: F401

        super().__init__()
        self.explorer, self.labels = explorer, core.LabelSet()
        kind = PROBES.get(probe, probe)
        core.check_option("probe", kind, core.ProbeKind)
        self._add_controls(kind)
        self.probe_fit: core.LabelProbe | None = None
        self.class_map: core.ClassMap | None = None
        self.score: core.CVScore | None = None
        self.timings: dict[str, float] = {}
        self._features: core.PatchFeatures | None = None
        self._grid: Any = None
        self._shown: dict[str, Any] = {}
        colors = classes if isinstance(classes, dict) else {}
        for name in classes:
            self.add_class(name, colors.get(name))
        if self.labels.classes:
            self.label_class.value = self.labels.classes[0]
        self.draw = ipyleaflet.DrawControl(
            marker={"repeatMode": True}, rectangle={"shapeOptions": {"fillOpacity": 0.1}},
            polygon={"shapeOptions": {"fillOpacity": 0.1}}, circlemarker={}, polyline={},
            circle={}, edit=False, remove=False, position="topleft",
        )  # fmt: skip
        explorer.map.add(self.draw)
        self._connect(explorer._guarded)

    def _add_controls(self, kind: str) -> None:
        """The controls (see the class docstring), laid out in rows, with ``kind`` the chosen
        probe."""
        self.label_class = W.ToggleButtons(options=[], description="class")
        self.new_class = W.Text(placeholder="new class", layout=W.Layout(width="140px"))
        self.add_button = W.Button(description="add class", layout=W.Layout(width="90px"))
        self.undo_button = W.Button(description="undo", icon="undo", layout=W.Layout(width="80px"))
        shown = {v: k for k, v in PROBES.items()}[kind]
        self.probe = W.ToggleButtons(options=list(PROBES), value=shown,
                                     description="probe")  # fmt: skip
        self.show_confidence = W.Checkbox(value=False, description="confidence layer", indent=False)
        self.path = W.Text(
            value="labels.geojson", description="file", layout=W.Layout(width="260px")
        )
        self.save_button, self.load_button = (
            W.Button(description="save labels"),
            W.Button(description="load labels"),
        )
        self.export_button = W.Button(description="export class map")
        self.status = W.HTML(
            "<small>draw a point or a polygon to label it with the chosen class</small>"
        )
        self.children = [
            W.HBox([self.label_class, self.new_class, self.add_button, self.undo_button]),
            W.HBox([self.probe, self.show_confidence]),
            W.HBox([self.path, self.save_button, self.load_button, self.export_button]),
            self.status,
        ]

    def _connect(self, guard: Any) -> None:
        """Run the tool's actions on drawing, clicks and changes, through the explorer's ``guard``
        (one error panel for every widget)."""
        self.draw.on_draw(guard(self._on_draw))
        self.add_button.on_click(guard(lambda _b: self._add_typed_class()))
        self.undo_button.on_click(guard(lambda _b: self.undo()))
        self.save_button.on_click(guard(lambda _b: self.save(self.path.value)))
        self.load_button.on_click(guard(lambda _b: self.load(self.path.value)))
        self.export_button.on_click(guard(lambda _b: self.export(self._tif_path())))
        self.probe.observe(guard(lambda _c: self.refit()), names="value")
        self.show_confidence.observe(guard(lambda _c: self._toggle_confidence()), names="value")

    # ------------------------------------------------------------------ classes and labels
    def add_class(self, name: str, color: str | None = None) -> str:
        """Offer a class (and pick it), in ``color`` (``#rrggbb``; default: the next of tab10)."""
        name = self.labels.add_class(name, color)
        if name not in self.label_class.options:
            self.label_class.options = [*self.label_class.options, name]
        self.label_class.value = name
        return name

    def _add_typed_class(self) -> None:
        self.add_class(self.new_class.value)
        self.new_class.value = ""

    def add(self, geometry: dict[str, Any], label: str | None = None,
            refit: bool = True) -> dict[str, Any]:  # fmt: skip
        """Add a GeoJSON geometry (lon/lat) as a label of ``label`` (default: the chosen class),
        as drawing it does, and refit (``refit=False``: leave that to a later label or
        :meth:`refit`, to add many labels at once). Returns the stored feature."""
        label = label or self.label_class.value
        if not label:
            raise ValueError("add a class first (type a name and press 'add class')")
        if label not in self.labels.classes:
            self.add_class(label)
        feature = self.labels.add(geometry, label)
        if refit:
            self.refit()
        return feature

    def add_point(self, lat: float, lon: float, label: str | None = None,
                  refit: bool = True) -> dict[str, Any]:  # fmt: skip
        """Label the patch under ``(lat, lon)`` (a click with the marker tool) and refit."""
        return self.add({"type": "Point", "coordinates": [float(lon), float(lat)]}, label, refit)

    def undo(self) -> dict[str, Any] | None:
        """Remove the last label and refit; returns it (``None`` when there was none)."""
        gone = self.labels.undo()
        self.refit()
        return gone

    def clear(self) -> None:
        """Remove every label (the classes stay) and the class-map layers."""
        self.labels.features.clear()
        self.refit()

    def _on_draw(
        self, _control: Any = None, action: str = "", geo_json: dict | None = None
    ) -> None:
        if action == "created" and geo_json:
            self.draw.clear()  # the label layer shows it, in its class's colour
            self.add(geo_json["geometry"])

    # ------------------------------------------------------------------ probe and layers
    def features(self) -> core.PatchFeatures:
        """The scene's patch embeddings (computed once by the explorer's layer cache)."""
        if self._features is None:
            ex = self.explorer
            with ex.progress.busy("embedding the scene") as update:
                path = ex.store.embeddings(update)
            _, _, d, ny, nx = core.grid_of(path)
            self._grid = path
            if d * ny * nx * 4 <= IN_MEMORY_BYTES:  # small: refits classify from memory
                import rioxarray

                self._grid = rioxarray.open_rasterio(path, masked=True).astype("float32").load()
            self._features = core.PatchFeatures(self._grid)
        return self._features

    def refit(self) -> core.ClassMap | None:
        """Fit the probe on the labels, score it on held-out labels, redraw the layers."""
        t0 = time.perf_counter()
        self._draw_labels()
        samples = core.label_samples(self.labels, self.features())
        t1 = time.perf_counter()
        kind = PROBES[self.probe.value]
        if len(set(samples.y.tolist())) < 2:
            self.probe_fit = self.class_map = None
            self.score = core.cross_validate(samples, kind)
            self._remove_layers()
        else:
            self.probe_fit = core.fit_labels(samples, kind, colors=self.labels.colors)
            t2 = time.perf_counter()
            self.class_map = self.probe_fit.classify(self._grid)
            t3 = time.perf_counter()
            self.score = core.cross_validate(samples, kind)
            self.timings.update(fit=t2 - t1, classify=t3 - t2, cv=time.perf_counter() - t3)
            self._show_class_map()
        self.timings.update(samples=t1 - t0, total=time.perf_counter() - t0)
        self._update_status(samples)
        return self.class_map

    def _overlay(self, file: LayerFile, name: str, opacity: float) -> Any:
        import ipyleaflet  # widgets only

        png, bounds = display.overlay_png(file, self.explorer.max_px)
        lay = ipyleaflet.ImageOverlay(url=data_url(png), bounds=bounds, name=name, opacity=opacity)
        self.explorer.pin(lay, replace=self._shown.get(name))
        self._shown[name] = lay
        return lay

    def _show_class_map(self) -> None:
        cm, store = self.class_map, self.explorer.store
        da, conf = cm.to_dataarrays()
        # drawn as colours, so the layer, the legend and the exported file share the class colours
        lut = np.array([[int(c[i : i + 2], 16) / 255 for i in (1, 3, 5)] for c in cm.colors])
        rgb = np.full((3, *cm.labels.shape), np.nan, np.float32)
        ok = cm.labels != core.NODATA
        rgb[:, ok] = lut[cm.labels[ok]].T
        rgb_da = georeferenced(rgb, cm.crs, cm.transform, ("band", [1, 2, 3]))
        classes = store.add(rgb_da, CLASSES_LAYER, "rgb", f"{cm.kind} probe on your labels")
        self._overlay(classes, CLASSES_LAYER, 0.65)
        if self.show_confidence.value:
            f = store.add(
                conf, CONFIDENCE_LAYER, "scalar", "probability of the chosen class", "magma"
            )
            f = LayerFile(**{**f.__dict__, "vmin": 0.0, "vmax": 1.0})
            self._overlay(f, CONFIDENCE_LAYER, 0.8)
        else:
            self._remove_layers(CONFIDENCE_LAYER)
        m = self.explorer.map
        old = getattr(m, "legend_control", None)
        if old is not None and old in m.controls:
            m.remove(old)
        m.add_legend(title=CLASSES_LAYER, legend_dict=dict(zip(cm.classes, cm.colors)),
                     layer_name=CLASSES_LAYER)  # fmt: skip

    def _toggle_confidence(self) -> None:
        if self.class_map is not None:
            self._show_class_map()

    def _remove_layers(self, *names: str) -> None:
        for name in names or (CLASSES_LAYER, CONFIDENCE_LAYER):
            lay = self._shown.pop(name, None)
            if lay is not None:
                self.explorer.unpin(lay)
        legend = getattr(self.explorer.map, "legend_control", None)
        if not names and legend is not None and legend in self.explorer.map.controls:
            self.explorer.map.remove(legend)  # no class map: no class legend

    def _draw_labels(self) -> None:
        """The labels as one GeoJSON layer, each in its class's colour."""
        import ipyleaflet  # widgets only

        colours = dict(zip(self.labels.classes, self.labels.colors))
        data = self.labels.to_geojson()
        for f in data["features"]:
            c = colours[f["properties"]["class"]]
            f["properties"]["style"] = {"color": c, "fillColor": c, "fillOpacity": 0.25,
                                        "weight": 2, "radius": 6}  # fmt: skip
        lay = ipyleaflet.GeoJSON(data=data, name=LABELS_LAYER,
                                 point_style={"radius": 6, "fillOpacity": 0.9})  # fmt: skip
        self.explorer.pin(lay, replace=self._shown.get(LABELS_LAYER))
        self._shown[LABELS_LAYER] = lay

    def _update_status(self, samples: core.Samples) -> None:
        per = samples.counts()
        counts = ", ".join(
            f"<span style='color:{c}'>&#9632;</span> {html.escape(n)}: {self.labels.counts()[n]} "
            f"({per.get(n, 0)} patches)" for n, c in zip(self.labels.classes, self.labels.colors)
        )  # fmt: skip
        fit = f"; refit {self.timings['total']:.2f} s" if "total" in self.timings else ""
        self.status.value = (f"<small>labels: {counts or 'none'}<br>{html.escape(str(self.score))}"
                             f"{fit}</small>")  # fmt: skip

    # ------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike) -> Path:
        """Save the labels as GeoJSON (atomically; replaces the file)."""
        out = self.labels.save(path)
        self.status.value += f"<br><small>saved {html.escape(str(out))}</small>"
        return out

    def load(self, path: str | os.PathLike) -> core.LabelSet:
        """Replace the labels by those of a GeoJSON file (classes added) and refit."""
        loaded = core.LabelSet.load(path)
        self.labels = core.LabelSet()
        for name, color in zip(loaded.classes, loaded.colors):
            self.add_class(name, color)
        for f in loaded.features:
            self.labels.add(f["geometry"], f["properties"]["class"])
        self.refit()
        return self.labels

    def _tif_path(self) -> Path:
        p = Path(self.path.value)
        return p.with_name(f"{p.stem.removesuffix('.geojson')}_classes.tif")

    def export(self, path: str | os.PathLike, overwrite: bool = True) -> Path:
        """Write the class map as a GeoTIFF (class names, colour table), its confidence beside."""
        if self.class_map is None:
            raise ValueError("no class map yet: label at least two classes")
        out = self.class_map.save_geotiff(path, overwrite=overwrite, confidence=True)
        self.status.value += f"<br><small>exported {html.escape(str(out))}</small>"
        return out
