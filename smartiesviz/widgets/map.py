"""MapExplorer: model outputs over a scene as map layers (leafmap, ipyleaflet backend).

Every raster is reprojected to WGS84 and shown as a PNG ``ImageOverlay`` with a ``data:`` URL, so
nothing needs a tile server or the network (remote JupyterHub included). No basemap is added
unless asked for (``basemap="OpenStreetMap"`` needs the browser to reach the tile provider).
Clicking the map selects the tile under the cursor and shows its reconstruction band by band.
"""

from __future__ import annotations

import html
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import ipywidgets as W
import numpy as np
import torch
from affine import Affine

from smartiesviz.data.scene import open_scene
from smartiesviz.models.resolve import model_img_size
from smartiesviz.predict.inference import patch_mask_to_pixels, torch_threads
from smartiesviz.render import band_label, data_url, display_rgb, png_bytes, stretch
from smartiesviz.widgets.figures import new_figure, show_image
from smartiesviz.widgets.panels import WidgetBase
from smartiesviz.widgets.samples import bigearthnet_pairs, load_scene, resolve_widget_model

#: Layers built by default, in drawing order.
DEFAULT_LAYERS = (
    "true colour",
    "reconstruction",
    "reconstruction error",
    "PCA colour",
    "k-means classes",
    "NIR from RGB",
    "probe",
)
_CLASS_COLOURS = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd",
)  # fmt: skip


@dataclass
class MapLayer:
    """One overlay: its WGS84 bounds ((south, west), (north, east)), PNG and legend."""

    name: str
    bounds: tuple[tuple[float, float], tuple[float, float]]
    png: bytes
    legend: str
    overlay: Any = None
    data: Any = None  # the georeferenced DataArray it was drawn from


def _hex_to_rgb(h: str) -> tuple[float, float, float]:
    return tuple(int(h[i : i + 2], 16) / 255 for i in (1, 3, 5))  # type: ignore[return-value]


def _georef(values: np.ndarray, like: Any, factor: int = 1, transform: Any = None) -> Any:
    """Wrap ``([L,] ny, nx)`` on the grid of ``like`` coarsened by ``factor`` (or on ``transform``)."""
    import rioxarray  # noqa: F401
    import xarray as xr

    t = (
        transform
        if transform is not None
        else like.rio.transform(recalc=True) * Affine.scale(factor)
    )
    ny, nx = values.shape[-2:]
    coords = {"y": t.f + (np.arange(ny) + 0.5) * t.e, "x": t.c + (np.arange(nx) + 0.5) * t.a}
    dims = ("y", "x") if values.ndim == 2 else ("band", "y", "x")
    da = xr.DataArray(values, dims=dims, coords=coords)
    return da.rio.write_crs(like.rio.crs).rio.write_transform(t)


def _to_wgs84(
    da: Any, max_px: int
) -> tuple[np.ndarray, tuple[tuple[float, float], tuple[float, float]]]:
    """Reproject (nearest) to EPSG:4326; returns ``([L,] h, w)`` values (NaN outside) and bounds."""
    from rasterio.enums import Resampling

    longest = max(da.sizes["y"], da.sizes["x"])
    if longest < 256:
        # coarse grids (patch or tile level): upsample (nearest) first, so the reprojected
        # envelope hugs the footprint and class edges stay crisp
        f = int(np.ceil(256 / longest))
        t = da.rio.transform(recalc=True)
        vals = np.asarray(da.values).repeat(f, -2).repeat(f, -1)
        like = da.isel(y=slice(0, 1), x=slice(0, 1)).rio.write_transform(t)
        da = _georef(vals, like, 1, transform=t * Affine.scale(1 / f))
    step = int(np.ceil(max(da.sizes["y"], da.sizes["x"]) / max_px))
    if step > 1:
        da = (
            da.coarsen(y=step, x=step, boundary="trim").mean()
            if da.dtype.kind == "f"
            else da[..., ::step, ::step]
        )
        da = da.rio.write_transform(da.rio.transform(recalc=True))
    da = da.astype("float32").rio.write_nodata(np.nan)
    out = da.rio.reproject("EPSG:4326", resampling=Resampling.nearest)
    west, south, east, north = out.rio.bounds()
    return np.asarray(out.values), ((south, west), (north, east))


