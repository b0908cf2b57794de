"""The one renderer: arrays to display images, colour maps, PNG bytes and data URLs.

numpy and PIL only (no plotting library; the sensor registry for band roles), so the core, the map layers and the widgets all draw
with the same code:

* :func:`stretch`: linear percentile stretch (per channel, optionally against a reference image);
* :func:`rgb_channels` / :func:`display_rgb`: the display composite of a ``(C, H, W)`` array given
  its band names, as the sensor registry declares it: true colour for optical, (VV, VH, VV − VH)
  for SAR;
* :func:`colorize`: a scalar ``(H, W)`` array through a colour map (NaN transparent);
* :func:`to_rgba8`, :func:`png_bytes`, :func:`data_url`: encoding for ``ipywidgets.Image`` and maps.

Cube-level composites with the sensor registry (``true_color(cube)`` …) live in
:mod:`smartiesviz.data.display` and call :func:`stretch` from here.
"""

from __future__ import annotations

import base64
import functools
import io
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from PIL import Image

from smartiesviz.spectrum.sensors import RoleError, Sensor, get_sensor, list_sensors

Dtype = Literal["uint8", "float"]

#: Colour maps available without matplotlib: 17 evenly spaced anchors (sampled from matplotlib's
#: maps of the same names), linearly interpolated.
_ANCHORS: dict[str, str] = {
    "viridis": "440154 48186a 472d7b 424086 3b528b 33638d 2c728e 26828e 21918c 1fa088 28ae80 "
    "3fbc73 5ec962 84d44b addc30 d8e219 fde725",
    "magma": "000004 0a0822 1d1147 36106b 51127c 6a1c81 832681 9c2e7f b73779 d0416f e75263 "
    "f56b5c fc8961 fea772 fec488 fde2a3 fcfdbf",
    "RdBu_r": "053061 175290 2a71b2 3f8ec0 6bacd1 9bc9e0 c2ddec e0ecf3 f7f6f6 fbe5d8 fbccb4 "
    "f5aa89 e48066 d05548 ba2832 930e26 67001f",
    "gray": "000000 ffffff",
}
COLORMAPS = tuple(_ANCHORS)

#: Composites of the sensor registry tried in order for a display image (each sensor's roles).
_DISPLAY = ("true_colour", "sar")


def stretch(
    x: np.ndarray,
    percentiles: tuple[float, float] = (2.0, 98.0),
    dtype: Dtype = "uint8",
    per_channel: bool = True,
    ref: np.ndarray | None = None,
) -> np.ndarray:
    """Linear stretch of ``(H, W, C)`` (or ``(H, W)``) values between two percentiles.

    Args:
        x: image, channels last; NaN pixels are ignored and drawn black.
        percentiles: low/high percentiles mapped to 0 and 1 (255).
        dtype: ``"uint8"`` (0–255) or ``"float"`` (float32 0–1).
        per_channel: stretch each channel on its own (``False``: one range for all).
        ref: image of ``x``'s layout whose percentiles set the range (default ``x`` itself), so a
            reconstruction is shown like its input.

    Returns:
        Array of ``x``'s shape.
    """
    if dtype not in ("uint8", "float"):
        raise ValueError(f"dtype={dtype!r}; expected 'uint8' or 'float'")
    a = np.asarray(x, dtype=np.float32)
    base = a if ref is None else np.asarray(ref, dtype=np.float32)
    if base.shape[-1:] != a.shape[-1:] and a.ndim == 3:
        raise ValueError(f"ref has shape {base.shape}; expected channels like x {a.shape}")
    squeeze = a.ndim == 2
    if squeeze:
        a, base = a[..., None], base[..., None]
    finite = np.isfinite(a)
    out = np.zeros_like(a)
    groups = [[i] for i in range(a.shape[-1])] if per_channel else [list(range(a.shape[-1]))]
    for idx in groups:
        vals = base[..., idx][np.isfinite(base[..., idx])]
        if vals.size == 0:
            continue
        lo, hi = np.percentile(vals, percentiles)
        span = hi - lo if hi > lo else 1e-6
        out[..., idx] = np.clip((a[..., idx] - lo) / span, 0.0, 1.0)
    out[~finite] = 0.0
    if squeeze:
        out = out[..., 0]
    if dtype == "uint8":
        return np.round(out * 255).astype(np.uint8)
    return out.astype(np.float32)


def band_label(spec: Any) -> str:
    """Short label of a band spec: ``"sentinel2-l1c/B04"`` → ``"B04"``, ``(600, 700)`` → ``"600-700nm"``."""
    if isinstance(spec, tuple):
        return f"{spec[0]:g}-{spec[1]:g}nm"
    return str(spec).split("/")[-1]


