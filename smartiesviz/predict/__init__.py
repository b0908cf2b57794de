"""Predictions: patch embeddings of whole scenes, map products, probes and sensor transfer.

- ``embed(cube, sensor, model=None)`` → georeferenced ``(feature, y, x)`` patch embeddings;
  ``embed_to_file`` streams them to a GeoTIFF/Zarr (``smartiesviz embed`` on the command line).
- maps: ``kmeans_map``, ``pca_map``, ``reconstruction_error_map``, ``cross_spectral_prediction``,
  ``probe_map``.
- probes: ``knn`` (k = 20, cosine), ``linear_probe`` (logistic / multi-label with mAP),
  ``fit_segmentation_head``; features: ``extract_features``, ``fused_features``.
- tasks: ``predict_scene``, ``predict_to_file`` (released task heads → class maps; ``smartiesviz
  predict``); archive: ``run_archive`` (many scenes, resumable, ``torchrun``/Slurm).
- transfer: ``landsat8_bands``, ``thermal_comparison``, ``matched_bands``, ``compare_sensors``.

Names load lazily so importing this package does not import torch. ``embed`` is imported eagerly
(numpy only): the function shares its name with the module ``smartiesviz.predict.embed``, and
binding it here first keeps ``smartiesviz.predict.embed`` the function.
"""

from __future__ import annotations

from typing import Any

from smartiesviz.lazy import lazy_exports
from smartiesviz.predict.embed import embed as embed
from smartiesviz.predict.embed import embed_to_file as embed_to_file

_EXPORTS = {
    "auto_batch_size": "embed",
    "EmbeddingJob": "embed",
    "kmeans_map": "maps",
    "pca_map": "maps",
    "reconstruction_error_map": "maps",
    "cross_spectral_prediction": "cross_spectral",
    "CrossSpectralResult": "cross_spectral",
    "decode_bands": "cross_spectral",
    "probe_map": "maps",
    "knn": "probes",
    "KNNProbe": "probes",
    "linear_probe": "probes",
    "LinearProbe": "probes",
    "mean_average_precision": "probes",
    "evaluate_probe": "probes",
    "SegmentationHead": "probes",
    "fit_segmentation_head": "probes",
    "extract_features": "features",
    "fused_features": "features",
    "landsat8_bands": "transfer",
    "scheme_weights": "transfer",
    "thermal_comparison": "transfer",
    "ThermalComparison": "transfer",
    "matched_bands": "transfer",
    "compare_sensors": "transfer",
    "SensorComparison": "transfer",
    "predict_scene": "tasks",
    "predict_to_file": "tasks",
    "PredictOptions": "tasks",
    "run_archive": "archive",
}

__all__ = sorted([*_EXPORTS, "embed", "embed_to_file"])


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)
