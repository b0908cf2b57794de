"""MapExplorer: a scene of any size and its model products as layers of an offline leafmap map.

Layers are computed the first time they are shown (progress bar in the widget), streamed to tiled
GeoTIFFs cached per scene and model (:class:`smartiesviz.predict.map_layers.SceneLayers`), and
shown as a PNG overlay or an XYZ tile pyramid (see :mod:`smartiesviz.widgets.map.display`).
Exactly one layer is on the map at a time, under its legend; the opacity slider applies to it.
Clicking the map inspects the tile under the cursor, or (click mode "find similar") ranks every
patch of the scene by its similarity to the clicked one.
"""

from __future__ import annotations

import html
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any, Literal

import ipywidgets as W
import numpy as np
from PIL import Image
from pyproj import Transformer

from smartiesviz.data.cache import CacheRepairWarning, discard
from smartiesviz.data.scene import Scene
from smartiesviz.models.resolve import model_img_size
from smartiesviz.outputs import atomic_write_bytes
from smartiesviz.predict.embed import EmbedOptions, open_source
from smartiesviz.predict.inference import torch_threads
from smartiesviz.predict.map_layers import LayerFile, SceneLayers
from smartiesviz.predict.products import PRODUCTS
from smartiesviz.predict.pyramid import real_folder, write_pyramid
from smartiesviz.render import band_label, data_url, display_rgb, png_bytes
from smartiesviz.torch_globals import preserved
from smartiesviz.widgets.figures import new_figure
from smartiesviz.widgets.map import display, inspector
from smartiesviz.widgets.panels import WidgetBase
from smartiesviz.widgets.samples import bigearthnet_pairs, resolve_widget_model

#: Layers offered by default, in menu order: the product registry's names.
DEFAULT_LAYERS: tuple[str, ...] = tuple(PRODUCTS)
SIMILARITY = "similarity"
LABEL_CLICKS = "draw labels"  # the click mode in which clicks only draw (see :meth:`MapExplorer.label`)
TILES_FOLDER = "smartiesviz_tiles"


@dataclass
class MapLayer:
    """A layer as shown: its file, the leaflet layer drawing it and its lat/lon bounds."""

    name: str
    file: LayerFile
    leaflet: Any
    bounds: display.Bounds
    mode: Literal["overlay", "tiles"]

    @property
    def legend(self) -> str:
        return self.file.legend

    @property
    def overlay(self) -> Any:  # the leaflet layer, under the name earlier versions used
        return self.leaflet


