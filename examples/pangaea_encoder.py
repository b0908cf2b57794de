"""SMARTIES as a PANGAEA-bench encoder (github.com/VMarsocci/pangaea-bench); an example, not a dependency.

Copy this file to ``pangaea/encoders/smarties_encoder.py`` and add ``configs/encoder/smarties_vitb.yaml``::

    _target_: pangaea.encoders.smarties_encoder.SmartiesPangaeaEncoder
    encoder_weights: gsumbul/SMARTIES-v1-ViT-B   # a Hub name (cached) or a local .safetensors file
    download_url: ""                             # smartiesviz fetches Hub names itself
    variant: vit_base_patch16
    input_size: 224
    input_bands: ${dataset.bands}                # any dataset: SMARTIES tokenizes each band by range
    output_layers: [3, 5, 7, 11]
    output_dim: 768

PANGAEA's ``Encoder`` contract (``pangaea/encoders/base.py``): the constructor passes
``model_name, input_bands, input_size, embed_dim, output_layers, output_dim, multi_temporal,
multi_temporal_output, pyramid_output, encoder_weights, download_url`` to the base;
``load_encoder_weights(logger)`` is called once after construction and reports missing and
mis-shaped parameters through ``parameters_warning``; ``forward({"optical": (B, C, H, W),
"sar": (B, C', H, W)})`` returns one ``(B, output_dim, H/S, W/S)`` map per output layer.
PANGAEA's benchmark band names (``B2``, ``B8A``, ``VV``) become SMARTIES bands through
``benchmark_bands``; the modalities are stacked into one input (the tokenizer averages over bands).
Outputs are the patch tokens after the chosen blocks, before the final norm (the release's
``all_tokens``).
"""

from __future__ import annotations

import torch
from torch import nn

from smartiesviz.integrations.benchmark_bands import benchmark_bands
from smartiesviz.models.encoder import build_encoder

try:
    from pangaea.encoders.base import Encoder
except ImportError:  # PANGAEA not installed: a stand-in with its constructor and warning contract

    class Encoder(nn.Module):  # type: ignore[no-redef]
        def __init__(self, output_layers, output_dim, **kwargs) -> None:
            super().__init__()
            vars(self).update(kwargs, output_layers=output_layers)
            self.output_dim = [output_dim] * len(output_layers) if isinstance(output_dim, int) else list(output_dim)

        def parameters_warning(self, missing, incompatible_shape, logger) -> None:
            if missing:
                logger.warning("Missing parameters:\n" + "\n".join(f"{k}: {v}" for k, v in sorted(missing.items())))
            if incompatible_shape:
                logger.warning("Incompatible parameters:\n" + "\n".join(
                    f"{k}: expected {v[0]} but found {v[1]}" for k, v in sorted(incompatible_shape.items())))

#: PANGAEA modality → the sensor its plain band names belong to (override with ``sensors=``)
SENSORS = {"optical": "sentinel2-l2a", "sar": "sentinel1-grd"}


class SmartiesPangaeaEncoder(Encoder):
    def __init__(self, encoder_weights, input_bands, input_size, output_layers, output_dim=768,
                 variant="vit_base_patch16", sensors=None, download_url="") -> None:  # fmt: skip
        sensors = {**SENSORS, **(sensors or {})}
        self.bands = [b for m, names in input_bands.items() for b in benchmark_bands(names, sensors[m])]
        encoder, _ = build_encoder(variant, bands=self.bands, img_size=input_size)  # random weights
        super().__init__(
            model_name=f"smarties_{variant}", input_bands=input_bands, input_size=input_size,
            embed_dim=encoder.embed_dim, output_layers=list(output_layers), output_dim=output_dim,
            multi_temporal=False, multi_temporal_output=False, pyramid_output=False,
            encoder_weights=encoder_weights, download_url=download_url,
        )  # fmt: skip
        self.variant, self.encoder = variant, encoder

    def load_encoder_weights(self, logger) -> None:
        self.encoder, report = build_encoder(
            self.variant, bands=self.bands, checkpoint=self.encoder_weights, img_size=self.input_size
        )
        own = self.encoder.state_dict()
        missing = {k: own[k].shape for k in report.missing}
        self.parameters_warning(missing, {k: (own_s, file_s) for k, file_s, own_s in report.mismatched}, logger)

    def forward(self, x: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        """``{modality: (B, C_m, H, W)}`` → one ``(B, D, H/S, W/S)`` map per output layer."""
        image = torch.cat([x[m] for m in self.input_bands], dim=1)  # the bands' order
        return self.encoder.intermediate_maps(image, self.encoder.default_bands, self.output_layers)
