"""Cross-spectral prediction: decode bands the input did not have, scored against the truth.

:func:`cross_spectral_prediction` decodes target bands (NIR/SWIR from RGB, S2 optical from S1 SAR)
through the spectrum-aware reprojection, tile by tile on the scene's patch grid, and scores each
band against the held-back truth and the per-tile-mean baseline. ``mode="visible"`` decodes every
patch from an unmasked encoder pass; ``mode="masked"`` predicts every patch while it is hidden,
under rotating seeded masks (:func:`mask_groups`), as MAE is trained.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from smartiesviz.data.bands import cube_sensor
from smartiesviz.data.scene import select_bands
from smartiesviz.data.tiling import core_valid, georeferenced, iter_grid_batches, scatter
from smartiesviz.models.mixup import masking_indices
from smartiesviz.predict.embed import EmbeddingJob, Normalizer, make_normalizer

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


def cross_spectral_prediction(
    cube: xr.DataArray,
    targets: Sequence[str],
    inputs: Sequence[str] | None = None,
    sensor: str | None = None,
    model: Any = None,
    truth: xr.DataArray | None = None,
    truth_sensor: str | None = None,
    tile_size: int | None = None,
    batch_size: int | str = "auto",
    normalize: bool | Normalizer = True,
    device: str | torch.device | None = None,
    progress: bool = True,
    mode: DecodeMode = "visible",
    mask_ratio: float = 0.75,
    seed: int = 0,
) -> CrossSpectralResult:
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

    Returns:
        :class:`CrossSpectralResult`. Scores are computed in normalized units on scene pixels only
        (not the mirrored padding), per tile for the baseline.
    """
    if mode not in ("masked", "visible"):
        raise ValueError(f"mode must be 'masked' or 'visible'; got {mode!r}")
    job = EmbeddingJob(cube, sensor, model, inputs, batch_size, tile_size, 0, normalize, device)
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
    if scored:
        ref, target_specs = select_bands(ref, ref_sensor, targets)
        ref_norm = make_normalizer(ref, ref_sensor, normalize)
    else:
        target_specs = list(targets)
    overlap_inputs = set(target_specs) & set(job.band_specs)
    if overlap_inputs:
        raise ValueError(
            f"targets {sorted(overlap_inputs)} are also inputs; pass inputs= without them "
            "(cross-spectral prediction decodes bands the encoder did not see)"
        )
    model_, s = job.model, job.patch_size
    h, w = job.grid.height, job.grid.width
    ny, nx = job.grid.shape
    c_t = len(target_specs)
    pred = np.zeros((c_t, ny * s, nx * s), np.float32)
    acc = {k: np.zeros(c_t) for k in ("sse", "sse_tile", "sum", "sum2", "n")}
    truth_batches = (
        iter_grid_batches(ref, job.grid, job.batch_size, ref_norm, job.windows) if scored else None
    )
    n_cells = job.grid.cells_per_tile**2
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for windows, x in job.batches(progress, desc="cross-spectral"):
            if mode == "masked":
                perms = torch.stack([torch.randperm(n_cells, generator=gen) for _ in windows])
                out = _masked_decode(model_, x, job.band_specs, target_specs, mask_ratio, perms)
            else:
                out = decode_bands(model_, x, job.band_specs, target_specs)
            out = out.float().cpu().numpy()
            scatter(pred, windows, out, scale=s)
            if truth_batches is None:
                continue
            _, t = next(truth_batches)
            for win, p_tile, t_tile in zip(windows, out, t):
                ys, xs = core_valid(win, s, h, w)
                p_core = p_tile[:, ys, xs].reshape(c_t, -1).astype(np.float64)
                t_core = t_tile[:, ys, xs].reshape(c_t, -1).astype(np.float64)
                acc["sse"] += ((p_core - t_core) ** 2).sum(1)
                acc["sse_tile"] += ((t_core - t_core.mean(1, keepdims=True)) ** 2).sum(1)
                acc["sum"] += t_core.sum(1)
                acc["sum2"] += (t_core**2).sum(1)
                acc["n"] += t_core.shape[1]
    scores = None
    if scored:
        scores = {}
        for i, spec in enumerate(target_specs):
            n = acc["n"][i]
            mse, base = acc["sse"][i] / n, acc["sse_tile"][i] / n
            var = acc["sum2"][i] / n - (acc["sum"][i] / n) ** 2
            scores[spec] = {
                "mse": float(mse),
                "baseline_mse": float(base),
                "mse_ratio": float(mse / base) if base > 0 else math.inf,
                "r2": float(1 - mse / base) if base > 0 else -math.inf,
                "r2_global": float(1 - mse / var) if var > 0 else -math.inf,
                "pixels": int(n),
            }
    crs, transform = job.crs, cube.rio.transform(recalc=True)
    da = georeferenced(
        pred[:, :h, :w],
        crs,
        transform,
        ("band", [t.split("/")[-1] for t in target_specs]),
        "cross_spectral_prediction",
        {**job.attrs, "targets": ",".join(target_specs), "units": "normalized", "mode": mode},
    )
    return CrossSpectralResult(da, scores, list(job.band_specs), list(target_specs))
