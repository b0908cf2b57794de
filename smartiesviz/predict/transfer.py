"""Unseen-sensor transfer on Landsat-8: OLI through nearest layers, TIRS through interpolation.

Landsat-8 was never seen in pretraining. Its OLI bands overlap learned ranges and are fed to the
nearest learned layer (the paper's naive transfer); its TIRS bands B10/B11 (10.9 and 12.0 µm) lie
between the learned SWIR (S2 B12) and C-band SAR layers and are *interpolated* under a scheme
(:data:`smartiesviz.spectrum.SCHEMES`): ``"inverse-distance"`` gives them almost all to the S2 B12
layer, ``"as-released"`` almost all to S1 VV, ``"log-wavelength"`` ≈ 0.84 / 0.16.

- :func:`landsat8_bands`: the resolved bands for a scheme.
- :func:`thermal_comparison`: features and masked reconstructions with and without TIRS, per
  scheme, on tiles of a Landsat-8 scene.
- :func:`matched_bands` / :func:`compare_sensors`: Sentinel-2 and Landsat-8 features computed from
  the bands the two sensors share (same spectral ranges), compared tile-set to tile-set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from smartiesviz import data
from smartiesviz.data.bands import cube_sensor
from smartiesviz.data.tiling import iter_grid_batches as iter_batches
from smartiesviz.models.mixup import random_visible_mask
from smartiesviz.models.resolve import resolve_model
from smartiesviz.predict.embed import EmbeddingJob
from smartiesviz.predict.probes import knn
from smartiesviz.spectrum import (
    LEARNED_RANGES,
    NoLayerError,
    OutOfSpectrumError,
    get_sensor,
    layer_weights,
    resolve_bands,
)

if TYPE_CHECKING:  # pragma: no cover
    import xarray as xr

OLI_BANDS = ("B1", "B2", "B3", "B4", "B5", "B6", "B7")
TIRS_BANDS = ("B10", "B11")
INTERPOLATION_SCHEMES = ("inverse-distance", "log-wavelength", "as-released")


def landsat8_bands(
    scheme: str = "inverse-distance",
    thermal: bool = True,
    oli: Sequence[str] = OLI_BANDS,
    oli_scheme: str = "nearest-layer",
) -> Any:
    """Landsat-8 bands resolved for transfer.

    Args:
        scheme: interpolation scheme for the TIRS bands B10, B11.
        thermal: include B10 and B11 (after the OLI bands).
        oli: OLI bands, in channel order (default B1–B7; the pan band B8 and cirrus B9 are left
            out: B9 has no layer, B8 duplicates B3/B4 at 15 m).
        oli_scheme: scheme for OLI bands without a learned range of their own (B2, B8):
            ``"nearest-layer"`` (the paper's naive transfer) or an interpolation scheme.

    Returns:
        :class:`~smartiesviz.spectrum.ResolvedBands` with channels ``oli`` (+ ``B10, B11``).
    """
    names = list(oli) + (list(TIRS_BANDS) if thermal else [])
    schemes = {b: oli_scheme for b in oli}
    schemes.update({b: scheme for b in TIRS_BANDS})
    return resolve_bands([f"landsat8/{b}" for b in names], schemes, on_unsupported="raise")


def scheme_weights(
    band: str = "landsat8/B10", schemes: Sequence[str] = INTERPOLATION_SCHEMES
) -> dict[str, dict[str, float]]:
    """Non-zero layer weights of a band under each scheme: ``{scheme: {range name: weight}}``."""
    out = {}
    for s in schemes:
        w = layer_weights(band, s)
        out[s] = {LEARNED_RANGES[i].name: float(w[i]) for i in range(len(w)) if w[i] > 0}
    return out


def _spread(n_total: int, n_pick: int | None) -> list[int]:
    """``n_pick`` indices spread evenly over ``range(n_total)`` (all when None)."""
    if n_pick is None or n_pick >= n_total:
        return list(range(n_total))
    return sorted({int(round(v)) for v in np.linspace(0, n_total - 1, n_pick)})


def _tiles(
    cube: xr.DataArray,
    sensor: str,
    bands: Sequence[str],
    model: Any,
    tile_size: int | None,
    max_tiles: int | None,
    normalize: Any = True,
) -> torch.Tensor:
    """Normalized tiles ``(T, C, t, t)`` of ``cube``: ``max_tiles`` spread over the scene, only
    tiles fully inside it."""
    job = EmbeddingJob(cube, sensor, model, bands, 64, tile_size, 0, normalize)
    t = job.tile_size
    inside = [w for w in job.windows if w.y0 + t <= job.grid.height and w.x0 + t <= job.grid.width]
    if not inside:
        raise ValueError(
            f"the scene ({job.grid.height}×{job.grid.width}) is smaller than one tile ({t})"
        )
    picked = [inside[i] for i in _spread(len(inside), max_tiles)]
    xs = [x for _, x in iter_batches(job.cube, job.grid, 64, job.normalizer, picked)]
    return torch.from_numpy(np.concatenate(xs))


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(F.cosine_similarity(a.float(), b.float(), dim=-1).mean())


@dataclass
class ThermalComparison:
    """Per scheme: how adding TIRS B10/B11 changes features and reconstructions.

    Each row: ``scheme``; ``token_shift`` (relative change of the projected tokens,
    ‖t_with − t_without‖ / ‖t_without‖); ``cls_cosine``, ``pooled_cosine``, ``patch_cosine``
    (cosine similarity of encoder features with vs without TIRS; 1 = unchanged);
    ``oli_mse_with`` / ``oli_mse_without`` (masked-reconstruction MSE of the OLI bands, same masks);
    ``thermal_mse`` (of B10/B11, reprojected through the interpolated layers);
    ``baseline_mse`` (predicting each OLI band's mean over the visible patches).
    """

    rows: list[dict[str, float | str]] = field(default_factory=list)
    tiles: int = 0

    def table(self) -> str:
        keys = [
            "token_shift", "cls_cosine", "pooled_cosine", "patch_cosine",
            "oli_mse_with", "oli_mse_without", "thermal_mse", "baseline_mse",
        ]  # fmt: skip
        head = f"{'scheme':<18}" + "".join(f"{k:>16}" for k in keys)
        lines = [head] + [
            f"{r['scheme']:<18}" + "".join(f"{float(r[k]):>16.4f}" for k in keys) for r in self.rows
        ]
        return "\n".join(lines) + f"\n({self.tiles} tiles)"


def thermal_comparison(
    cube: xr.DataArray | None = None,
    model: Any = None,
    schemes: Sequence[str] = INTERPOLATION_SCHEMES,
    tile_size: int | None = None,
    max_tiles: int | None = 16,
    mask_ratio: float = 0.75,
    seed: int = 0,
    normalize: Any = True,
) -> ThermalComparison:
    """Compare features and reconstructions of Landsat-8 tiles with and without TIRS.

    Args:
        cube: Landsat-8 ``(band, y, x)`` scene with bands B1–B7, B10, B11 (default: the bundled
            sample).
        model: a SmartiesMAE, checkpoint path, or ``None`` (demo model).
        schemes: interpolation schemes for TIRS.
        tile_size: tile side (default ``model.img_size``).
        max_tiles: tiles used, spread over the scene.
        mask_ratio: for the reconstruction comparison (one seeded mask shared by all runs).
        seed: seeds the mask.
        normalize: as in :func:`smartiesviz.predict.embed`.

    Returns:
        :class:`ThermalComparison`.
    """
    if cube is None:
        cube = data.landsat8_sample()
    model = resolve_model(model)
    x = _tiles(cube, "landsat8", [*OLI_BANDS, *TIRS_BANDS], model, tile_size, max_tiles, normalize)
    gh, gw = model.patch_grid(x)
    gen = torch.Generator().manual_seed(seed)
    visible = random_visible_mask(x.shape[0], gh * gw, mask_ratio, gen, x.device)  # (T, L)
    with torch.no_grad():
        without = _without_thermal(model, x[:, : len(OLI_BANDS)], visible)
        result = ThermalComparison(tiles=int(x.shape[0]))
        for scheme in schemes:
            result.rows.append(_thermal_row(model, x, scheme, visible, without))
    return result


def _masked_mse(
    model: Any, pred: torch.Tensor, target: torch.Tensor, visible: torch.Tensor
) -> float:
    """Mean of the per-patch errors ``(T, L)`` of ``pred`` vs ``target`` over hidden patches."""
    hidden = (~visible).float()
    return float((model.patch_errors(pred, target) * hidden).sum() / hidden.sum())


def _without_thermal(model: Any, x_oli: torch.Tensor, visible: torch.Tensor) -> dict[str, Any]:
    """The OLI-only reference run on ``x_oli`` ``(T, 7, t, t)``: projected tokens, encoder
    features, masked reconstruction MSE and the visible-mean baseline MSE."""
    rb = landsat8_bands(thermal=False)
    proj = model.spectrum_projection(x_oli, rb)
    feats = model.encode(x_oli, rb)
    out = model(x_oli, rb, visible_mask=visible)
    oli_mse = _masked_mse(model, out.recon_a, x_oli, visible)
    mean = _visible_mean(x_oli, visible, model.patch_size)
    baseline = _masked_mse(model, mean, x_oli, visible)
    return {"proj": proj, "feats": feats, "oli_mse": oli_mse, "baseline": baseline}


def _thermal_row(
    model: Any, x: torch.Tensor, scheme: str, visible: torch.Tensor, without: dict[str, Any]
) -> dict[str, float | str]:
    """One :class:`ThermalComparison` row: ``x`` ``(T, 9, t, t)`` (OLI + TIRS) under ``scheme``
    against the OLI-only run ``without``."""
    n_oli = len(OLI_BANDS)
    rb = landsat8_bands(scheme)
    proj = model.spectrum_projection(x, rb)
    feats = model.encode(x, rb)  # (T, 1 + L, D): CLS then patches
    recon = model(x, rb, visible_mask=visible).recon_a
    proj_without, feats_without = without["proj"], without["feats"]
    shift = (proj - proj_without).norm() / proj_without.norm().clamp_min(1e-12)
    return {
        "scheme": scheme,
        "token_shift": float(shift),
        "cls_cosine": _cos(feats[:, 0], feats_without[:, 0]),
        "pooled_cosine": _cos(feats[:, 1:].mean(1), feats_without[:, 1:].mean(1)),
        "patch_cosine": _cos(feats[:, 1:], feats_without[:, 1:]),
        "oli_mse_with": _masked_mse(model, recon[:, :n_oli], x[:, :n_oli], visible),
        "oli_mse_without": without["oli_mse"],
        "thermal_mse": _masked_mse(model, recon[:, n_oli:], x[:, n_oli:], visible),
        "baseline_mse": without["baseline"],
    }


def _visible_mean(x: torch.Tensor, visible: torch.Tensor, s: int) -> torch.Tensor:
    """Each band's mean over the visible patches, broadcast to ``x``'s shape."""
    b, c, h, w = x.shape
    patches = (
        x.reshape(b, c, h // s, s, w // s, s).permute(0, 2, 4, 1, 3, 5).reshape(b, -1, c, s * s)
    )
    v = visible.float()[:, :, None, None]
    mean = (patches * v).sum((1, 3)) / (v.sum((1, 3)) * s * s)  # (B, C)
    return mean[:, :, None, None].expand_as(x)


# ------------------------------------------------------------------------- Sentinel-2 vs Landsat-8
def matched_bands(
    sensor_a: str = "sentinel2-l1c", sensor_b: str = "landsat8", min_overlap: float = 0.3
) -> list[tuple[str, str, float]]:
    """Pairs of bands of two sensors that cover the same spectral range.

    For every band of ``sensor_b``, the band of ``sensor_a`` whose instrument range overlaps it
    most (intersection over union of the two ranges; ties → nearest centre) is kept when that
    overlap is at least ``min_overlap`` and both bands have a projection layer. A broad band (the
    Landsat-8 panchromatic B8) overlaps no narrow band enough to be matched.

    Returns:
        ``[(band_a, band_b, overlap), …]`` in ``sensor_b``'s band order.
    """
    a_bands = [b for b in get_sensor(sensor_a).bands if _has_layer(b)]
    pairs = []
    for bb in get_sensor(sensor_b).bands:
        if not _has_layer(bb):
            continue
        lo_b, hi_b = bb.instrument_range
        scored = []
        for ba in a_bands:
            lo_a, hi_a = ba.instrument_range
            inter = min(hi_a, hi_b) - max(lo_a, lo_b)
            if inter > 0:
                iou = inter / (max(hi_a, hi_b) - min(lo_a, lo_b))
                scored.append((-iou, abs(ba.center_nm - bb.center_nm), ba.name))
        if scored:
            neg_iou, _, name = min(scored)
            if -neg_iou >= min_overlap:
                pairs.append((name, bb.name, round(-neg_iou, 3)))
    return pairs


def _has_layer(band: Any) -> bool:
    try:
        layer_weights(band)
    except (NoLayerError, OutOfSpectrumError):
        return False
    return True


@dataclass
class SensorComparison:
    """Features of two scenes from the spectral ranges their sensors share.

    Attributes:
        pairs: the matched ``(band_a, band_b, overlap)``.
        centroid_cosine: cosine similarity of the two scenes' mean features.
        cross_nn: mean, over b's tiles, of the best cosine similarity to any of a's tiles.
        within_nn_a, within_nn_b: the same within each scene (self excluded): how close
            neighbours are when the sensor is the same.
        sensor_accuracy: leave-one-out 5-NN accuracy of telling the sensor from the features
            (0.5 = indistinguishable, 1 = fully separable); scene content differs too, so this
            bounds the sensor gap from above.
        tiles: tiles per scene.
    """

    pairs: list[tuple[str, str, float]]
    centroid_cosine: float
    cross_nn: float
    within_nn_a: float
    within_nn_b: float
    sensor_accuracy: float
    tiles: int

    def table(self) -> str:
        bands = ", ".join(f"{a}↔{b}" for a, b, _ in self.pairs)
        return (
            f"bands: {bands}\n"
            f"centroid cosine {self.centroid_cosine:.3f} | nearest-neighbour cosine: cross "
            f"{self.cross_nn:.3f}, within a {self.within_nn_a:.3f}, within b {self.within_nn_b:.3f}"
            f" | sensor identifiable (LOO 5-NN acc.) {self.sensor_accuracy:.3f} | {self.tiles} tiles each"
        )


def compare_sensors(
    cube_a: xr.DataArray | None = None,
    cube_b: xr.DataArray | None = None,
    model: Any = None,
    sensor_a: str | None = None,
    sensor_b: str | None = None,
    coarsen_a: int = 3,
    feature: str = "pooled",
    tile_size: int | None = None,
    max_tiles: int | None = 32,
    normalize: Any = True,
) -> SensorComparison:
    """Compare Sentinel-2 and Landsat-8 features where the sensors share spectral ranges.

    Only the matched bands (:func:`matched_bands`) are fed, each sensor through its own layers
    (Landsat-8's OLI bands through the nearest learned layers). Sentinel-2 is averaged to 30 m
    first (``coarsen_a=3``) so both scenes have the same pixel size. The bundled scenes show
    different places, so differences mix sensor and content.

    Args:
        cube_a, cube_b: the scenes (default: the bundled Sentinel-2 and Landsat-8 samples).
        model: a SmartiesMAE, checkpoint path, or ``None`` (demo model).
        sensor_a, sensor_b: their sensors (default: the cubes' ``sensor`` attributes).
        coarsen_a: block-average ``cube_a`` by this factor first (1 = keep).
        feature: ``"pooled"`` or ``"cls"`` per tile.
        tile_size, max_tiles, normalize: tiles used per scene.

    Returns:
        :class:`SensorComparison`.
    """
    if feature not in ("pooled", "cls"):
        raise ValueError(f"feature must be 'pooled' or 'cls'; got {feature!r}")
    cube_a, cube_b = _bundled_if_none(cube_a, cube_b)
    sensor_a, sensor_b = cube_sensor(cube_a, sensor_a), cube_sensor(cube_b, sensor_b)
    pairs = _shared_pairs(cube_a, cube_b, sensor_a, sensor_b)
    if coarsen_a > 1:
        cube_a = _coarsened(cube_a.sel(band=[p[0] for p in pairs]), coarsen_a)
    model = resolve_model(model)
    tiles = (model, tile_size, max_tiles, normalize)
    fa = _scene_features(cube_a, sensor_a, [p[0] for p in pairs], feature, *tiles)
    fb = _scene_features(cube_b, sensor_b, [p[1] for p in pairs], feature, *tiles)
    n = min(len(fa), len(fb))
    fa, fb = fa[:n], fb[:n]
    sim_ab = fb @ fa.T
    sim_aa = (fa @ fa.T).fill_diagonal_(-2)
    sim_bb = (fb @ fb.T).fill_diagonal_(-2)
    centroid = torch.nn.functional.cosine_similarity(fa.mean(0), fb.mean(0), dim=0)
    return SensorComparison(
        pairs=pairs,
        centroid_cosine=float(centroid),
        cross_nn=float(sim_ab.max(1).values.mean()),
        within_nn_a=float(sim_aa.max(1).values.mean()),
        within_nn_b=float(sim_bb.max(1).values.mean()),
        sensor_accuracy=_sensor_accuracy(fa, fb),
        tiles=n,
    )


def _bundled_if_none(cube_a: Any, cube_b: Any) -> tuple[Any, Any]:
    """The bundled Sentinel-2 / Landsat-8 samples (only the compared bands) for missing cubes."""
    if cube_a is None or cube_b is None:
        pairs = matched_bands()  # bundled samples: read only the bands compared
        if cube_a is None:
            cube_a = data.sentinel2_sample(bands=[p[0] for p in pairs])
        if cube_b is None:
            cube_b = data.landsat8_sample(bands=[p[1] for p in pairs])
    return cube_a, cube_b


def _shared_pairs(
    cube_a: xr.DataArray, cube_b: xr.DataArray, sensor_a: str, sensor_b: str
) -> list[tuple[str, str, float]]:
    """:func:`matched_bands` of the two sensors restricted to the bands the cubes hold."""
    have_a = {str(b) for b in cube_a.band.values}
    have_b = {str(b) for b in cube_b.band.values}
    pairs = [p for p in matched_bands(sensor_a, sensor_b) if p[0] in have_a and p[1] in have_b]
    if not pairs:
        raise ValueError(
            f"the {sensor_a!r} cube (bands {sorted(have_a)}) and the {sensor_b!r} cube (bands "
            f"{sorted(have_b)}) share no spectral range"
        )
    return pairs


def _coarsened(cube: xr.DataArray, factor: int) -> xr.DataArray:
    """``cube`` block-averaged by ``factor`` in y and x, keeping its attrs and CRS."""
    attrs, crs = dict(cube.attrs), cube.rio.crs
    cube = cube.coarsen(y=factor, x=factor, boundary="trim").mean()
    return cube.assign_attrs(attrs).rio.write_crs(crs)


def _scene_features(
    cube: xr.DataArray,
    sensor: str,
    names: list[str],
    feature: str,
    model: Any,
    tile_size: int | None,
    max_tiles: int | None,
    normalize: Any,
) -> torch.Tensor:
    """Unit-length ``(T, D)`` CLS or pooled features of the scene's tiles, bands ``names`` fed
    through their nearest learned layers."""
    x = _tiles(cube, sensor, names, model, tile_size, max_tiles, normalize)
    rb = resolve_bands([f"{sensor}/{n}" for n in names], {n: "nearest-layer" for n in names})
    with torch.no_grad():
        f = (model.cls_features if feature == "cls" else model.pooled_features)(x, rb)
    return torch.nn.functional.normalize(f.float(), dim=1)


def _sensor_accuracy(fa: torch.Tensor, fb: torch.Tensor) -> float:
    """Leave-one-out 5-NN accuracy of telling a's ``(n, D)`` features from b's ``(n, D)``."""
    n = len(fa)
    both = torch.cat([fa, fb]).numpy()
    labels = np.array([0] * n + [1] * n)
    correct = 0
    for i in range(2 * n):  # leave-one-out
        rest = np.delete(np.arange(2 * n), i)
        probe = knn(both[rest], labels[rest], k=min(5, 2 * n - 1))
        correct += int(probe.predict(both[i : i + 1])[0] == labels[i])
    return correct / (2 * n)
