"""Cross-spectral prediction: decode bands the input did not have, scored against the truth.

:func:`cross_spectral_prediction` decodes target bands (NIR/SWIR from RGB, S2 optical from S1 SAR)
through the spectrum-aware reprojection, tile by tile on the scene's patch grid, and scores each
band against the held-back truth and the per-tile-mean baseline. ``mode="visible"`` decodes every
patch from an unmasked encoder pass; ``mode="masked"`` predicts every patch while it is hidden,
under rotating seeded masks (:func:`mask_groups`), as MAE is trained.
:func:`cross_spectral_stream` yields the decoded tiles batch by batch with the scores kept as
running sums, for outputs streamed to disk (the map's "NIR from RGB" layer) in memory bounded by a
batch.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from smartiesviz.data.bands import cube_sensor
from smartiesviz.data.scene import open_scene
from smartiesviz.data.tiling import (
    Overlap,
    TileWindow,
    core_valid,
    georeferenced,
    iter_grid_batches,
)
from smartiesviz.models.mixup import masking_indices
from smartiesviz.predict.embed import EmbeddingJob, Normalizer, make_normalizer, tokenized_scene
from smartiesviz.predict.maps import blended_scene

if TYPE_CHECKING:  # pragma: no cover
    import xarray as xr


DecodeMode = Literal["visible", "masked"]


@dataclass
class CrossSpectralResult:
    """Bands decoded from other bands, and their scores.

    Attributes:
        prediction: float32 ``(band, y, x)`` on the scene grid, normalized units.
        scores: per target band: ``mse`` (model), ``baseline_mse`` (each tile predicted by the
            tile's own mean of the true band), ``mse_ratio`` = mse / baseline_mse (< 1 beats the
            baseline), ``r2`` = 1 − mse_ratio (R² against per-tile means), ``r2_global``
            (against the scene mean) and ``pixels``. ``None`` without truth.
        inputs: band specs fed to the encoder.
        targets: band specs decoded.
    """

    prediction: xr.DataArray
    scores: dict[str, dict[str, float]] | None
    inputs: list[str]
    targets: list[str]

    def table(self) -> str:
        """The scores as a small text table."""
        if not self.scores:
            return "no truth given: no scores"
        lines = [f"{'band':<28}{'mse':>9}{'baseline':>10}{'ratio':>8}{'R²':>8}"]
        for band, sc in self.scores.items():
            lines.append(
                f"{band:<28}{sc['mse']:>9.4f}{sc['baseline_mse']:>10.4f}"
                f"{sc['mse_ratio']:>8.3f}{sc['r2']:>8.3f}"
            )
        return "\n".join(lines)


def decode_bands(
    model: Any,
    x: torch.Tensor,
    input_bands: Any,
    target_bands: Any,
    visible_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Encode ``x`` with its own bands, decode, and reproject with other bands.

    Args:
        model: a SmartiesMAE.
        x: ``(B, C_in, H, W)`` images in model units.
        input_bands: x's band specs.
        target_bands: band specs to produce (interpolated ranges included).
        visible_mask: ``(B, N)`` bool, True where the encoder sees the position (same count per
            sample); hidden positions are decoded from context through the mask token, as in
            pretraining. ``None``: every position visible.

    Returns:
        ``(B, C_target, H, W)`` in the target bands' normalized units.
    """


    grid = model.patch_grid(x)
    n = grid[0] * grid[1]
    tokens = model.embed(x, input_bands)
    if visible_mask is None:
        latent = model.forward_encoder(tokens)
        ids_restore = torch.arange(n, device=x.device).expand(x.shape[0], -1)
    else:
        ids_keep, ids_restore = masking_indices(visible_mask, int(visible_mask[0].sum()))
        latent = model.forward_encoder(tokens, ids_keep)
    decoded = model.forward_decoder(latent, ids_restore, grid)
    return model.reconstruct(decoded, target_bands, grid)


