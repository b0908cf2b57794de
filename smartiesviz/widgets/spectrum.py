"""SpectrumExplorer: the electromagnetic spectrum, the 17 learned layers and each sensor's bands.

A log-wavelength axis broken into three segments (optical, thermal infrared, microwave) so the
C-band at ~5.5e7 nm fits beside the visible; learned projection layers as bars; each sensor's
bands as a row underneath with a line to every layer that serves it (line opacity = weight, paper
Fig. 1b/3); a custom band with its interpolation weights under every scheme (paper Fig. 4).
Live view: HoloViews + Bokeh (hover shows names and nm); static twin: :meth:`figure`.

Layers are labelled ``L0`` … ``L16`` by their index in the released checkpoint (the facts
table's order); the paper's Fig. 1b numbers them ``f1`` … ``f17`` in a different order.
Sensor bands are drawn at the instruments' published centre ± bandwidth/2; the lines come from
the release's ranges, which are about twice as wide.
"""

from __future__ import annotations

import functools
import html
import math
from dataclasses import dataclass

import ipywidgets as W
import numpy as np

from smartiesviz import spectrum
from smartiesviz.spectrum import SPECTRAL_RANGES, get_sensor, layer_weights
from smartiesviz.spectrum.resolve import SCHEMES, Scheme, check_scheme
from smartiesviz.widgets.figures import static_figure
from smartiesviz.widgets.panels import WidgetBase

# Broken log axis: knots in log10(nm) → display x. Segments: optical 330–2600 nm, thermal
# 7.5–14.5 µm, microwave 5.0–6.2 cm; gaps between them are compressed, never hidden, so any
# wavelength still has a position.
_KNOTS_LOG = np.log10([1.0, 330.0, 2600.0, 7500.0, 14500.0, 5.0e7, 6.2e7, 1.0e12])
_KNOTS_X = np.array([-0.08, 0.0, 0.60, 0.64, 0.80, 0.84, 1.0, 1.08])
SEGMENTS = ((0.0, 0.60), (0.64, 0.80), (0.84, 1.0))

#: Named regions (nm) drawn as a strip on top.
REGIONS = (
    ("visible", 380.0, 700.0, "#c9b3f2"),
    ("NIR", 700.0, 1300.0, "#f2b8b3"),
    ("SWIR", 1300.0, 2600.0, "#f2d6a2"),
    ("thermal IR", 7500.0, 14500.0, "#e6a27a"),
    ("microwave (C-band)", 5.0e7, 6.2e7, "#a9d3e8"),
)
_RECT_TIPS = [("name", "@name"), ("kind", "@kind"), ("from", "@min"), ("to", "@max")]
_TICKS_NM = (400, 500, 700, 1000, 1500, 2000, 8000, 10000, 12000, 5.2e7, 5.55e7, 6.0e7)


def wavelength_to_x(nm: float | np.ndarray) -> np.ndarray:
    """Wavelength in nm → position on the broken log axis (0–1 covers the three segments)."""
    return np.interp(np.log10(np.maximum(np.asarray(nm, dtype=float), 1e-3)), _KNOTS_LOG, _KNOTS_X)


def format_nm(nm: float) -> str:
    """Readable wavelength: nm below 1 µm·10, µm in the thermal, cm for microwaves."""
    if nm >= 1e6:
        return f"{nm / 1e7:.2f} cm"
    if nm >= 5000:
        return f"{nm / 1000:.1f} µm"
    return f"{nm:.0f} nm"


@dataclass(frozen=True)
class _Bar:
    key: str
    label: str
    min_nm: float
    max_nm: float
    row: float  # y position (rows grow downward)

    @property
    def x0(self) -> float:
        return float(wavelength_to_x(self.min_nm))

    @property
    def x1(self) -> float:
        # keep very narrow bands (C-band: 1e6 nm of 5.5e7) visible
        return max(float(wavelength_to_x(self.max_nm)), self.x0 + 0.006)

    @property
    def xc(self) -> float:
        return (self.x0 + self.x1) / 2


