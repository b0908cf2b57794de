"""Models: the spectrum-aware tokenizer, cross-sensor mixup, the SMARTIES masked auto-encoder,
the downstream encoder, checkpoints and model resolution.

Importing this package registers the timm models ``smarties_encoder_vit_*``
(:mod:`smartiesviz.models.encoder_timm`), so ``timm.create_model("smarties_encoder_vit_base_patch16")``
works after ``import smartiesviz.models`` (``import smartiesviz`` does it too when timm is already
imported). The pretraining factories ``smarties_vit_*`` are plain functions, not timm models."""

from smartiesviz.models import encoder_timm  # noqa: F401  (registers smarties_encoder_vit_* with timm)
