"""Interactive views of SMARTIES for Jupyter: one small class per module.

Each widget is an ``ipywidgets`` container usable with no arguments (bundled samples and the demo
model), exposes its controls as attributes, and has ``.figure()`` returning a matplotlib Figure of
its current state (for documents, nbval outputs and tests). Bad input shows in a red error panel
(``widget.error.message``) instead of a traceback.

- :class:`SpectrumExplorer`: spectrum, learned layers, sensor bands and custom-band weights.
- :class:`TokenizationExplorer`: one patch through the spectrum-aware projection, band by band.
- :class:`MixupViewer`: cross-sensor mixup and the shared visible mask on a BigEarthNet pair.
- :class:`ReconstructionExplorer`: masked reconstruction of S2, S1, Landsat-8 or RGB tiles.
- :class:`MapExplorer`: model products as offline layers on a ``leafmap.Map``; split view.
  ``explorer.label(...)`` adds few-click labelling (``smartiesviz.widgets.map.LabelTool``, a panel
  of the map): a probe over the cached patch embeddings, a class map and a confidence layer.
- :class:`BandLab`: drop/add/swap/re-label bands; cross-sensor token consistency.
"""

from smartiesviz.widgets.bandlab import BandLab
from smartiesviz.widgets.map import MapExplorer
from smartiesviz.widgets.mixup import MixupViewer
from smartiesviz.widgets.reconstruction import ReconstructionExplorer
from smartiesviz.widgets.spectrum import SpectrumExplorer
from smartiesviz.widgets.tokenization import TokenizationExplorer

__all__ = [
    "BandLab",
    "MapExplorer",
    "MixupViewer",
    "ReconstructionExplorer",
    "SpectrumExplorer",
    "TokenizationExplorer",
]