#: The sensor dropdown's entry for "no sensor chosen": every sensor drawn, none highlighted.
ALL_SENSORS = "(all)"


@functools.lru_cache(maxsize=4096)
def _weights(spec: str | tuple[float, float], scheme: Scheme) -> tuple[float, ...] | str:
    """Layer weights as a tuple, or the reason the band is refused."""
    try:
        return tuple(float(v) for v in layer_weights(spec, scheme=scheme))
    except (ValueError, KeyError) as exc:
        return str(exc).strip("'\"")


def _layer_bars() -> list[_Bar]:
    """Learned layers, packed into lanes so overlapping ranges do not hide each other."""
    learned = sorted(
        (r for r in SPECTRAL_RANGES.values() if r.layer is not None), key=lambda r: r.layer
    )
    lane_end: list[float] = []
    bars = []
    for r in sorted(learned, key=lambda r: (wavelength_to_x(r.min_nm), r.layer)):
        probe = _Bar(r.name, "", r.min_nm, r.max_nm, 0)
        lane = next((i for i, end in enumerate(lane_end) if probe.x0 > end + 0.004), len(lane_end))
        if lane == len(lane_end):
            lane_end.append(probe.x1)
        lane_end[lane] = probe.x1
        bars.append(_Bar(r.name, f"L{r.layer} {r.name}", r.min_nm, r.max_nm, 1.0 + 0.55 * lane))
    return sorted(bars, key=lambda b: _layer_index(b.key))


def _layer_index(name: str) -> int:
    return int(SPECTRAL_RANGES[name].layer)


def _sensor_names() -> list[str]:
    return [str(getattr(s, "name", s)) for s in spectrum.list_sensors()]


