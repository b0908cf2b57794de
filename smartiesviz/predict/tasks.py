"""Class maps from the released task heads: a scene of any size → class and probability rasters.

``predict_to_file(scene, "map.tif", sensor, checkpoint)`` runs a task file (a released fine-tuned
or linear-probe file, by Hub name or path, or a :class:`~smartiesviz.models.heads.TaskModel`)
over a scene in sliding windows of the head's input size (``img_size``: 224 px for the release)
and writes two GeoTIFFs on the scene's **patch grid** (the scene's transform scaled by the patch
size ``S``, in its CRS, as ``embed`` writes):

* ``map.tif``: the class band, ``uint8``, with a colour table, class names in its tags
  (``CLASS_<i>``, ``classes``) and nodata 255 (no valid data under the cell);
* ``map.probabilities.tif`` (:func:`probabilities_path`): one ``float32`` band per class, band
  descriptions = class names, nodata NaN. Single-label and segmentation heads give softmax
  probabilities (summing to 1); multi-label heads (BigEarthNet, the release's ``sigmoid``) give
  one independent probability per label. The class band is their ``argmax``: for multi-label
  heads the most probable label (a label set is ``probabilities >= 0.5``).

GeoTIFF keeps a colour table only on single-band files, hence two files. Both carry provenance
tags (checkpoint and sha256, task, head, reducer, sensors, window and overlap) and appear only
when complete (:mod:`smartiesviz.outputs`).

How windows become a map:

* **classification heads** give one label vector per window. Windows are spread evenly over the
  scene, patch-aligned and inside it (at most ``S - 1`` mirrored pixels at the far edges), at most
  ``img_size - overlap`` apart; each cell of the output takes the bilinear interpolation of the
  probabilities of the four nearest window centres (clamped beyond the outermost centres). The
  map is continuous, so there are no window seams, and with the default ``overlap=0`` the encoder
  runs as many windows as ``embed`` does. A larger overlap puts centres closer (finer detail).
* **segmentation heads** (DFC2020) give logits per patch: the head's 1×1 convolution on the token
  map (:meth:`~smartiesviz.models.heads.TaskModel.dense_logits`; the release's bilinear
  upsampling of them is not needed on the patch grid). Overlapping windows are blended with
  weights that ramp linearly across the overlap (default ``2 S``).

Memory is bounded whatever the scene's size: one batch of windows, the window-centre grid
(classification, ``C`` values per window) or a band of ``img_size / S`` cell rows
(segmentation), and one ``uint8`` validity flag per cell; the files are written in strips of
256 cell rows. Multi-sensor heads (BigEarthNet-MM: S2 then S1) take two co-registered scenes
(``second=``); each scene goes to the head's source of its sensor family, in either order.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from smartiesviz import outputs
from smartiesviz.data.bands import canonical_band_names, cube_sensor, resolve_sensor
from smartiesviz.data.tiling import (
    PatchGrid,
    TileWindow,
    cube_transform,
    georeferenced,
    grid_transform,
    iter_grid_batches,
)
from smartiesviz.errors import UserError
from smartiesviz.predict import rasterfile
from smartiesviz.predict.embed import EmbedOptions, auto_batch_size, open_source

if TYPE_CHECKING:  # pragma: no cover
    import torch
    import xarray as xr

    from smartiesviz.models.heads import TaskModel, TaskSource

__all__ = [
    "PredictOptions",
    "TaskJob",
    "load_predictor",
    "predict_scene",
    "predict_to_file",
    "probabilities_path",
    "NO_HEAD",
]

Normalizer = Callable[["xr.DataArray"], np.ndarray]
#: nodata of the class band.
NODATA_CLASS = 255
#: output strip height in cells (the GeoTIFF block size).
STRIP_ROWS = 256
NO_HEAD = "this checkpoint has no task head; use `smartiesviz embed`"
_FAMILY_WORDS = {"multispectral": "multispectral (Sentinel-2)", "sar": "SAR (Sentinel-1)"}


@dataclass(frozen=True)
class PredictOptions:
    """How a scene is cut into windows and run through a task head.

    Attributes:
        batch_size: windows per forward pass, or ``"auto"`` (:func:`auto_batch_size`).
        overlap: minimum pixels shared by neighbouring windows, a multiple of the patch size and
            smaller than the window; ``None``: 0 for classification heads (their map is
            interpolated between window centres), ``2 S`` for segmentation heads.
        normalize: ``True``: each source's release statistics (the dataset the head was trained
            on, :attr:`TaskSource.stats`); ``False``: the scene is in model units; or a callable
            of a raw ``(band, y, x)`` sub-cube (bands in the head's order) → ``(C, h, w)``.
        device: run there (default where the model is).
        progress: show a progress bar.
        min_valid: windows and cells with a smaller share of valid (finite) pixels are nodata.
        on_progress: called with the fraction of windows done.
    """

    batch_size: int | Literal["auto"] = "auto"
    overlap: int | None = None
    normalize: bool | Normalizer = True
    device: str | None = None
    progress: bool = True
    min_valid: float = 0.5
    on_progress: Callable[[float], None] | None = None

    def __post_init__(self) -> None:
        b = self.batch_size
        if b != "auto" and (isinstance(b, bool) or not isinstance(b, int) or b < 1):
            raise ValueError(f"batch size must be a positive integer or 'auto'; got {b!r}")
        if self.overlap is not None and (not isinstance(self.overlap, int) or self.overlap < 0):
            raise ValueError(
                f"overlap must be a non-negative number of pixels; got {self.overlap!r}"
            )
        if not 0 <= self.min_valid <= 1:
            raise ValueError(f"min_valid must be in [0, 1]; got {self.min_valid!r}")

    @classmethod
    def build(cls, options: PredictOptions | EmbedOptions | None = None, **overrides: Any):
        """Options from ``None``, a :class:`PredictOptions`, or an :class:`EmbedOptions` (its
        batch size, device, progress, normalization and ``min_valid``; its overlap when > 0; a
        tile size or band list is refused: the head fixes both), with fields replaced."""
        unknown = sorted(set(overrides) - {f.name for f in fields(cls)})
        if unknown:
            raise TypeError(f"unknown predict option(s) {unknown}")
        if isinstance(options, EmbedOptions):
            if options.bands is not None or options.tile_size is not None:
                raise ValueError(
                    "predict takes the head's bands and window size: "
                    "leave bands and tile size unset"
                )
            keep = ("batch_size", "device", "progress", "normalize", "min_valid", "on_progress")
            base = {k: getattr(options, k) for k in keep}
            base["overlap"] = options.overlap or None
        elif options is None or isinstance(options, PredictOptions):
            opts = options or cls()
            base = {f.name: getattr(opts, f.name) for f in fields(cls)}
        else:
            raise TypeError(f"options must be PredictOptions or EmbedOptions; got {type(options)}")
        return cls(**{**base, **overrides})


def probabilities_path(out: str | os.PathLike) -> Path:
    """The probability raster beside a class map: ``map.tif`` → ``map.probabilities.tif``."""
    out = Path(out)
    return out.with_name(f"{out.stem}.probabilities{out.suffix}")


# ------------------------------------------------------------------------------- the model
def _head_keys(path: Path) -> list[str] | None:
    """The ``head.*`` keys of a safetensors file (read from its header), else None."""
    if path.suffix != ".safetensors":
        return None
    from safetensors import safe_open  # lazy: torch-free header read

    with safe_open(str(path), framework="pt") as f:
        return [k for k in f.keys() if k.startswith("head.")]


def load_predictor(checkpoint: Any, task: Any = None, *, revision: str | None = None) -> TaskModel:
    """A :class:`~smartiesviz.models.heads.TaskModel` from a task file, a Hub name or a model.

    Args:
        checkpoint: a TaskModel (returned), a released task file's Hub name, or a local file in
            the release's layout.
        task: the task (``"eurosat-finetune"`` or a TaskSpec) when a local file's name is not a
            released file name.
        revision: Hub revision.

    Raises:
        UserError: no checkpoint, or one without a task head (:data:`NO_HEAD`).
    """
    # torch-importing: kept local so `import smartiesviz.predict` (and the CLI) stay light
    from smartiesviz.models.heads import TASK_SPECS, TaskModel, load_task_model, task_spec
    from smartiesviz.models.hub import parse_hub_name
    from smartiesviz.models.resolve import resolve_checkpoint

    if isinstance(checkpoint, TaskModel):
        return checkpoint
    if checkpoint is None:
        raise UserError("predict needs a task checkpoint (a released fine-tuned or probe file)")
    if not isinstance(checkpoint, (str, os.PathLike)):
        raise UserError(f"checkpoint {checkpoint!r}: {NO_HEAD}")
    hub = None if os.path.lexists(checkpoint) else parse_hub_name(os.fspath(checkpoint))
    if hub is not None and hub.weights is not None and hub.weights.head == "none":
        raise UserError(f"{checkpoint}: {NO_HEAD}")  # before any download
    src = resolve_checkpoint(checkpoint, revision)
    if src.kind == "demo" or (src.weights is not None and src.weights.head == "none"):
        raise UserError(f"{checkpoint}: {NO_HEAD}")
    keys = _head_keys(src.path)
    if keys is not None and not keys:
        raise UserError(f"{checkpoint}: {NO_HEAD}")
    if task is None and src.weights is None:
        try:
            task_spec(src.filename or src.path.name)
        except ValueError:
            raise UserError(
                f"{checkpoint}: the file name does not say which released task its head is for; "
                f"name it with --task NAME (task=...), one of {', '.join(TASK_SPECS)}"
            ) from None
    return load_task_model(checkpoint, task, revision=revision)


# ------------------------------------------------------------------------------- the inputs
@dataclass(frozen=True)
class _Input:
    """One source of the head: its scene's bands in the head's order and its normalizer."""

    name: str
    cube: xr.DataArray
    sensor: str
    specs: tuple[str, ...]
    normalizer: Normalizer


def _source_sensor(source: TaskSource) -> Any:
    return resolve_sensor(source.bands[0].split("/")[0])


def _fits(source: TaskSource, sensor: str) -> bool:
    return resolve_sensor(sensor).family == _source_sensor(source).family


def _bind(source: TaskSource, cube: xr.DataArray, sensor: str, task: str, normalize: Any) -> _Input:
    """The scene's bands in the source's order (by band name), and how to normalize them."""
    s = resolve_sensor(sensor)
    have = canonical_band_names(s.name, [str(b) for b in cube["band"].values])
    picks, missing = [], []
    for spec in source.bands:
        short = spec.split("/")[-1]
        try:
            name = s.band(short).name
        except KeyError:
            name = None
        (picks if name in have else missing).append(name or short)
    if missing:
        raise UserError(
            f"the {task} head needs {source.name} bands "
            f"{', '.join(b.split('/')[-1] for b in source.bands)}; "
            f"the {s.name} scene lacks {', '.join(missing)}"
        )
    sub = cube.isel(band=[have.index(n) for n in picks])
    specs = tuple(f"{s.name}/{n}" for n in picks)
    return _Input(
        source.name, sub, s.name, specs, _normalizer(sub, s.name, source.stats, normalize)
    )


def _normalizer(cube: xr.DataArray, sensor: str, stats: str, normalize: Any) -> Normalizer:
    from smartiesviz import data

    if callable(normalize):
        return normalize
    if normalize is False or str(cube.attrs.get("units", "")).lower() == "model":
        return lambda sub: np.asarray(sub.values, dtype=np.float32)

    def _normalize(sub: xr.DataArray) -> np.ndarray:
        return np.asarray(data.normalize(sub, sensor, stats=stats, warn=False).values, np.float32)

    return _normalize


def _with_validity(normalizer: Normalizer) -> Normalizer:
    """A normalizer that appends a validity channel (1 where every band is finite)."""

    def _norm(sub: xr.DataArray) -> np.ndarray:
        raw = np.asarray(sub.values)
        valid = np.isfinite(raw).all(0, keepdims=True).astype(np.float32)
        x = np.asarray(normalizer(sub.copy(data=raw)), np.float32)
        if not valid.all():
            x = np.where(valid.astype(bool), x, np.float32(0))
        return np.concatenate([x, valid])

    return _norm


def _assign(
    model: TaskModel, scenes: list[tuple[xr.DataArray, str]], normalize: Any
) -> list[_Input]:
    """Scenes → the head's sources in its order, by sensor family (clear errors otherwise)."""
    spec = model.spec
    need = ", ".join(f"{s.name} ({_source_sensor(s).family})" for s in spec.sources)
    if len(scenes) != len(spec.sources):
        if len(spec.sources) > 1:
            raise UserError(
                f"the {spec.name} head takes {len(spec.sources)} co-registered scenes ({need}); "
                "give the second with --second SCENE --second-sensor NAME (second=, second_sensor=)"
            )
        raise UserError(f"the {spec.name} head takes one scene ({need}); drop the second scene")
    left, bound = list(range(len(scenes))), []
    for source in spec.sources:
        match = next((i for i in left if _fits(source, scenes[i][1])), None)
        if match is None:
            got = ", ".join(f"{s} ({resolve_sensor(s).family})" for _, s in scenes)
            word = _FAMILY_WORDS.get(_source_sensor(source).family, _source_sensor(source).family)
            raise UserError(
                f"the {spec.name} head takes a {word} scene for its {source.name} input "
                f"(sources: {need}); got {got}"
            )
        left.remove(match)
        bound.append(_bind(source, *scenes[match], spec.name, normalize))
    return bound


def _check_coregistered(a: xr.DataArray, b: xr.DataArray) -> None:
    """Refuse two scenes that are not on one grid (size, CRS, transform)."""
    ta, tb = cube_transform(a), cube_transform(b)
    same_t = all(math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-6) for x, y in zip(ta, tb))
    same = a.sizes["y"] == b.sizes["y"] and a.sizes["x"] == b.sizes["x"] and same_t
    if not same or a.rio.crs != b.rio.crs:

        def desc(c: xr.DataArray, t: Any) -> str:
            return (
                f"{c.sizes['y']}x{c.sizes['x']} px, {c.rio.crs}, origin ({t.c}, {t.f}), pixel {t.a}"
            )

        raise UserError(
            f"the two scenes are not co-registered: first {desc(a, ta)}; second {desc(b, tb)}. "
            "Resample one onto the other's grid (gdalwarp, or rioxarray reproject_match)"
        )


