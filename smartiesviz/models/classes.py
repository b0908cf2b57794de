"""Class names of the released SMARTIES task heads, in the order of the heads' outputs.

Sources (``../shared/reference/SMARTIES-facts.md``, "Released task files and their heads"):

* BigEarthNet-19: the order the release's facts give (19 multi-labels).
* EuroSAT: the sorted class names taken from the dataset's file names (given in the facts).
* RESISC-45: the release sorts the class names taken from the file names; the list below is the
  standard RESISC-45 class list sorted alphabetically (assumed: the release's own list is not
  in the facts).
* DFC2020: the order is fixed by the release's preprocessed label file, not by its code. The
  names below are **assumed**: the DFC2020 simplified-IGBP classes present in the data (Savanna
  and Snow/Ice never occur), in class-index order.

Colours (:data:`CLASS_COLOURS`, :func:`class_colours`), for class maps: BigEarthNet-19 in the
CORINE Land Cover legend's colours (the 19 classes are merged CLC level-3 classes: each takes the
colour of its main member), EuroSAT and DFC2020 in the usual land-cover hues (forest green,
water blue, built-up red, ...); other class lists get distinct generated colours.
"""

from __future__ import annotations

__all__ = [
    "BIGEARTHNET19", "EUROSAT", "RESISC45", "DFC2020", "CLASS_NAMES", "CLASS_COLOURS",
    "class_colours",
]  # fmt: skip

BIGEARTHNET19: tuple[str, ...] = (
    "Urban fabric",
    "Industrial or commercial units",
    "Arable land",
    "Permanent crops",
    "Pastures",
    "Complex cultivation patterns",
    "Land principally occupied by agriculture, with significant areas of natural vegetation",
    "Agro-forestry areas",
    "Broad-leaved forest",
    "Coniferous forest",
    "Mixed forest",
    "Natural grassland and sparsely vegetated areas",
    "Moors, heathland and sclerophyllous vegetation",
    "Transitional woodland/shrub",
    "Beaches, dunes, sands",
    "Inland wetlands",
    "Coastal wetlands",
    "Inland waters",
    "Marine waters",
)

EUROSAT: tuple[str, ...] = (
    "AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial",
    "Pasture", "PermanentCrop", "Residential", "River", "SeaLake",
)  # fmt: skip

# assumed: the standard RESISC-45 classes (folder/file-name spelling), sorted as the release sorts
RESISC45: tuple[str, ...] = tuple(sorted((
    "airplane", "airport", "baseball_diamond", "basketball_court", "beach", "bridge",
    "chaparral", "church", "circular_farmland", "cloud", "commercial_area", "dense_residential",
    "desert", "forest", "freeway", "golf_course", "ground_track_field", "harbor",
    "industrial_area", "intersection", "island", "lake", "meadow", "medium_residential",
    "mobile_home_park", "mountain", "overpass", "palace", "parking_lot", "railway",
    "railway_station", "rectangular_farmland", "river", "roundabout", "runway", "sea_ice",
    "ship", "snowberg", "sparse_residential", "stadium", "storage_tank", "tennis_court",
    "terrace", "thermal_power_station", "wetland",
)))  # fmt: skip

# assumed names and order (DFC2020 classes 1, 2, 4, 5, 6, 7, 9, 10)
DFC2020: tuple[str, ...] = (
    "Forest", "Shrubland", "Grassland", "Wetlands", "Croplands", "Urban/Built-up", "Barren", "Water",
)  # fmt: skip

#: dataset → class names in output order.
CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "BigEarthNet": BIGEARTHNET19,
    "EuroSAT": EUROSAT,
    "RESISC45": RESISC45,
    "DFC2020": DFC2020,
}


RGB = tuple[int, int, int]

BIGEARTHNET19_COLOURS: tuple[RGB, ...] = (
    (230, 0, 77), (204, 77, 242), (255, 255, 168), (230, 128, 0), (230, 230, 77),
    (255, 230, 77), (230, 204, 77), (242, 204, 166), (128, 255, 0), (0, 166, 0),
    (77, 255, 0), (204, 242, 77), (166, 255, 128), (166, 242, 0), (230, 230, 230),
    (166, 166, 255), (204, 204, 255), (0, 204, 242), (0, 100, 200),
)  # fmt: skip

EUROSAT_COLOURS: tuple[RGB, ...] = (
    (240, 210, 90), (20, 110, 30), (160, 210, 90), (120, 120, 120), (170, 60, 200),
    (200, 230, 120), (230, 130, 20), (220, 40, 40), (60, 140, 230), (20, 50, 160),
)  # fmt: skip

DFC2020_COLOURS: tuple[RGB, ...] = (
    (0, 153, 0), (198, 176, 68), (182, 255, 5), (39, 255, 135),
    (255, 255, 0), (255, 0, 0), (249, 255, 164), (28, 13, 255),
)  # fmt: skip

#: dataset → one RGB colour per class, in output order.
CLASS_COLOURS: dict[str, tuple[RGB, ...]] = {
    "BigEarthNet": BIGEARTHNET19_COLOURS,
    "EuroSAT": EUROSAT_COLOURS,
    "DFC2020": DFC2020_COLOURS,
}


def class_colours(dataset: str, n: int) -> tuple[RGB, ...]:
    """``n`` RGB colours for a dataset's classes: its own (:data:`CLASS_COLOURS`) when it has
    ``n`` of them, else distinct hues spaced by the golden angle (RESISC-45, your own heads)."""
    own = CLASS_COLOURS.get(dataset)
    if own is not None and len(own) == n:
        return own
    import colorsys  # stdlib; only for generated palettes

    out = []
    for i in range(n):
        r, g, b = colorsys.hsv_to_rgb((i * 0.618034) % 1.0, 0.75, 0.95 - 0.25 * (i % 3) / 2)
        out.append((round(r * 255), round(g * 255), round(b * 255)))
    return tuple(out)
