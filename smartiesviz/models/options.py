"""The models' string options, each a ``Literal`` defined here once and checked where it enters.

========================  ====================================  ===================================
option                    values                                enters at
========================  ====================================  ===================================
:data:`MixupMode`         ``"mirrored"``, ``"as-released"``     ``SmartiesMAE.forward``,
                                                                ``cross_sensor_mixup``
:data:`PosEmbedMode`      ``"sincos"``, ``"bicubic"``           ``SmartiesMAE(...)``
:data:`FusionMethod`      ``"stack"``, ``"concat"``, ``"mixup"``  ``SmartiesMAE.fuse_features``
:data:`Pooling`           ``"cls"``, ``"mean"``                 ``SmartiesMAE.fuse_features``
========================  ====================================  ===================================
"""

from __future__ import annotations

from typing import Any, Literal, get_args

__all__ = ["MixupMode", "PosEmbedMode", "FusionMethod", "Pooling", "check_option"]

#: ``"mirrored"``: the paper's mixup (b' is a''s mirror image); ``"as-released"``: b' = b.
MixupMode = Literal["mirrored", "as-released"]
#: ``"sincos"``: sin-cos computed for each patch grid; ``"bicubic"``: one table resampled bicubically.
PosEmbedMode = Literal["sincos", "bicubic"]
#: How :meth:`SmartiesMAE.fuse_features` combines a co-registered pair (paper Table 8).
FusionMethod = Literal["stack", "concat", "mixup"]
#: Which encoder output becomes the feature vector: the CLS token or the mean patch token.
Pooling = Literal["cls", "mean"]


def check_option(name: str, value: Any, option: Any) -> Any:
    """Return ``value`` if it is one of the ``Literal`` ``option``'s values, else raise.

    Raises:
        ValueError: naming the argument, the value given and the accepted values.
    """
    allowed = get_args(option)
    if value not in allowed:
        raise ValueError(
            f"{name} must be one of {', '.join(repr(a) for a in allowed)}; got {value!r}"
        )
    return value
