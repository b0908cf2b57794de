"""Adapters that put SMARTIES into other frameworks (optional extras).

* :mod:`smartiesviz.integrations.torchgeo` (``pip install smartiesviz[torchgeo]``): weights
  metadata in TorchGeo's ``WeightsEnum`` form, a normalisation transform for TorchGeo samples, a
  ``ClassificationTask`` with a SMARTIES backbone, and a writer of EuroSAT-layout folders.
* :mod:`smartiesviz.integrations.terratorch` (``pip install smartiesviz[terratorch]``): SMARTIES
  in TerraTorch's backbone registry, for its ``EncoderDecoderFactory`` (UPerNet & co.).
* :mod:`smartiesviz.integrations.benchmark_bands` (no extra): TerraTorch/HLS and benchmark band
  names (``BLUE``, ``B4``, ``B8A``, ``VV``) → SMARTIES bands, and the release's means/stds for them.

The framework modules import their framework at the top: import them only when the extra is
installed.
"""
