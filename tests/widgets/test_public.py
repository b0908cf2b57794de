import ipywidgets
import pytest

import smartiesviz.widgets as widgets


@pytest.mark.parametrize("name", widgets.__all__)
def test_widgets_are_displayable_with_a_static_twin(name):
    cls = getattr(widgets, name)
    assert issubclass(cls, ipywidgets.Widget)
    assert callable(getattr(cls, "_repr_mimebundle_", None))
    assert callable(cls.figure)


def test_bad_pair_index_is_a_clear_error(tiny_model):
    with pytest.raises(ValueError, match="out of range"):
        widgets.MixupViewer(pair=42, model=tiny_model)


def test_default_model_is_the_demo_model_when_shipped():
    from smartiesviz.models.demo import demo_weights_path
    from smartiesviz.widgets.samples import default_model

    try:
        demo_weights_path()
    except FileNotFoundError:
        pytest.skip("demo weights not shipped yet: widgets fall back to an untrained tiny model")
    assert getattr(default_model(), "checkpoint_info", None), "widgets do not use the demo weights"
