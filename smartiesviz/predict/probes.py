"""Frozen-feature probes, following the paper's protocols.

- :func:`knn`: k-nearest-neighbour classifier (k = 20, cosine similarity), single- or multi-label.
- :func:`linear_probe`: a linear layer on standardized features, softmax (single-label) or
  sigmoid (multi-label, scored by mAP), fitted full-batch with L-BFGS and an L2 penalty.
- :func:`fit_segmentation_head`: a single 1×1-convolution head on the frozen patch-feature map,
  logits upsampled bilinearly to pixels (the paper's SICKLE protocol: "a single layer head").
- features of a batch (CLS, pooled, patch map, multi-modal fusion) come from
  :mod:`smartiesviz.predict.features`.

Labels: a 1-D sequence (ints or strings) is single-label; a 2-D 0/1 array ``(n, L)`` or a
sequence of label lists is multi-label. Probes expose ``predict``, ``predict_proba`` and ``score``
(accuracy, or mAP for multi-label), so any of them can be mapped with
:func:`smartiesviz.predict.maps.probe_map`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import torch

# --------------------------------------------------------------------------------------- labels
@dataclass
class LabelEncoder:
    """Maps user labels to class indices (single-label) or a 0/1 matrix (multi-label)."""

    multilabel: bool
    classes: list[Any] = field(default_factory=list)

    @classmethod
    def fit(cls, labels: Any, multilabel: bool | None = None) -> LabelEncoder:
        if multilabel is None:
            multilabel = _looks_multilabel(labels)
        if multilabel:
            if isinstance(labels, np.ndarray) and labels.ndim == 2:
                return cls(True, list(range(labels.shape[1])))
            names = sorted({str(lab) for row in labels for lab in row})
            return cls(True, names)
        arr = np.asarray(labels)
        if arr.ndim != 1:
            raise ValueError(f"single-label targets must be 1-D; got shape {arr.shape}")
        return cls(False, np.unique(arr).tolist())

    def encode(self, labels: Any) -> np.ndarray:
        """→ ``(n,)`` int64 indices, or ``(n, L)`` float32 0/1 for multi-label."""
        if self.multilabel:
            if isinstance(labels, np.ndarray) and labels.ndim == 2:
                if labels.shape[1] != len(self.classes):
                    raise ValueError(
                        f"expected {len(self.classes)} label columns; got {labels.shape[1]}"
                    )
                return labels.astype(np.float32)
            index = {c: i for i, c in enumerate(self.classes)}
            out = np.zeros((len(labels), len(self.classes)), np.float32)
            for i, row in enumerate(labels):
                for lab in row:
                    if str(lab) in index:
                        out[i, index[str(lab)]] = 1
            return out
        index = {c: i for i, c in enumerate(self.classes)}
        try:
            return np.array([index[v] for v in np.asarray(labels).tolist()], dtype=np.int64)
        except KeyError as err:
            raise ValueError(
                f"label {err.args[0]!r} was not seen in fitting; known {self.classes}"
            ) from None

    def decode(self, indices: np.ndarray) -> np.ndarray:
        if self.multilabel:
            return indices.astype(np.uint8)
        return np.asarray(self.classes, dtype=object if _is_str(self.classes) else None)[indices]


def _is_str(values: Sequence[Any]) -> bool:
    return any(isinstance(v, str) for v in values)


def _looks_multilabel(labels: Any) -> bool:
    if isinstance(labels, np.ndarray):
        return labels.ndim == 2
    first = next(iter(labels), None)
    return isinstance(first, (list, tuple, set, frozenset, np.ndarray))


def _as_features(features: Any, name: str = "features") -> np.ndarray:
    arr = features.detach().cpu().numpy() if hasattr(features, "detach") else np.asarray(features)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (n, D) array; got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contain NaN or infinite values")
    return arr.astype(np.float32, copy=False)


# -------------------------------------------------------------------------------------- metrics
def mean_average_precision(scores: np.ndarray, targets: np.ndarray) -> float:
    """Macro mAP over the labels that have at least one positive.

    Args:
        scores: ``(n, L)`` scores (higher = more likely).
        targets: ``(n, L)`` 0/1 ground truth.
    """
    from sklearn.metrics import average_precision_score  # lazy: scikit-learn is heavy; only for mAP

    targets = np.asarray(targets)
    present = targets.sum(0) > 0
    if not present.any():
        raise ValueError("mAP needs at least one positive label in targets")
    aps = [average_precision_score(targets[:, j], scores[:, j]) for j in np.flatnonzero(present)]
    return float(np.mean(aps))


class _Probe:
    encoder: LabelEncoder

    @property
    def classes(self) -> list[Any]:
        return self.encoder.classes

    @property
    def multilabel(self) -> bool:
        return self.encoder.multilabel

    def predict_proba(self, features: Any) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def predict(self, features: Any) -> np.ndarray:
        """Labels: ``(n,)`` class values, or ``(n, L)`` 0/1 for multi-label (score ≥ 0.5)."""
        p = self.predict_proba(features)
        if self.multilabel:
            return (p >= 0.5).astype(np.uint8)
        return self.encoder.decode(p.argmax(1))

    def score(self, features: Any, labels: Any) -> float:
        """Accuracy (single-label) or mAP (multi-label)."""
        y = self.encoder.encode(labels)
        p = self.predict_proba(features)
        if self.multilabel:
            return mean_average_precision(p, y)
        return float((p.argmax(1) == y).mean())


# ------------------------------------------------------------------------------------------ kNN
class KNNProbe(_Probe):
    """k-nearest neighbours on cosine similarity.

    Args:
        k: neighbours (20 in the paper); clipped to the training-set size with a warning.
        weighting: ``"uniform"`` (plain vote) or ``"similarity"`` (votes weighted by
            ``exp(sim / temperature)``, as in DINO's kNN).
        temperature: for ``"similarity"`` weighting.
        center: subtract the training features' mean before the cosine (helps when all features
            share a strong common direction, as small MAE encoders' do); off in the paper.
    """

    def __init__(
        self,
        k: int = 20,
        weighting: str = "uniform",
        temperature: float = 0.07,
        center: bool = False,
    ) -> None:
        if k < 1:
            raise ValueError(f"k must be ≥ 1; got {k}")
        if weighting not in ("uniform", "similarity"):
            raise ValueError(f"weighting must be 'uniform' or 'similarity'; got {weighting!r}")
        self.k, self.weighting, self.temperature, self.center = k, weighting, temperature, center

    def fit(self, features: Any, labels: Any, multilabel: bool | None = None) -> KNNProbe:
        """Store L2-normalized ``(n, D)`` features and their labels."""
        x = _as_features(features)
        if len(labels) != len(x):
            raise ValueError(f"{len(x)} feature rows but {len(labels)} labels")
        self.encoder = LabelEncoder.fit(labels, multilabel)
        self._y = self.encoder.encode(labels)
        self._mean = x.mean(0) if self.center else np.zeros(x.shape[1], np.float32)
        self._x = _l2(x - self._mean)
        if self.k > len(x):
            warnings.warn(
                f"k={self.k} exceeds the {len(x)} training samples; using k={len(x)}", stacklevel=2
            )
        return self

    def neighbours(self, features: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(similarities, indices)``, each ``(n, k)``, nearest first."""
        import torch  # lazy: torch only when a probe runs; probes import without it

        q = torch.from_numpy(_l2(_as_features(features) - self._mean))
        ref = torch.from_numpy(self._x)
        k = min(self.k, len(self._x))
        sims, idx = [], []
        for chunk in torch.split(q, 4096):
            s, i = (chunk @ ref.T).topk(k, dim=1)
            sims.append(s)
            idx.append(i)
        return torch.cat(sims).numpy(), torch.cat(idx).numpy()

    def predict_proba(self, features: Any) -> np.ndarray:
        """``(n, K)`` vote fractions (single-label) or ``(n, L)`` neighbour label frequencies."""
        sims, idx = self.neighbours(features)
        if self.weighting == "similarity":
            w = np.exp((sims - sims.max(1, keepdims=True)) / self.temperature)
        else:
            w = np.ones_like(sims)
        w = w / w.sum(1, keepdims=True)
        if self.multilabel:
            return np.einsum("nk,nkl->nl", w, self._y[idx])
        onehot = np.eye(len(self.classes), dtype=np.float32)[self._y[idx]]  # (n, k, K)
        return np.einsum("nk,nkc->nc", w, onehot)


def _l2(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def knn(
    features: Any,
    labels: Any,
    k: int = 20,
    metric: str = "cosine",
    weighting: str = "uniform",
    multilabel: bool | None = None,
    center: bool = False,
) -> KNNProbe:
    """Fit a kNN probe (the paper's protocol: k = 20, cosine similarity).

    Args:
        features: ``(n, D)`` training features (array or tensor).
        labels: ``(n,)`` class labels, or ``(n, L)`` 0/1 / a list of label lists for multi-label.
        k: number of neighbours.
        metric: only ``"cosine"``.
        weighting: ``"uniform"`` or ``"similarity"``.
        multilabel: force the label kind (default inferred from ``labels``).
        center: subtract the training mean before the cosine (see :class:`KNNProbe`).

    Returns:
        The fitted :class:`KNNProbe` (``predict``, ``predict_proba``, ``score``).
    """
    if metric != "cosine":
        raise ValueError(f"metric must be 'cosine' (the paper's kNN protocol); got {metric!r}")
    return KNNProbe(k, weighting, center=center).fit(features, labels, multilabel)


# ---------------------------------------------------------------------------------- linear probe
class LinearProbe(_Probe):
    """Logistic regression on standardized frozen features (softmax or per-label sigmoid).

    Args:
        weight_decay: L2 penalty on the weights (not the bias), per sample.
        max_iter: L-BFGS iterations (full batch).
        standardize: scale features with the training mean/std first (the role BatchNorm plays
            in MAE-style linear probing).
        seed: seeds the weight initialisation.
    """

    def __init__(
        self,
        weight_decay: float = 1e-3,
        max_iter: int = 100,
        standardize: bool = True,
        seed: int = 0,
    ) -> None:
        self.weight_decay, self.max_iter, self.standardize, self.seed = (
            weight_decay,
            max_iter,
            standardize,
            seed,
        )

    def fit(self, features: Any, labels: Any, multilabel: bool | None = None) -> LinearProbe:
        import torch  # lazy: torch only when a probe runs; probes import without it

        x = _as_features(features)
        if len(labels) != len(x):
            raise ValueError(f"{len(x)} feature rows but {len(labels)} labels")
        self.encoder = LabelEncoder.fit(labels, multilabel)
        y = torch.from_numpy(self.encoder.encode(labels))
        self.mean_ = x.mean(0) if self.standardize else np.zeros(x.shape[1], np.float32)
        self.std_ = x.std(0) + 1e-6 if self.standardize else np.ones(x.shape[1], np.float32)
        xt = torch.from_numpy((x - self.mean_) / self.std_)
        n_out = len(self.classes)
        gen = torch.Generator().manual_seed(self.seed)
        self.linear = torch.nn.Linear(x.shape[1], n_out)
        with torch.no_grad():
            self.linear.weight.copy_(torch.randn(n_out, x.shape[1], generator=gen) * 0.01)
            self.linear.bias.zero_()
        if self.multilabel:
            loss_fn = torch.nn.BCEWithLogitsLoss()
            y = y.float()
        else:
            loss_fn = torch.nn.CrossEntropyLoss()
        opt = torch.optim.LBFGS(
            self.linear.parameters(),
            max_iter=self.max_iter,
            tolerance_grad=1e-6,
            line_search_fn="strong_wolfe",
        )

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = loss_fn(self.linear(xt), y) + self.weight_decay * self.linear.weight.pow(2).sum()
            loss.backward()
            return loss

        with torch.enable_grad():
            opt.step(closure)
        self.linear.requires_grad_(False)
        return self

    def decision_function(self, features: Any) -> np.ndarray:
        """``(n, K)`` logits."""
        import torch  # lazy: torch only when a probe runs; probes import without it

        x = (_as_features(features) - self.mean_) / self.std_
        with torch.no_grad():
            return self.linear(torch.from_numpy(x.astype(np.float32))).numpy()

    def predict_proba(self, features: Any) -> np.ndarray:
        import torch  # lazy: torch only when a probe runs; probes import without it

        z = torch.from_numpy(self.decision_function(features))
        return (torch.sigmoid(z) if self.multilabel else torch.softmax(z, 1)).numpy()


def linear_probe(
    features: Any,
    labels: Any,
    multilabel: bool | None = None,
    weight_decay: float = 1e-3,
    max_iter: int = 100,
    seed: int = 0,
) -> LinearProbe:
    """Fit a linear probe: logistic (single-label) or multi-label logistic scored by mAP.

    Args:
        features: ``(n, D)`` training features.
        labels: ``(n,)`` labels, or ``(n, L)`` 0/1 / list of label lists for multi-label.
        multilabel: force the label kind (default inferred).
        weight_decay: L2 penalty.
        max_iter: L-BFGS iterations.
        seed: initialisation seed.

    Returns:
        The fitted :class:`LinearProbe`.
    """
    return LinearProbe(weight_decay, max_iter, seed=seed).fit(features, labels, multilabel)


# ----------------------------------------------------------------------------- segmentation head
class SegmentationHead:
    """A single 1×1 convolution on the frozen ``(B, D, h, w)`` patch-feature map.

    Logits are upsampled bilinearly by the patch size to pixels. Fit with
    :func:`fit_segmentation_head`.
    """

    def __init__(self, embed_dim: int, n_classes: int, patch_size: int) -> None:
        import torch  # lazy: torch only when a probe runs; probes import without it

        self.patch_size = patch_size
        self.conv = torch.nn.Conv2d(embed_dim, n_classes, kernel_size=1)
        self.mean_ = torch.zeros(1, embed_dim, 1, 1)
        self.std_ = torch.ones(1, embed_dim, 1, 1)

    def logits(self, feature_maps: Any) -> torch.Tensor:
        """``(B, D, h, w)`` → ``(B, K, h·S, w·S)`` logits."""
        import torch.nn.functional as F  # lazy: torch only when a probe runs

        f = _as_maps(feature_maps)
        z = self.conv((f - self.mean_) / self.std_)
        return F.interpolate(z, scale_factor=self.patch_size, mode="bilinear", align_corners=False)

    def predict_proba(self, feature_maps: Any) -> np.ndarray:
        """``(B, K, H, W)`` class probabilities."""
        import torch  # lazy: torch only when a probe runs; probes import without it

        with torch.no_grad():
            return torch.softmax(self.logits(feature_maps), 1).numpy()

    def predict(self, feature_maps: Any) -> np.ndarray:
        """``(B, H, W)`` class indices."""
        return self.predict_proba(feature_maps).argmax(1)

    def score(self, feature_maps: Any, masks: Any, ignore_index: int = -1) -> dict[str, float]:
        """Pixel accuracy and mean IoU over the classes present (prediction or truth)."""
        pred = self.predict(feature_maps)
        truth = np.asarray(masks)
        valid = truth != ignore_index
        p, t = pred[valid], truth[valid]
        ious = []
        for c in range(self.conv.out_channels):
            union = np.sum((p == c) | (t == c))
            if union:
                ious.append(np.sum((p == c) & (t == c)) / union)
        return {"pixel_accuracy": float((p == t).mean()), "miou": float(np.mean(ious))}


def _as_maps(feature_maps: Any) -> torch.Tensor:
    import torch  # lazy: torch only when a probe runs; probes import without it

    f = feature_maps if isinstance(feature_maps, torch.Tensor) else torch.as_tensor(feature_maps)
    if f.ndim != 4:
        raise ValueError(f"feature maps must be (B, D, h, w); got shape {tuple(f.shape)}")
    return f.detach().float().cpu()


def fit_segmentation_head(
    feature_maps: Any,
    masks: Any,
    patch_size: int,
    n_classes: int | None = None,
    ignore_index: int = -1,
    epochs: int = 100,
    lr: float = 0.05,
    weight_decay: float = 1e-4,
    seed: int = 0,
) -> SegmentationHead:
    """Train a 1×1-conv segmentation head on frozen patch features (full batch, AdamW).

    Args:
        feature_maps: ``(B, D, h, w)`` patch-feature maps of the frozen encoder.
        masks: ``(B, h·S, w·S)`` integer class maps; ``ignore_index`` pixels are skipped.
        patch_size: ``S``, the upsampling factor from patches to pixels.
        n_classes: default ``masks.max() + 1``.
        epochs, lr, weight_decay: optimisation.
        seed: initialisation seed.

    Returns:
        The fitted :class:`SegmentationHead`.
    """
    import torch  # lazy: torch only when a probe runs; probes import without it
    import torch.nn.functional as F  # lazy: torch only when a probe runs; probes import without it

    f = _as_maps(feature_maps)
    y = torch.as_tensor(np.asarray(masks), dtype=torch.long)
    b, d, h, w = f.shape
    if tuple(y.shape) != (b, h * patch_size, w * patch_size):
        raise ValueError(
            f"masks must be (B, h·S, w·S) = {(b, h * patch_size, w * patch_size)}; got {tuple(y.shape)}"
        )
    n_classes = int(n_classes or int(y[y != ignore_index].max()) + 1)
    torch.manual_seed(seed)
    head = SegmentationHead(d, n_classes, patch_size)
    head.mean_ = f.mean((0, 2, 3), keepdim=True)
    head.std_ = f.std((0, 2, 3), keepdim=True) + 1e-6
    opt = torch.optim.AdamW(head.conv.parameters(), lr=lr, weight_decay=weight_decay)
    with torch.enable_grad():
        for _ in range(epochs):
            opt.zero_grad()
            loss = F.cross_entropy(head.logits(f), y, ignore_index=ignore_index)
            loss.backward()
            opt.step()
    head.conv.requires_grad_(False)
    return head


# ---------------------------------------------------------------------------------- evaluation
def evaluate_probe(
    features: Any,
    labels: Any,
    groups: Sequence[Any],
    probe: str = "knn",
    multilabel: bool | None = None,
    **kwargs: Any,
) -> dict[str, float]:
    """Leave-one-group-out evaluation of a probe, for small labelled sets.

    Every group (e.g. the scene or image pair the tiles were cut from) is predicted by a probe
    fitted on the other groups, so neighbouring tiles of one image never sit on both sides. The
    held-out predictions are pooled and scored once: mAP (multi-label) or accuracy.

    Args:
        features: ``(n, D)`` features.
        labels: ``(n,)`` labels or multi-labels (see the module docstring).
        groups: ``(n,)`` group of each sample.
        probe: ``"knn"`` or ``"linear"``.
        multilabel: force the label kind.
        **kwargs: passed to :func:`knn` or :func:`linear_probe` (e.g. ``k``).

    Returns:
        ``{"score", "baseline", "groups", "samples"}``; ``baseline`` is the same metric for a
        probe that ignores the features (training-label frequencies as scores; the majority
        class for single-label).
    """
    x = _as_features(features)
    groups = np.asarray(groups)
    if len(groups) != len(x) or len(labels) != len(x):
        raise ValueError(f"{len(x)} feature rows, {len(labels)} labels and {len(groups)} groups")
    encoder = LabelEncoder.fit(labels, multilabel)
    y = encoder.encode(labels)
    uniq = list(dict.fromkeys(groups.tolist()))
    if len(uniq) < 2:
        raise ValueError("leave-one-group-out needs at least two groups")
    fit = {"knn": knn, "linear": linear_probe}.get(probe)
    if fit is None:
        raise ValueError(f"probe must be 'knn' or 'linear'; got {probe!r}")
    scores, base = _held_out_scores(x, y, groups, uniq, encoder, fit, kwargs)
    if encoder.multilabel:
        score, baseline = mean_average_precision(scores, y), mean_average_precision(base, y)
    else:
        score, baseline = float((scores.argmax(1) == y).mean()), float((base.argmax(1) == y).mean())
    return {"score": score, "baseline": baseline, "groups": len(uniq), "samples": len(x)}


def _held_out_scores(
    x: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    uniq: list[Any],
    encoder: LabelEncoder,
    fit: Callable[..., _Probe],
    fit_kwargs: dict[str, Any],
) -> tuple[np.ndarray, np.ndarray]:
    """``(scores, base)``, both ``(n, n_classes)``: each group's class scores from ``fit`` (a
    probe factory) on the other groups, and those of a features-blind probe (multi-label: the
    training-label frequencies; single-label: a one for the training majority class)."""
    scores = np.zeros((len(x), len(encoder.classes)), np.float32)
    base = np.zeros_like(scores)
    for g in uniq:
        test, train = groups == g, groups != g
        ytr = y[train]
        if encoder.multilabel:
            model = fit(x[train], ytr, multilabel=True, **fit_kwargs)
            scores[test] = model.predict_proba(x[test])
            base[test] = ytr.mean(0)
        else:
            present = np.unique(ytr)
            if len(present) < 2:  # a one-class training fold: predict that class
                scores[test, present[0]] = 1
            else:
                model = fit(x[train], ytr, multilabel=False, **fit_kwargs)
                scores[np.ix_(test, present)] = model.predict_proba(x[test])
            base[test, np.bincount(ytr, minlength=len(encoder.classes)).argmax()] = 1
    return scores, base
