"""Export a band list in other foundation models' conventions, so one band spec drives
comparisons across models.

* DOFA: centre wavelengths in µm. Its Sentinel-1 value changed between versions (3.75, then
  5.405 — the latter is the C-band *frequency* in GHz); pass ``sar_um`` to pick one.
* Panopticon: channel ids in nm; SAR channels get negative ids (VV -1, VH -2, HH -3, HV -4).
* Copernicus-FM: (centre wavelength, bandwidth) in nm; SAR is given as 5e7 nm with a 1e9 nm
  bandwidth marker.

Optical centres and widths come from the instrument's published figures when the registry has
them, else from the band's interval.
"""

from __future__ import annotations

from collections.abc import Sequence

from smartiesviz.spectrum.resolve import BandSpec, parse_band
from smartiesviz.spectrum.sensors import Band, get_sensor

PANOPTICON_SAR_IDS = {"vv": -1, "vh": -2, "hh": -3, "hv": -4}
COPERNICUS_FM_SAR = (5e7, 1e9)


def _bands(bands: str | Sequence[BandSpec]) -> list[Band]:
    if isinstance(bands, str):
        return list(get_sensor(bands).bands)
    return [parse_band(b) for b in bands]


def _centre_width(b: Band) -> tuple[float, float]:
    if b.instrument_center_nm is not None and b.instrument_bandwidth_nm is not None:
        return b.instrument_center_nm, b.instrument_bandwidth_nm
    return b.center_nm, b.max_nm - b.min_nm


def to_dofa(bands: str | Sequence[BandSpec], sar_um: float = 5.405) -> list[float]:
    """Centre wavelengths in µm, one per band (DOFA's ``wave_list``)."""
    return [
        sar_um if b.family == "sar" else round(_centre_width(b)[0] / 1000, 5) for b in _bands(bands)
    ]


def to_panopticon(bands: str | Sequence[BandSpec]) -> list[float]:
    """Panopticon channel ids: centre wavelength in nm, negative ids for SAR polarisations."""
    out = []
    for b in _bands(bands):
        if b.family == "sar":
            key = b.name.lower()
            if key not in PANOPTICON_SAR_IDS:
                raise ValueError(
                    f"band {b.qualified_name!r}: no Panopticon id for SAR polarisation {b.name!r}"
                )
            out.append(PANOPTICON_SAR_IDS[key])
        else:
            out.append(round(_centre_width(b)[0], 2))
    return out


def to_copernicus_fm(bands: str | Sequence[BandSpec]) -> list[tuple[float, float]]:
    """(centre wavelength nm, bandwidth nm) per band, Copernicus-FM's spectral inputs."""
    return [COPERNICUS_FM_SAR if b.family == "sar" else _centre_width(b) for b in _bands(bands)]
