"""Transforms shared by every reader of training images: paired geometric augmentation, resampling
(coarsening), band subsets and the simulated RGB partner.

Training (:mod:`smartiesviz.data.sources`), the torch datasets (:mod:`smartiesviz.data.datasets`),
notebooks and widgets all call these functions, so a crop, a flip or a simulated RGB image is the
same wherever it is made. Tensors are channel-first ``(C, H, W)``; randomness comes only from the
``torch.Generator`` passed in (``None``: the global torch RNG).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import xarray as xr

from smartiesviz.data.preprocess import normalize
from smartiesviz.data.readers import make_cube

RGB_BANDS_FROM_S2 = ("B04", "B03", "B02")
RGB_PARTNER_BANDS = ("rgb/red", "rgb/green", "rgb/blue")


def _names(cube: xr.DataArray) -> list[str]:
    return [str(b) for b in cube["band"].values]


def _rand(generator: torch.Generator | None) -> float:
    return float(torch.rand((), generator=generator))


def sample_crop(
    height: int,
    width: int,
    scale: tuple[float, float] = (0.25, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    generator: torch.Generator | None = None,
) -> tuple[int, int, int, int]:
    """A random resized crop box ``(top, left, h, w)``: area fraction in ``scale``, aspect ratio
    (w/h) log-uniform in ``ratio``; after 10 failed draws, the largest centred box in ``ratio``."""
    if not (0 < scale[0] <= scale[1] <= 1):
        raise ValueError(f"scale={scale}; expected 0 < min <= max <= 1")
    area = height * width
    log_r = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * (scale[0] + (scale[1] - scale[0]) * _rand(generator))
        aspect = math.exp(log_r[0] + (log_r[1] - log_r[0]) * _rand(generator))
        w = round(math.sqrt(target * aspect))
        h = round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, (), generator=generator))
            left = int(torch.randint(0, width - w + 1, (), generator=generator))
            return top, left, h, w
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, round(width / ratio[0])
    elif in_ratio > ratio[1]:
        h, w = height, round(height * ratio[1])
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    if x.shape[-2:] == (size, size):
        return x
    down = x.shape[-1] > size or x.shape[-2] > size
    return F.interpolate(
        x[None], size=(size, size), mode="bilinear", align_corners=False, antialias=down
    )[0]


def paired_augment(
    xs: Sequence[torch.Tensor],
    output_size: int | None,
    scale: tuple[float, float] | None = (0.25, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    flip: bool = True,
    rotate: bool = True,
    generator: torch.Generator | None = None,
) -> tuple[list[torch.Tensor], dict[str, Any]]:
    """Apply one random geometric transform to several co-registered ``(C_i, H, W)`` tensors.

    Args:
        xs: tensors sharing ``H, W``.
        output_size: side of the output (``None``: the crop's size when no crop, else ``H``).
        scale: random resized crop area range (``None``: no crop).
        ratio: aspect ratio range of the crop.
        flip: random horizontal and vertical flips (p = 0.5 each).
        rotate: random rotation by k × 90°.
        generator: torch RNG (default: global).

    Returns:
        The transformed tensors and ``{"crop": (top, left, h, w), "flip": (h, v), "rot90": k}``.
    """
    h, w = xs[0].shape[-2:]
    if any(x.shape[-2:] != (h, w) for x in xs):
        raise ValueError(f"paired images must share H×W; got {[tuple(x.shape[-2:]) for x in xs]}")
    crop = sample_crop(h, w, scale, ratio, generator) if scale is not None else (0, 0, h, w)
    top, left, ch, cw = crop
    size = output_size or h
    out = [_resize(x[:, top : top + ch, left : left + cw], size) for x in xs]
    fh = flip and _rand(generator) < 0.5
    fv = flip and _rand(generator) < 0.5
    k = int(torch.randint(0, 4, (), generator=generator)) if rotate else 0
    if fh:
        out = [x.flip(-1) for x in out]
    if fv:
        out = [x.flip(-2) for x in out]
    if k:
        out = [torch.rot90(x, k, dims=(-2, -1)) for x in out]
    return [x.contiguous() for x in out], {"crop": crop, "flip": (fh, fv), "rot90": k}


def resample(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resize ``(C, h, w)`` to ``(C, size, size)``: area mean when shrinking (a coarser pixel, as a
    coarser sensor would integrate it), bilinear when enlarging."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    mode = "area" if x.shape[-1] > size else "bilinear"
    kw = {} if mode == "area" else {"align_corners": False}
    return F.interpolate(x[None], size=(size, size), mode=mode, **kw)[0]


def band_subset(
    n: int, p: float, min_bands: int, generator: torch.Generator | None = None,
    max_bands: int = 0,
) -> tuple[int, ...]:  # fmt: skip
    """Channel indices kept of an ``n``-band image: all of them with probability ``1 - p``, else a
    random subset of ``min_bands … max_bands`` bands (sorted; ``max_bands`` 0: ``n``)."""
    if n <= 1 or p <= 0 or _rand(generator) >= p:
        return tuple(range(n))
    high = n if max_bands <= 0 else min(max_bands, n)
    k = int(torch.randint(min(min_bands, n), high + 1, (1,), generator=generator))
    return tuple(sorted(torch.randperm(n, generator=generator)[:k].tolist()))


def simulate_rgb(cube: xr.DataArray, max_dn: float = 3000.0) -> xr.DataArray:
    """A **simulated** 8-bit RGB image from a Sentinel-2 cube's B04/B03/B02.

    DN (reflectance × 10000) are mapped linearly with a fixed scale, ``0 … max_dn`` → ``0 … 255``
    (clipped), so brightness stays comparable across scenes. The result is labelled as the
    ``rgb`` sensor (``red``, ``green``, ``blue``) with ``attrs["simulated"] = True`` and
    ``attrs["simulated_from"]`` naming the source bands; it is not an observation by an RGB sensor.

    Args:
        cube: ``(C, H, W)`` Sentinel-2 L1C or L2A cube in DN holding B04, B03, B02.
        max_dn: DN mapped to 255.

    Returns:
        ``(3, H, W)`` float32 cube (values 0–255) with the same georeference.
    """
    sensor = str(cube.attrs.get("sensor", ""))
    if not sensor.startswith("sentinel2"):
        raise ValueError(
            f"simulate_rgb needs a Sentinel-2 cube (attrs sensor 'sentinel2-*'); got {sensor!r}"
        )
    if cube.attrs.get("units") == "model":
        raise ValueError("simulate_rgb needs a cube in DN, not a normalized one")
    missing = [b for b in RGB_BANDS_FROM_S2 if b not in _names(cube)]
    if missing:
        raise ValueError(f"simulate_rgb needs bands {RGB_BANDS_FROM_S2}; the cube lacks {missing}")
    src = np.asarray(cube.sel(band=list(RGB_BANDS_FROM_S2)).values, dtype=np.float32)
    rgb = np.clip(src / np.float32(max_dn) * 255.0, 0, 255).astype(np.float32)
    attrs = {
        "sensor": "rgb",
        "units": "DN",
        "resolution": cube.attrs.get("resolution"),
        "resampling": cube.attrs.get("resampling", "none"),
        "nodata": None,
        "simulated": True,
        "simulated_from": f"{sensor} B04/B03/B02, 0–{max_dn:g} DN → 0–255",
    }
    out = make_cube(rgb, cube.rio.transform(), cube.rio.crs, ["red", "green", "blue"], attrs)
    return out


def simulated_rgb_partner(cube: xr.DataArray, max_dn: float = 3000.0) -> xr.DataArray:
    """The simulated RGB partner of a Sentinel-2 DN cube, in model units: the ONE definition used by
    training, datasets and widgets.

    It is :func:`simulate_rgb` normalized with the ``rgb`` sensor's statistics: the partner stands
    for an image taken by an RGB camera, so it is labelled and normalized as one (bands
    ``rgb/red``, ``rgb/green``, ``rgb/blue``; ``attrs["simulated"] = True``).

    Returns:
        ``(3, H, W)`` float32 cube in model units on the input's grid.
    """
    out = normalize(simulate_rgb(cube, max_dn), "rgb")
    out.attrs["simulated"] = True
    return out


def simulated_rgb_tensor(cube: xr.DataArray, max_dn: float = 3000.0) -> torch.Tensor:
    """:func:`simulated_rgb_partner` as a ``(3, H, W)`` float32 tensor."""
    values = simulated_rgb_partner(cube, max_dn).values
    return torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))
