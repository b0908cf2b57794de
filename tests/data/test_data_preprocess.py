"""Release preprocessing: statistics by band name, units, NaN/nodata handling, inverse."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from smartiesviz.data import (
    BandStats,
    NodataWarning,
    compute_stats,
    denormalize,
    harmonize_s2,
    has_released_stats,
    list_release_stats,
    normalize,
    normalize_array,
    release_stats,
)


def _manual(x, s):
    u = np.clip((x.astype(np.float64) - s["p1"]) / (s["p99"] - s["p1"]), 0, 1)
    return (u - s["mean"]) / s["std"]


def test_release_stats_table():
    names = list_release_stats()
    for n in [
        "SENTINEL2-L1C",
        "SENTINEL2-L2A",
        "SENTINEL1-GRD",
        "RGB",
        "EuroSAT",
        "BigEarthNetS2",
        "BigEarthNetS1",
    ]:
        assert n in names
    l1c = release_stats("sentinel2-l1c")
    assert l1c.name == "SENTINEL2-L1C" and len(l1c.bands) == 13
    assert release_stats("S1").name == "SENTINEL1-GRD"
    assert release_stats("eurosat").bands["B8A"]["p99"] == 5312.0  # last in the release's list
    # BigEarthNet S2 statistics are the release's L2A statistics
    assert release_stats("BigEarthNetS2").to_dict() == release_stats("sentinel2-l2a").to_dict()
    assert has_released_stats("sentinel2-l2a") and not has_released_stats("landsat8")
    with pytest.raises(ValueError, match="no released statistics called 'nope'.*EuroSAT"):
        release_stats("nope")


def test_normalize_s2_with_release_stats(s2_small):
    z = normalize(s2_small)
    st = release_stats("sentinel2-l1c")
    assert z.dtype == np.float32 and np.isfinite(z.values).all()
    assert z.attrs["units"] == "model" and z.attrs["stats"] == "SENTINEL2-L1C"
    assert z.attrs["input_units"] == "DN" and z.attrs["n_invalid"] == 0
    assert bool(z["valid"].all())
    assert z.rio.crs == s2_small.rio.crs and z.rio.transform() == s2_small.rio.transform()
    for b in ["B01", "B04", "B10", "B12"]:
        s = st.bands[b]
        np.testing.assert_allclose(
            z.sel(band=b).values, _manual(s2_small.sel(band=b).values, s), atol=1e-5
        )
        lo, hi = (0 - s["mean"]) / s["std"], (1 - s["mean"]) / s["std"]
        assert lo - 1e-5 <= float(z.sel(band=b).min()) and float(z.sel(band=b).max()) <= hi + 1e-5


def test_release_stats_fit_the_sample_units(s2_scene):
    """The sample's DN sit inside the release's L1C p1–p99 (no offset, same scaling): almost nothing
    is clipped and band means land near 0 in model units."""
    z = normalize(s2_scene.isel(y=slice(None, None, 4), x=slice(None, None, 4)))
    unit = denormalize(z, space="unit").values
    for i, b in enumerate(z["band"].values):
        clipped = np.mean((unit[i] <= 0) | (unit[i] >= 1))
        assert clipped < 0.01, (b, clipped)
        assert abs(float(z.values[i].mean())) < 1.5, b


def test_stats_follow_band_names_when_reordered_or_dropped(s2_small):
    full = normalize(s2_small)
    picked = normalize(s2_small.sel(band=["B12", "B02", "B8A"]))
    np.testing.assert_array_equal(picked.values, full.sel(band=["B12", "B02", "B8A"]).values)
    np.testing.assert_array_equal(
        picked["stats_p99"].values, full["stats_p99"].sel(band=["B12", "B02", "B8A"]).values
    )
    # alias band names on the cube resolve to the registry names
    aliased = s2_small.sel(band=["B08", "B04"]).assign_coords(band=["b8", "B4"])
    np.testing.assert_array_equal(normalize(aliased).values, full.sel(band=["B08", "B04"]).values)


def test_eval_dataset_stats_by_name(s2_small):
    z = normalize(s2_small.sel(band=["B8A", "B02"]), stats="EuroSAT")
    s = release_stats("EuroSAT").bands
    np.testing.assert_allclose(
        z.sel(band="B8A").values, _manual(s2_small.sel(band="B8A").values, s["B8A"]), atol=1e-5
    )
    assert z.attrs["stats"] == "EuroSAT"


def test_nan_and_nodata_are_masked_and_reported(s2_small):
    cube = s2_small.sel(band=["B02", "B03", "B04"]).copy()
    cube.values[0, 5, 7] = np.nan
    cube.values[1, 10, 10:13] = 0.0  # nodata
    cube.attrs["nodata"] = 0.0
    with pytest.warns(NodataWarning, match="4 of 36000 pixels"):
        z = normalize(cube)
    assert np.isfinite(z.values).all()
    assert z.values[0, 5, 7] == 0.0 and (z.values[1, 10, 10:13] == 0.0).all()
    assert z.attrs["n_invalid"] == 4
    valid = z["valid"].values
    assert not valid[5, 7] and not valid[10, 11] and valid.sum() == valid.size - 4
    # other bands at an invalid pixel keep their values
    assert z.values[2, 5, 7] == normalize(s2_small.sel(band=["B04"])).values[0, 5, 7]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        normalize(cube, warn=False)


def test_s1_linear_power_is_converted_to_db(ben_pairs):
    s1 = ben_pairs[0].s1
    z_db = normalize(s1)
    assert z_db.attrs["stats"] == "SENTINEL1-GRD"
    lin = s1.copy(data=10 ** (s1.values / 10))
    lin.attrs["units"] = "linear"
    z_lin = normalize(lin)
    np.testing.assert_allclose(z_lin.values, z_db.values, atol=1e-4)
    assert z_lin.attrs["input_units"] == "dB"
    lin.values[0, 0, 0] = 0.0  # log of 0: no data
    with pytest.warns(NodataWarning, match="1 of"):
        assert normalize(lin).values[0, 0, 0] == 0.0


def test_s2_reflectance_is_scaled_to_dn(s2_small):
    cube = s2_small.sel(band=["B03", "B11"])
    refl = cube.copy(data=cube.values / 10000.0)
    refl.attrs["units"] = "reflectance"
    np.testing.assert_allclose(normalize(refl).values, normalize(cube).values, atol=1e-5)


def test_data_stats_standardize(l8_scene):
    st = compute_stats(l8_scene)
    assert isinstance(st, BandStats) and set(st.bands) == set(l8_scene["band"].values)
    z = normalize(l8_scene, stats="data")
    m, s = z.values.mean(axis=(1, 2)), z.values.std(axis=(1, 2))
    np.testing.assert_allclose(m, 0, atol=1e-4)
    np.testing.assert_allclose(s, 1, atol=1e-3)
    with pytest.warns(UserWarning, match="no released statistics for 'landsat8'"):
        auto = normalize(l8_scene)
    np.testing.assert_array_equal(auto.values, z.values)
    with pytest.raises(ValueError, match="no released statistics for sensor 'landsat8'"):
        normalize(l8_scene, stats="release")


def test_user_stats_and_errors(s2_small):
    cube = s2_small.sel(band=["B04"])
    z = normalize(cube, stats={"B4": {"p1": 0, "p99": 2000, "mean": 0.5, "std": 0.25}})
    np.testing.assert_allclose(
        z.values, _manual(cube.values, {"p1": 0, "p99": 2000, "mean": 0.5, "std": 0.25}), atol=1e-5
    )
    with pytest.raises(ValueError, match="no entry for band 'B03'.*B04"):
        normalize(
            s2_small.sel(band=["B03"]), stats={"B04": {"p1": 0, "p99": 1, "mean": 0.5, "std": 0.2}}
        )
    with pytest.raises(ValueError, match="p99 .* must exceed p1"):
        normalize(cube, stats={"B04": {"p1": 5, "p99": 5, "mean": 0.5, "std": 0.2}})
    with pytest.raises(ValueError, match="unknown sensor 'sentinel9'"):
        normalize(cube, "sentinel9")
    with pytest.raises(ValueError, match="already normalized"):
        normalize(normalize(cube))
    with pytest.raises(ValueError, match="unknown band.*'B99'.*known bands"):
        normalize(cube.assign_coords(band=["B99"]))


def test_denormalize_inverts_inside_the_clip_range(s2_small):
    cube = s2_small.sel(band=["B02", "B11"])
    z = normalize(cube)
    back = denormalize(z)
    p1, p99 = z["stats_p1"].values[:, None, None], z["stats_p99"].values[:, None, None]
    inside = (cube.values > p1) & (cube.values < p99)
    assert inside.mean() > 0.95
    np.testing.assert_allclose(back.values[inside], cube.values[inside], rtol=1e-4)
    np.testing.assert_allclose(
        back.values[~inside],
        np.broadcast_to(np.where(cube.values < p1, p1, p99), cube.shape)[~inside],
        rtol=1e-4,
    )
    unit = denormalize(z, space="unit")
    assert float(unit.min()) >= 0 and float(unit.max()) <= 1
    # without attached stats, the sensor's release statistics are used
    plain = z.drop_vars(["stats_p1", "stats_p99", "stats_mean", "stats_std"])
    np.testing.assert_allclose(denormalize(plain).values, back.values, rtol=1e-5)


def test_normalize_array_matches_cube(s2_small):
    cube = s2_small.sel(band=["B04", "B03", "B02"])
    z = normalize(cube).values
    x = cube.values[None].copy()
    x[0, 0, 0, 0] = np.nan
    expect = z.copy()
    expect[0, 0, 0] = 0.0
    out_np = normalize_array(x, ["B04", "B03", "B02"], "sentinel2-l1c")
    np.testing.assert_allclose(out_np[0], expect, atol=1e-5)
    out_t = normalize_array(torch.from_numpy(x), ["B04", "B03", "B02"], "sentinel2-l1c")
    assert out_t.dtype == torch.float32
    np.testing.assert_allclose(out_t[0].numpy(), expect, atol=1e-5)
    with pytest.raises(ValueError, match="x has 3 channels .* 2 bands"):
        normalize_array(x, ["B04", "B03"], "sentinel2-l1c")


def test_harmonize_s2_removes_offset(s2_small):
    cube = s2_small.sel(band=["B02"])
    shifted = cube + 1000.0
    shifted.attrs = dict(cube.attrs)
    np.testing.assert_array_equal(harmonize_s2(shifted).values, cube.values)
    with pytest.raises(ValueError, match="already removed"):
        harmonize_s2(harmonize_s2(shifted))


RELEASE_CONFIG = Path("/work/shared/reference/official-release-config")


@pytest.mark.skipif(not RELEASE_CONFIG.is_dir(), reason="release configuration not available here")
def test_packaged_stats_match_the_release_configuration():
    """Our YAML re-keys the release's numbers by registry band name; check every number, mapping
    the release's range names through the sensor registry (independently of how it was written)."""
    import yaml

    from smartiesviz import get_sensor

    pre = yaml.safe_load((RELEASE_CONFIG / "pretraining_sensors.yaml").read_text())
    ev = yaml.safe_load((RELEASE_CONFIG / "eval_datasets.yaml").read_text())
    entries = {**pre, **{k: v["sensor_specs"] for k, v in ev.items() if "sensor_specs" in v}}
    checked = 0
    for name, spec in entries.items():
        ours = release_stats(name)
        sensors = [get_sensor(s) for s in ours.sensors]
        for i, rng in enumerate(spec["bands"]):
            band = next(
                s.band(rng).name for s in sensors if any(b.range_name == rng for b in s.bands)
            )
            got = ours.bands[band]
            want = {
                "p1": spec["percentiles"]["1"][i],
                "p99": spec["percentiles"]["99"][i],
                "mean": spec["mean"][i],
                "std": spec["std"][i],
            }
            assert got == pytest.approx(want, rel=1e-12), (name, rng, band)
            checked += 1
    assert set(list_release_stats()) == set(entries)
    assert checked == sum(len(s["bands"]) for s in entries.values()) == 80
