"""Band → layer weights: one-hot for learned ranges, interpolation schemes, and refusals."""

import math
import warnings

import pytest
import torch

import smartiesviz as sv
from smartiesviz.spectrum import SCHEMES, NoLayerError, OutOfSpectrumError, covered_interval

AEROSOL, BLUE_1, SWIR_4, VV = 0, 1, 14, 15


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("sensor", ["sentinel2-l2a", "sentinel1-grd", "rgb", "hls"])
def test_covered_bands_are_one_hot(sensor, scheme):
    for band in sv.get_sensor(sensor).bands:
        w = sv.layer_weights(band, scheme=scheme)
        assert w.shape == (17,)
        assert w.max() == 1.0 and w.sum() == 1.0
        assert w.argmax().item() == band.spectral_range.layer


@pytest.mark.parametrize("scheme", ["inverse-distance", "log-wavelength", "as-released"])
@pytest.mark.parametrize(
    "band",
    [
        "landsat8/B2",
        "landsat8/B8",
        "landsat8/B10",
        "landsat8/B11",
        (1000, 1100),
        "planetscope-superdove/yellow",
        (5.2e7, 5.3e7),
    ],
)
def test_weights_are_convex(band, scheme):
    w = sv.layer_weights(band, scheme=scheme)
    assert (w >= 0).all() and w.sum().item() == pytest.approx(1.0, abs=1e-6)
    assert 1 <= w.count_nonzero() <= 2


def test_landsat8_b2_by_hand():
    lam, lo, hi = 482.0, 442.5, 492.5  # blue_2 centre, aerosol centre, blue_1 centre
    expected = {
        "inverse-distance": (hi - lam) / (hi - lo),
        "log-wavelength": (math.log(hi) - math.log(lam)) / (math.log(hi) - math.log(lo)),
        "as-released": (lam - lo) / ((lam - lo) + (hi - lam)),  # farther layer weighs more: 0.79
    }
    for scheme, w_aerosol in expected.items():
        w = sv.layer_weights("landsat8/B2", scheme=scheme)
        assert w[AEROSOL].item() == pytest.approx(w_aerosol, rel=1e-6), scheme
        assert w[BLUE_1].item() == pytest.approx(1 - w_aerosol, rel=1e-6), scheme
    assert sv.layer_weights("landsat8/B2", scheme="as-released")[AEROSOL].item() == pytest.approx(
        0.79
    )
    assert sv.layer_weights("landsat8/B2")[AEROSOL].item() == pytest.approx(0.21)


def test_landsat8_b10_by_hand():
    lam, lo, hi = 10895.0, 2189.0, 5.55e7  # thermal centre, S2 B12 centre, S1 VV centre
    expected = {
        "inverse-distance": (hi - lam) / (hi - lo),
        "log-wavelength": (math.log(hi) - math.log(lam)) / (math.log(hi) - math.log(lo)),
        "as-released": (hi - lam) / ((lam - lo) + (hi - lam)) * 0
        + (lam - lo) / ((lam - lo) + (hi - lam)),
    }
    for scheme, w_swir in expected.items():
        w = sv.layer_weights("landsat8/B10", scheme=scheme)
        assert w[SWIR_4].item() == pytest.approx(w_swir, rel=1e-5), scheme
        assert w[VV].item() == pytest.approx(1 - w_swir, rel=1e-4, abs=1e-7), scheme
    assert sv.layer_weights("landsat8/B10", scheme="log-wavelength")[VV].item() == pytest.approx(
        0.1583, abs=1e-3
    )
    assert sv.layer_weights("landsat8/B10", scheme="as-released")[VV].item() > 0.999


def test_nearest_layer_is_the_naive_transfer():
    w = sv.layer_weights("planetscope-superdove/nir", scheme="nearest-layer")
    assert (
        sv.layer_weights("planetscope/nir", scheme="nearest-layer").argmax().item() == 9
    )  # 780–860 → B08
    assert w.argmax().item() == 11 and w.sum() == 1  # 845–885 nm → B8A layer
    with pytest.raises(OutOfSpectrumError, match="overlaps no learned multispectral range"):
        sv.layer_weights("landsat8/B10", scheme="nearest-layer")


def test_at_a_learned_centre_interpolation_is_one_hot():
    w = sv.layer_weights((2002, 2376))
    assert w[SWIR_4] == 1.0


def test_extrapolation_raises_with_band_and_interval():
    lo, hi = covered_interval()
    with pytest.raises(OutOfSpectrumError, match=r"'300-400nm'.*350 nm.*\[442.5, 5.55e\+07\]"):
        sv.layer_weights((300, 400))
    with pytest.raises(OutOfSpectrumError, match="outside the pretraining spectrum"):
        sv.layer_weights((2e8, 2.5e8))  # L-band SAR
    with pytest.warns(UserWarning, match="clamped to layer 0"):
        w = sv.layer_weights((300, 400), clamp=True)
    assert w[AEROSOL] == 1.0 and lo == 442.5 and hi == 5.55e7


def test_bands_without_a_layer():
    with pytest.raises(NoLayerError, match="B10.*1345–1406"):
        sv.layer_weights("sentinel2-l1c/B10")
    with pytest.warns(UserWarning, match="dropping band.*B10"):
        rb = sv.resolve_bands("sentinel2-l1c")
    assert (
        rb.n_input == 13
        and len(rb) == 12
        and 10 not in rb.keep
        and rb.dropped == ("sentinel2-l1c/B10",)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(sv.resolve_bands("sentinel2-l1c", on_unsupported="drop")) == 12
        kept = sv.resolve_bands("sentinel2-l1c", on_unsupported="interpolate")
    assert len(kept) == 13 and kept.weights[10].count_nonzero() == 2
    with pytest.raises(NoLayerError):
        sv.resolve_bands("sentinel2-l1c", on_unsupported="raise")


def test_resolve_bands_lists_and_per_band_schemes():
    rb = sv.resolve_bands(["B04", "B03", "B02"], sensor="S2")
    assert rb.names == ["B04", "B03", "B02"] and rb.used_layers == (1, 4, 6)
    mixed = sv.resolve_bands(["landsat8/B10", "landsat8/B11"], scheme={"B10": "log-wavelength"})
    assert mixed.weights[0, VV] > 0.1 and mixed.weights[1, VV] < 0.01
    assert torch.equal(sv.resolve_bands(["near_infrared_2"]).weights[0], sv.layer_weights("S2/B07"))


def test_resolve_bands_errors():
    with pytest.raises(ValueError, match="empty band list"):
        sv.resolve_bands([])
    with pytest.raises(KeyError, match="sensors disagree on it.*name its sensor"):
        sv.resolve_bands(["B10"])  # bare names: S2 L2A's, else unambiguous across sensors
    with pytest.raises(ValueError, match="unknown interpolation scheme"):
        sv.layer_weights("landsat8/B2", scheme="cubic")
    with pytest.raises(ValueError, match="0 < min_nm < max_nm"):
        sv.layer_weights((700, 600))
