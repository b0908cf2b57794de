import numpy as np
import pytest
import torch

from smartiesviz.predict import knn, linear_probe
from smartiesviz.predict.features import extract_features, fused_features
from smartiesviz.predict.probes import fit_segmentation_head, mean_average_precision


def blobs(n_per=40, d=16, k=3, seed=0, spread=0.6):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d)) * 2
    x = np.concatenate([c + spread * rng.normal(size=(n_per, d)) for c in centres])
    y = np.repeat(np.arange(k), n_per)
    return x.astype(np.float32), y


def split(x, y, seed=1):
    idx = np.random.default_rng(seed).permutation(len(x))
    a, b = idx[: len(x) // 2], idx[len(x) // 2 :]
    return x[a], y[a], x[b], y[b]


def test_knn_recovers_cluster_labels_and_is_scale_invariant():
    xtr, ytr, xte, yte = split(*blobs())
    names = np.array(["water", "forest", "urban"])
    probe = knn(xtr, names[ytr], k=20)
    assert probe.score(xte, names[yte]) >= 0.95
    assert set(probe.predict(xte)) <= set(names)
    # cosine similarity: rescaling a query does not change its neighbours
    np.testing.assert_array_equal(probe.predict(xte), probe.predict(xte * 7.5))


def test_knn_multilabel_and_small_training_set():
    x, y = blobs(n_per=10)
    multi = [["a", "b"] if c == 0 else ["b"] if c == 1 else ["c"] for c in y]
    with pytest.warns(UserWarning, match="exceeds the 30 training samples"):
        probe = knn(x, multi, k=50)
    assert probe.multilabel and probe.classes == ["a", "b", "c"]
    proba = probe.predict_proba(x)
    assert proba.shape == (30, 3) and ((proba >= 0) & (proba <= 1)).all()
    probe = knn(x, multi, k=5)
    assert probe.score(x, multi) == pytest.approx(1.0)


def test_linear_probe_single_and_multilabel():
    xtr, ytr, xte, yte = split(*blobs(spread=1.0))
    probe = linear_probe(xtr, ytr)
    assert probe.score(xte, yte) >= 0.9
    assert np.allclose(probe.predict_proba(xte).sum(1), 1, atol=1e-5)
    # multi-label: label j is "feature j is positive" for 4 features
    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, 8)).astype(np.float32)
    y = (x[:, :4] > 0).astype(np.float32)
    probe = linear_probe(x[:100], y[:100])
    assert probe.multilabel
    assert probe.score(x[100:], y[100:]) > 0.9  # mAP; chance is ≈ 0.5


def test_mean_average_precision_by_hand():
    targets = np.array([[1, 0], [0, 1], [1, 0], [0, 0]])
    perfect = np.array([[0.9, 0.1], [0.2, 0.8], [0.8, 0.3], [0.1, 0.2]])
    assert mean_average_precision(perfect, targets) == pytest.approx(1.0)
    # label 0 ranked [pos, neg, pos] → AP = (1 + 2/3) / 2; label 1 ranked first → 1
    scores = np.array([[0.9, 0.1], [0.8, 0.9], [0.7, 0.0], [0.1, 0.2]])
    assert mean_average_precision(scores, targets) == pytest.approx(((1 + 2 / 3) / 2 + 1) / 2)


def test_probe_errors_are_explained():
    x, y = blobs(n_per=5)
    with pytest.raises(ValueError, match="15 feature rows but 3 labels"):
        knn(x, y[:3])
    with pytest.raises(ValueError, match="cosine"):
        knn(x, y, metric="euclidean")
    with pytest.raises(ValueError, match="2-D"):
        linear_probe(x[0], y[:1])
    probe = linear_probe(x, y)
    with pytest.raises(ValueError, match="not seen"):
        probe.score(x[:1], [7])


def test_segmentation_head_learns_a_patch_level_rule():
    """Synthetic frozen features: class = sign of channel 0 in each patch."""
    rng = np.random.default_rng(0)
    f = rng.normal(size=(6, 16, 8, 8)).astype(np.float32)
    masks = np.repeat(np.repeat((f[:, 0] > 0).astype(np.int64), 8, 1), 8, 2)
    head = fit_segmentation_head(f[:4], masks[:4], patch_size=8, epochs=60)
    assert head.predict(f[4:]).shape == (2, 64, 64)
    scores = head.score(f[4:], masks[4:])
    assert scores["pixel_accuracy"] > 0.8 and 0 < scores["miou"] <= 1
    with pytest.raises(ValueError, match="masks must be"):
        fit_segmentation_head(f, masks[:, :32], patch_size=8)


def test_features_and_fusion_shapes(tiny_model):
    torch.manual_seed(0)
    s2 = torch.randn(3, 12, 32, 32)
    s1 = torch.randn(3, 2, 32, 32)
    d = tiny_model.embed_dim
    assert extract_features(s2, "sentinel2-l2a", tiny_model, "cls").shape == (3, d)
    assert extract_features(s2, "sentinel2-l2a", tiny_model, "patch").shape == (3, d, 4, 4)
    pooled = extract_features(s2, "sentinel2-l2a", tiny_model, "pooled", batch_size=2)
    np.testing.assert_allclose(
        pooled, tiny_model.pooled_features(s2, "sentinel2-l2a").detach().numpy(), atol=1e-5
    )
    for method, width in (("stack", d), ("concat", 2 * d), ("mixup", 2 * d)):
        f = fused_features(s2, "sentinel2-l2a", s1, "sentinel1-grd", tiny_model, method)
        assert f.shape == (3, width)
    a = fused_features(s2, "sentinel2-l2a", s1, "sentinel1-grd", tiny_model, "mixup", seed=1)
    b = fused_features(s2, "sentinel2-l2a", s1, "sentinel1-grd", tiny_model, "mixup", seed=1)
    np.testing.assert_array_equal(a, b)


def test_leave_one_group_out_evaluation():
    from smartiesviz.predict.probes import evaluate_probe

    x, y = blobs(n_per=12)
    groups = np.tile(np.arange(4), 9)  # every group holds every class
    for probe in ("knn", "linear"):
        res = evaluate_probe(x, y, groups, probe=probe, **({"k": 5} if probe == "knn" else {}))
        assert res["score"] > 0.9 and res["baseline"] == pytest.approx(1 / 3)
        assert (res["groups"], res["samples"]) == (4, 36)
    multi = (x[:, :3] > 0).astype(np.float32)
    res = evaluate_probe(x, multi, groups, probe="knn", k=5)
    assert 0 <= res["baseline"] <= 1 and 0 <= res["score"] <= 1
    with pytest.raises(ValueError, match="two groups"):
        evaluate_probe(x, y, np.zeros(len(x)))


def test_knn_centering_removes_a_shared_direction():
    """Features dominated by one common direction: centering restores the neighbours."""
    x, y = blobs(spread=0.8)
    shifted = x + 3e4  # every feature ≈ the same direction: float32 cosines saturate
    xtr, ytr, xte, yte = split(shifted, y)
    plain = knn(xtr, ytr, k=5).score(xte, yte)
    centered = knn(xtr, ytr, k=5, center=True).score(xte, yte)
    assert centered >= 0.95 and centered > plain
