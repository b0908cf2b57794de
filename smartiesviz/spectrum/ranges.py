"""Spectral ranges: the wavelength intervals that own (or borrow) a projection layer.

The release defines 17 *learned* ranges, each with its own ``Linear(S², D)`` projection layer; the
index of a layer is its position in the checkpoint's lists. It also defines *interpolated* ranges
(no tensors of their own, built from configured neighbour layers) and one range without any layer
(Sentinel-2 B10 cirrus). All wavelengths are in nanometres.

These are the release's ranges: what the checkpoints were trained with. They are roughly
centre ± full bandwidth, about twice as wide as the instruments' bands (a known report on the
release's tracker); each instrument's own published figures live on :class:`~smartiesviz.spectrum.Band`.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from smartiesviz.spectrum._names import suggest
from smartiesviz.yamlfile import load_yaml

#: Families decide which learned layers a new band is interpolated from first.
FAMILIES = ("multispectral", "rgb", "sar")


@dataclass(frozen=True)
class SpectralRange:
    """A named wavelength interval of the release's spectrum.

    Attributes:
        name: the release's range name, e.g. ``"near_infrared_2"``.
        min_nm, max_nm: interval edges in nm.
        layer: index of the learned projection layer (0–16), or ``None`` when the range has none.
        family: ``"multispectral"``, ``"rgb"`` or ``"sar"`` (the sensors the layer was learned on).
        neighbours: for interpolated ranges, the learned layers the release combines.
        label: human-readable name, e.g. ``"B07 (NIR 2)"``.
    """

    name: str
    min_nm: float
    max_nm: float
    layer: int | None
    family: str
    neighbours: tuple[int, ...] = ()
    label: str = ""

    def __post_init__(self) -> None:
        if not self.min_nm < self.max_nm:
            raise ValueError(
                f"spectral range {self.name!r}: min_nm ({self.min_nm}) must be below max_nm ({self.max_nm})"
            )
        if self.family not in FAMILIES:
            raise ValueError(
                f"spectral range {self.name!r}: family {self.family!r} not in {FAMILIES}"
            )
        if self.layer is not None and self.neighbours:
            raise ValueError(f"spectral range {self.name!r} has a layer and neighbours; give one")

    @property
    def center_nm(self) -> float:
        """Centre wavelength ``(min_nm + max_nm) / 2`` in nm (the release's definition)."""
        return (self.min_nm + self.max_nm) / 2

    @property
    def learned(self) -> bool:
        return self.layer is not None

    @property
    def interpolated(self) -> bool:
        return self.layer is None and bool(self.neighbours)

    @property
    def kind(self) -> str:
        """``"learned"``, ``"interpolated"`` or ``"none"``."""
        return "learned" if self.learned else ("interpolated" if self.interpolated else "none")


def _r(name, lo, hi, layer, family, label, neighbours=()):
    return SpectralRange(name, float(lo), float(hi), layer, family, tuple(neighbours), label)


_RELEASE_RANGES = (
    # 17 learned ranges, in the checkpoint's layer order
    _r("aerosol", 422, 463, 0, "multispectral", "S2 B01 (aerosol)"),
    _r("blue_1", 427, 558, 1, "multispectral", "S2 B02 (blue)"),
    _r("blue_3", 430, 545, 2, "rgb", "RGB blue"),
    _r("green_1", 466, 620, 3, "rgb", "RGB green"),
    _r("green_2", 524, 595, 4, "multispectral", "S2 B03 (green)"),
    _r("red_1", 590, 710, 5, "rgb", "RGB red"),
    _r("red_2", 634, 696, 6, "multispectral", "S2 B04 (red)"),
    _r("red_edge_1", 689, 719, 7, "multispectral", "S2 B05 (red edge 1)"),
    _r("red_edge_2", 726, 755, 8, "multispectral", "S2 B06 (red edge 2)"),
    _r("near_infrared_1", 728, 938, 9, "multispectral", "S2 B08 (NIR 1)"),
    _r("near_infrared_2", 761, 802, 10, "multispectral", "S2 B07 (NIR 2)"),
    _r("near_infrared_3", 843, 886, 11, "multispectral", "S2 B8A (NIR 3)"),
    _r("short_wave_infrared_1", 923, 964, 12, "multispectral", "S2 B09 (water vapour)"),
    _r("short_wave_infrared_3", 1516, 1704, 13, "multispectral", "S2 B11 (SWIR 1)"),
    _r("short_wave_infrared_4", 2002, 2376, 14, "multispectral", "S2 B12 (SWIR 2)"),
    _r("microwave_1", 5.5e7, 5.6e7, 15, "sar", "S1 VV (C-band)"),
    _r("microwave_2", 5.5e7, 5.6e7, 16, "sar", "S1 VH (C-band)"),
    # released ranges without tensors of their own
    _r("blue_2", 452, 512, None, "multispectral", "Landsat-8 B2 (blue)", (0, 1)),
    _r(
        "thermal_infrared_1",
        10600,
        11190,
        None,
        "multispectral",
        "Landsat-8 B10 (thermal)",
        (14, 15),
    ),
    _r("short_wave_infrared_2", 1345, 1406, None, "multispectral", "S2 B10 (cirrus)"),
)

#: Every range of the release, by name: the 17 learned ranges first, in layer order.
SPECTRAL_RANGES: OrderedDict[str, SpectralRange] = OrderedDict((r.name, r) for r in _RELEASE_RANGES)

#: The learned ranges in layer order; ``LEARNED_RANGES[i].layer == i``.
LEARNED_RANGES: tuple[SpectralRange, ...] = tuple(r for r in _RELEASE_RANGES if r.learned)
NUM_LAYERS = len(LEARNED_RANGES)
assert [r.layer for r in LEARNED_RANGES] == list(range(NUM_LAYERS))


def get_range(name: str) -> SpectralRange:
    """Look a range up by name (case-insensitive), with close-match suggestions on error."""
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    if key in SPECTRAL_RANGES:
        return SPECTRAL_RANGES[key]

    raise KeyError(f"unknown spectral range {name!r}.{suggest(key, SPECTRAL_RANGES)}")


def register_range(spectral_range: SpectralRange, *, overwrite: bool = False) -> SpectralRange:
    """Add an interpolated (or layer-less) range, e.g. a new sensor's band.

    Learned ranges cannot be added: a new learned layer needs weights a checkpoint does not have.
    """
    if spectral_range.learned:
        raise ValueError(
            f"cannot register {spectral_range.name!r} with layer {spectral_range.layer}: the 17 learned "
            "layers are fixed by the checkpoint; register it with neighbours=() (resolved by "
            "interpolation from its centre) or with explicit neighbour layers"
        )
    bad = [i for i in spectral_range.neighbours if not 0 <= i < NUM_LAYERS]
    if bad:
        raise ValueError(
            f"range {spectral_range.name!r}: neighbour layers {bad} not in 0..{NUM_LAYERS - 1}"
        )
    if spectral_range.name in SPECTRAL_RANGES and not overwrite:
        raise ValueError(
            f"spectral range {spectral_range.name!r} exists; pass overwrite=True to replace it"
        )
    if spectral_range.name in SPECTRAL_RANGES and SPECTRAL_RANGES[spectral_range.name].learned:
        raise ValueError(f"cannot overwrite the learned range {spectral_range.name!r}")
    SPECTRAL_RANGES[spectral_range.name] = spectral_range
    return spectral_range


def load_release_spectrum(path: str | Path) -> OrderedDict[str, SpectralRange]:
    """Read a spectrum file in the release's format (``electromagnetic_spectrum.yaml``).

    Each entry has ``min_wavelength``, ``max_wavelength``, ``sensors``, ``name``,
    ``projection_idx`` (-1: no layer; ≥ 17: interpolated) and ``agg_projections``.
    Returns the ranges (learned first, in layer order); nothing is registered.
    """
    raw = load_yaml(Path(path), "spectrum file")  # size, aliases, duplicate keys checked
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping of range names, got {type(raw).__name__}")
    ranges = []
    for name, entry in raw.items():
        missing = {"min_wavelength", "max_wavelength", "projection_idx"} - set(entry or {})
        if missing:
            raise ValueError(f"{path}: range {name!r} lacks {sorted(missing)}")
        idx = int(entry["projection_idx"])
        neighbours = tuple(int(i) for i in entry.get("agg_projections") or ())
        sensors = " ".join(entry.get("sensors") or ()).upper()
        family = (
            "sar" if "SENTINEL1" in sensors else ("rgb" if sensors == "RGB" else "multispectral")
        )
        learned = 0 <= idx and not neighbours
        ranges.append(
            SpectralRange(
                name=name,
                min_nm=float(entry["min_wavelength"]),
                max_nm=float(entry["max_wavelength"]),
                layer=idx if learned else None,
                family=family,
                neighbours=neighbours,
                label=str(entry.get("name", "")).strip(),
            )
        )
    ranges.sort(key=lambda r: (r.layer is None, r.layer if r.layer is not None else 0))
    return OrderedDict((r.name, r) for r in ranges)
