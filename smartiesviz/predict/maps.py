"""Map products from embeddings and the decoder, each a georeferenced DataArray.

- :func:`kmeans_map`: unsupervised land-cover classes from patch embeddings (seeded k-means);
- :func:`pca_map`: 3-component PCA false colour of patch embeddings, stretched to [0, 1];
- :func:`reconstruction_error_map`: where the model is surprised: masked-reconstruction error per
  patch, every patch hidden in turn under seeded masks;
- cross-spectral prediction (decode bands the input did not have) lives in
  :mod:`smartiesviz.predict.cross_spectral`;
- :func:`probe_map`: any fitted probe applied patch by patch or tile by tile.

Patch-level maps sit on the patch grid (the scene transform scaled by the patch size); pixel-level
maps on the scene grid; tile-level maps on the tile grid. All keep the scene CRS.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from affine import Affine

from smartiesviz.data.tiling import Blender, Overlap, PatchGrid, TileWindow, georeferenced
from smartiesviz.data.tiling import iter_grid_batches as iter_batches
from smartiesviz.predict.embed import EmbeddingJob, EmbedOptions, Normalizer, embed
from smartiesviz.predict.embed import _with_validity as with_validity
from smartiesviz.predict.probes import SegmentationHead

#: Patches with a smaller share of valid pixels get no reconstruction error (NaN), as in embed.
MIN_VALID = EmbedOptions.min_valid

if TYPE_CHECKING:  # pragma: no cover
    import torch
    import xarray as xr


# ------------------------------------------------------------------------------ embedding maps
def _feature_rows(embeddings: xr.DataArray) -> np.ndarray:
    """``(feature, y, x)`` cube → ``(ny·nx, D)`` rows (row-major over the grid)."""
    if embeddings.dims != ("feature", "y", "x"):
        raise ValueError(
            f"expected an embedding cube with dims (feature, y, x); got {embeddings.dims}"
        )
    values = np.asarray(embeddings.values, dtype=np.float32)
    return values.reshape(values.shape[0], -1).T


def _like(embeddings: xr.DataArray, values: np.ndarray, name: str, leading=None, **attrs: Any):
    """Georeference ``values`` on the grid of ``embeddings``."""
    crs = embeddings.rio.crs
    transform = embeddings.rio.transform()
    out_attrs = {k: v for k, v in embeddings.attrs.items() if isinstance(v, (str, int, float))}
    out_attrs.update(attrs)
    return georeferenced(values, crs, transform, leading, name, out_attrs)


def _fit_sample(rows: np.ndarray, max_fit: int, seed: int) -> np.ndarray:
    if len(rows) <= max_fit:
        return rows
    rng = np.random.default_rng(seed)
    return rows[np.sort(rng.choice(len(rows), max_fit, replace=False))]


def unit_rows(rows: np.ndarray) -> np.ndarray:
    """``(n, D)`` rows scaled to unit length (k-means on directions: a blend of two windows'
    tokens is shorter than either; its direction is not)."""
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)


@dataclass(frozen=True)
class KMeansClasses:
    """k-means classes fitted on a sample of embedding rows (:func:`fit_kmeans`): a call maps
    ``(n, D)`` rows to int16 ``(n,)`` classes, numbered by size in the sample (0 = largest)."""

    model: Any  # a fitted scikit-learn KMeans / MiniBatchKMeans
    relabel: np.ndarray  # (k,) int16: cluster index → class
    cosine: bool

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        return self.relabel[self.model.predict(unit_rows(rows) if self.cosine else rows)]


def fit_kmeans(
    sample: np.ndarray, n_clusters: int, seed: int = 0, cosine: bool = True, n_init: int = 4
) -> KMeansClasses:
    """Fit :class:`KMeansClasses` on ``(n, D)`` rows (MiniBatchKMeans above 100 000 rows)."""
    from sklearn.cluster import (  # lazy: scikit-learn is heavy; only these maps need it
        KMeans,
        MiniBatchKMeans,
    )

    fit_rows = unit_rows(sample) if cosine else sample
    if len(fit_rows) > 100_000:
        km = MiniBatchKMeans(n_clusters, random_state=seed, n_init=n_init, batch_size=4096)
    else:
        km = KMeans(n_clusters, random_state=seed, n_init=n_init)
    km.fit(fit_rows)
    order = np.argsort(-np.bincount(km.labels_, minlength=n_clusters), kind="stable")
    relabel = np.empty(n_clusters, np.int16)
    relabel[order] = np.arange(n_clusters, dtype=np.int16)
    return KMeansClasses(km, relabel, cosine)


@dataclass(frozen=True)
class PCAColours:
    """Principal components fitted on a sample of embedding rows (:func:`fit_pca`): a call maps
    ``(n, D)`` rows to float32 ``(n, k)`` components stretched to [0, 1]."""

    mean: np.ndarray  # (D,)
    components: np.ndarray  # (D, k), each sign fixed so its largest loading is positive
    lo: np.ndarray  # (k,) the stretch, from the sample
    hi: np.ndarray  # (k,)
    explained: np.ndarray  # (k,) explained variance ratios

    def project(self, rows: np.ndarray) -> np.ndarray:
        return (rows - self.mean) @ self.components

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        scaled = (self.project(rows) - self.lo) / np.maximum(self.hi - self.lo, 1e-12)
        return np.clip(scaled, 0, 1).astype(np.float32)


def fit_pca(
    sample: np.ndarray, n_components: int = 3, stretch: tuple[float, float] = (2.0, 98.0)
) -> PCAColours:
    """Fit :class:`PCAColours` on ``(n, D)`` rows: the covariance's leading eigenvectors, the
    ``stretch`` percentiles of the sample's projection mapped to 0 and 1."""
    fit = sample.astype(np.float64)
    mean = fit.mean(0)
    evals, evecs = np.linalg.eigh(np.cov(fit - mean, rowvar=False))
    idx = np.argsort(evals)[::-1][:n_components]
    comps = evecs[:, idx]
    signs = np.sign(comps[np.abs(comps).argmax(0), np.arange(n_components)])
    comps = comps * np.where(signs == 0, 1, signs)
    lo, hi = np.percentile((sample - mean) @ comps, stretch, axis=0)
    return PCAColours(mean, comps, lo, hi, evals[idx] / max(evals.sum(), 1e-12))


