"""The bundled demo model: a tiny SMARTIES MAE pretrained with ``smartiesviz pretrain``.

A *teaching* model, not the released SMARTIES weights: ``smarties_vit_tiny_patch4`` at 64 px
(D 192, 4 encoder blocks, 16 × 16 tokens of 4 × 4 px, 2.29 M parameters), trained from scratch for
7000 steps (67 minutes on two CPU cores) with ``smartiesviz/training/configs/demo.yaml`` on the
bundled real samples only: tiles of one Sentinel-2 L1C scene (with a simulated RGB partner), five
BigEarthNet Sentinel-2/Sentinel-1 pairs, band subsets of 1-6 bands scored on all bands, and random
coarsening to 20-60 m. On held-out data its masked reconstructions beat a per-band mean for
Sentinel-2 at 10 m and 30 m, for every evaluated 3-6-band subset (the visible trio included) and
for Sentinel-1, and it predicts NIR from B04/B03/B02 better than each tile's NIR mean on the
held-out block. See ``smartiesviz/models/weights/README.md`` for the measured quality and the
limits.

Never trained on (recorded in the weights' JSON under ``metadata.holdout``, see
:func:`demo_holdout`): the top quarter of the bundled Sentinel-2 scene and one BigEarthNet pair.
Use those for predictions, widgets and notebooks that should show unseen data.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path

from smartiesviz.holdout import Holdout
from smartiesviz.models.checkpoint import CheckpointInfo, load_checkpoint, read_checkpoint_info
from smartiesviz.models.mae import SmartiesMAE

DEMO_WEIGHTS = "smarties_demo_tiny64.safetensors"


def demo_weights_path() -> Path:
    """Path of the shipped demo safetensors file (its JSON sidecar lies beside it)."""
    path = Path(str(resources.files("smartiesviz.models") / "weights" / DEMO_WEIGHTS))
    if not path.is_file():
        raise FileNotFoundError(
            f"the demo weights {path} are missing from this installation; reinstall smartiesviz "
            "or retrain them with `smartiesviz pretrain --config "
            "smartiesviz/training/configs/demo.yaml` and copy the run's model.safetensors/.json"
        )
    return path


@lru_cache(maxsize=1)
def demo_info() -> CheckpointInfo:
    """The demo weights' :class:`CheckpointInfo` (architecture, spectrum, training metadata,
    sha256); also readable as the sidecar JSON dict (``demo_info()["metadata"]``)."""
    return read_checkpoint_info(demo_weights_path())


def demo_holdout() -> Holdout:
    """The data never trained on: a pixel block of ``smartiesviz.data.sentinel2_sample()``
    (``.scene``) and a pair of ``bigearthnet_pairs()`` (``.pair``).

    Returns:
        :class:`~smartiesviz.holdout.Holdout` (``.to_metadata()`` gives the JSON layout).
    """
    return demo_info().holdout


def load_demo_model() -> SmartiesMAE:
    """The demo :class:`~smartiesviz.models.mae.SmartiesMAE` with the shipped weights, in eval mode.

    The model has ``.img_size`` (64) and ``.patch_size`` (4); ``model.checkpoint_info`` is its
    :class:`CheckpointInfo` (``.holdout``: the held-out split, as :func:`demo_holdout`).

    Returns:
        The model on CPU, in eval mode.
    """
    return load_checkpoint(demo_weights_path()).eval()
