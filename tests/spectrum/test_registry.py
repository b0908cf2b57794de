"""The spectrum registry against the facts table (SMARTIES-facts.md) and the release's YAML."""

from dataclasses import replace
from pathlib import Path

import pytest

import smartiesviz as sv
from smartiesviz.spectrum import (
    Band,
    get_range,
    list_sensors,
    load_release_spectrum,
    load_sensors_yaml,
    register_range,
    to_copernicus_fm,
    to_dofa,
    to_panopticon,
)

FACTS = [  # idx, name, min, max  (facts table)
    (0, "aerosol", 422, 463),
    (1, "blue_1", 427, 558),
    (2, "blue_3", 430, 545),
    (3, "green_1", 466, 620),
    (4, "green_2", 524, 595),
    (5, "red_1", 590, 710),
    (6, "red_2", 634, 696),
    (7, "red_edge_1", 689, 719),
    (8, "red_edge_2", 726, 755),
    (9, "near_infrared_1", 728, 938),
    (10, "near_infrared_2", 761, 802),
    (11, "near_infrared_3", 843, 886),
    (12, "short_wave_infrared_1", 923, 964),
    (13, "short_wave_infrared_3", 1516, 1704),
    (14, "short_wave_infrared_4", 2002, 2376),
    (15, "microwave_1", 5.5e7, 5.6e7),
    (16, "microwave_2", 5.5e7, 5.6e7),
]
RELEASE_YAML = Path(__file__).parents[1] / "data_files" / "release_electromagnetic_spectrum.yaml"


def test_learned_ranges_match_facts_table():
    learned = [r for r in sv.SPECTRAL_RANGES.values() if r.layer is not None]
    assert [(r.layer, r.name, r.min_nm, r.max_nm) for r in learned] == FACTS
    assert list(sv.SPECTRAL_RANGES)[:17] == [f[1] for f in FACTS]
    for _, name, lo, hi in FACTS:
        assert sv.SPECTRAL_RANGES[name].center_nm == pytest.approx((lo + hi) / 2)


def test_interpolated_and_layerless_ranges():
    blue2, thermal, cirrus = (
        sv.SPECTRAL_RANGES[n] for n in ("blue_2", "thermal_infrared_1", "short_wave_infrared_2")
    )
    assert (blue2.min_nm, blue2.max_nm, blue2.layer, blue2.neighbours) == (452, 512, None, (0, 1))
    assert (thermal.min_nm, thermal.max_nm, thermal.neighbours) == (10600, 11190, (14, 15))
    assert (cirrus.min_nm, cirrus.max_nm, cirrus.layer, cirrus.kind) == (1345, 1406, None, "none")


def test_release_yaml_loads_to_the_same_ranges():
    loaded = load_release_spectrum(RELEASE_YAML)
    assert set(loaded) == set(sv.SPECTRAL_RANGES)
    for name, r in loaded.items():
        ours = sv.SPECTRAL_RANGES[name]
        assert (r.min_nm, r.max_nm, r.layer, r.neighbours, r.family) == (
            ours.min_nm,
            ours.max_nm,
            ours.layer,
            ours.neighbours,
            ours.family,
        ), name


EXPECTED_SENSORS = {
    "sentinel2-l1c": 13,
    "sentinel2-l2a": 12,
    "sentinel1-grd": 2,
    "rgb": 3,
    "landsat8": 11,
    "hls": 7,
    "planetscope": 4,
    "planetscope-superdove": 8,
}


@pytest.mark.parametrize("name", sorted(EXPECTED_SENSORS))
def test_every_sensor_resolves(name):
    sensor = sv.get_sensor(name)
    assert len(sensor.bands) == EXPECTED_SENSORS[name]
    assert sensor.resolution_m > 0
    rb = sv.resolve_bands(name, on_unsupported="drop")
    assert rb.weights.shape == (len(rb.keep), 17)
    assert rb.weights.sum(1).sub(1).abs().max() < 1e-6
    assert set(list_sensors()) >= set(EXPECTED_SENSORS)


def test_sentinel2_bands_follow_release_order_and_ranges():
    s2 = sv.get_sensor("sentinel2-l1c")
    assert s2.band_names == [
        "B01",
        "B02",
        "B03",
        "B04",
        "B05",
        "B06",
        "B07",
        "B08",
        "B8A",
        "B09",
        "B10",
        "B11",
        "B12",
    ]
    b07 = s2.band("B07")
    assert (b07.min_nm, b07.max_nm, b07.range_name) == (761, 802, "near_infrared_2")
    assert b07.instrument_center_nm == 782.8 and b07.instrument_bandwidth_nm == 20
    assert (
        s2.band("B08").resolution_m == 10
        and s2.band("B8A").resolution_m == 20
        and s2.band("B01").resolution_m == 60
    )


