"""BigEarthNet-MM (v1) patches: reading co-registered Sentinel-1/Sentinel-2 pairs and their labels.

Layout (the full archive and the bundled examples alike)::

    <s2_root>/<S2 patch>/<S2 patch>_B01.tif ... _B12.tif, _B8A.tif, _labels_metadata.json
    <s1_root>/<S1 patch>/<S1 patch>_VV.tif, _VH.tif, _labels_metadata.json

Sentinel-2 patches are L2A, 12 bands, uint16 (reflectance × 10000): 10 m bands 120×120 px, 20 m
60×60, 60 m 20×20. Here they are upsampled to the 10 m 120×120 grid with **bilinear**
interpolation. Sentinel-1 patches hold VV and VH backscatter in dB (float32) on the same 10 m grid.
Each S1 metadata file names its S2 partner (``corresponding_s2_patch``); both list the patch's
multi-labels (CORINE, 43 classes) and UTM corner coordinates.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from smartiesviz.data.readers import list_raster_files, read_band_files
from smartiesviz.spectrum import get_sensor

S2_SENSOR = "sentinel2-l2a"
S1_SENSOR = "sentinel1-grd"


@dataclass(eq=False)
class BigEarthNetPair:
    """A co-registered Sentinel-1 / Sentinel-2 BigEarthNet patch.

    Attributes:
        name: the Sentinel-2 patch name (``S2A_MSIL2A_20170613T101031_87_48``).
        s1_name: the Sentinel-1 patch name.
        s2: ``(12, 120, 120)`` float32 L2A cube (DN = reflectance × 10000), registry bands.
        s1: ``(2, 120, 120)`` float32 cube, VV and VH in dB.
        labels: the patch's CORINE labels (43-class nomenclature).
        crs: the UTM CRS (``rasterio.crs.CRS``).
        bounds: ``(left, bottom, right, top)`` in the CRS, from the metadata.
        bounds_wgs84: ``(west, south, east, north)`` in degrees.
        metadata: ``{"s2": {...}, "s1": {...}}``, the two metadata files.
    """

    name: str
    s1_name: str
    s2: xr.DataArray
    s1: xr.DataArray
    labels: list[str]
    crs: Any
    bounds: tuple[float, float, float, float]
    bounds_wgs84: tuple[float, float, float, float]
    metadata: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def center_lonlat(self) -> tuple[float, float]:
        w, s, e, n = self.bounds_wgs84
        return ((w + e) / 2, (s + n) / 2)

    def __repr__(self) -> str:
        return f"BigEarthNetPair({self.name!r}, s1={self.s1_name!r}, labels={self.labels})"


def read_metadata(folder: str | Path) -> dict[str, Any]:
    """The ``*_labels_metadata.json`` of a patch folder."""
    folder = Path(folder)
    files = sorted(folder.glob("*_labels_metadata.json"))
    if not files:
        raise FileNotFoundError(f"no *_labels_metadata.json in {str(folder)!r}")
    return json.loads(files[0].read_text())


def metadata_bounds(meta: dict[str, Any]) -> tuple[float, float, float, float]:
    """``(left, bottom, right, top)`` from a metadata file's UTM corners (the S1 files spell the
    lower-right y ``lly``)."""
    c = meta["coordinates"]
    lry = c.get("lry", c.get("lly"))
    return (float(c["ulx"]), float(lry), float(c["lrx"]), float(c["uly"]))


def read_s2_patch(folder: str | Path, bands: Sequence[str] | None = None) -> xr.DataArray:
    """A Sentinel-2 L2A patch folder → ``(C, 120, 120)`` float32 cube on the 10 m grid."""
    folder = Path(folder)
    if bands is None:  # all 12: a missing band file is an error naming it, not an 11-band cube
        bands = get_sensor(S2_SENSOR).band_names
    cube = read_band_files(list_raster_files(folder), S2_SENSOR, bands, resolution=10.0)
    cube.attrs.update(name=folder.name, units="DN", source=str(folder))
    return cube


def read_s1_patch(folder: str | Path) -> xr.DataArray:
    """A Sentinel-1 patch folder → ``(2, 120, 120)`` float32 cube (VV, VH in dB)."""
    folder = Path(folder)
    cube = read_band_files(list_raster_files(folder), S1_SENSOR, ["VV", "VH"], units="dB")
    cube.attrs.update(name=folder.name, source=str(folder))
    return cube


def find_pairs(s2_root: str | Path, s1_root: str | Path) -> list[tuple[str, str]]:
    """``(s2_name, s1_name)`` of every S1 patch under ``s1_root`` whose partner (named in its
    metadata) is under ``s2_root``, sorted by S2 name. Reads one JSON per S1 patch."""
    s2_root, s1_root = Path(s2_root), Path(s1_root)
    pairs = []
    missing = []
    for folder in sorted(p for p in s1_root.iterdir() if p.is_dir()):
        meta = read_metadata(folder)
        partner = meta.get("corresponding_s2_patch")
        if not partner:
            raise ValueError(f"{folder.name}: metadata has no 'corresponding_s2_patch'")
        if (s2_root / partner).is_dir():
            pairs.append((partner, folder.name))
        else:
            missing.append(partner)
    if missing and not pairs:
        raise FileNotFoundError(
            f"none of the S2 partners ({missing[:3]}...) are under {str(s2_root)!r}"
        )
    if missing:
        warnings.warn(
            f"{len(missing)} S1 patch(es) under {str(s1_root)!r} have no S2 partner under "
            f"{str(s2_root)!r} (e.g. {missing[0]}); using the {len(pairs)} complete pairs",
            stacklevel=2,
        )
    return sorted(pairs)


def read_pair(s2_dir: str | Path, s1_dir: str | Path) -> BigEarthNetPair:
    """Read one co-registered pair from its two patch folders."""
    from pyproj import Transformer  # lazy: pyproj loads the PROJ database; only for WGS84 bounds

    s2_dir, s1_dir = Path(s2_dir), Path(s1_dir)
    meta2, meta1 = read_metadata(s2_dir), read_metadata(s1_dir)
    partner = meta1.get("corresponding_s2_patch")
    if partner is not None and partner != s2_dir.name:
        raise ValueError(
            f"S1 patch {s1_dir.name} names S2 partner {partner!r}, not {s2_dir.name!r}"
        )
    s2, s1 = read_s2_patch(s2_dir), read_s1_patch(s1_dir)
    labels = list(meta2.get("labels", meta1.get("labels", [])))
    for cube in (s2, s1):
        cube.attrs["labels"] = ", ".join(labels)
    crs = s2.rio.crs
    bounds = metadata_bounds(meta2)
    to_wgs84 = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    geo = tuple(float(v) for v in to_wgs84.transform_bounds(*bounds, densify_pts=11))
    return BigEarthNetPair(
        name=s2_dir.name,
        s1_name=s1_dir.name,
        s2=s2,
        s1=s1,
        labels=labels,
        crs=crs,
        bounds=bounds,
        bounds_wgs84=geo,  # type: ignore[arg-type]
        metadata={"s2": meta2, "s1": meta1},
    )


def label_names(nomenclature: int = 43) -> list[str]:
    """Class names in the original order: the 43 CORINE labels, or the 19-class nomenclature."""
    # lazy: heavy import; only when label names are asked for
    from bigearthnet_common import constants

    if nomenclature == 43:
        return list(constants.OLD_LABELS_ORIGINAL_ORDER)
    if nomenclature == 19:
        return list(constants.NEW_LABELS_ORIGINAL_ORDER)
    raise ValueError(f"nomenclature={nomenclature}; expected 43 or 19")


def multi_hot(labels: Sequence[str], nomenclature: int = 43) -> np.ndarray:
    """``(K,)`` float32 multi-hot vector of ``labels`` (43-class names) in the given nomenclature
    (the 19-class one maps or drops labels as BigEarthNet defines)."""
    names = label_names(nomenclature)
    out = np.zeros(len(names), dtype=np.float32)
    if nomenclature == 19:
        from bigearthnet_common import constants  # lazy: heavy import; only when labels are encoded

        labels = [constants.OLD2NEW_LABELS_DICT.get(lbl) for lbl in labels]
        labels = [lbl for lbl in labels if lbl is not None]
    for lbl in labels:
        if lbl not in names:
            raise ValueError(f"unknown BigEarthNet label {lbl!r}")
        out[names.index(lbl)] = 1.0
    return out