def kmeans_map(
    embeddings: xr.DataArray,
    n_clusters: int = 8,
    seed: int = 0,
    cosine: bool = True,
    max_fit: int = 20_000,
    n_init: int = 4,
) -> xr.DataArray:
    """Unsupervised land-cover map: k-means on the patch embeddings (:func:`fit_kmeans`, the
    map's "k-means classes" layer too).

    Clusters are fitted on at most ``max_fit`` patches (a seeded sample; MiniBatchKMeans above
    100 000 patches), then every patch is assigned. Labels are renumbered by cluster size in the
    fitted sample (0 = largest), so equal inputs and seeds give identical maps.

    Args:
        embeddings: ``(feature, y, x)`` cube from :func:`smartiesviz.predict.embed`.
        n_clusters: number of classes.
        seed: seeds the sample and k-means initialisation.
        cosine: L2-normalize features first (k-means on directions).
        max_fit: patches used to fit the centroids.
        n_init: k-means restarts.

    Returns:
        int16 DataArray ``(y, x)`` on the embeddings' grid, attrs ``n_clusters``, ``seed``.
    """
    rows = _feature_rows(embeddings)
    if not 1 <= n_clusters <= len(rows):
        raise ValueError(f"n_clusters must be in [1, {len(rows)}] (patches); got {n_clusters}")
    classes = fit_kmeans(_fit_sample(rows, max_fit, seed), n_clusters, seed, cosine, n_init)
    ny, nx = embeddings.sizes["y"], embeddings.sizes["x"]
    return _like(
        embeddings, classes(rows).reshape(ny, nx), "kmeans", n_clusters=n_clusters, seed=seed
    )


