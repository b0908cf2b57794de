"""The held-out split: which bundled data a model never trained on.

One typed record crosses modules (training writes it into a checkpoint's metadata; the demo model,
evaluation, predictions and widgets read it back). It lives below ``data/`` and ``models/`` (it
imports nothing of the package) so that ``models/`` reads it without importing upwards;
``smartiesviz.data.holdout`` re-exports it. It serialises to the JSON layout that the
shipped demo weights already carry under ``metadata.holdout``::

    {"sentinel2_sample": {"y_start", "y_stop", "x_start", "x_stop", "crs", "bounds",
                          "train_window", "description"},
     "bigearthnet_pair": {"index", "name"}}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Holdout", "SceneBlock", "HeldOutPair"]


@dataclass(frozen=True)
class SceneBlock:
    """A pixel block of ``sentinel2_sample()`` that was never trained on.

    Rows ``y_start:y_stop`` and columns ``x_start:x_stop`` of the scene grid; ``train_window`` is
    the ``(y0, y1, x0, x1)`` region training drew from (``None`` when not recorded).
    """

    y_start: int
    y_stop: int
    x_start: int
    x_stop: int
    crs: str | None = None
    bounds: tuple[float, float, float, float] | None = None
    train_window: tuple[int, int, int, int] | None = None
    description: str = ""

    @property
    def rows(self) -> slice:
        return slice(self.y_start, self.y_stop)

    @property
    def cols(self) -> slice:
        return slice(self.x_start, self.x_stop)

    def contains(self, y0: int, x0: int, size_y: int, size_x: int) -> bool:
        """Whether the window ``[y0, y0+size_y) x [x0, x0+size_x)`` lies inside the block."""
        return (
            self.y_start <= y0
            and y0 + size_y <= self.y_stop
            and self.x_start <= x0
            and x0 + size_x <= self.x_stop
        )


@dataclass(frozen=True)
class HeldOutPair:
    """A BigEarthNet pair never trained on: its index in ``bigearthnet_pairs()`` and its name."""

    index: int
    name: str


@dataclass(frozen=True)
class Holdout:
    """What a model never trained on; either part may be absent (``None``)."""

    scene: SceneBlock | None = None
    pair: HeldOutPair | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_metadata(cls, meta: dict[str, Any] | None) -> Holdout:
        """Read the ``metadata.holdout`` JSON layout; unknown keys are kept in ``extra``.

        Raises:
            ValueError: a block or pair entry lacks a required key (the key is named).
        """
        meta = dict(meta or {})
        scene = meta.pop("sentinel2_sample", None)
        pair = meta.pop("bigearthnet_pair", None)
        block = None
        if scene:
            missing = [k for k in ("y_start", "y_stop", "x_start", "x_stop") if k not in scene]
            if missing:
                raise ValueError(f"holdout.sentinel2_sample lacks {missing}: {scene}")
            block = SceneBlock(
                y_start=int(scene["y_start"]),
                y_stop=int(scene["y_stop"]),
                x_start=int(scene["x_start"]),
                x_stop=int(scene["x_stop"]),
                crs=scene.get("crs"),
                bounds=tuple(scene["bounds"]) if scene.get("bounds") is not None else None,
                train_window=(
                    tuple(scene["train_window"]) if scene.get("train_window") is not None else None
                ),
                description=str(scene.get("description", "")),
            )
        held_pair = None
        if pair:
            if "index" not in pair or "name" not in pair:
                raise ValueError(f"holdout.bigearthnet_pair needs 'index' and 'name': {pair}")
            held_pair = HeldOutPair(index=int(pair["index"]), name=str(pair["name"]))
        return cls(scene=block, pair=held_pair, extra=meta)

    def to_metadata(self) -> dict[str, Any]:
        """The JSON layout read by :meth:`from_metadata` (round trip is exact)."""
        out: dict[str, Any] = dict(self.extra)
        if self.scene is not None:
            s = self.scene
            entry: dict[str, Any] = {
                "description": s.description,
                "y_start": s.y_start,
                "y_stop": s.y_stop,
                "x_start": s.x_start,
                "x_stop": s.x_stop,
            }
            if s.train_window is not None:
                entry["train_window"] = list(s.train_window)
            if s.crs is not None:
                entry["crs"] = s.crs
            if s.bounds is not None:
                entry["bounds"] = list(s.bounds)
            out["sentinel2_sample"] = entry
        if self.pair is not None:
            out["bigearthnet_pair"] = {"index": self.pair.index, "name": self.pair.name}
        return out

    def merged(self, other: Holdout) -> Holdout:
        """This record with ``other``'s parts filling the ones it lacks."""
        return Holdout(
            scene=self.scene or other.scene,
            pair=self.pair or other.pair,
            extra={**other.extra, **self.extra},
        )