class SpectrumExplorer(WidgetBase):
    """The spectrum, the learned layers and every sensor's mapping onto them.

    Args:
        sensor: sensor to highlight at start (``None``: all equally).
        custom_band: ``(min_nm, max_nm)`` of the custom band at start.
        scheme: interpolation scheme used for the lines of the custom band.
        sensors: sensors shown as rows (default: every registered sensor).
        live: build the HoloViews/Bokeh live view when running inside a Jupyter kernel.

    Attributes (controls): ``sensor`` (Dropdown), ``custom_min``/``custom_max`` (FloatText, nm),
    ``scheme`` (Dropdown). State: ``custom_weights`` (scheme → (17,) array or refusal text),
    ``highlighted_layers`` (layers serving the chosen sensor).
    """

    def __init__(
        self,
        sensor: str | None = None,
        custom_band: tuple[float, float] = (1100.0, 1250.0),
        scheme: Scheme = "inverse-distance",
        sensors: list[str] | None = None,
        live: bool = True,
    ) -> None:
        super().__init__()
        self.schemes = SCHEMES
        check_scheme(scheme)
        self.sensors = list(sensors) if sensors is not None else _sensor_names()
        self.layers = _layer_bars()
        self.sensor = W.Dropdown(
            options=[ALL_SENSORS, *self.sensors], value=sensor or ALL_SENSORS, description="sensor"
        )
        self.custom_min = W.FloatText(value=float(custom_band[0]), description="band min nm")
        self.custom_max = W.FloatText(value=float(custom_band[1]), description="band max nm")
        self.scheme = W.Dropdown(options=list(self.schemes), value=scheme, description="scheme")
        self.weights_html = W.HTML()
        self.live = W.Output()
        self._live_enabled = live and _in_kernel()
        self._chrome(
            [W.HBox([self.sensor, self.scheme]), W.HBox([self.custom_min, self.custom_max])],
            [self.weights_html, self.live],
            "Spectrum explorer: learned layers and sensor bands",
        )
        self.custom_weights: dict[str, np.ndarray | str] = {}
        self.highlighted_layers: set[int] = set()
        self.refused: str = ""
        for control in (self.sensor, self.custom_min, self.custom_max, self.scheme):
            control.observe(self._guarded(self._update), names="value")
        self._guarded(self._update)()

    # ---------------------------------------------------------------- state
    @property
    def custom_band(self) -> tuple[float, float]:
        return (float(self.custom_min.value), float(self.custom_max.value))

    def sensor_bands(self, sensor: str) -> list[_Bar]:
        bars = []
        for b in get_sensor(sensor).bands:
            # drawn at the instrument's published centre ± bandwidth/2 where known
            lo, hi = getattr(b, "instrument_range", (b.min_nm, b.max_nm))
            bars.append(_Bar(f"{sensor}/{b.name}", str(b.name), float(lo), float(hi), 0))
        return bars

    def _update(self, _change: object = None) -> None:
        lo, hi = self.custom_band
        if not (math.isfinite(lo) and math.isfinite(hi)) or lo <= 0 or hi <= lo:
            self.custom_weights = {}
            self.refused = ""
            raise ValueError(
                f"custom band ({lo:g}, {hi:g}) nm is not a wavelength interval: "
                "expected 0 < min_nm < max_nm"
            )
        self.custom_weights = {}
        for s in self.schemes:
            w = _weights((lo, hi), s)
            self.custom_weights[s] = w if isinstance(w, str) else np.asarray(w)
        chosen = self.custom_weights[self.scheme.value]
        self.refused = chosen if isinstance(chosen, str) else ""
        self.highlighted_layers = set()
        if self.sensor.value != ALL_SENSORS:
            for band in self.sensor_bands(self.sensor.value):
                w = _weights(band.key, self.scheme.value)
                if not isinstance(w, str):
                    self.highlighted_layers |= {i for i, v in enumerate(w) if v > 0}
        self.weights_html.value = self._weights_table()
        if self._live_enabled:
            from IPython.display import display  # lazy: IPython only for the live view

            _load_hv_extension()
            self.live.clear_output(wait=True)
            with self.live:
                display(self.hv_plot())

    def _weights_table(self) -> str:
        names = {r.layer: r.name for r in SPECTRAL_RANGES.values() if r.layer is not None}
        lo, hi = self.custom_band
        rows = []
        for s, w in self.custom_weights.items():
            if isinstance(w, str):
                cell = f'<span style="color:#b03a2e">refused: {html.escape(w)}</span>'
            else:
                parts = [f"L{i} {names[i]}: {v:.3f}" for i, v in enumerate(w) if v > 0]
                cell = html.escape(", ".join(parts))
            rows.append(f"<tr><td><b>{s}</b></td><td>{cell}</td></tr>")
        return (
            f"<div>custom band {format_nm(lo)} – {format_nm(hi)} "
            f"(centre {format_nm((lo + hi) / 2)})</div><table>{''.join(rows)}</table>"
        )

    # ---------------------------------------------------------------- geometry
    def _rows(self) -> tuple[list[tuple[str, list[_Bar]]], float, float]:
        top = max(b.row for b in self.layers) + 1.2
        rows = []
        for i, s in enumerate(self.sensors):
            y = top + 0.8 * i
            rows.append(
                (s, [_Bar(b.key, b.label, b.min_nm, b.max_nm, y) for b in self.sensor_bands(s)])
            )
        custom_y = top + 0.8 * len(self.sensors) + 0.3
        return rows, top, custom_y

    def _links(self) -> list[tuple[float, float, float, float, float, str]]:
        """(x_band, y_band, x_layer, y_layer, weight, owner) for every band → layer line."""
        by_index = {_layer_index(b.key): b for b in self.layers}
        rows, _, custom_y = self._rows()
        links = []
        for sensor, bars in rows:
            for bar in bars:
                w = _weights(bar.key, self.scheme.value)
                if isinstance(w, str):
                    continue
                for i, v in enumerate(w):
                    if v > 0:
                        lay = by_index[i]
                        links.append((bar.xc, bar.row - 0.15, lay.xc, lay.row + 0.15, v, sensor))
        w = self.custom_weights.get(self.scheme.value)
        if w is not None and not isinstance(w, str):
            cx = float(wavelength_to_x(sum(self.custom_band) / 2))
            for i, v in enumerate(w):
                if v > 0:
                    lay = by_index[i]
                    links.append((cx, custom_y - 0.15, lay.xc, lay.row + 0.15, float(v), "custom"))
        return links

    # ---------------------------------------------------------------- static view
    def figure(self):
        """The current state as a matplotlib Figure: spectrum diagram + custom-band weights."""
        rows, top, custom_y = self._rows()
        fig = static_figure(figsize=(12, 3.2 + 0.32 * len(rows) + 2.4), layout="constrained")
        ax, axw = fig.subplots(2, 1, height_ratios=[3.2 + 0.32 * len(rows), 2.2])
        chosen = self.sensor.value
        _draw_regions(ax)
        self._draw_layers(ax)
        self._draw_links(ax, chosen)
        self._draw_sensor_rows(ax, rows, chosen)
        self._draw_custom_band(ax)
        _label_axes(ax, rows, top, custom_y, chosen)
        self._weights_axes(axw)
        return fig

    def _custom_bar(self) -> _Bar:
        """The custom band as a bar on its own row below the sensors."""
        lo, hi = self.custom_band
        return _Bar("custom band", "custom band", lo, hi, self._rows()[2])

    def _draw_layers(self, ax) -> None:
        """Learned layers as bars, red where they serve the chosen sensor."""
        for b in self.layers:
            lit = _layer_index(b.key) in self.highlighted_layers
            ax.add_patch(_bar_patch(b, color="#c0392b" if lit else "#34495e", alpha=0.85))
            ax.text(b.x1 + 0.003, b.row, b.label.split()[0], fontsize=6, va="center")

    def _draw_links(self, ax, chosen: str) -> None:
        """Band → layer lines; opacity = weight, faded unless they belong to ``chosen``."""
        for x0, y0, x1, y1, v, owner in self._links():
            on = chosen == ALL_SENSORS or owner in (chosen, "custom")
            colour = (
                "#e67e22"
                if owner == "custom"
                else ("#c0392b" if chosen != ALL_SENSORS and on else "#7f8c8d")
            )
            ax.plot(
                [x0, x1], [y0, y1], color=colour, alpha=(0.15 + 0.8 * v) if on else 0.06, lw=0.9
            )

    def _draw_sensor_rows(self, ax, rows: list[tuple[str, list[_Bar]]], chosen: str) -> None:
        """One row of band bars per sensor; refused bands hatched, the chosen sensor's named."""
        for sensor, bars in rows:
            on = chosen in (ALL_SENSORS, sensor)
            for b in bars:
                refused = isinstance(_weights(b.key, self.scheme.value), str)
                ax.add_patch(
                    _bar_patch(
                        b,
                        facecolor="none" if refused else "#2e86c1",
                        edgecolor="#2e86c1",
                        alpha=0.9 if on else 0.25,
                        hatch="///" if refused else None,
                    )
                )
                if sensor == chosen:  # name the chosen sensor's bands
                    ax.text(
                        b.xc,
                        b.row - 0.2,
                        b.label,
                        fontsize=5.5,
                        ha="center",
                        va="bottom",
                        rotation=90,
                    )

    def _draw_custom_band(self, ax) -> None:
        """The custom band's bar, with the refusal reason beside it if refused."""
        bar = self._custom_bar()
        colour = "#b03a2e" if self.refused else "#e67e22"
        ax.add_patch(_bar_patch(bar, color=colour, alpha=0.9))
        if self.refused:
            ax.text(
                bar.x1 + 0.005,
                bar.row,
                "refused: " + self.refused[:90],
                fontsize=7,
                color="#b03a2e",
                va="center",
            )

    def _weights_axes(self, ax) -> None:
        n = len(self.layers)
        ok = {s: w for s, w in self.custom_weights.items() if not isinstance(w, str)}
        width = 0.8 / max(len(self.schemes), 1)
        for k, s in enumerate(self.schemes):
            w = ok.get(s)
            if w is not None:
                ax.bar(np.arange(n) + (k - (len(self.schemes) - 1) / 2) * width, w, width, label=s)
        ax.set_xticks(np.arange(n), [f"L{i}" for i in range(n)], fontsize=7)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("weight")
        lo, hi = self.custom_band
        refused = [s for s, w in self.custom_weights.items() if isinstance(w, str)]
        title = f"custom band {format_nm(lo)}–{format_nm(hi)}: layer weights per scheme"
        if refused:
            title += f" (refused by {', '.join(refused)})"
        ax.set_title(title, fontsize=9)
        if ok:
            ax.legend(fontsize=7, ncols=len(ok))

    # ---------------------------------------------------------------- live view
    def hv_plot(self):
        """The live view as a HoloViews overlay (Bokeh backend; hover shows names and nm)."""
        import holoviews as hv  # lazy: HoloViews/Bokeh only for the live view
        import holoviews.plotting.bokeh  # noqa: F401 - registers the Bokeh options

        rows, _, custom_y = self._rows()
        chosen = self.sensor.value
        hover = {"tools": ["hover"], "hover_tooltips": _RECT_TIPS}
        regions = hv.Rectangles(_region_rects(), vdims=_RECT_VDIMS).opts(
            color="#d6eaf8", line_alpha=0, **hover
        )
        layers = hv.Rectangles(
            _bar_rects(self.layers, lambda b: (b.label, "learned layer")), vdims=_RECT_VDIMS
        ).opts(color="#34495e", **hover)
        bands = []
        for sensor, bars in rows:
            bands += _bar_rects(
                bars, lambda b, s=sensor: (b.key, "highlighted" if s == chosen else "band")
            )
        band_el = hv.Rectangles(bands, vdims=_RECT_VDIMS).opts(
            color="kind", cmap={"band": "#2e86c1", "highlighted": "#c0392b"}, **hover
        )
        custom_name = "custom band" + (f" (refused: {self.refused})" if self.refused else "")
        custom = hv.Rectangles(
            _bar_rects([self._custom_bar()], lambda b: (custom_name, "custom")), vdims=_RECT_VDIMS
        ).opts(color="#b03a2e" if self.refused else "#e67e22", **hover)
        yticks = [(-(bars[0].row), s) for s, bars in rows if bars] + [(-custom_y, "custom band")]
        xticks = [(float(wavelength_to_x(t)), format_nm(t)) for t in _TICKS_NM]
        return (regions * self._hv_links(hv, chosen) * layers * band_el * custom).opts(
            width=1000,
            height=int(260 + 28 * len(rows)),
            xticks=xticks,
            yticks=yticks,
            xlabel="wavelength (broken log axis)",
            ylabel="",
            title="SMARTIES spectrum-aware layers",
        )

    def _hv_links(self, hv, chosen: str):
        """Band → layer lines as HoloViews Segments (y flipped: rows grow downward)."""
        links = [
            (
                x0,
                -y0,
                x1,
                -y1,
                v,
                "custom" if o == "custom" else ("highlighted" if o == chosen else "link"),
            )
            for x0, y0, x1, y1, v, o in self._links()
        ]
        return hv.Segments(links, vdims=["weight", "owner"]).opts(
            color="owner",
            cmap={"link": "#95a5a6", "highlighted": "#c0392b", "custom": "#e67e22"},
            alpha=0.6,
            tools=["hover"],
            hover_tooltips=[("weight", "@weight{0.000}"), ("link", "@owner")],
        )