def pca_map(
    embeddings: xr.DataArray,
    n_components: int = 3,
    seed: int = 0,
    max_fit: int = 50_000,
    stretch: tuple[float, float] = (2.0, 98.0),
) -> xr.DataArray:
    """PCA false colour of the patch embeddings (:func:`fit_pca`, the map's "PCA colour" layer
    too).

    Components come from the covariance of at most ``max_fit`` patches (seeded sample), each
    component's sign fixed so its largest loading is positive; each is then stretched between
    the sample's ``stretch`` percentiles to [0, 1].

    Args:
        embeddings: ``(feature, y, x)`` cube.
        n_components: components (3 for an RGB composite).
        seed: seeds the fitting sample.
        max_fit: patches used for the covariance.
        stretch: low/high percentiles mapped to 0 and 1.

    Returns:
        float32 DataArray ``(band, y, x)`` with bands ``pc1…``, attrs ``explained_variance_ratio``.
    """
    rows = _feature_rows(embeddings)
    if not 1 <= n_components <= rows.shape[1]:
        raise ValueError(f"n_components must be in [1, {rows.shape[1]}]; got {n_components}")
    colours = fit_pca(_fit_sample(rows, max_fit, seed), n_components, stretch)
    ny, nx = embeddings.sizes["y"], embeddings.sizes["x"]
    return _like(
        embeddings,
        colours(rows).T.reshape(n_components, ny, nx),
        "pca",
        ("band", [f"pc{i + 1}" for i in range(n_components)]),
        explained_variance_ratio=",".join(f"{r:.4f}" for r in colours.explained),
        seed=seed,
    )


# --------------------------------------------------------------------------- reconstruction error
def reconstruction_error_map(
    cube: xr.DataArray, sensor: str | None = None, model: Any = None,
    bands: Sequence[str] | None = None, mask_ratio: float = 0.75, seed: int = 0,
    per_band: bool = False, tile_size: int | None = None, batch_size: int | str = "auto",
    normalize: bool | Normalizer = True, device: str | torch.device | None = None,
    progress: bool = True, overlap: Overlap = "auto",
) -> xr.DataArray:  # fmt: skip
    """Masked-reconstruction error per patch: where the model is surprised.

    In every tile, the patches are split by a seeded random permutation into ``K =
    round(1 / (1 − mask_ratio))`` groups; pass ``k`` shows the encoder group ``k`` only (so the
    realized mask ratio is ``1 − 1/K``, 0.75 by default) and scores the hidden patches. Each patch
    is hidden in ``K − 1`` passes; its error is the mean squared error (normalized units, over its
    bands and pixels) averaged over those passes. Masks depend only on ``seed`` and the tile order,
    not on the batch size.

    Args:
        cube, sensor, model, bands, tile_size, batch_size, normalize, device, progress: as in
            :func:`smartiesviz.predict.embed`.
        mask_ratio: share of patches hidden per pass, in (0, 1).
        seed: seeds the masks.
        per_band: return one error map per band.
        overlap: pixels shared by neighbouring windows (a multiple of 2 × the patch size), or
            ``"auto"`` (half the window, :func:`~smartiesviz.data.tiling.seamless_overlap`;
            4× the model passes of 0): the masks cover whole windows and neighbouring
            windows' errors are cross-faded over their overlap
            (:class:`~smartiesviz.data.tiling.Blender`), so the map shows no tile grid.

    Returns:
        float32 DataArray ``(y, x)`` (or ``(band, y, x)``) on the patch grid.
    """
    import torch  # lazy: k-means/PCA maps of precomputed embeddings need no torch
    from tqdm.auto import tqdm  # lazy: tqdm.auto probes for Jupyter widgets

    if not 0 < mask_ratio < 1:
        raise ValueError(f"mask_ratio must be in (0, 1); got {mask_ratio}")
    k_groups = max(2, round(1 / (1 - mask_ratio)))
    # EmbeddingJob resolves the model and "auto" overlap (half the window)
    job = EmbeddingJob(cube, sensor, model, bands, batch_size, tile_size, overlap, normalize,
                       device)  # fmt: skip
    n = job.grid.cells_per_tile**2
    if n < k_groups:
        raise ValueError(f"tiles of {n} patches cannot be split into {k_groups} mask groups")
    rb = job.model.resolve(job.band_specs)
    bar = tqdm(total=len(job.windows), unit="tile", desc="reconstruct", disable=not progress)
    errors = _error_batches(job, rb, k_groups, mask_ratio, seed, per_band, bar)
    with torch.no_grad(), bar:
        out = blended_scene(job.grid, errors, len(rb) if per_band else 1)  # (C, ny, nx)
    leading = ("band", rb.names) if per_band else None
    da = job.wrap(out if per_band else out[0], "reconstruction_error", leading)
    da.attrs.update(mask_ratio=1 - 1 / k_groups, seed=seed, units="normalized MSE")
    return da


