"""The map explorer: a scene of any size and its model products on an offline map.

- :mod:`.explorer`: :class:`MapExplorer`, the widget (layers menu, opacity, similarity, clicks).
- :mod:`.display`: how a layer reaches the browser (PNG overlay or XYZ tile pyramid), legends.
- :mod:`.inspector`: one tile, masked and reconstructed, band by band.

Layer computation lives in the core (:mod:`smartiesviz.predict.map_layers`,
:mod:`smartiesviz.predict.similarity`, :mod:`smartiesviz.predict.pyramid`).
"""

from smartiesviz.widgets.map.explorer import DEFAULT_LAYERS, MapExplorer, MapLayer

__all__ = ["DEFAULT_LAYERS", "MapExplorer", "MapLayer"]