def test_landsat8_uses_published_edges():
    l8 = sv.get_sensor("landsat8")
    edges = {
        "B1": (433, 453),
        "B2": (450, 515),
        "B5": (845, 885),
        "B8": (500, 680),
        "B9": (1360, 1390),
        "B10": (10600, 11190),
        "B11": (11500, 12510),
    }
    for name, (lo, hi) in edges.items():
        assert (l8.band(name).min_nm, l8.band(name).max_nm) == (lo, hi)
    assert l8.band("B8").resolution_m == 15


def test_two_kinds_of_wavelength_facts_stay_apart():
    b02 = sv.get_sensor("S2").band("B02")
    assert (b02.min_nm, b02.max_nm) == (427, 558)  # release range (checkpoints)
    assert b02.instrument_range == pytest.approx((459.4, 525.4))  # ESA centre ± bandwidth/2
    moved = replace(b02, instrument_center_nm=500.0)
    assert (moved.min_nm, moved.max_nm, moved.range_name) == (427, 558, "blue_1")
    assert sv.layer_weights(moved).argmax() == 1
    widened = replace(b02, min_nm=400.0)
    assert widened.instrument_center_nm == 492.4


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("sentinel1-grd/vv", "VV"),
        ("S1/Vh", "VH"),
        ("S2/B08A", "B8A"),
        ("s2/b8a", "B8A"),
        ("S2/B8", "B08"),
        ("sentinel2-l2a/near_infrared_2", "B07"),
        ("RGB/R", "red"),
        ("landsat8/b01", "B1"),
        ("L8/tirs1", "B10"),
    ],
)
def test_band_aliases(spec, expected):
    from smartiesviz.spectrum import parse_band

    assert parse_band(spec).name == expected


def test_sensor_aliases_of_release_interface():
    assert sv.get_sensor("S2").name == "sentinel2-l2a"
    assert sv.get_sensor("S1").name == "sentinel1-grd"
    assert sv.get_sensor("RGB").name == "rgb"


def test_unknown_names_suggest_close_matches():
    with pytest.raises(KeyError, match="Did you mean 'sentinel2-l2a'"):
        sv.get_sensor("sentinal2-l2a")
    with pytest.raises(KeyError, match="B12"):
        sv.get_sensor("S2").band("B13")
    with pytest.raises(KeyError, match="unknown spectral range 'near_infrared_9'.*near_infrared"):
        get_range("near_infrared_9")


def test_register_sensor_in_a_few_lines(tmp_path):
    cam = sv.register_sensor(
        "test-drone-cam",
        [
            {"name": "green", "center_nm": 560, "bandwidth_nm": 20},
            {"name": "rededge", "min_nm": 710, "max_nm": 730},
            {"name": "red", "range": "red_2"},
        ],
        resolution_m=0.1,
        overwrite=True,
    )
    assert cam.band("GREEN").min_nm == 550 and cam.band("red").range_name == "red_2"
    rb = sv.resolve_bands("test-drone-cam")
    assert rb.weights[2, 6] == 1.0 and rb.weights[0].count_nonzero() == 2
    yaml_file = tmp_path / "sensors.yaml"
    yaml_file.write_text(
        "sensors:\n  test-yaml-cam:\n    resolution_m: 2\n    aliases: [TYC]\n    bands:\n"
        "      - {name: nir, min_nm: 820, max_nm: 860}\n      - {name: swir, range: short_wave_infrared_3}\n"
    )
    (loaded,) = load_sensors_yaml(yaml_file, overwrite=True)
    assert sv.get_sensor("tyc") is loaded and loaded.band_names == ["nir", "swir"]
    with pytest.raises(ValueError, match="already registered"):
        sv.register_sensor("test-yaml-cam", [{"name": "x", "min_nm": 500, "max_nm": 600}])


def test_register_range_refuses_new_learned_layers():
    with pytest.raises(ValueError, match="17 learned"):
        register_range(sv.SpectralRange("new_learned", 600, 700, 17, "multispectral"))
    with pytest.raises(ValueError, match="neighbour layers"):
        register_range(sv.SpectralRange("bad_neighbours", 600, 700, None, "multispectral", (3, 40)))


def test_band_validation():
    with pytest.raises(ValueError, match="min_nm"):
        Band("x", 700, 600)
    with pytest.raises(ValueError, match="unknown range_name"):
        Band("x", 600, 700, range_name="not_a_range")


def test_other_models_conventions():
    s2 = ["S2/B02", "S2/B8A", "S1/VV", "S1/VH"]
    assert to_dofa(s2) == [0.4924, 0.8647, 5.405, 5.405]
    assert to_dofa(["S1/VV"], sar_um=3.75) == [3.75]
    assert to_panopticon(s2) == [492.4, 864.7, -1, -2]
    assert to_copernicus_fm(s2) == [(492.4, 66), (864.7, 21), (5e7, 1e9), (5e7, 1e9)]
    assert to_dofa("landsat8")[1] == pytest.approx(0.4825)
