"""Models: the spectrum-aware tokenizer, cross-sensor mixup, the SMARTIES masked auto-encoder,
checkpoints and model resolution. Importing this package registers the SMARTIES architectures with
timm, so ``timm.create_model("smarties_vit_base_patch16")`` works after ``import smartiesviz.models``."""

from smartiesviz.models import factories  # noqa: F401  (registers the timm architectures)