def _error_batches(
    job: EmbeddingJob, rb: Any, k_groups: int, mask_ratio: float, seed: int, per_band: bool,
    bar: Any,
) -> Iterator[tuple[list[TileWindow], np.ndarray]]:  # fmt: skip
    """Yield ``(windows, err)`` per batch of tiles: ``err`` float32 ``(B, C, T, T)`` on each
    tile's patch grid, ``C`` the resolved bands ``rb`` (``per_band``) or 1 (their mean). The
    masks come from one generator seeded with ``seed``, a permutation per tile in tile order."""
    import torch

    cells, n = job.grid.cells_per_tile, job.grid.cells_per_tile**2
    gen = torch.Generator().manual_seed(seed)
    # a validity channel rides along: no-data pixels (filled with 0) never count as errors
    batches = iter_batches(job.cube, job.grid, job.batch_size, with_validity(job.normalizer))
    for windows, xv in batches:
        bar.update(len(windows))
        xv = torch.from_numpy(np.ascontiguousarray(xv)).to(job.device)
        x, valid = xv[:, :-1], xv[:, -1:]  # (B, C_in, T·s, T·s), (B, 1, T·s, T·s)
        perms = torch.stack([torch.randperm(n, generator=gen) for _ in range(x.shape[0])])
        err = _hidden_errors(job, rb, x, valid, perms, k_groups, mask_ratio)  # (B, C, N)
        if not per_band:
            err = err.mean(1, keepdim=True)
        yield windows, err.reshape(x.shape[0], -1, cells, cells).numpy()


def _hidden_errors(
    job: EmbeddingJob, rb: Any, x: torch.Tensor, valid: torch.Tensor, perms: torch.Tensor,
    k_groups: int, mask_ratio: float,
) -> torch.Tensor:  # fmt: skip
    """Each patch's MSE over its valid pixels, averaged over the passes that hide it.

    Args:
        x: ``(B, C_in, T·s, T·s)`` tiles in model units; ``valid`` ``(B, 1, T·s, T·s)`` 0/1.
        perms: ``(B, N)`` a seeded permutation of each tile's ``N = T·T`` patches; pass ``k``
            of ``k_groups`` shows the encoder ``perms[:, k::k_groups]`` only.

    Returns:
        float32 ``(B, C, N)`` on the CPU (``C = len(rb)``); NaN where a patch is mostly no data.
    """
    import torch

    b, n = perms.shape
    cells, s = job.grid.cells_per_tile, job.patch_size
    valid_px = _patch_sums(valid, cells, s)  # (B, 1, N) valid pixels per patch
    err_sum, hidden_count = torch.zeros(b, len(rb), n), torch.zeros(b, 1, n)
    for k in range(k_groups):
        visible = torch.zeros(b, n, dtype=torch.bool)  # True: the encoder sees the patch
        visible.scatter_(1, perms[:, k::k_groups], True)
        recon = job.model(
            x, rb, mask_ratio=mask_ratio, visible_mask=visible.to(x.device)
        ).recon_a  # (B, C, T·s, T·s)
        err = (recon.float() - x[:, list(rb.keep)].float()).square() * valid
        err = _patch_sums(err, cells, s) / valid_px.clamp_min(1)  # (B, C, N)
        hidden = (~visible).float().unsqueeze(1)  # (B, 1, N)
        err_sum += err.cpu() * hidden
        hidden_count += hidden
    err = err_sum / hidden_count
    err[(valid_px < MIN_VALID * s * s).expand_as(err)] = float("nan")  # mostly no data
    return err