def _sensors_for(bands: Sequence[Any], sensor: str | Sensor | None) -> list[Sensor]:
    """``sensor`` if given; else the sensors named by qualified specs (``"landsat8/B4"``), then
    every registered sensor in registration order (for bare names such as ``"B04"``)."""
    if sensor is not None:
        return [get_sensor(sensor)]
    found = []
    for name in dict.fromkeys(b.split("/")[0] for b in bands if isinstance(b, str) and "/" in b):
        try:
            found.append(get_sensor(name))
        except KeyError:
            continue  # a spec that names no sensor: resolution reports it elsewhere
    return list({s.name: s for s in [*found, *map(get_sensor, list_sensors())]}.values())


def _composite_terms(bands: Sequence[Any], sensor: str | Sensor | None = None) -> list[Any]:
    """Channel positions of the display composite: the first sensor's true colour (or SAR
    composite) whose bands are all present; an ``int`` per band, a pair for a difference."""
    short = [band_label(b) for b in bands]
    for s in _sensors_for(bands, sensor):
        for name in _DISPLAY:
            try:
                return s.positions(short, s.composite(name).channels)
            except RoleError:
                continue
    return [0, min(1, len(short) - 1), min(2, len(short) - 1)]


def rgb_channels(bands: Sequence[Any], sensor: str | Sensor | None = None) -> list[int]:
    """Channels of a display composite, read from the sensor registry's composites: true colour
    for optical bands, ``(VV, VH, -1)`` for SAR (``-1``: the VV − VH difference), else the first
    three channels.

    Args:
        bands: band specs or names of the channels (``"sentinel2-l1c/B04"``, ``"B04"``, ``"red"``).
        sensor: the sensor they belong to (default: the one a qualified spec names, else the
            first registered sensor whose composite they hold).
    """
    return [t if isinstance(t, int) else -1 for t in _composite_terms(bands, sensor)]


def display_rgb(
    x: np.ndarray, bands: Sequence[Any], ref: np.ndarray | None = None,
    sensor: str | Sensor | None = None,
) -> np.ndarray:  # fmt: skip
    """``(C, H, W)`` values (any units) → ``(H, W, 3)`` float32 display image in ``[0, 1]``.

    Args:
        x: the image, channels first.
        bands: the band specs or names of its channels (they choose the composite).
        ref: an image of the same layout that sets the stretch (e.g. the input of a
            reconstruction), default ``x``.
        sensor: the sensor of ``bands`` (see :func:`rgb_channels`).
    """
    terms = _composite_terms(bands, sensor)

    def pick(a: np.ndarray) -> np.ndarray:
        return np.stack([a[t] if isinstance(t, int) else a[t[0]] - a[t[1]] for t in terms], -1)

    img = pick(np.asarray(x, dtype=np.float32))
    base = None if ref is None else pick(np.asarray(ref, dtype=np.float32))
    return stretch(img, dtype="float", ref=base)


def colormap(name: str, n: int = 256) -> np.ndarray:
    """``(n, 3)`` float32 RGB table of a colour map: one of :data:`COLORMAPS` (built in), or any
    matplotlib colour map name when matplotlib is installed."""
    if name not in _ANCHORS:
        try:
            import matplotlib  # optional: only for colour maps beyond the built-in ones
        except ImportError:
            matplotlib = None
        if matplotlib is None or name not in matplotlib.colormaps:
            raise ValueError(
                f"unknown colour map {name!r}; available: {', '.join(COLORMAPS)} (and "
                "matplotlib's colour maps when matplotlib is installed)"
            )
        return matplotlib.colormaps[name](np.linspace(0.0, 1.0, n))[:, :3].astype(np.float32)
    anchors = np.array(
        [[int(h[i : i + 2], 16) for i in (0, 2, 4)] for h in _ANCHORS[name].split()], np.float32
    ) / 255.0
    pos = np.linspace(0.0, 1.0, len(anchors))
    t = np.linspace(0.0, 1.0, n)
    return np.stack([np.interp(t, pos, anchors[:, c]) for c in range(3)], -1).astype(np.float32)


@functools.lru_cache(maxsize=16)
def _rgba8_table(name: str) -> np.ndarray:
    """``(257, 4)`` uint8 RGBA table: 256 colours, then transparent (for NaN)."""
    table = np.zeros((257, 4), np.uint8)
    table[:256, :3] = np.round(colormap(name) * 255).astype(np.uint8)
    table[:256, 3] = 255
    return table


