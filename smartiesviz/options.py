"""The string options, each a ``Literal`` defined here once and checked where it enters.

Torch-free, so the command-line parsers and every layer can name them without importing a model.

========================  ====================================  ===================================
option                    values                                enters at
========================  ====================================  ===================================
:data:`MixupMode`         ``"mirrored"``, ``"as-released"``     ``SmartiesMAE.forward``,
                                                                ``cross_sensor_mixup``
:data:`PosEmbedMode`      ``"sincos"``, ``"bicubic"``           ``SmartiesMAE(...)``
:data:`FusionMethod`      ``"stack"``, ``"concat"``, ``"mixup"``  ``SmartiesMAE.fuse_features``
:data:`Pooling`           ``"cls"``, ``"mean"``                 ``SmartiesMAE.fuse_features``
:data:`TokenNorm`         ``"pre-norm"``, ``"post-norm"``        every dense output (embed, export,
                                                                TerraTorch); recorded in each file
========================  ====================================  ===================================
"""

from __future__ import annotations

from typing import Any, Literal, get_args

__all__ = [
    "MixupMode", "PosEmbedMode", "FusionMethod", "Pooling", "TokenNorm", "DEFAULT_TOKEN_NORM",
    "check_option",
]

#: ``"mirrored"``: the paper's mixup (b' is a''s mirror image); ``"as-released"``: b' = b.
MixupMode = Literal["mirrored", "as-released"]
#: ``"sincos"``: sin-cos computed for each patch grid; ``"bicubic"``: one table resampled bicubically.
PosEmbedMode = Literal["sincos", "bicubic"]
#: How :meth:`SmartiesMAE.fuse_features` combines a co-registered pair (paper Table 8).
FusionMethod = Literal["stack", "concat", "mixup"]
#: Which encoder output becomes the feature vector: the CLS token or the mean patch token.
Pooling = Literal["cls", "mean"]
#: Which patch tokens a dense output holds: ``"pre-norm"``, the last block's output before the
#: final LayerNorm (the release's ``all_tokens``, what its segmentation heads read), or
#: ``"post-norm"``, after it (how the release normalises its CLS feature).
TokenNorm = Literal["pre-norm", "post-norm"]
#: The one default of every dense output; each written file records the choice (``token_norm``).
DEFAULT_TOKEN_NORM: TokenNorm = "pre-norm"


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
