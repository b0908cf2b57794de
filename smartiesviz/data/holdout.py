"""The held-out split: which bundled data a model never trained on.

The records are defined in :mod:`smartiesviz.holdout` (a neutral module that ``models/`` may import
too); this module re-exports them for ``data/`` and for existing imports.
"""

from __future__ import annotations

from smartiesviz.holdout import HeldOutPair, Holdout, SceneBlock

__all__ = ["Holdout", "SceneBlock", "HeldOutPair"]
