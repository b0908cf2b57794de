"""Quality on data the demo checkpoint never saw (skipped, saying so, without the demo weights).

Run with ``-s`` to see the figures. Assertions: NIR predicted from RGB beats the per-tile NIR mean
on the held-out S2 block (ratio below the demo's target); probes recover NDVI-derived vegetation labels from RGB-only features
better than the majority class; the reconstruction-error map peaks on an implanted anomaly. The
BigEarthNet probe and S1 → S2 figures are reported, with only sanity checks (6 pairs).
"""

import math

import numpy as np
import pytest
import torch

from smartiesviz import data
from smartiesviz.predict import (
    cross_spectral_prediction,
    embed,
    knn,
    linear_probe,
    reconstruction_error_map,
)
from smartiesviz.predict.features import extract_features
from smartiesviz.predict.probes import evaluate_probe, fit_segmentation_head
from smartiesviz.training.evaluate import NIR_FROM_RGB_TARGET

RGB = ["sentinel2-l1c/B02", "sentinel2-l1c/B03", "sentinel2-l1c/B04"]


@pytest.fixture(scope="module")
def block(s2_rgbn, holdout):
    h = holdout.scene
    return s2_rgbn.isel(y=h.rows, x=h.cols)


def test_demo_embed_keeps_crs_and_grid(demo_model, block):
    crop = block.isel(y=slice(0, 100), x=slice(0, 130))
    e = embed(crop, progress=False)  # model=None: the demo model
    s = demo_model.patch_size
    assert e.shape == (demo_model.embed_dim, math.ceil(100 / s), math.ceil(130 / s))
    assert e.rio.crs == crop.rio.crs and e.rio.transform().a == crop.rio.transform().a * s


def test_nir_from_rgb_beats_the_per_tile_mean_on_the_held_out_block(demo_model, block, holdout):
    """NIR (B08) decoded from B04/B03/B02 alone (visible mode: every patch is seen, NIR never) on
    the demo's whole held-out block of the S2 scene. Baseline: each 64-px tile's true NIR mean.
    The held-out BigEarthNet pair's S2 (L2A, another place and season) is reported too."""
    res = cross_spectral_prediction(block, ["B08"], inputs=["B04", "B03", "B02"],
                                    model=demo_model, progress=False, mode="visible")  # fmt: skip
    sc = next(iter(res.scores.values()))
    print(f"\nNIR (B08) from RGB, held-out block {block.shape[1:]}, visible mode (R² vs scene "
          f"mean {sc['r2_global']:.3f}):\n{res.table()}")  # fmt: skip
    pair = data.bigearthnet_pairs()[holdout.pair.index]
    other = cross_spectral_prediction(pair.s2, ["B08"], inputs=["B04", "B03", "B02"],
                                      model=demo_model, progress=False, mode="visible")  # fmt: skip
    print(f"held-out BigEarthNet pair {pair.name}:\n{other.table()}")
    assert sc["mse_ratio"] < NIR_FROM_RGB_TARGET, sc


def test_s2_from_s1_on_the_held_out_pair_is_scored(demo_model, holdout):
    pair = data.bigearthnet_pairs()[holdout.pair.index]
    targets = ["B02", "B03", "B04", "B08", "B11", "B12"]
    res = cross_spectral_prediction(
        pair.s1, targets, model=demo_model, truth=pair.s2, progress=False
    )
    print(f"\nS2 from S1 (VV, VH), held-out BigEarthNet pair {pair.name}:\n{res.table()}")
    assert res.prediction.shape == (6, 120, 120)
    assert all(math.isfinite(s["mse"]) and s["pixels"] == 120 * 120 for s in res.scores.values())


def _features(model, x):
    """CLS ``(T, D)``, pooled ``(T, D)`` and patch maps ``(T, D, g, g)`` from one encoder pass."""
    with torch.no_grad():
        tokens = torch.cat([model.encode(c, RGB) for c in torch.split(torch.from_numpy(x), 128)])
    g = x.shape[-1] // model.patch_size
    maps = tokens[:, 1:].reshape(len(x), g, g, -1).permute(0, 3, 1, 2)
    return tokens[:, 0].numpy(), tokens[:, 1:].mean(1).numpy(), maps.numpy()


def _tiles(cube, rows, cols, size=64):
    return np.stack([cube[:, r : r + size, c : c + size] for r in rows for c in cols])