def mask_groups(mask_ratio: float) -> tuple[int, bool]:
    """``(K, hide_one_group)`` for rotating masks: with ``mask_ratio ≥ 0.5`` pass ``k`` shows only
    group ``k`` of ``K = round(1 / (1 − r))``; below 0.5 pass ``k`` hides only group ``k`` of
    ``K = round(1 / r)``. Either way every patch is hidden in at least one pass."""
    if not 0 < mask_ratio < 1:
        raise ValueError(f"mask_ratio must be in (0, 1); got {mask_ratio}")
    if mask_ratio >= 0.5:
        return max(2, round(1 / (1 - mask_ratio))), False
    return max(2, round(1 / mask_ratio)), True


def _masked_decode(
    model: Any, x: torch.Tensor, inputs: Any, targets: Any, mask_ratio: float, perms: torch.Tensor
) -> torch.Tensor:
    """Every position predicted while hidden, under rotating seeded masks (:func:`mask_groups`)
    built from ``perms`` ``(B, N)``; predictions of a position's hidden passes are averaged."""

    k_groups, hide_group = mask_groups(mask_ratio)
    b, n = perms.shape
    s = model.patch_size
    gh, gw = model.patch_grid(x)
    total, count = None, torch.zeros(b, 1, gh, 1, gw, 1, device=x.device)
    for k in range(k_groups):
        group = torch.zeros(b, n, dtype=torch.bool)
        group.scatter_(1, perms[:, k::k_groups], True)
        visible = ~group if hide_group else group
        out = decode_bands(model, x, inputs, targets, visible.to(x.device))
        hidden = (~visible).float().to(x.device).reshape(b, 1, gh, 1, gw, 1)
        part = out.reshape(b, out.shape[1], gh, s, gw, s) * hidden
        total = part if total is None else total + part
        count = count + hidden
    return (total / count).reshape(b, -1, gh * s, gw * s)


class ScoreSums:
    """Running sums behind the cross-spectral scores (float64, one entry per target band), so the
    scores of a scene streamed tile by tile need no array of the scene's size."""

    def __init__(self, bands: int) -> None:
        self.sse, self.sse_tile, self.sum, self.sum2, self.n = (np.zeros(bands) for _ in range(5))

    def add(self, pred: np.ndarray, truth: np.ndarray) -> None:
        """Add one tile's core: ``pred`` and ``truth`` ``(C, h, w)``, normalized units."""
        p = pred.reshape(pred.shape[0], -1).astype(np.float64)
        t = truth.reshape(truth.shape[0], -1).astype(np.float64)
        self.sse += ((p - t) ** 2).sum(1)
        self.sse_tile += ((t - t.mean(1, keepdims=True)) ** 2).sum(1)
        self.sum += t.sum(1)
        self.sum2 += (t**2).sum(1)
        self.n += t.shape[1]

    def scores(self, specs: Sequence[str]) -> dict[str, dict[str, float]]:
        """Per band spec: ``mse``, ``baseline_mse``, ``mse_ratio``, ``r2``, ``r2_global``,
        ``pixels`` (see :class:`CrossSpectralResult`)."""
        out = {}
        for i, spec in enumerate(specs):
            n = self.n[i]
            mse, base = self.sse[i] / n, self.sse_tile[i] / n
            var = self.sum2[i] / n - (self.sum[i] / n) ** 2
            out[spec] = {
                "mse": float(mse),
                "baseline_mse": float(base),
                "mse_ratio": float(mse / base) if base > 0 else math.inf,
                "r2": float(1 - mse / base) if base > 0 else -math.inf,
                "r2_global": float(1 - mse / var) if var > 0 else -math.inf,
                "pixels": int(n),
            }
        return out