_RECT_VDIMS = ["name", "kind", "min", "max"]


def _bar_patch(b: _Bar, **style):
    """A matplotlib Rectangle spanning ``b`` and 0.3 rows around its row."""
    from matplotlib.patches import Rectangle  # lazy: matplotlib only for static figures

    return Rectangle((b.x0, b.row - 0.15), b.x1 - b.x0, 0.3, **style)


def _draw_regions(ax) -> None:
    """The named-region strip on top and the grey backdrop of the three axis segments."""
    from matplotlib.patches import Rectangle  # lazy: matplotlib only for static figures

    for name, lo, hi, colour in REGIONS:
        x0, x1 = wavelength_to_x(lo), wavelength_to_x(hi)
        ax.add_patch(Rectangle((x0, -0.2), x1 - x0, 0.7, color=colour, alpha=0.8, lw=0))
        ax.text((x0 + x1) / 2, 0.15, name, ha="center", va="center", fontsize=8)
    for s0, s1 in SEGMENTS:
        ax.axvspan(s0, s1, ymin=0, ymax=1, color="#f7f7f7", zorder=-2)


def _label_axes(ax, rows, top: float, custom_y: float, chosen: str) -> None:
    """Row names (chosen sensor in bold), wavelength ticks, axis breaks and title."""
    labels = [("layers", 1.0 + (top - 2.2) / 2)] + [
        (s, bars[0].row if bars else 0) for s, bars in rows
    ]
    labels.append(("custom band", custom_y))
    ax.set_yticks([y for _, y in labels], [t for t, _ in labels], fontsize=8)
    for tick, (t, _) in zip(ax.get_yticklabels(), labels):
        if t == chosen:
            tick.set_fontweight("bold")
    ax.set_ylim(custom_y + 0.6, -0.3)
    ax.set_xlim(-0.01, 1.01)
    ax.set_xticks(
        wavelength_to_x(np.array(_TICKS_NM)), [format_nm(t) for t in _TICKS_NM], fontsize=7
    )
    for (_, e0), (s1, _) in zip(SEGMENTS[:-1], SEGMENTS[1:]):
        ax.axvline((e0 + s1) / 2, color="k", ls=(0, (2, 2)), lw=0.8)
        ax.text((e0 + s1) / 2, custom_y + 0.55, "//", ha="center", fontsize=9)
    ax.set_xlabel("wavelength (broken log axis: optical | thermal IR | microwave)")
    ax.set_title("SMARTIES spectrum-aware projection layers and sensor bands", fontsize=10)


