import numpy as np
import pytest

import smartiesviz
from smartiesviz.widgets import SpectrumExplorer
from smartiesviz.widgets.spectrum import SEGMENTS, wavelength_to_x


@pytest.fixture(scope="module")
def explorer():
    return SpectrumExplorer()


def test_axis_is_monotone_and_fits_the_c_band():
    nm = np.array([400, 700, 2400, 10000, 12000, 5.5e7, 5.6e7])
    x = wavelength_to_x(nm)
    assert np.all(np.diff(x) > 0)
    assert SEGMENTS[0][0] <= x[0] and x[2] <= SEGMENTS[0][1]
    assert SEGMENTS[1][0] <= x[3] <= SEGMENTS[1][1]
    assert SEGMENTS[2][0] <= x[5] < x[6] <= SEGMENTS[2][1]


@pytest.mark.parametrize("band", [(1100.0, 1250.0), (10600.0, 11190.0), (452.0, 512.0)])
def test_custom_band_weights_equal_layer_weights(explorer, band):
    explorer.custom_min.value, explorer.custom_max.value = -1.0, 1e9  # reset between cases
    explorer.custom_min.value, explorer.custom_max.value = band
    assert explorer.error.message == ""
    for scheme in explorer.schemes:
        got = explorer.custom_weights[scheme]
        try:
            want = smartiesviz.layer_weights(band, scheme=scheme).numpy()
        except ValueError as exc:
            assert isinstance(got, str) and got in str(exc)
        else:
            np.testing.assert_allclose(got, want, atol=1e-6)


def test_out_of_spectrum_band_is_refused_with_reason(explorer, png_of):
    explorer.custom_min.value, explorer.custom_max.value = 250.0, 300.0
    assert explorer.error.message == ""  # a refusal is content, not an input error
    for scheme in ("inverse-distance", "log-wavelength", "as-released"):
        assert isinstance(explorer.custom_weights[scheme], str)
        assert "outside" in explorer.custom_weights[scheme]
    assert "refused" in explorer.weights_html.value
    assert explorer.refused
    png_of(explorer.figure())


def test_bad_interval_shows_error_panel(explorer):
    explorer.custom_min.value, explorer.custom_max.value = 900.0, 800.0
    assert "0 < min_nm < max_nm" in explorer.error.message
    assert explorer.error.layout.display is None
    explorer.custom_min.value = 700.0
    assert explorer.error.message == ""


def test_sensor_choice_highlights_its_layers(explorer):
    explorer.sensor.value = "sentinel1-grd"
    assert explorer.highlighted_layers == {15, 16}
    explorer.sensor.value = "rgb"
    assert explorer.highlighted_layers == {2, 3, 5}
    explorer.sensor.value = "landsat8"
    assert {14, 15} <= explorer.highlighted_layers  # TIRS B10 interpolated from B12 and VV
    explorer.sensor.value = "(all)"
    assert explorer.highlighted_layers == set()


def test_static_figure_draws_layers_and_sensor_rows(explorer, png_of):
    fig = explorer.figure()
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[0] == "layers" and labels[-1] == "custom band"
    assert set(explorer.sensors) <= set(labels)
    assert len(explorer.layers) == 17
    png_of(fig)
    assert fig._repr_png_()[:4] == b"\x89PNG"  # renders at the end of a notebook cell


def test_live_view_has_hover_with_names_and_nm(explorer):
    import holoviews as hv
    from bokeh.models import HoverTool

    explorer.sensor.value = "sentinel2-l2a"
    plot = hv.render(explorer.hv_plot(), backend="bokeh")
    hovers = [t for t in plot.tools if isinstance(t, HoverTool)]
    assert hovers
    fields = {f for h in hovers for _, f in (h.tooltips or [])}
    assert {"@{name}", "@{min}", "@{max}"} <= fields or {"@name", "@min", "@max"} <= fields