class MapExplorer(WidgetBase):
    """A scene and its model products on an offline map, for scenes of any size.

    Args:
        scene: a :class:`~smartiesviz.data.scene.Scene` or a ``(band, y, x)`` DataArray with CRS
            (physical units), a GeoTIFF path, a folder of band files, ``"sample:sentinel2"``;
            default: the bundled Sentinel-2 scene. Opened once (``self.scene``).
        sensor: its sensor (default ``scene.attrs["sensor"]``; required for files).
        model: a SmartiesMAE or a checkpoint path (default: the demo model).
        window: ``(row, col, height, width)`` pixels of the scene to map (default: all of it).
        layers: which of :data:`DEFAULT_LAYERS` (the products of
            :data:`~smartiesviz.predict.products.PRODUCTS`) to offer; the first is shown at once.
        bigearthnet: also show the bundled BigEarthNet S2 patches at their true locations.
        basemap: an ipyleaflet basemap (needs network in the browser), or ``None``.
        mask_ratio, seed: masking of the reconstruction layers and the inspector.
        max_px: longest side of a PNG overlay; larger rasters use the tile pyramid when possible.
        tiles: ``"auto"``, ``"never"`` (always overlays) or ``"always"`` (pyramid when a Jupyter
            server serves the working folder).
        cache: folder of the layer cache (default: the user cache).
        threads: torch threads while computing (``None``: leave the setting). ``1`` is safe on
            shared machines (JupyterHub), where extra threads spin-wait.
        options: an :class:`~smartiesviz.predict.embed.EmbedOptions` for the model passes.

    Controls: ``layer`` (Dropdown), ``opacity`` and ``threshold`` (FloatSliders), ``click_mode``
    (ToggleButtons), ``map`` (a ``leafmap.Map``, ipyleaflet backend: leafmap's own methods work on
    it; its layer manager lists our layers). :meth:`split` compares two layers side by side;
    :meth:`label` adds few-click labelling (a class map from your labels). State: ``scene`` (the
    :class:`~smartiesviz.data.scene.Scene`, opened once; ``cube`` and ``sensor`` are its),
    ``layers`` (name → :class:`MapLayer`, those shown so far), ``selected_tile``, ``store`` (the
    :class:`SceneLayers`), ``grid`` (the :class:`~smartiesviz.widgets.map.inspector.TileGrid` of
    the tiles a click inspects).
    """

    def __init__(
        self,
        scene: Any = None,
        sensor: str | None = None,
        model: Any = None,
        window: tuple[int, int, int, int] | None = None,
        layers: Sequence[str] = DEFAULT_LAYERS,
        bigearthnet: bool = False,
        basemap: Any = None,
        mask_ratio: float = 0.75,
        seed: int = 0,
        max_px: int = 1024,
        tiles: Literal["auto", "never", "always"] = "auto",
        cache: str | os.PathLike | None = None,
        threads: int | None = 1,
        options: EmbedOptions | None = None,
    ) -> None:
        super().__init__()
        if tiles not in ("auto", "never", "always"):
            raise ValueError(f"tiles must be 'auto', 'never' or 'always'; got {tiles!r}")
        unknown = sorted(set(layers) - set(DEFAULT_LAYERS))
        if unknown:
            raise ValueError(f"unknown layer(s) {unknown}; choose from {list(DEFAULT_LAYERS)}")
        self.model = resolve_widget_model(model)
        self.size, self.patch = model_img_size(self.model), int(self.model.patch_size)
        self.mask_ratio, self.seed, self.max_px, self.tiles = float(mask_ratio), int(seed), int(max_px), tiles
        self.threads, self._offered = threads, tuple(layers)
        self.map = self._make_map(basemap)
        self.layer = W.Dropdown(description="layer", options=[])
        self.opacity = W.FloatSlider(value=1.0, min=0.0, max=1.0, step=0.05, description="opacity")
        self.threshold = W.FloatSlider(value=-1.0, min=-1.0, max=1.0, step=0.02,
                                       description="threshold", layout=W.Layout(display="none"))  # fmt: skip
        self.click_mode = W.ToggleButtons(options=["inspect tile", "find similar"],
                                          description="click")  # fmt: skip
        self.legend = W.HTML()
        self.tile_view = W.Image(format="png", layout=W.Layout(max_width="100%"))
        self.tile_caption = W.HTML("<small>click the map to inspect a tile</small>")
        self._chrome(
            [W.HBox([self.layer, self.opacity]), W.HBox([self.click_mode, self.threshold])],
            [self.map, self.tile_caption, self.tile_view],
            "Map explorer",
        )
        self.layers: dict[str, MapLayer] = {}
        self.selected_tile: int | None = None
        self.current: str | None = None
        self._rect: Any = None
        self._split: Any = None  # the SplitMapControl while two layers are compared
        self._pinned: list[Any] = []  # layers kept over every product (labels, class map)
        self._hits: Any = None  # the markers of the last :meth:`search_catalog`
        self.labelling: Any = None  # the LabelTool, once :meth:`label` is called
        import ipyleaflet  # widgets only

        self._legend_control = ipyleaflet.WidgetControl(widget=self.legend, position="bottomright")
        self._guarded(self._open)(scene, sensor, window, cache, options, bigearthnet)
        self.layer.observe(self._guarded(self._on_layer), names="value")
        self.opacity.observe(self._guarded(self._on_opacity), names="value")
        self.threshold.observe(self._guarded(self._on_threshold), names="value")
        self.map.on_interaction(self._guarded(self._on_interaction))

    # ---------------------------------------------------------------- construction
    @staticmethod
    def _make_map(basemap: Any) -> Any:
        """A ``leafmap.Map`` (its ipyleaflet backend), offline unless a basemap is asked for.

        leafmap is imported here, not with the package: its import takes seconds, paid when the
        first map is made (first display 1.95 → 3.64 s, median of 4, bundled S2 window with its
        first layer cached, a loaded 2-core machine; ``benchmarks/labels.py``)."""
        import ipyleaflet  # widgets only

        # leafmap's import installs a global "ignore every warning" filter: undone at once.
        # Whole zooms only: at fractional ones Leaflet scales tiles and leaves 1-px hairlines
        # between them (Leaflet issue 3575).
        with preserved():
            from leafmap.leafmap import Map  # lazy: slow import; the ipyleaflet backend, always

            m = Map(center=(0, 0), zoom=2, height="520px", zoom_snap=1, zoom_delta=1,
                    scroll_wheel_zoom=True, draw_control=False, toolbar_control=False,
                    search_control=False, measure_control=False, layers_control=False,
                    fullscreen_control=True, scale_control=True)  # fmt: skip
        # leafmap always adds OpenStreetMap: keep the map offline unless a basemap is asked for
        m.layers = tuple(lay for lay in m.layers if not getattr(lay, "base", False))
        if basemap is not None:
            m.add(basemap if isinstance(basemap, ipyleaflet.Layer)
                  else ipyleaflet.basemap_to_tiles(basemap))  # fmt: skip
        m.add_layer_manager(position="topright", opened=False)  # leafmap's: every layer on the map
        return m

    def _open(self, scene: Any, sensor: str | None, window: Any, cache: Any,
              options: EmbedOptions | None, bigearthnet: bool) -> None:  # fmt: skip
        scene = open_source("sample:sentinel2" if scene is None else scene, sensor)
        if scene.crs is None:
            raise ValueError("the map needs a georeferenced (band, y, x) scene (a CRS readable "
                             "with cube.rio.crs)")  # fmt: skip
        if window is not None:
            scene = self._crop(scene, window)
        self.scene, self.cube, self.sensor = scene, scene.cube, scene.sensor
        cube, sensor = scene.cube, scene.sensor
        self.store = SceneLayers(scene, self.model, Path(cache) if cache else None,
                                 self.mask_ratio, self.seed, options)  # fmt: skip
        self._job = self.store.options.job(scene, None, self.model)
        self.grid = inspector.TileGrid.of(self._job)  # the one source of tile geometry
        self.rows, self.cols = self.grid.shape
        west, south, east, north = cube.rio.transform_bounds("EPSG:4326")
        self.bounds = ((south, west), (north, east))
        self.map.center, self.map.zoom = display.view_for(self.bounds)
        self.map.add(self._legend_control)
        names = [n for n in self._offered if n in self.store.names]
        self.layer.options = names
        if bigearthnet:
            self._add_bigearthnet()
        if names:
            self.show(names[0])
        with self.layer.hold_trait_notifications():
            self.layer.value = self.current

    def _crop(self, scene: Scene, window: Any) -> Scene:
        """The ``(row, col, height, width)`` window of ``scene``, at least the model's size."""
        r, c, h, w = (int(v) for v in window)
        H, Wd = scene.shape
        if not (0 <= r < H and 0 <= c < Wd and h >= self.size and w >= self.size):
            raise ValueError(
                f"window {window} must start inside the {H}×{Wd} scene and be at least "
                f"{self.size} px on each side (the model's input size)"
            )
        cube = scene.cube.isel(y=slice(r, r + h), x=slice(c, c + w))
        return Scene.from_cube(cube, scene.sensor, scene.name, scene.specs)

    # ---------------------------------------------------------------- layers
    @property
    def layer_names(self) -> list[str]:
        """Layers that can be shown (computed or not), in menu order."""
        return list(self.layer.options)

    def show(self, name: str) -> MapLayer:
        """Put layer ``name`` alone on the map (computing it the first time) and frame it."""
        if name is None:
            return None  # type: ignore[return-value]
        if name not in self.layers:
            if name not in self.store.names:
                raise ValueError(f"unknown layer {name!r}; choose from {self.layer_names}")
            with self.progress.busy(f"computing {name}") as update, torch_threads(self.threads):
                self.layers[name] = self._draw(self.store.get(name, update))
        self.unsplit()
        lay = self.layers[name]
        self.current = name
        self._restack(lay.leaflet)
        if self.layer.value != name:
            self.layer.value = name
        lay.leaflet.opacity = float(self.opacity.value)
        self.threshold.layout.display = None if name == SIMILARITY else "none"
        self._update_legend()
        return lay

    def _restack(self, *products: Any) -> None:
        """Put ``products`` on the map over what is not ours (basemaps), under the pinned layers
        (labels, class map) and the selected tile; leafmap's layer manager follows."""
        ours = _leaflet_types()
        keep = [x for x in self.map.layers if not isinstance(x, ours)
                or getattr(x, "name", "") == "BigEarthNet S2 patches"]  # fmt: skip
        keep = [x for x in keep if x not in self._pinned]
        rect = [self._rect] if self._rect else []
        self.map.layers = tuple([*keep, *products, *self._pinned, *rect])
        self.map.update_layer_manager()

    def pin(self, leaflet: Any, replace: Any = None) -> None:
        """Keep a leaflet layer on the map over every product (``replace``: the one it replaces)."""
        if replace is not None and replace in self._pinned:
            self._pinned[self._pinned.index(replace)] = leaflet
        elif leaflet not in self._pinned:
            self._pinned.append(leaflet)
        rest = [x for x in self.map.layers
                if x is not replace and x not in self._pinned and x is not self._rect]  # fmt: skip
        self.map.layers = tuple([*rest, *self._pinned, *([self._rect] if self._rect else [])])
        self.map.update_layer_manager()

    def unpin(self, leaflet: Any) -> None:
        """Take a pinned layer off the map."""
        if leaflet in self._pinned:
            self._pinned.remove(leaflet)
        if leaflet in self.map.layers:
            self.map.remove(leaflet)

    # ---------------------------------------------------------------- comparison
    def split(self, left: str = "true colour", right: str = "reconstruction") -> Any:
        """Compare two layers side by side with a draggable divider (ipyleaflet's
        ``SplitMapControl``, what ``leafmap.Map.split_map`` uses, without clearing the map's
        controls); :meth:`show` or :meth:`unsplit` ends it. Returns the control."""
        import ipyleaflet  # widgets only

        for name in (left, right):
            if name not in self.layers:
                self.show(name)
        self.unsplit()
        # own panes: leaflet-side-by-side clips an overlay's pane, which both sides would share;
        # under the overlay pane (400), so the labels and class map stay on top
        self.map.panes = {**self.map.panes, "sv_left": {"zIndex": 390}, "sv_right": {"zIndex": 391}}
        sides = []
        for name, pane in ((left, "sv_left"), (right, "sv_right")):
            lay = self._draw(self.layers[name].file)
            lay.leaflet.pane, lay.leaflet.name = pane, f"{name} ({pane[3:]})"
            sides.append(lay.leaflet)
        self._restack(*sides)
        self._split = ipyleaflet.SplitMapControl(left_layer=sides[0], right_layer=sides[1])
        self.map.add(self._split)
        self.legend.value = (f"<small>left: <b>{html.escape(left)}</b> | right: "
                             f"<b>{html.escape(right)}</b> (drag the divider)</small>")  # fmt: skip
        return self._split

    def unsplit(self) -> None:
        """End a :meth:`split` comparison (the current layer shows alone again)."""
        if self._split is None:
            return
        if self._split in self.map.controls:
            self.map.remove(self._split)
        self._split = None
        if self.current in self.layers:
            self._restack(self.layers[self.current].leaflet)
            self._update_legend()

    def _draw(self, file: LayerFile, threshold: float | None = None) -> MapLayer:
        """A leaflet layer for a layer file: an XYZ pyramid or a PNG overlay."""
        import ipyleaflet  # widgets only
        import rasterio  # heavy optional: raster size

        with rasterio.open(file.path) as src:
            big = max(src.width, src.height) > self.max_px
        served = display.jupyter_root() if self.tiles != "never" else None
        if served is not None and (big or self.tiles == "always") and threshold is None:
            root, base_url = served
            folder, zmin, zmax = self._tiles(file, root)
            leaflet = ipyleaflet.TileLayer(
                url=display.files_url(folder, root, base_url), name=file.name, min_zoom=0,
                max_zoom=zmax + 3, max_native_zoom=zmax, min_native_zoom=zmin, no_wrap=True,
                attribution="smartiesviz", opacity=float(self.opacity.value),
                bounds=[list(self.bounds[0]), list(self.bounds[1])],
            )  # fmt: skip
            return MapLayer(file.name, file, leaflet, self.bounds, "tiles")
        png, bounds = display.overlay_png(file, self.max_px, threshold)
        leaflet = ipyleaflet.ImageOverlay(url=data_url(png), bounds=bounds, name=file.name,
                                          opacity=float(self.opacity.value))  # fmt: skip
        return MapLayer(file.name, file, leaflet, bounds, "overlay")

    def _tiles(self, file: LayerFile, root: Path) -> tuple[Path, int, int]:
        """The layer's XYZ tile folder under the Jupyter ``root`` (written once) and its zooms.

        Links on the way from ``root`` (the tile folder, ``.gitignore``, ``done.txt``) are replaced,
        never written through, so no tile lands outside ``root / TILES_FOLDER``."""
        folder = real_folder(root / TILES_FOLDER / self.store.key / file.path.stem, root)
        ignore = root / TILES_FOLDER / ".gitignore"  # a cache: keep it out of git
        if ignore.is_symlink() or not ignore.is_file():
            if ignore.is_symlink():
                warnings.warn(f"{ignore} is a link; replacing it (never written through)",
                              CacheRepairWarning, stacklevel=4)  # fmt: skip
            discard(ignore)
            atomic_write_bytes(ignore, b"# smartiesviz map tiles (a cache; safe to delete)\n*\n")
        done = folder / "done.txt"
        try:
            if done.is_symlink():
                raise ValueError(f"{done} is a link")
            zmin, zmax = (int(v) for v in done.read_text().split())
        except (OSError, ValueError):  # not written yet, or damaged: write the tiles again
            with self.progress.busy(f"tiles of {file.name}") as update:
                pyr = write_pyramid(file.path, folder, display.colorizer(file), file.resampling,
                                    on_progress=update)  # fmt: skip
            zmin, zmax = pyr.min_zoom, pyr.max_zoom
            atomic_write_bytes(done, f"{zmin} {zmax}".encode())
        return folder, zmin, zmax

    def add_layer(self, data_array: Any, name: str, cmap: str = "viridis",
                  classes: Sequence[str] | None = None, rgb: bool = False,
                  legend: str = "") -> MapLayer:  # fmt: skip
        """Add a georeferenced raster of your own and show it: continuous (colour map ``cmap``),
        ``classes`` (integer values naming ``classes[i]``) or ``rgb`` (3 bands in [0, 1])."""
        kind = "rgb" if rgb else "classes" if classes is not None else "scalar"
        file = self.store.add(data_array, name, kind, legend, cmap, tuple(classes or ()))
        self.layers[name] = self._draw(file)
        if name not in self.layer.options:
            self.layer.options = [*self.layer.options, name]
        return self.show(name)

    def _on_layer(self, change: dict[str, Any]) -> None:
        if change["new"] is not None and change["new"] != self.current:
            self.show(change["new"])

    def _update_legend(self) -> None:
        lay = self.layers[self.current]
        thr = self.threshold.value if self.current == SIMILARITY else None
        self.legend.value = display.legend_html(lay.file, thr)

    def _on_opacity(self, _change: object = None) -> None:
        if self.current in self.layers:
            self.layers[self.current].leaflet.opacity = float(self.opacity.value)

    def _on_threshold(self, _change: object = None) -> None:
        if self.current == SIMILARITY:
            lay = self.layers[SIMILARITY]
            png, _ = display.overlay_png(lay.file, self.max_px, float(self.threshold.value))
            lay.leaflet.url = data_url(png)
            self._update_legend()

    # ---------------------------------------------------------------- similarity
    def similarity_at(self, lat: float, lon: float) -> Any:
        """Rank every patch by cosine similarity to the patch under ``(lat, lon)`` (which scores
        1; scene-mean-centred, see :func:`smartiesviz.predict.similarity.cosine_map`), show it as
        the ``"similarity"`` layer and return the ``(y, x)`` DataArray in [-1, 1]."""
        with self.progress.busy("embedding the scene") as update, torch_threads(self.threads):
            sim = self.store.similarity_at(lat, lon, update)
        self._show_similarity(sim, f"cosine similarity to the patch at ({lat:.4f}, {lon:.4f})")
        return sim

    def similarity_to(self, cube: Any, sensor: str | None = None) -> Any:
        """Rank every patch by similarity to a query image of any sensor (e.g. the Sentinel-1
        chip of a BigEarthNet pair), encoded by the same model; shown and returned."""
        with self.progress.busy("embedding the scene") as update, torch_threads(self.threads):
            sim = self.store.similarity_to(cube, sensor, update)
        self._show_similarity(sim, f"cosine similarity to a {sim.attrs['query_sensor']} query")
        return sim

    def _show_similarity(self, sim: Any, legend: str) -> None:
        file = self.store.add(sim, SIMILARITY, "scalar", legend + " (scene mean removed)", "viridis")
        file = LayerFile(**{**file.__dict__, "vmin": -1.0, "vmax": 1.0})
        self.store.layers[SIMILARITY] = file
        self.layers.pop(SIMILARITY, None)
        self.layers[SIMILARITY] = self._draw(file, float(self.threshold.value))
        if SIMILARITY not in self.layer.options:
            self.layer.options = [*self.layer.options, SIMILARITY]
        self.show(SIMILARITY)

    def search_catalog(self, catalog: Any, lat: float, lon: float, top_k: int = 10) -> list[Any]:
        """Find the patches of a whole archive most like the one under ``(lat, lon)`` here.

        ``catalog`` is the ``catalog.json`` (or its folder) that ``smartiesviz embed`` writes for
        many scenes (:mod:`smartiesviz.predict.catalog`), embedded by this explorer's model. Scenes
        are centred by the archive mean of their sensor, the query by its own sensor's when the
        archive holds that sensor. The hits are shown as numbered markers and returned, best
        first (:class:`~smartiesviz.predict.catalog.Hit`: scene id, grid cell, score, position)."""
        from smartiesviz.predict import catalog as archive
        from smartiesviz.predict import similarity
        from smartiesviz.predict.embed import model_sha256

        entries = archive.entries_of(catalog)
        sha = model_sha256(self.store.model)
        other = [e.id for e in entries if e.properties.get("smartiesviz:model_sha256") != sha]
        if other:
            raise ValueError(
                f"catalogue scenes {', '.join(other[:3])}{' ...' if len(other) > 3 else ''} were "
                "embedded by another model; embeddings of two models cannot be compared"
            )
        with self.progress.busy("embedding the scene") as update, torch_threads(self.threads):
            emb = self.store.embeddings(update)
        query = similarity.vector_at(emb, *similarity.cell_at(emb, lat, lon))
        own = self.store.sensor if any(e.sensor == self.store.sensor for e in entries) else None
        hits = archive.search(entries, query, top_k, query_sensor=own)
        self._show_hits(hits, {e.id: e for e in entries})
        return hits

    def _show_hits(self, hits: Sequence[Any], entries: dict[str, Any]) -> None:
        """Numbered markers at the hits (each scene's CRS → WGS84), pinned over the products."""
        import ipyleaflet  # widgets only

        markers = []
        for rank, hit in enumerate(hits, 1):
            wkt = entries[hit.id].properties.get("proj:wkt2")
            if wkt is None:  # a scene without a CRS has no place on the map
                continue
            lon, lat = Transformer.from_crs(wkt, "EPSG:4326", always_xy=True).transform(hit.x, hit.y)
            markers.append(ipyleaflet.CircleMarker(
                location=(lat, lon), radius=7, color="#ff00aa", fill_opacity=0.6,
                name=f"#{rank} {hit.id}", popup=W.HTML(f"#{rank} {html.escape(hit.id)}: {hit.score:.3f}"),
            ))  # fmt: skip
        group = ipyleaflet.LayerGroup(layers=markers, name="catalogue hits")
        self.pin(group, replace=self._hits)
        self._hits = group

    # ---------------------------------------------------------------- labelling
    def label(self, classes: Sequence[str] | dict[str, str] = (), probe: str = "logistic") -> Any:
        """Few-click labelling on this map: draw points or polygons per class, get a class map
        and a confidence layer refitted after each label. Returns the
        :class:`~smartiesviz.widgets.map.labels.LabelTool` (also ``self.labelling``), whose
        controls join this widget; calling again returns the same tool. ``classes``: names, or a
        dict of name → ``#rrggbb`` colour; ``probe``: ``"logistic"`` or ``"knn"``."""
        if self.labelling is None:
            from smartiesviz.widgets.map.labels import LabelTool

            self.labelling = LabelTool(self, classes, probe)
            at = list(self.children).index(self.map)
            self.children = [*self.children[:at], self.labelling, *self.children[at:]]
            # clicks that draw labels must not also inspect a tile: a click mode of their own
            self.click_mode.options = [*self.click_mode.options, LABEL_CLICKS]
            self.click_mode.value = LABEL_CLICKS
        else:
            colors = classes if isinstance(classes, dict) else {}
            for name in classes:
                self.labelling.add_class(name, colors.get(name))
        return self.labelling

    # ---------------------------------------------------------------- interaction
    def _on_interaction(self, **event: Any) -> None:
        if event.get("type") == "click" and self.click_mode.value != LABEL_CLICKS:
            lat, lon = event["coordinates"]
            if self.click_mode.value == "find similar":
                self.similarity_at(lat, lon)
            else:
                self.select_at(lat, lon)

    def tile_at(self, lat: float, lon: float) -> int:
        """Index (row-major) of the tile of :attr:`grid` (the embed job's tiles, ``tile_size``
        pixels) whose window holds ``(lat, lon)``."""
        tr = Transformer.from_crs("EPSG:4326", self.cube.rio.crs, always_xy=True)
        col, row = ~self.cube.rio.transform(recalc=True) @ tr.transform(lon, lat)
        if not (0 <= row < self.cube.sizes["y"] and 0 <= col < self.cube.sizes["x"]):
            raise ValueError(f"({lat:.5f}, {lon:.5f}) is outside the mapped scene")
        return self.grid.index_at(row, col)

    def select_at(self, lat: float, lon: float) -> int:
        """Select the tile under a point (what a click does) and show it band by band."""
        import ipyleaflet  # widgets only

        index = self.tile_at(lat, lon)
        with torch_threads(self.threads):
            self._tile = inspector.reconstruct_tile(self._job, index, self.mask_ratio, self.seed)
        self.selected_tile = index
        top, bottom = inspector.panels(self._tile, self.patch)
        self.tile_view.value = png_bytes(inspector.mosaic(top, bottom), scale=2)
        names = " ".join(band_label(b) for b in self._tile.bands)
        r, c = divmod(index, self.cols)
        self.tile_caption.value = (
            f"<small>tile {index} (row {r}, col {c}); top: input, visible patches, bands "
            f"{html.escape(names)}; bottom: hidden patches rebuilt by the model and visible ones "
            f"copied from the input, the same with the rebuilt patches tinted, bands</small>"
        )
        y0, x0, s = self.grid.window(index)  # outline what was reconstructed, inside the scene
        sub = self.cube.isel(y=slice(max(y0, 0), y0 + s), x=slice(max(x0, 0), x0 + s))
        west, south, east, north = sub.rio.transform_bounds("EPSG:4326")
        rect = ipyleaflet.Rectangle(bounds=((south, west), (north, east)), color="#e74c3c",
                                    fill=False, weight=2, name="selected tile")  # fmt: skip
        if self._rect is not None and self._rect in self.map.layers:
            self.map.remove(self._rect)
        self._rect = rect
        self.map.add(rect)
        return index

    def _add_bigearthnet(self) -> None:
        import ipyleaflet  # widgets only

        group = ipyleaflet.LayerGroup(name="BigEarthNet S2 patches")
        for i, pair in enumerate(bigearthnet_pairs()):
            name = f"BigEarthNet {getattr(pair, 'name', i)}"
            labels = ", ".join(str(v) for v in getattr(pair, "labels", []))
            rgb = display_rgb(np.asarray(pair.s2.values, np.float32), [str(b) for b in pair.s2.band.values])
            da = pair.s2.isel(band=slice(0, 3)).copy(data=rgb.transpose(2, 0, 1))
            file = self.store.add(da, name, "rgb", f"BigEarthNet S2 (L2A) true colour; labels: {labels}")
            lay = self._draw(file)
            group.add(lay.leaflet)
            self.layers[name] = lay
        self.map.add(group)

    # ---------------------------------------------------------------- static views
    def tile_figure(self, index: int) -> Any:
        """One tile: input, visible, bands (top); rebuilt hidden patches, tinted, bands (bottom)."""
        with torch_threads(self.threads):
            t = inspector.reconstruct_tile(self._job, index, self.mask_ratio, self.seed)
        return inspector.tile_figure(t, self.patch)

    def figure(self) -> Any:
        """Every layer shown so far in lon/lat, plus the selected tile's outline."""
        shown = [lay for lay in self.layers.values() if not lay.name.startswith("BigEarthNet")]
        n = max(len(shown), 1)
        fig, axes = new_figure(1, n, size=(3.2 * n, 3.4))
        for ax, lay in zip(axes[0], shown):
            png, ((s, w), (nn, e)) = display.overlay_png(lay.file, 512)
            ax.imshow(np.asarray(Image.open(BytesIO(png))), extent=(w, e, s, nn),
                      interpolation="nearest")  # fmt: skip
            ax.set_title(lay.name, fontsize=9)
            ax.tick_params(labelsize=6)
            ax.locator_params(nbins=3)
            ax.set_aspect(1 / np.cos(np.deg2rad((s + nn) / 2)))
            if self._rect is not None:
                (rs, rw), (rn, re) = self._rect.bounds
                ax.plot([rw, re, re, rw, rw], [rs, rs, rn, rn, rs], color="#e74c3c", lw=1)
        fig.suptitle("map layers (WGS84)", fontsize=10)
        return fig


def _leaflet_types() -> tuple[type, ...]:
    import ipyleaflet  # widgets only

    return (ipyleaflet.ImageOverlay, ipyleaflet.TileLayer, ipyleaflet.Rectangle)
