"""Interactive views of SMARTIES for Jupyter: one small class per module.

Each widget is an ``ipywidgets`` container usable with no arguments (bundled samples and the demo
model), exposes its controls as attributes, and has ``.figure()`` returning a matplotlib Figure of
its current state (for documents, nbval outputs and tests).
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