def _patch_sums(x: torch.Tensor, cells: int, s: int) -> torch.Tensor:
    """``(B, C, T·s, T·s)`` pixels → ``(B, C, T·T)`` sums per patch (row-major over the tile)."""
    b, c = x.shape[:2]
    return x.reshape(b, c, cells, s, cells, s).sum(dim=(3, 5)).reshape(b, c, cells * cells)


def blended_scene(
    grid: PatchGrid,
    batches: Iterable[tuple[Sequence[TileWindow], np.ndarray]],
    channels: int,
    scale: int = 1,
) -> np.ndarray:
    """Cross-fade the windows' outputs (:meth:`~smartiesviz.data.tiling.Blender.blend`) into one
    in-memory array.

    Args:
        grid: the windows' patch grid ``(ny, nx)`` cells.
        batches: ``(windows, maps)`` with ``maps`` ``(B, channels, T·scale, T·scale)``.
        channels: ``C`` of each window output.
        scale: output pixels per patch-grid cell.

    Returns:
        float32 ``(C, ny·scale, nx·scale)``.
    """
    ny, nx = grid.shape
    out = np.zeros((channels, ny * scale, nx * scale), np.float32)
    for r, block in Blender(grid, channels, scale).blend(batches):
        out[:, r : r + block.shape[1]] = block
    return out


# ------------------------------------------------------------------------------------ probe map
def probe_map(
    probe: Any,
    embeddings: xr.DataArray | None = None,
    cube: xr.DataArray | None = None,
    level: str = "patch",
    proba: bool = False,
    sensor: str | None = None,
    model: Any = None,
    bands: Sequence[str] | None = None,
    tile_size: int | None = None,
    batch_size: int | str = "auto",
    normalize: bool | Normalizer = True,
    progress: bool = True,
    chunk: int = 65_536,
) -> xr.DataArray:
    """Apply a fitted probe across a scene.

    - ``level="patch"``: a probe fitted on patch features (``knn``/``linear_probe`` on rows of an
      embedding cube) is applied to every patch of ``embeddings`` → a patch-grid map; a
      :class:`~smartiesviz.predict.probes.SegmentationHead` gives a pixel map.
    - ``level="cls"`` / ``"pooled"``: a probe fitted on per-tile CLS or pooled features is applied
      tile by tile to ``cube`` (encoded on the fly) → a tile-grid map.

    Args:
        probe: a fitted probe (``predict``/``predict_proba``) or a SegmentationHead.
        embeddings: ``(feature, y, x)`` cube (for ``"patch"``; computed from ``cube`` if absent).
        cube: the scene (for ``"cls"``/``"pooled"``, or to compute embeddings).
        level: ``"patch"``, ``"cls"`` or ``"pooled"``.
        proba: return class probabilities ``(class, y, x)`` instead of labels.
        sensor, model, bands, tile_size, batch_size, normalize, progress: as in :func:`embed`.
        chunk: rows per predict call (bounds memory).

    Returns:
        DataArray: int16 class indices ``(y, x)`` (attrs ``classes``), ``(label, y, x)`` 0/1 for
        multi-label, or ``(class, y, x)`` probabilities.
    """
    if level not in ("patch", "cls", "pooled"):
        raise ValueError(f"level must be 'patch', 'cls' or 'pooled'; got {level!r}")
    if level != "patch":
        if cube is None:
            raise ValueError(
                f"probe_map(level={level!r}) needs the cube (tiles are encoded on the fly)"
            )
        job = EmbeddingJob(cube, sensor, model, bands, batch_size, tile_size, 0, normalize)
        return _tile_probe_map(probe, job, level, proba, progress)
    if embeddings is None:
        if cube is None:
            raise ValueError("probe_map(level='patch') needs embeddings or a cube")
        embeddings = embed(
            cube, sensor, model, bands=bands, batch_size=batch_size, tile_size=tile_size,
            normalize=normalize, progress=progress,
        )  # fmt: skip
    if isinstance(probe, SegmentationHead):
        return _segmentation_map(probe, embeddings, proba)
    return _patch_probe_map(probe, embeddings, proba, chunk)