@dataclass
class CrossSpectralStream:
    """A cross-spectral prediction run tile batch by tile batch (memory bounded by one batch).

    Attributes:
        job: the tiling and model of the input bands.
        targets: band specs decoded.
        sums: the scores' running sums (``None`` without truth), updated as :meth:`batches` runs.
        truth, truth_norm: the cube holding the targets and its normalizer (``None`` unscored).
        mode, mask_ratio, seed: how tiles are decoded (see :func:`cross_spectral_prediction`).
    """

    job: EmbeddingJob
    targets: list[str]
    sums: ScoreSums | None
    truth: xr.DataArray | None
    truth_norm: Normalizer | None
    mode: DecodeMode
    mask_ratio: float
    seed: int

    def batches(self, progress: bool = False) -> Iterator[tuple[list[TileWindow], np.ndarray]]:
        """Yield ``(windows, out)``: ``out`` float32 ``(B, C_target, T·s, T·s)`` per tile (margins
        and mirrored padding included; cut a tile's core with ``core_valid``)."""

        job, s = self.job, self.job.patch_size
        h, w = job.grid.height, job.grid.width
        truth_batches = None
        if self.sums is not None:
            truth_batches = iter_grid_batches(self.truth, job.grid, job.batch_size, self.truth_norm,
                                              job.windows)  # fmt: skip
        n_cells = job.grid.cells_per_tile**2
        gen = torch.Generator().manual_seed(self.seed)
        with torch.no_grad():
            for windows, x in job.batches(progress, desc="cross-spectral"):
                if self.mode == "masked":
                    perms = torch.stack([torch.randperm(n_cells, generator=gen) for _ in windows])
                    out = _masked_decode(job.model, x, job.band_specs, self.targets,
                                         self.mask_ratio, perms)  # fmt: skip
                else:
                    out = decode_bands(job.model, x, job.band_specs, self.targets)
                out = out.float().cpu().numpy()
                if truth_batches is not None:
                    _, t = next(truth_batches)
                    for win, p_tile, t_tile in zip(windows, out, t):
                        ys, xs = core_valid(win, s, h, w)
                        self.sums.add(p_tile[:, ys, xs], t_tile[:, ys, xs])
                yield windows, out


def cross_spectral_stream(
    cube: xr.DataArray, targets: Sequence[str], inputs: Sequence[str] | None = None,
    sensor: str | None = None, model: Any = None, truth: xr.DataArray | None = None,
    truth_sensor: str | None = None, tile_size: int | None = None, batch_size: int | str = "auto",
    normalize: bool | Normalizer = True, device: str | torch.device | None = None,
    mode: DecodeMode = "visible", mask_ratio: float = 0.75, seed: int = 0, overlap: Overlap = 0,
) -> CrossSpectralStream:  # fmt: skip
    """Validate a cross-spectral prediction and set it up to stream (arguments as in
    :func:`cross_spectral_prediction`); nothing is decoded until ``batches()`` is iterated."""
    if mode not in ("masked", "visible"):
        raise ValueError(f"mode must be 'masked' or 'visible'; got {mode!r}")
    # EmbeddingJob resolves the model and "auto" overlap (half the window)
    job = EmbeddingJob(cube, sensor, model, inputs, batch_size, tile_size, overlap, normalize,
                       device)  # fmt: skip
    ref = cube if truth is None else truth
    ref_sensor = job.sensor if truth is None else cube_sensor(truth, truth_sensor)
    if truth is not None and (truth.sizes["y"], truth.sizes["x"]) != (
        cube.sizes["y"],
        cube.sizes["x"],
    ):
        raise ValueError(
            f"truth grid {truth.sizes['y']}×{truth.sizes['x']} differs from the input's "
            f"{cube.sizes['y']}×{cube.sizes['x']}; resample it to the same grid first"
        )
    scored = all("/" not in t for t in targets)
    ref_norm = None
    if scored:
        ref_scene = tokenized_scene(open_scene(ref, ref_sensor, targets), job.model)
        ref, target_specs = ref_scene.cube, list(ref_scene.specs)
        ref_norm = make_normalizer(ref, ref_sensor, normalize)
    else:
        target_specs = list(targets)
    overlap_inputs = set(target_specs) & set(job.band_specs)
    if overlap_inputs:
        raise ValueError(
            f"targets {sorted(overlap_inputs)} are also inputs; pass inputs= without them "
            "(cross-spectral prediction decodes bands the encoder did not see)"
        )
    sums = ScoreSums(len(target_specs)) if scored else None
    return CrossSpectralStream(job, list(target_specs), sums, ref if scored else None, ref_norm,
                               mode, mask_ratio, seed)  # fmt: skip