# ------------------------------------------------------------------------------- the windows
def _starts(n_cells: int, t: int, overlap: int) -> list[int]:
    """First cells of windows of ``t`` cells spread evenly over ``n_cells``, at most ``t -
    overlap`` apart and inside the grid (a grid smaller than one window: one centred window)."""
    if n_cells <= t:
        return [-((t - n_cells) // 2)]
    span, step = n_cells - t, t - overlap
    k = math.ceil(span / step)
    return [round(i * span / k) for i in range(k + 1)]


def _ramp(t: int, overlap: int) -> np.ndarray:
    """``(t,)`` blending weights: 1 inside, ramping linearly to ~0 across ``overlap`` cells."""
    if overlap <= 0:
        return np.ones(t, np.float32)
    i = np.arange(t) + 0.5
    return np.minimum(1.0, np.minimum(i, t - i) / overlap).astype(np.float32)


class TaskJob:
    """A prepared prediction: the head, its sources bound to scenes, the windows and batches.

    Args:
        model: a :class:`~smartiesviz.models.heads.TaskModel`.
        scenes: ``[(cube, sensor), ...]``, one per source of the head (any order: matched by
            sensor family), co-registered.
        options: :class:`PredictOptions`.
    """

    def __init__(
        self, model: TaskModel, scenes: list[tuple[xr.DataArray, str]], options: PredictOptions
    ) -> None:
        import torch  # lazy: `import smartiesviz.predict` stays torch-free

        # torch-importing: kept local so `import smartiesviz.predict` (and the CLI) stay light
        from smartiesviz.models.resolve import model_device

        self.model = model.eval() if options.device is None else model.to(options.device).eval()
        self.device = torch.device(options.device) if options.device else model_device(model)
        self.options, self.spec = options, model.spec
        self.inputs = _assign(model, scenes, options.normalize)
        for other in self.inputs[1:]:
            _check_coregistered(self.inputs[0].cube, other.cube)
        cube = self.inputs[0].cube
        s, size = int(model.encoder.patch_size), int(model.encoder.img_size)
        self.patch_size, self.window = s, size
        seg = self.spec.head == "segmentation"
        self.overlap = options.overlap if options.overlap is not None else (2 * s if seg else 0)
        if self.overlap % s or self.overlap >= size:
            raise ValueError(
                f"overlap ({self.overlap} px) must be a multiple of the patch size ({s} px) and "
                f"smaller than the head's window ({size} px)"
            )
        self.grid = PatchGrid(cube.sizes["y"], cube.sizes["x"], s, size)
        t, (ny, nx) = size // s, self.grid.shape
        self.rows = _starts(ny, t, self.overlap // s)
        self.cols = _starts(nx, t, self.overlap // s)
        self.windows = [
            TileWindow(r, c, t, t, r * s, c * s, 0) for r in self.rows for c in self.cols
        ]
        bands = max(len(i.specs) for i in self.inputs)
        batch = options.batch_size
        if batch == "auto":
            batch = max(
                1, auto_batch_size(model.encoder, size, bands, self.device) // len(self.inputs)
            )
        self.batch_size = int(batch)
        self.crs, self.transform = grid_transform(cube, s)

    @property
    def cells(self) -> int:
        """Window side in patch-grid cells (``t = img_size / S``)."""
        return self.window // self.patch_size

    def batches(self) -> Iterator[tuple[list[TileWindow], dict[str, torch.Tensor], np.ndarray]]:
        """Yield ``(windows, {source: (B, C_i, T, T)}, cell_valid (B, t, t))``; ``cell_valid`` is
        the share of valid pixels of each patch (all sources)."""
        import torch
        from tqdm.auto import tqdm  # lazy: tqdm.auto probes for Jupyter widgets

        its = [
            iter_grid_batches(i.cube, self.grid, self.batch_size, _with_validity(i.normalizer),
                              self.windows)
            for i in self.inputs
        ]  # fmt: skip
        t, s, n = self.cells, self.patch_size, len(self.windows)
        opts, done = self.options, 0
        with tqdm(total=n, unit="window", desc="predict", disable=not opts.progress) as bar:
            for parts in zip(*its):
                chunk = parts[0][0]
                valid = np.min([x[:, -1] for _, x in parts], axis=0)
                cell = valid.reshape(len(chunk), t, s, t, s).mean(axis=(2, 4))
                xs = {
                    i.name: torch.from_numpy(np.ascontiguousarray(x[:, :-1])).to(self.device)
                    for i, (_, x) in zip(self.inputs, parts)
                }
                yield chunk, xs, cell
                bar.update(len(chunk))
                done += len(chunk)
                if opts.on_progress is not None:
                    opts.on_progress(done / n)

    def outputs(self) -> Iterator[tuple[list[TileWindow], np.ndarray, np.ndarray]]:
        """Yield ``(windows, probabilities, cell_valid)``: float32 ``(B, C)`` for classification
        heads, ``(B, C, t, t)`` for segmentation heads."""
        import torch

        bands = {i.name: i.specs for i in self.inputs}
        seg = self.spec.head == "segmentation"
        with torch.no_grad():
            for chunk, xs, cell in self.batches():
                logits = self.model.dense_logits(xs, bands) if seg else self.model(xs, bands)
                yield chunk, self.model.probabilities(logits).float().cpu().numpy(), cell

    def strips(self) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(first row, probabilities (C, h, nx))`` of the output grid, top to bottom;
        NaN where no valid data lies under a cell."""
        seg = self.spec.head == "segmentation"
        yield from _rechunk(_segmentation_strips(self) if seg else _class_strips(self), STRIP_ROWS)

    @property
    def tags(self) -> dict[str, str]:
        """Provenance and class tags of the outputs."""
        from smartiesviz import __version__

        spec, src = self.spec, self.model.checkpoint_source
        multi = spec.task_type == "multi-label"
        return {
            "task": spec.name, "dataset": spec.dataset, "task_type": spec.task_type,
            "head": spec.head, "reducer": spec.reducer,
            "checkpoint": str(src) if src else type(self.model).__name__,
            "checkpoint_sha256": src.sha256 if src else "",
            "classes": json.dumps(list(spec.classes)),
            "probabilities": "sigmoid per label" if multi else "softmax",
            "class_band": "argmax of the probabilities"
            + (" (the most probable label)" if multi else ""),
            "sources": ";".join(f"{i.name}={i.sensor}:{','.join(i.specs)}" for i in self.inputs),
            "window": str(self.window), "patch_size": str(self.patch_size),
            "overlap": str(self.overlap),
            "grid": "the scene's patch grid (scene transform x patch size)",
            "software": f"smartiesviz {__version__}",
        }  # fmt: skip


def _clip(start: int, size: int, n: int) -> tuple[slice, slice]:
    """``(grid slice, window slice)`` of a window of ``size`` cells at ``start`` in ``n`` cells."""
    a, b = max(start, 0), min(start + size, n)
    return slice(a, b), slice(a - start, b - start)


def _class_strips(job: TaskJob) -> Iterator[tuple[int, np.ndarray]]:
    """Classification: one probability vector per window centre, bilinearly interpolated."""
    (ny, nx), t, c = job.grid.shape, job.cells, job.spec.num_classes
    centres = np.full((c, len(job.rows), len(job.cols)), np.nan, np.float32)
    valid = np.zeros((ny, nx), bool)
    k, min_valid = 0, job.options.min_valid
    for chunk, probs, cell in job.outputs():
        for win, p, v in zip(chunk, probs, cell):
            i, j = divmod(k, len(job.cols))
            k += 1
            if v.mean() >= min_valid:
                centres[:, i, j] = p
            (gy, wy), (gx, wx) = _clip(win.row, t, ny), _clip(win.col, t, nx)
            valid[gy, gx] = v[wy, wx] >= min_valid
    ky = _lerp_index(np.arange(ny) + 0.5, np.asarray(job.rows) + t / 2)
    kx = _lerp_index(np.arange(nx) + 0.5, np.asarray(job.cols) + t / 2)
    ok = np.isfinite(centres[0]).astype(np.float32)
    values = np.nan_to_num(centres) * ok
    for r0 in range(0, ny, STRIP_ROWS):
        rows = slice(r0, min(r0 + STRIP_ROWS, ny))
        rk = tuple(a[rows] for a in ky)
        num, den = _bilinear(values, rk, kx), _bilinear(ok, rk, kx)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = num / den
        out[:, (den < 1e-6) | ~valid[rows]] = np.nan
        yield r0, out.astype(np.float32)


def _lerp_index(pos: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(k0, k1, f)``: each position lies ``f`` of the way from centre ``k0`` to ``k1``
    (clamped beyond the outermost centres)."""
    n = len(centres)
    u = np.interp(pos, centres, np.arange(n, dtype=np.float64))
    k0 = np.clip(np.floor(u).astype(int), 0, max(n - 2, 0))
    k1 = np.minimum(k0 + 1, n - 1)
    return k0, k1, (u - k0).astype(np.float32)


def _bilinear(a: np.ndarray, ky: tuple, kx: tuple) -> np.ndarray:
    """``a`` ``(..., R, Q)`` on the centre grid → ``(..., h, w)`` at the given lerp indices."""
    (y0, y1, fy), (x0, x1, fx) = ky, kx
    rows = a[..., y0, :] * (1 - fy)[:, None] + a[..., y1, :] * fy[:, None]
    return rows[..., x0] * (1 - fx) + rows[..., x1] * fx


def _segmentation_strips(job: TaskJob) -> Iterator[tuple[int, np.ndarray]]:
    """Segmentation: per-patch probabilities blended across overlaps in a rolling band of rows."""
    (ny, nx), t, c = job.grid.shape, job.cells, job.spec.num_classes
    ramp = _ramp(t, job.overlap // job.patch_size)
    weight = ramp[:, None] * ramp[None, :]
    acc = np.zeros((c, t, nx), np.float32)
    wsum = np.zeros((t, nx), np.float32)
    top, row, min_valid = 0, None, job.options.min_valid

    def flush(upto: int) -> Iterator[tuple[int, np.ndarray]]:
        nonlocal top
        n = min(upto, ny) - top
        if n <= 0:
            return
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.where(wsum[:n] > 0, acc[:, :n] / wsum[:n], np.nan).astype(np.float32)
        acc[:, : t - n], wsum[: t - n] = acc[:, n:].copy(), wsum[n:].copy()
        acc[:, t - n :], wsum[t - n :] = 0, 0
        yield top, out
        top += n

    for chunk, probs, cell in job.outputs():
        for win, p, v in zip(chunk, probs, cell):
            if win.row != row:
                yield from flush(win.row)
                row = win.row
            (gy, wy), (gx, wx) = _clip(win.row, t, ny), _clip(win.col, t, nx)
            w = (weight * (v >= min_valid))[wy, wx]
            local = slice(gy.start - top, gy.stop - top)
            acc[:, local, gx] += p[:, wy, wx] * w
            wsum[local, gx] += w
    yield from flush(ny)


def _rechunk(
    strips: Iterator[tuple[int, np.ndarray]], rows: int
) -> Iterator[tuple[int, np.ndarray]]:
    """Regroup consecutive ``(row, (C, h, w))`` strips into strips of ``rows`` rows (the last
    may be shorter), so the writer fills whole GeoTIFF blocks."""
    buf: list[np.ndarray] = []
    start = have = 0
    for r0, a in strips:
        if not buf:
            start = r0
        buf.append(a)
        have += a.shape[1]
        while have >= rows:
            cat = np.concatenate(buf, axis=1) if len(buf) > 1 else buf[0]
            yield start, cat[:, :rows]
            rest = cat[:, rows:]
            start, have, buf = start + rows, rest.shape[1], [rest] if rest.shape[1] else []
    if have:
        yield start, np.concatenate(buf, axis=1)


def class_band(probs: np.ndarray) -> np.ndarray:
    """``uint8`` argmax of ``(C, h, w)`` probabilities; :data:`NODATA_CLASS` where any is NaN."""
    ok = np.isfinite(probs).all(axis=0)
    out = np.argmax(np.where(np.isfinite(probs), probs, -1.0), axis=0).astype(np.uint8)
    out[~ok] = NODATA_CLASS
    return out


# ------------------------------------------------------------------------------- public API
def _open(scene: Any, sensor: str | None) -> tuple[xr.DataArray, str]:
    cube = open_source(scene, sensor).cube if isinstance(scene, (str, os.PathLike)) else scene
    return cube, cube_sensor(cube, sensor)


def _job(
    source: Any, sensor: str | None, checkpoint: Any, opts: PredictOptions, second: Any,
    second_sensor: str | None, task: Any,
) -> TaskJob:  # fmt: skip
    if second is None and second_sensor is not None:
        raise UserError("a second sensor was given without a second scene (--second SCENE)")
    model = load_predictor(checkpoint, task)
    scenes = [_open(source, sensor)]
    if second is not None:
        scenes.append(_open(second, second_sensor))
    return TaskJob(model, scenes, opts)


def predict_scene(
    source: xr.DataArray | str | os.PathLike,
    sensor: str | None = None,
    checkpoint: Any = None,
    options: PredictOptions | EmbedOptions | None = None,
    *,
    second: xr.DataArray | str | os.PathLike | None = None,
    second_sensor: str | None = None,
    task: Any = None,
    **overrides: Any,
) -> xr.Dataset:
    """A task head's class map of a scene, in memory (for large scenes use :func:`predict_to_file`).

    Args: as :func:`predict_to_file`.

    Returns:
        Dataset on the scene's patch grid (``ny = ceil(H/S)``, ``nx = ceil(W/S)``) with
        ``probabilities`` float32 ``(class, y, x)`` (NaN: no valid data; the ``class``
        coordinate holds the class names) and ``class_map`` uint8 ``(y, x)`` (their argmax;
        255: no data); attrs: the provenance :attr:`TaskJob.tags`.
    """
    import xarray as xr

    opts = PredictOptions.build(options, **overrides)
    job = _job(source, sensor, checkpoint, opts, second, second_sensor, task)
    ny, nx = job.grid.shape
    probs = np.empty((job.spec.num_classes, ny, nx), np.float32)
    for r0, strip in job.strips():
        probs[:, r0 : r0 + strip.shape[1]] = strip
    tags = job.tags
    p = georeferenced(probs, job.crs, job.transform, ("class", list(job.spec.classes)),
                      "probabilities", tags)  # fmt: skip
    k = georeferenced(class_band(probs), job.crs, job.transform, None, "class_map", tags)
    return xr.Dataset({"probabilities": p, "class_map": k}, attrs=tags)


def predict_to_file(
    source: xr.DataArray | str | os.PathLike,
    out: str | os.PathLike,
    sensor: str | None = None,
    checkpoint: Any = None,
    options: PredictOptions | EmbedOptions | None = None,
    *,
    overwrite: bool = False,
    second: xr.DataArray | str | os.PathLike | None = None,
    second_sensor: str | None = None,
    task: Any = None,
    **overrides: Any,
) -> Path:
    """Run a task head over a scene of any size into a class map GeoTIFF (and its probabilities).

    Writes ``out`` (class band, ``uint8`` with a colour table, class names in the tags, nodata
    255) and :func:`probabilities_path` ``(out)`` (one ``float32`` band per class, described by
    the class name, nodata NaN), both on the scene's patch grid, block by block with bounded
    memory, each under a temporary name renamed when complete; never over an input, over an
    existing output only with ``overwrite=True``. See the module docstring for the windows.

    Args:
        source: a ``(band, y, x)`` cube, or a path (GeoTIFF, folder of band files,
            ``sample:...``) opened lazily.
        out: ``.tif``/``.tiff`` path of the class map.
        sensor: registry sensor of ``source`` (default the cube's ``sensor`` attribute).
        checkpoint: a released task file's Hub name
            (``"gsumbul/SMARTIES-v1-finetuned-models/smarties-v1-vitb-eurosat-finetune"``), a
            local file in the release's layout, or a :class:`~smartiesviz.models.heads.TaskModel`.
        options: :class:`PredictOptions` (or an :class:`EmbedOptions`, see
            :meth:`PredictOptions.build`); ``overrides`` replace its fields.
        overwrite: replace existing outputs.
        second, second_sensor: the second co-registered scene of a two-source head
            (BigEarthNet-MM), and its sensor.
        task: the task of a local file whose name is not a released file name.

    Returns:
        ``out``.

    Raises:
        UserError: a checkpoint without a task head, a scene of the wrong sensor or lacking the
            head's bands, a missing or extra second scene, scenes not co-registered, an output
            that exists or is an input.
    """
    opts = PredictOptions.build(options, **overrides)
    path, probs = _check_outputs(out, [source, second, checkpoint], overwrite)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Dataset has no geotransform")
            job = _job(source, sensor, checkpoint, opts, second, second_sensor, task)
        rasterfile.warn_if_not_georeferenced(job.crs, source, job.inputs[0].cube.rio.crs)
        _write_geotiffs(job, path, probs)
    except UserError:
        raise
    except Exception as err:  # a full disk, as GDAL reports it: one line, no partial file
        msg = rasterfile.no_space_message(err, path)
        if msg:
            raise UserError(msg) from err
        raise
    return path


def _check_outputs(out: Any, reads: list[Any], overwrite: bool) -> tuple[Path, Path]:
    """``(class map, probabilities)`` paths, refused when one is an input (a scene's files or
    the checkpoint) or exists without ``overwrite``; stale partial files of killed runs removed."""
    path = Path(out)
    if path.suffix.lower() not in {".tif", ".tiff"}:
        raise ValueError(f"output {str(path)!r}: expected a .tif/.tiff (GeoTIFF) path")
    inputs = []
    for item in reads:
        if isinstance(item, (str, os.PathLike)) and not Path(item).exists():
            continue  # a sample or Hub name: no local file to protect
        if item is not None and not hasattr(item, "spec"):  # not a TaskModel
            inputs += rasterfile.source_paths(item)
    probs = probabilities_path(path)
    for target in (path, probs):
        outputs.check_output(target, inputs, overwrite)
        outputs.remove_stale_partials(target.parent, target.name)
    return path, probs


def _write_geotiffs(job: TaskJob, out: Path, probs_out: Path) -> None:
    """Write the class map and the probabilities strip by strip, each atomically."""
    import rasterio  # heavy optional: only the GeoTIFF writer needs it
    from rasterio.windows import Window

    from smartiesviz.models.classes import class_colours

    (ny, nx), classes, tags = job.grid.shape, job.spec.classes, job.tags
    geo = (job.crs, job.transform)
    p_class = rasterfile.geotiff_profile(ny, nx, 1, "uint8", *geo, nodata=NODATA_CLASS)
    p_probs = rasterfile.geotiff_profile(ny, nx, len(classes), "float32", *geo, nodata=float("nan"))
    colours = class_colours(job.spec.dataset, len(classes))
    names = {f"CLASS_{i}": name for i, name in enumerate(classes)}
    with (
        rasterfile.gdal_env(),
        outputs.atomic_path(out) as tmp_c,
        outputs.atomic_path(probs_out) as tmp_p,
    ):
        try:
            with (
                rasterio.open(tmp_c, "w", **p_class) as dc,
                rasterio.open(tmp_p, "w", **p_probs) as dp,
            ):
                dc.update_tags(**tags)
                dc.update_tags(1, **names)
                dc.set_band_description(1, "class")
                dc.write_colormap(1, {i: (*rgb, 255) for i, rgb in enumerate(colours)})
                dp.update_tags(**tags)
                for i, name in enumerate(classes, start=1):
                    dp.set_band_description(i, name)
                for r0, strip in job.strips():
                    win = Window(0, r0, nx, strip.shape[1])
                    dp.write(strip, window=win)
                    dc.write(class_band(strip)[None], window=win)
                rasterfile.build_overviews(dc, "nearest")
        except Exception as err:  # GDAL hides ENOSPC: look at the disk while the partial is there
            msg = rasterfile.no_space_message(err, out, check_free=True)
            if msg:
                raise UserError(msg) from err
            raise