def test_probes_recover_vegetation_from_rgb_features(demo_model, s2_rgbn, holdout):
    """Labels from held-back NIR (NDVI), features from RGB only. Probes are fitted on tiles of
    the demo's training part of the scene and scored on its held-out block (never seen by the
    backbone nor the probes)."""
    h = holdout.scene
    dn = s2_rgbn.values
    norm = data.normalize(s2_rgbn).values
    ndvi = (dn[3] - dn[2]) / np.maximum(dn[3] + dn[2], 1)
    test_rows = range(h.y_start, h.y_stop - 64 + 1, 64)
    test_cols = range(h.x_start, h.x_stop - 64 + 1, 64)
    held = np.zeros(ndvi.shape, bool)
    held[h.y_start : h.y_stop + 32, h.x_start : h.x_stop] = True  # + the gap
    train = [(r, c) for r in range(0, ndvi.shape[0] - 64 + 1, 96)
             for c in range(0, ndvi.shape[1] - 64 + 1, 96) if not held[r : r + 64, c : c + 64].any()]  # fmt: skip
    test = [(r, c) for r in test_rows for c in test_cols]

    def cut(a, where):
        return np.stack([a[:, r : r + 64, c : c + 64] for r, c in where])

    x_tr, x_te = cut(norm[:3], train), cut(norm[:3], test)
    v_tr, v_te = cut(ndvi[None], train)[:, 0], cut(ndvi[None], test)[:, 0]
    (cls_tr, pool_tr, maps_tr), (cls_te, pool_te, maps_te) = (
        _features(demo_model, x_tr),
        _features(demo_model, x_te),
    )
    y_tr, y_te = v_tr.mean((1, 2)) > 0.2, v_te.mean((1, 2)) > 0.2  # vegetated tile
    majority = max(y_te.mean(), 1 - y_te.mean())
    # the paper's protocol: kNN (k = 20, cosine) and a linear probe on CLS features
    acc_knn = knn(cls_tr, y_tr, k=20).score(cls_te, y_te)
    acc_lp = linear_probe(cls_tr, y_tr).score(cls_te, y_te)
    pooled = (knn(pool_tr, y_tr, k=20).score(pool_te, y_te),
              linear_probe(pool_tr, y_tr).score(pool_te, y_te))  # fmt: skip
    # segmentation: vegetated pixels from the frozen patch-feature map (every 4th tile)
    m_tr, m_te = (v_tr[::4] > 0.2).astype(int), (v_te[::4] > 0.2).astype(int)
    head = fit_segmentation_head(maps_tr[::4], m_tr, patch_size=demo_model.patch_size, epochs=60)
    seg = head.score(maps_te[::4], m_te)
    pix_major = max(m_te.mean(), 1 - m_te.mean())
    print(
        f"\nvegetation from RGB features ({len(cls_tr)} training-part / {len(cls_te)} held-out tiles): CLS kNN "
        f"{acc_knn:.3f}, linear {acc_lp:.3f}; pooled kNN {pooled[0]:.3f}, linear {pooled[1]:.3f}; "
        f"majority {majority:.3f}; segmentation pixel acc "
        f"{seg['pixel_accuracy']:.3f} (majority {pix_major:.3f}), mIoU {seg['miou']:.3f}"
    )
    assert acc_knn > majority + 0.1 and acc_lp > majority + 0.1
    assert seg["pixel_accuracy"] > pix_major + 0.05


def test_bigearthnet_labels_leave_one_pair_out(demo_model):
    """The reported real-label figure: 6 pairs, 3 × 3 tiles of 40 px each, labels per pair."""
    pairs = data.bigearthnet_pairs()
    feats = {"S2": [], "S1": [], "S1+S2 mixup": []}
    labels, groups = [], []
    from smartiesviz.predict.features import fused_features

    for g, pair in enumerate(pairs):
        s2 = data.normalize(pair.s2).values[:, :120, :120]
        s1 = data.normalize(pair.s1).values[:, :120, :120]
        cut = [(r, c) for r in (0, 40, 80) for c in (0, 40, 80)]
        t2 = torch.from_numpy(np.stack([s2[:, r : r + 40, c : c + 40] for r, c in cut]))
        t1 = torch.from_numpy(np.stack([s1[:, r : r + 40, c : c + 40] for r, c in cut]))
        feats["S2"].append(extract_features(t2, "sentinel2-l2a", demo_model, "pooled"))
        feats["S1"].append(extract_features(t1, "sentinel1-grd", demo_model, "pooled"))
        feats["S1+S2 mixup"].append(
            fused_features(t2, "sentinel2-l2a", t1, "sentinel1-grd", demo_model, "mixup", "pooled")
        )
        labels += [list(pair.labels)] * len(cut)
        groups += [g] * len(cut)
    lines = []
    for name, f in feats.items():
        f = np.concatenate(f)
        for probe, kw in (("knn", {"k": 20}), ("linear", {})):
            r = evaluate_probe(f, labels, groups, probe, **kw)
            assert 0 <= r["score"] <= 1 and 0 <= r["baseline"] <= 1
            lines.append(
                f"{name:<12} {probe:<7} mAP {r['score']:.3f} (label-frequency baseline {r['baseline']:.3f})"
            )
    print("\nBigEarthNet, leave-one-pair-out over 6 pairs × 9 tiles:\n" + "\n".join(lines))


def test_reconstruction_error_peaks_on_an_implanted_anomaly(demo_model, block):
    crop = block.isel(y=slice(0, 128), x=slice(0, 128)).copy(deep=True)
    rng = np.random.default_rng(0)
    noise = rng.uniform(0, 6000, size=(4, 16, 16)).astype("float32")  # spectrally meaningless
    crop.values[:, 40:56, 72:88] = noise
    err = reconstruction_error_map(crop, model=demo_model, progress=False, seed=0).values
    s = demo_model.patch_size  # the anomaly covers patch rows 40/s-56/s, columns 72/s-88/s
    box = np.zeros(err.shape, bool)
    box[40 // s : 56 // s, 72 // s : 88 // s] = True
    inside, outside = err[box].mean(), np.median(err[~box])
    print(f"\nreconstruction error: anomaly {inside:.3f} vs median elsewhere {outside:.3f}")
    assert inside > 3 * outside