def _bar_rects(bars: list[_Bar], extra) -> list[tuple]:
    """HoloViews rectangles (x0, y0, x1, y1, name, kind, min, max) for bars; y flipped."""
    return [
        (
            b.x0,
            -(b.row + 0.15),
            b.x1,
            -(b.row - 0.15),
            *extra(b),
            format_nm(b.min_nm),
            format_nm(b.max_nm),
        )
        for b in bars
    ]


def _region_rects() -> list[tuple]:
    """HoloViews rectangles for the named regions strip."""
    return [
        (
            wavelength_to_x(lo),
            -0.5,
            wavelength_to_x(hi),
            0.2,
            name,
            "region",
            format_nm(lo),
            format_nm(hi),
        )
        for name, lo, hi, _ in REGIONS
    ]


@functools.lru_cache(maxsize=1)
def _load_hv_extension() -> None:
    import holoviews as hv  # lazy: HoloViews/Bokeh only for the live view

    # inline=True: ship BokehJS with the notebook; the CDN default renders nothing offline
    hv.extension("bokeh", inline=True)


def _in_kernel() -> bool:
    try:
        from IPython import get_ipython  # optional: only inside IPython

        ip = get_ipython()
        return ip is not None and getattr(ip, "kernel", None) is not None
    except ImportError:
        return False
