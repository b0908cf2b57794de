"""The scene is the currency: ``smartiesviz embed --bands`` hands the band list from the command
line to the tokenizer through few modules, opening the scene once (issue 25)."""

import sys
import warnings

import pytest

from smartiesviz import data
from smartiesviz.cli import main
from smartiesviz.data.scene import open_scene
from smartiesviz.predict.embed import EmbeddingJob, tokenized_scene
from smartiesviz.spectrum import ResolvedBands

WANT = ("B02", "B03", "B04", "B08")


def _carries(value: object) -> bool:
    """Whether ``value`` is the requested band list, in any spelling (names, specs, resolved)."""
    if isinstance(value, ResolvedBands):
        value = [b.qualified_name for b in value.bands]
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return {v.split("/")[-1].lower() for v in value} == {w.lower() for w in WANT}
    return False


def _inside(frame, module: str) -> bool:
    while frame is not None:
        if frame.f_globals.get("__name__") == module:
            return True
        frame = frame.f_back
    return False


def test_embed_bands_reach_the_tokenizer_through_six_modules(tmp_path):
    calls: list[tuple[str, str]] = []
    opened: list[object] = []

    def profile(frame, event, arg):
        module = frame.f_globals.get("__name__", "")
        if event != "call" or not module.startswith("smartiesviz"):
            return
        code = frame.f_code
        if code.co_name == "open_scene":
            opened.append(frame.f_locals.get("source"))
        if _inside(frame.f_back, "smartiesviz.models.tokenizer"):
            return  # the tokenizer's own business: resolving wavelengths
        names = code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
        names = names[1:] if code.co_name == "__init__" else names  # the object being built
        if any(_carries(frame.f_locals.get(n)) for n in names):
            calls.append((module, code.co_name))
            if calls[-1] == ("smartiesviz.models.tokenizer", "forward"):
                sys.setprofile(None)  # arrived: the rest runs at full speed

    scene = tmp_path / "s2.tif"
    data.sentinel2_sample().isel(y=slice(0, 128), x=slice(0, 128)).rio.to_raster(scene)
    args = ["embed", str(scene), "--sensor", "sentinel2-l1c", "--bands", *WANT, "--no-progress"]
    sys.setprofile(profile)
    try:
        main([*args, "--out", str(tmp_path / "e.tif")])
    finally:
        sys.setprofile(None)
    end = calls.index(("smartiesviz.models.tokenizer", "forward"))
    modules = ["smartiesviz.predict.cli"]  # args.bands: a field of the parsed command line
    for module, _ in calls[: end + 1]:
        if module not in modules:
            modules.append(module)
    assert modules == [
        "smartiesviz.predict.cli",
        "smartiesviz.predict.embed",  # EmbedOptions(bands=...) → the job
        "smartiesviz.data.scene",  # open_scene(..., bands): the Scene, built once
        "smartiesviz.models.tokenizer",  # which of them the tokenizer serves
        "smartiesviz.data.preprocess",  # their statistics, once for the scene
        "smartiesviz.models.vit",  # patch_feature_map(x, bands)
    ], modules
    assert opened == [str(scene)]  # opened once, from what the user named


def test_the_job_keeps_the_scene_without_the_bands_the_tokenizer_does_not_serve(tiny_model):
    cube = data.sentinel2_sample(bands=["B04", "B10", "B08"]).isel(y=slice(0, 64), x=slice(0, 64))
    scene = open_scene(cube)
    with pytest.warns(UserWarning, match=r"dropping band\(s\) \['sentinel2-l1c/B10'\]"):
        served = tokenized_scene(scene, tiny_model)
    assert served.bands == ("B04", "B08") and served.crs == scene.crs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        job = EmbeddingJob(scene, model=tiny_model, batch_size=1)
    assert job.band_specs == ["sentinel2-l1c/B04", "sentinel2-l1c/B08"]
    assert job.scene.transform == scene.transform and job.cube.sizes["band"] == 2
    with pytest.raises(ValueError, match=r"none of the bands \['sentinel2-l1c/B10'\] has a projection layer"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tokenized_scene(scene.select(["B10"]), tiny_model)
