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
"""

from __future__ import annotations

__all__ = ["BIGEARTHNET19", "EUROSAT", "RESISC45", "DFC2020", "CLASS_NAMES"]

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