def cross_spectral_prediction(
    cube: xr.DataArray, targets: Sequence[str], inputs: Sequence[str] | None = None,
    sensor: str | None = None, model: Any = None, truth: xr.DataArray | None = None,
    truth_sensor: str | None = None, tile_size: int | None = None, batch_size: int | str = "auto",
    normalize: bool | Normalizer = True, device: str | torch.device | None = None,
    progress: bool = True, mode: DecodeMode = "visible", mask_ratio: float = 0.75, seed: int = 0,
    overlap: Overlap = "auto",
) -> CrossSpectralResult:  # fmt: skip
    """Predict bands the input lacks and score them against the held-back truth.

    Examples: NIR/SWIR from RGB alone
    (``cross_spectral_prediction(s2, ["B08", "B11"], inputs=["B04", "B03", "B02"])``), Sentinel-2
    optical from Sentinel-1 (``cross_spectral_prediction(pair.s1, ["B04", "B08"], truth=pair.s2)``).

    Args:
        cube: ``(band, y, x)`` scene holding the input bands.
        targets: bands to predict: names of bands of ``truth`` (or of ``cube`` when no truth is
            given), or ``"sensor/band"`` specs (no scores then, unless in ``truth``).
        inputs: the cube's bands fed to the encoder (default all).
        sensor: the cube's sensor (default ``cube.attrs["sensor"]``).
        model: a SmartiesMAE, a checkpoint path, or ``None`` (demo model).
        truth: a cube on the same grid holding the targets (default: ``cube`` itself).
        truth_sensor: its sensor (default ``truth.attrs["sensor"]``).
        tile_size, batch_size, normalize, device, progress: as in :func:`embed`.
        mode: ``"visible"`` (default): one pass with every patch visible to the encoder;
            ``"masked"``: each patch predicted while hidden, from its visible neighbours, the task
            pretraining scores (``K`` passes with seeded rotating masks, predictions averaged; see
            :func:`mask_groups`), ``K`` times slower. MAE scores neither a band the input lacks
            nor visible patches, so both ask the decoder for something its loss never asked for;
            with the demo model "visible" is slightly better (and neither beats the per-tile mean
            for NIR from RGB).
        mask_ratio: for ``"masked"``.
        seed: seeds the masks.
        overlap: pixels shared by neighbouring windows (a multiple of 2 × the patch size), or
            ``"auto"`` (half the window, :func:`~smartiesviz.data.tiling.seamless_overlap`);
            windows are cross-faded over their overlap (:class:`~smartiesviz.data.tiling.Blender`)
            so the prediction does not jump where windows meet. Scores are of each window's
            centre (``overlap/2`` from its edges), as decoded.

    Returns:
        :class:`CrossSpectralResult`. Scores are computed in normalized units on scene pixels only
        (not the mirrored padding), per tile for the baseline.
    """
    stream = cross_spectral_stream(cube, targets, inputs, sensor, model, truth, truth_sensor,
                                   tile_size, batch_size, normalize, device, mode, mask_ratio,
                                   seed, overlap)  # fmt: skip
    job, s = stream.job, stream.job.patch_size
    h, w = job.grid.height, job.grid.width
    # (C, ny·s, nx·s): the padded patch grid, cut to the scene below
    pred = blended_scene(job.grid, stream.batches(progress), len(stream.targets), s)
    scores = stream.sums.scores(stream.targets) if stream.sums is not None else None
    names = [t.split("/")[-1] for t in stream.targets]
    attrs = {**job.attrs, "targets": ",".join(stream.targets), "units": "normalized", "mode": mode}
    da = georeferenced(pred[:, :h, :w], job.crs, cube.rio.transform(recalc=True),
                       ("band", names), "cross_spectral_prediction", attrs)  # fmt: skip
    return CrossSpectralResult(da, scores, list(job.band_specs), list(stream.targets))