class MapExplorer(WidgetBase):
    """A scene and its model products on an offline map.

    Args:
        cube: a scene ``(band, y, x)`` DataArray with CRS (physical units); default: the bundled
            Sentinel-2 scene.
        sensor: its sensor (default ``cube.attrs["sensor"]``).
        model: any :class:`~smartiesviz.SmartiesMAE`, or a checkpoint path (default: the demo model).
        window: ``(row, col, height, width)`` pixels of the scene to map (default: all of it).
        layers: which of :data:`DEFAULT_LAYERS` to build.
        probe: a probe on pooled tile features with ``predict_proba``/``classes`` for the
            ``"probe"`` layer (default: the band lab's toy probe fitted on the bundled pairs).
        bigearthnet: also show the bundled BigEarthNet S2 patches at their true locations.
        basemap: a leafmap basemap name to add (needs network in the browser), or ``None``.
        mask_ratio, seed: masking of the reconstruction layers.
        max_px: longest side of an overlay PNG (larger rasters are averaged down).
        threads: torch and BLAS threads while building (``None``: leave the settings). The default
            ``1`` is safe on shared machines (JupyterHub), where extra threads spin-wait: measured
            0.25 s on one thread vs 6.5 s on two for the same error map under load; pass ``None``
            on a dedicated many-core machine.

    Controls: ``layer`` (Dropdown: legend and opacity target), ``opacity`` (FloatSlider),
    ``map`` (the leafmap ``Map``). State: ``layers`` (name → :class:`MapLayer`), ``selected_tile``,
    ``build_times`` (seconds per layer).
    Call :meth:`select_at` (what a click does) to pick a tile by latitude/longitude.
    """

    def __init__(
        self,
        cube: Any = None,
        sensor: str | None = None,
        model: torch.nn.Module | str | None = None,
        window: tuple[int, int, int, int] | None = None,
        layers: Sequence[str] = DEFAULT_LAYERS,
        probe: Any = None,
        bigearthnet: bool = True,
        basemap: str | None = None,
        mask_ratio: float = 0.75,
        seed: int = 0,
        max_px: int = 768,
        threads: int | None = 1,
    ) -> None:
        super().__init__()
        unknown = sorted(set(layers) - set(DEFAULT_LAYERS))
        if unknown:
            raise ValueError(f"unknown layer(s) {unknown}; choose from {list(DEFAULT_LAYERS)}")
        self.model = resolve_widget_model(model)
        self.size = model_img_size(self.model)
        self.patch = int(self.model.patch_size)
        self.mask_ratio, self.seed, self.max_px = float(mask_ratio), int(seed), int(max_px)
        self.threads = threads
        self._probe = probe
        self.map = self._make_map(basemap)
        self.layer = W.Dropdown(description="layer")
        self.opacity = W.FloatSlider(value=1.0, min=0.0, max=1.0, step=0.05, description="opacity")
        self.legend = W.HTML()
        self.tile_view = W.Image(format="png")
        self.tile_caption = W.HTML("<small>click the map to inspect a tile</small>")
        self._chrome(
            [W.HBox([self.layer, self.opacity])],
            [self.map, self.tile_caption, self.tile_view],
            "Map explorer",
        )
        self.layers: dict[str, MapLayer] = {}
        self._syncing = False
        self.selected_tile: int | None = None
        self.layer.observe(self._guarded(self._on_layer), names="value")
        self.opacity.observe(self._guarded(self._on_opacity), names="value")
        self.map.on_interaction(self._guarded(self._on_interaction))
        self._guarded(self._build)(cube, sensor, window, tuple(layers), bigearthnet)

    # ---------------------------------------------------------------- construction
    @staticmethod
    def _make_map(basemap: str | None) -> Any:
        import ipyleaflet
        import leafmap.leafmap as leafmap

        kw: dict[str, Any] = dict(
            draw_control=False, toolbar_control=False, layers_control=False, height="520px"
        )
        if basemap is not None:
            kw["basemap"] = basemap
        m = leafmap.Map(**kw)
        if basemap is None:  # ipyleaflet always adds a default tile layer: keep the map offline
            m.layers = tuple(
                layer for layer in m.layers if not isinstance(layer, ipyleaflet.TileLayer)
            )
        m.add(ipyleaflet.LayersControl(position="topright"))
        return m

    def _build(
        self, cube: Any, sensor: str | None, window: Any, names: tuple[str, ...], bigearthnet: bool
    ) -> None:
        if cube is None:
            scene = load_scene("sentinel2")
        else:
            scene = open_scene(cube, sensor).for_model()
        if scene.cube is None or scene.cube.rio.crs is None:
            raise ValueError(
                "the map needs a georeferenced cube (a CRS readable with cube.rio.crs)"
            )
        values, geo = scene.values, scene.cube
        if window is not None:
            r, c, h, w = (int(v) for v in window)
            _, H, Wd = values.shape
            if not (0 <= r < H and 0 <= c < Wd and h >= self.size and w >= self.size):
                raise ValueError(
                    f"window {window} must start inside the {H}×{Wd} scene and be at least "
                    f"{self.size} px on each side (the model's input size)"
                )
            values, geo = (
                values[:, r : r + h, c : c + w],
                geo.isel(y=slice(r, r + h), x=slice(c, c + w)),
            )
        self.scene = replace(scene, cube=geo)
        steps = len(names) + 2
        self.build_times: dict[str, float] = {}
        start = time.perf_counter()
        with self.progress.busy("building map layers") as update, torch_threads(self.threads):
            self._reconstruct_tiles()
            update(1 / steps)
            builders = {
                "true colour": self._true_colour,
                "reconstruction": self._reconstruction,
                "reconstruction error": self._error,
                "PCA colour": self._pca,
                "k-means classes": self._kmeans,
                "NIR from RGB": self._nir_from_rgb,
                "probe": self._probe_layer,
            }
            self._embeddings = None
            self.build_times["tiles + reconstruction"] = time.perf_counter() - start
            for i, name in enumerate(names):
                t0 = time.perf_counter()
                self._add(name, *builders[name]())
                self.build_times[name] = time.perf_counter() - t0
                update((i + 2) / steps)
            if bigearthnet:
                t0 = time.perf_counter()
                self._add_bigearthnet()
                self.build_times["BigEarthNet patches"] = time.perf_counter() - t0
        self.layer.options = list(self.layers)
        self.layer.value = names[0] if names else next(iter(self.layers), None)
        (s, w), (n, e) = self.layers[self.layer.value].bounds
        self.map.fit_bounds([[s, w], [n, e]])

    def _add(
        self, name: str, da: Any, legend: str, cmap: str | None = None, vmin=None, vmax=None
    ) -> None:
        import ipyleaflet

        values, bounds = _to_wgs84(da, self.max_px)
        if values.ndim == 3:  # (3, h, w) RGB in [0, 1]; NaN → transparent
            alpha = np.isfinite(values).all(0, keepdims=True).astype(np.float32)
            rgba = np.concatenate([np.nan_to_num(values), alpha], 0).transpose(1, 2, 0)
            png = png_bytes(rgba)
        else:
            png = png_bytes(values, cmap=cmap or "viridis", vmin=vmin, vmax=vmax)
        overlay = ipyleaflet.ImageOverlay(
            url=data_url(png), bounds=bounds, name=name, opacity=1.0
        )
        self.map.add(overlay)
        self.layers[name] = MapLayer(name, bounds, png, legend, overlay, da)

    # ---------------------------------------------------------------- products
    def _tiles(self) -> tuple[torch.Tensor, int, int]:
        """Scene window padded (reflect) to whole tiles → (T, C, size, size), rows, cols."""
        x = torch.as_tensor(self.scene.values)[None]
        _, _, h, w = x.shape
        rows, cols = -(-h // self.size), -(-w // self.size)
        x = torch.nn.functional.pad(
            x, (0, cols * self.size - w, 0, rows * self.size - h), mode="replicate"
        )
        t = x.unfold(2, self.size, self.size).unfold(3, self.size, self.size)  # (1, C, r, c, s, s)
        return (
            t[0].permute(1, 2, 0, 3, 4).reshape(rows * cols, -1, self.size, self.size),
            rows,
            cols,
        )

    def _reconstruct_tiles(self) -> None:
        tiles, self.rows, self.cols = self._tiles()
        recons, vis = [], []
        bands = list(self.scene.specs)
        gen = torch.Generator().manual_seed(self.seed)
        with torch.inference_mode():  # batched: all intra-op threads help here
            for i in range(0, len(tiles), 64):
                out = self.model(
                    tiles[i : i + 64], bands, mask_ratio=self.mask_ratio, generator=gen
                )
                recons.append(out.recon_a.float())
                vis.append(out.visible_mask)
        self.tiles, self.tile_recon, self.tile_visible = tiles, torch.cat(recons), torch.cat(vis)

    def _stitch(self, t: torch.Tensor) -> np.ndarray:
        """(T, C, s, s) → (C, h, w) cropped to the window."""
        s, (r, c) = self.size, (self.rows, self.cols)
        img = t.reshape(r, c, -1, s, s).permute(2, 0, 3, 1, 4).reshape(-1, r * s, c * s)
        _, h, w = self.scene.values.shape
        return img[:, :h, :w].numpy()

    def _true_colour(self):
        rgb = display_rgb(self.scene.values, self.scene.specs)
        return _georef(rgb.transpose(2, 0, 1), self.scene.cube), "true colour (2–98 % stretch)"

    def _reconstruction(self):
        vis = self.tile_visible.reshape(-1, self.size // self.patch, self.size // self.patch)
        vis = vis.repeat_interleave(self.patch, 1).repeat_interleave(self.patch, 2)[:, None]
        pasted = torch.where(vis, self.tiles, self.tile_recon)
        rgb = display_rgb(self._stitch(pasted), self.scene.specs, ref=self.scene.values)
        legend = (
            f"reconstruction: visible patches from the input, {self.mask_ratio:.0%} hidden patches "
            f"rebuilt by the model (seed {self.seed})"
        )
        return _georef(rgb.transpose(2, 0, 1), self.scene.cube), legend

    def _error(self):
        from smartiesviz.predict import maps

        da = maps.reconstruction_error_map(
            self.scene.cube.isel(band=self._band_index()),
            sensor=self.scene.sensor,
            model=self.model,
            mask_ratio=self.mask_ratio,
            seed=self.seed,
            normalize=False,
            progress=False,
        )
        hi = float(np.nanpercentile(da.values, 98))
        return da, *self._colourbar(
            "reconstruction MSE per patch (normalized units)", "magma", 0.0, hi
        )

    def _band_index(self) -> list[int]:
        names = [str(b) for b in self.scene.cube["band"].values]
        return [names.index(band_label(b)) for b in self.scene.specs]

    def embeddings(self) -> Any:
        """Patch embeddings of the window (computed once)."""
        if self._embeddings is None:
            from smartiesviz.predict import embed

            self._embeddings = embed(
                self.scene.cube.isel(band=self._band_index()),
                sensor=self.scene.sensor,
                model=self.model,
                normalize=False,
                progress=False,
            )
        return self._embeddings

    def _pca(self):
        from smartiesviz.predict import maps

        da = maps.pca_map(self.embeddings(), n_components=3)
        return da.rename({da.dims[0]: "band"}), "PCA of patch embeddings: components 1–3 as RGB"

    def _kmeans(self):
        from smartiesviz.predict import maps

        k = 6
        da = maps.kmeans_map(self.embeddings(), n_clusters=k, n_init=2)
        rgb = np.stack(
            [np.array(_hex_to_rgb(_CLASS_COLOURS[int(v) % 16])) for v in da.values.ravel()]
        )
        rgb = rgb.reshape(*da.shape, 3).transpose(2, 0, 1).astype(np.float32)
        legend = self._swatches(
            "k-means classes of patch embeddings (0 = largest)", [f"class {i}" for i in range(k)]
        )
        return _georef(rgb, da), legend

    def _nir_from_rgb(self):
        from smartiesviz.predict import cross_spectral as maps

        short = [band_label(b) for b in self.scene.specs]
        nir = next(b for b in ("B08", "B8", "B5") if b in short)
        rgb = [b for b in ("B04", "B03", "B02") if b in short] or [
            b for b in ("B4", "B3", "B2") if b in short
        ]
        res = maps.cross_spectral_prediction(
            self.scene.cube.isel(band=self._band_index()),
            [nir],
            inputs=rgb,
            sensor=self.scene.sensor,
            model=self.model,
            normalize=False,
            progress=False,
        )
        da = res.prediction.isel(band=0)
        score = ""
        if res.scores:
            sc = next(iter(res.scores.values()))
            score = f"; MSE / per-tile-mean baseline = {sc['mse_ratio']:.2f}"
        lo, hi = (float(v) for v in np.nanpercentile(da.values, [2, 98]))
        return da, *self._colourbar(
            f"{nir} predicted from {'/'.join(rgb)} only (normalized){score}", "gray", lo, hi
        )

    def _probe_layer(self):
        probe = self._probe
        if probe is None:
            from smartiesviz.widgets.bandlab import _default_probe

            probe = _default_probe(self.model, self.size)
        # pooled tile features = mean of each tile's patch embeddings (reuses the embedding pass)
        emb = self.embeddings()
        cells = self.size // self.patch
        pooled = emb.coarsen(y=cells, x=cells, boundary="pad").mean()  # NaN-padded edges skipped
        d, ny, nx = pooled.shape
        rows = np.asarray(pooled.values).reshape(d, -1).T
        proba = np.asarray(probe.predict_proba(rows)).T.reshape(-1, ny, nx)
        proba = _georef(proba, emb, factor=cells)
        top = np.asarray(proba.values).argmax(0)
        classes = [str(c) for c in getattr(probe, "classes", range(proba.shape[0]))]
        used = sorted(set(top.ravel().tolist()))
        rgb = np.stack(
            [np.array(_hex_to_rgb(_CLASS_COLOURS[used.index(int(v)) % 16])) for v in top.ravel()]
        )
        rgb = rgb.reshape(*top.shape, 3).transpose(2, 0, 1).astype(np.float32)
        legend = self._swatches("probe: most likely label per tile", [classes[i] for i in used])
        return _georef(rgb, proba), legend

    def _add_bigearthnet(self) -> None:
        import ipyleaflet

        group = ipyleaflet.LayerGroup(name="BigEarthNet S2 patches")
        for i, pair in enumerate(bigearthnet_pairs()):
            s2 = open_scene(pair.s2, "sentinel2-l2a").for_model()
            rgb = display_rgb(s2.values, s2.specs).transpose(2, 0, 1)
            values, bounds = _to_wgs84(_georef(rgb, s2.cube), self.max_px)
            alpha = np.isfinite(values).all(0, keepdims=True).astype(np.float32)
            png = png_bytes(np.concatenate([np.nan_to_num(values), alpha], 0).transpose(1, 2, 0))
            name = f"BigEarthNet {getattr(pair, 'name', i)}"
            overlay = ipyleaflet.ImageOverlay(url=data_url(png), bounds=bounds, name=name)
            group.add(overlay)
            labels = ", ".join(str(v) for v in getattr(pair, "labels", []))
            self.layers[name] = MapLayer(
                name,
                bounds,
                png,
                f"BigEarthNet S2 (L2A) true colour; labels: {labels}",
                overlay,
                None,
            )
        self.map.add(group)

    # ---------------------------------------------------------------- legend helpers
    @staticmethod
    def _colourbar(title: str, cmap: str, lo: float, hi: float) -> tuple[str, str, float, float]:
        grad = data_url(png_bytes(np.linspace(0, 1, 128)[None].repeat(8, 0), cmap=cmap))
        legend = (
            f"<small>{html.escape(title)}</small><br><img src='{grad}' style='width:160px;height:10px'>"
            f"<br><small>{lo:.3g} … {hi:.3g}</small>"
        )
        return legend, cmap, lo, hi

    @staticmethod
    def _swatches(title: str, names: list[str]) -> str:
        items = "".join(
            f"<div><span style='display:inline-block;width:10px;height:10px;background:{_CLASS_COLOURS[i % 16]}'>"
            f"</span> {html.escape(n)}</div>"
            for i, n in enumerate(names)
        )
        return f"<small>{html.escape(title)}{items}</small>"

    # ---------------------------------------------------------------- interaction
    def _on_layer(self, _change: object = None) -> None:
        lay = self.layers.get(self.layer.value)
        if lay is None:
            return
        self.legend.value = (
            lay.legend
            if lay.legend.startswith("<")
            else f"<small>{html.escape(lay.legend)}</small>"
        )
        self._syncing = True  # show the layer's opacity without writing it back
        try:
            self.opacity.value = float(lay.overlay.opacity)
        finally:
            self._syncing = False
        self._ensure_legend_control()

    def _ensure_legend_control(self) -> None:
        import ipyleaflet

        if not any(getattr(c, "widget", None) is self.legend for c in self.map.controls):
            self.map.add(ipyleaflet.WidgetControl(widget=self.legend, position="bottomright"))

    def _on_opacity(self, _change: object = None) -> None:
        if self._syncing:
            return
        self.layers[self.layer.value].overlay.opacity = float(self.opacity.value)

    def _on_interaction(self, **event: Any) -> None:
        if event.get("type") == "click":
            lat, lon = event["coordinates"]
            self.select_at(lat, lon)

    def tile_at(self, lat: float, lon: float) -> int:
        """Index (row-major) of the model-size tile of the window under ``(lat, lon)``."""
        from pyproj import Transformer

        tr = Transformer.from_crs("EPSG:4326", self.scene.cube.rio.crs, always_xy=True)
        x, y = tr.transform(lon, lat)
        col, row = ~self.scene.cube.rio.transform(recalc=True) * (x, y)
        _, h, w = self.scene.values.shape
        if not (0 <= row < h and 0 <= col < w):
            raise ValueError(f"({lat:.5f}, {lon:.5f}) is outside the mapped scene window")
        return int(row // self.size) * self.cols + int(col // self.size)

    def select_at(self, lat: float, lon: float) -> int:
        """Select the tile under a point (what a map click does) and show it band by band."""
        import ipyleaflet

        index = self.tile_at(lat, lon)
        self.selected_tile = index
        self.tile_view.value = png_bytes(self.tile_mosaic(index), scale=2)
        names = " ".join(band_label(b) for b in self.scene.specs)
        self.tile_caption.value = (
            f"<small>tile {index} (row {index // self.cols}, col {index % self.cols}); top: input, visible, "
            f"then bands {html.escape(names)}; bottom: reconstruction, pasted, reconstructed bands</small>"
        )
        r, c = divmod(index, self.cols)
        box = _georef(
            np.zeros((self.size, self.size), np.float32),
            self.scene.cube.isel(
                y=slice(r * self.size, (r + 1) * self.size),
                x=slice(c * self.size, (c + 1) * self.size),
            ),
        )
        west, south, east, north = box.rio.transform_bounds("EPSG:4326")
        rect = ipyleaflet.Rectangle(
            bounds=((south, west), (north, east)), color="#e74c3c", fill=False, name="selected tile"
        )
        if getattr(self, "_rect", None) is not None and self._rect in self.map.layers:
            self.map.remove(self._rect)
        self._rect = rect
        self.map.add(rect)
        return index

    def _tile_panels(self, index: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """(top row, bottom row) of (size, size, 3) images for one tile."""
        x, rec = self.tiles[index].numpy(), self.tile_recon[index].numpy()
        vis = patch_mask_to_pixels(self.tile_visible[index], self.size, self.size, self.patch)
        comp = display_rgb(x, self.scene.specs)
        masked = comp.copy()
        masked[~vis] = 0.35
        grey = lambda a: np.repeat(a[..., None], 3, -1)  # noqa: E731
        top = [comp, masked, *[grey(stretch(b, dtype="float")) for b in x]]
        bottom = [
            display_rgb(rec, self.scene.specs, ref=x),
            display_rgb(np.where(vis[None], x, rec), self.scene.specs, ref=x),
            *[grey(stretch(r, dtype="float", ref=b)) for r, b in zip(rec, x)],
        ]
        return top, bottom

    def tile_mosaic(self, index: int) -> np.ndarray:
        """The tile's panels as one (2·size + gap, n·(size + gap), 3) image (the live view)."""
        top, bottom = self._tile_panels(index)
        s, gap = self.size, 2
        out = np.ones((2 * s + gap, len(top) * (s + gap) - gap, 3), np.float32)
        for r, row in enumerate((top, bottom)):
            for i, img in enumerate(row):
                out[r * (s + gap) : r * (s + gap) + s, i * (s + gap) : i * (s + gap) + s] = img
        return out

    # ---------------------------------------------------------------- static views
    def tile_figure(self, index: int):
        """One tile: input, visible, then every band (top); reconstruction, pasted, bands (bottom)."""
        top, bottom = self._tile_panels(index)
        names = ["input", "visible", *[band_label(b) for b in self.scene.specs]]
        fig, axes = new_figure(2, len(top), size=(1.25 * len(top), 2.9))
        for i, (a, b) in enumerate(zip(top, bottom)):
            show_image(axes[0, i], a, names[i])
            show_image(axes[1, i], b, ["reconstruction", "pasted"][i] if i < 2 else "recon")
        fig.suptitle(
            f"tile {index}: input (top) and reconstruction (bottom), band by band", fontsize=9
        )
        return fig

    def figure(self):
        """Every scene layer in lon/lat with its bounds, plus the selected tile's outline."""
        scene_layers = [lay for lay in self.layers.values() if lay.data is not None]
        fig, axes = new_figure(
            1, max(len(scene_layers), 1), size=(3.2 * max(len(scene_layers), 1), 3.4)
        )
        from io import BytesIO

        from PIL import Image

        for ax, lay in zip(axes[0], scene_layers):
            (s, w), (n, e) = lay.bounds
            ax.imshow(
                np.asarray(Image.open(BytesIO(lay.png))),
                extent=(w, e, s, n),
                interpolation="nearest",
            )
            ax.set_title(lay.name, fontsize=9)
            ax.tick_params(labelsize=6)
            ax.locator_params(nbins=3)
            ax.set_aspect(1 / np.cos(np.deg2rad((s + n) / 2)))
        if self.selected_tile is not None and getattr(self, "_rect", None) is not None:
            (s, w), (n, e) = self._rect.bounds
            for ax in axes[0]:
                ax.plot([w, e, e, w, w], [s, s, n, n, s], color="#e74c3c", lw=1)
        fig.suptitle(f"{self.scene.name}: map layers (WGS84)", fontsize=10)
        return fig