def _patch_probe_map(
    probe: Any, embeddings: xr.DataArray, proba: bool, chunk: int
) -> xr.DataArray:
    """A probe of patch features applied to every patch, ``chunk`` rows at a time → a map on
    the embeddings' patch grid."""
    rows = _feature_rows(embeddings)  # (ny·nx, D)
    ny, nx = embeddings.sizes["y"], embeddings.sizes["x"]
    outs = [_apply(probe, rows[i : i + chunk], proba) for i in range(0, len(rows), chunk)]
    values = np.concatenate(outs).reshape(ny, nx, -1).transpose(2, 0, 1)  # (K, ny, nx)
    return _probe_da(
        probe, values, proba, lambda v, name, lead, at: _like(embeddings, v, name, lead, **at)
    )


def _tile_probe_map(
    probe: Any, job: EmbeddingJob, level: str, proba: bool, progress: bool
) -> xr.DataArray:
    """A probe of per-tile ``level`` (``"cls"``/``"pooled"``) features applied tile by tile →
    a map on the tile grid (one cell per window)."""
    import torch  # lazy: k-means/PCA maps of precomputed embeddings need no torch

    ny, nx = job.grid.shape
    cells = job.grid.cells_per_tile
    ty, tx = math.ceil(ny / cells), math.ceil(nx / cells)
    rows_out = []
    features = job.model.cls_features if level == "cls" else job.model.pooled_features
    with torch.no_grad():
        for _windows, x in job.batches(progress, desc="probe map"):
            feats = features(x, job.band_specs)  # (B, D)
            rows_out.append(_apply(probe, feats.float().cpu().numpy(), proba))
    values = np.concatenate(rows_out).reshape(ty, tx, -1).transpose(2, 0, 1)  # (K, ty, tx)
    crs, transform = scaled_geo_tiles(job)

    def wrap(v, name, lead, at):
        return georeferenced(v, crs, transform, lead, name, {**job.attrs, **at})

    return _probe_da(probe, values, proba, wrap)


def scaled_geo_tiles(job: EmbeddingJob):
    return job.crs, job.transform @ Affine.scale(job.grid.cells_per_tile)


def _apply(probe: Any, rows: np.ndarray, proba: bool) -> np.ndarray:
    if proba:
        return np.asarray(probe.predict_proba(rows), np.float32)
    if getattr(probe, "multilabel", False):
        return np.asarray(probe.predict(rows), np.uint8)
    # class indices, so string classes fit in a raster
    return np.asarray(probe.predict_proba(rows)).argmax(1).astype(np.int16)[:, None]


def _probe_da(probe: Any, values: np.ndarray, proba: bool, wrap) -> xr.DataArray:
    classes = [str(c) for c in getattr(probe, "classes", range(values.shape[0]))]
    at = {"classes": ",".join(classes), "probe": type(probe).__name__}
    if proba:
        return wrap(values, "probe_proba", ("class", classes), at)
    if getattr(probe, "multilabel", False):
        return wrap(values, "probe_labels", ("label", classes), at)
    return wrap(values[0], "probe_class", None, at)


def _segmentation_map(head: Any, embeddings: xr.DataArray, proba: bool) -> xr.DataArray:
    """A segmentation head over a whole embedding cube → pixel-level map."""
    f = np.asarray(embeddings.values, np.float32)[None]
    p = head.predict_proba(f)[0]  # (K, ny·S, nx·S)
    transform = embeddings.rio.transform() @ Affine.scale(1 / head.patch_size)
    classes = [str(i) for i in range(p.shape[0])]
    at = {"classes": ",".join(classes), "probe": type(head).__name__}
    if proba:
        return georeferenced(
            p, embeddings.rio.crs, transform, ("class", classes), "probe_proba", at
        )
    return georeferenced(
        p.argmax(0).astype(np.int16), embeddings.rio.crs, transform, None, "probe_class", at
    )
