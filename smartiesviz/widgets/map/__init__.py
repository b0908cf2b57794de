"""The map explorer: a scene of any size and its model products on an offline map.

- :mod:`.explorer`: :class:`MapExplorer`, the widget (layers menu, opacity, similarity, clicks).
- :mod:`.display`: how a layer reaches the browser (PNG overlay or XYZ tile pyramid), legends.
- :mod:`.inspector`: one tile, masked and reconstructed, band by band.
- :mod:`.labels`: :class:`LabelTool`, few-click labelling (``MapExplorer.label()``): draw labels
  per class, a class map and its confidence refitted after each label.

The map is a ``leafmap.Map`` (ipyleaflet backend), made lazily: leafmap loads with the first map.

Layer computation lives in the core (:mod:`smartiesviz.predict.map_layers`,
:mod:`smartiesviz.predict.similarity`, :mod:`smartiesviz.predict.pyramid`,
:mod:`smartiesviz.predict.labels`).
"""

from smartiesviz.widgets.map.explorer import DEFAULT_LAYERS, MapExplorer, MapLayer
from smartiesviz.widgets.map.labels import LabelTool

__all__ = ["DEFAULT_LAYERS", "LabelTool", "MapExplorer", "MapLayer"]