def _levels(a: np.ndarray, vmin: float | None, vmax: float | None) -> np.ndarray:
    """``(H, W)`` scalars → colour-table indices 0–255, 256 where not finite."""
    finite = np.isfinite(a)
    lo = float(np.min(a[finite])) if vmin is None and finite.any() else float(vmin or 0.0)
    hi = float(np.max(a[finite])) if vmax is None and finite.any() else float(vmax or 1.0)
    scaled = (a - np.float32(lo)) * np.float32(255.0 / max(hi - lo, 1e-12))
    np.clip(scaled, 0.0, 255.0, out=scaled)
    scaled[~finite] = 0.0  # NaN cannot be cast; those pixels get index 256 below
    idx = np.rint(scaled, out=scaled).astype(np.int16)
    idx[~finite] = 256
    return idx


def colorize(
    a: np.ndarray, cmap: str = "viridis", vmin: float | None = None, vmax: float | None = None
) -> np.ndarray:
    """``(H, W)`` scalars → ``(H, W, 4)`` float32 RGBA in ``[0, 1]``; NaN is transparent.

    ``vmin``/``vmax`` default to the finite minimum and maximum.
    """
    a = np.asarray(a, dtype=np.float32)
    return _rgba8_table(cmap)[_levels(a, vmin, vmax)].astype(np.float32) / 255.0


def to_rgba8(
    a: np.ndarray, cmap: str = "viridis", vmin: float | None = None, vmax: float | None = None
) -> np.ndarray:
    """``(H, W)`` scalars (colour-mapped) or ``(H, W, 3|4)`` in ``[0, 1]`` → ``(H, W, 4)`` uint8;
    pixels with a NaN colour (no data) are transparent."""
    a = np.asarray(a, dtype=np.float32)
    if a.ndim == 2:
        return _rgba8_table(cmap)[_levels(a, vmin, vmax)]
    if a.ndim == 3 and a.shape[-1] in (3, 4):
        rgba = a if a.shape[-1] == 4 else np.concatenate([a, np.ones_like(a[..., :1])], -1)
    else:
        raise ValueError(f"expected (H, W) or (H, W, 3|4); got shape {a.shape}")
    out = (np.clip(np.nan_to_num(rgba), 0, 1) * 255).astype(np.uint8)
    out[~np.isfinite(a[..., :3]).all(-1), 3] = 0
    return out


def png_bytes(
    a: np.ndarray,
    cmap: str = "viridis",
    vmin: float | None = None,
    vmax: float | None = None,
    scale: int = 1,
) -> bytes:
    """Encode an array as PNG (see :func:`to_rgba8`), nearest-neighbour upscaled by ``scale``."""
    rgba = to_rgba8(a, cmap, vmin, vmax)
    if scale > 1:
        rgba = rgba.repeat(scale, 0).repeat(scale, 1)
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def data_url(png: bytes) -> str:
    """``data:image/png;base64,...`` URL of PNG bytes (for HTML and map overlays)."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


#: Brightness of the visible patches drawn next to a reconstruction (they show the input).
VISIBLE_DIM = 0.75


def outline_patches(
    rgb: np.ndarray, visible: np.ndarray, patch: int, color: Sequence[float] = (1.0, 1.0, 1.0),
    dim: float = VISIBLE_DIM,
) -> np.ndarray:
    """Mark the visible patches of a reconstruction: dimmed, with a one-pixel outline.

    Args:
        rgb: ``(H, W, 3)`` display image in ``[0, 1]``.
        visible: ``(H/patch, W/patch)`` bool grid, True where the model saw the input.
        patch: patch side in pixels.
        color: outline colour.
        dim: brightness factor of visible patches (they show the input, not a reconstruction).

    Returns:
        A new ``(H, W, 3)`` float32 image.
    """
    out = np.array(rgb, dtype=np.float32, copy=True)
    vis = np.kron(np.asarray(visible, bool), np.ones((patch, patch), bool))
    out[vis] *= dim
    edge = np.zeros_like(vis)
    rows, cols = np.nonzero(np.asarray(visible, bool))
    for r, c in zip(rows, cols):
        y0, x0 = r * patch, c * patch
        edge[y0, x0 : x0 + patch] = edge[y0 + patch - 1, x0 : x0 + patch] = True
        edge[y0 : y0 + patch, x0] = edge[y0 : y0 + patch, x0 + patch - 1] = True
    out[edge] = np.asarray(color, np.float32)
    return out
