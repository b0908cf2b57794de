"""`predict`: released task heads over whole scenes, written as class maps and probabilities.

Task files are tiny downstream ViTs in the release's exact key layout with random heads
(``tests/models/test_heads.py``'s ``task_file``); scenes are small synthetic GeoTIFFs larger
than one window (32 px), so every path streams several windows and strips. The last tests train
a small head on the demo encoder and check that its class map is right more often than chance.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine

from smartiesviz.errors import UserError
from smartiesviz.models.classes import BIGEARTHNET19, DFC2020, EUROSAT
from smartiesviz.models.heads import TaskModel, load_task_model
from smartiesviz.predict import task_cli, tasks
from smartiesviz.predict.embed import EmbedOptions
from smartiesviz.predict.tasks import (
    PredictOptions,
    TaskJob,
    predict_scene,
    predict_to_file,
    probabilities_path,
)
from tests.models.test_heads import HEADS, S, save, task_file
from tests.predict.conftest import S2_L2A, make_cube

H, W = 100, 90  # not multiples of the 32-px window nor of the 8-px patch
NY, NX = math.ceil(H / S), math.ceil(W / S)
FAST = dict(progress=False, batch_size=4)


def _scene(tmp: Path, name: str, bands: list[str], sensor: str, lo: float, hi: float, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W]
    smooth = 0.5 + 0.25 * (np.sin(yy / 9.0) + np.cos(xx / 13.0))
    data = lo + (hi - lo) * (smooth[None] * np.linspace(0.6, 1.0, len(bands))[:, None, None])
    data = data + rng.normal(0, 0.02 * (hi - lo), data.shape)
    cube = make_cube(data.astype("float32"), bands, sensor)
    path = tmp / name
    cube.rio.to_raster(path)
    return path, cube


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Task files named as the release names them, and S2 / S1 scenes as GeoTIFFs."""
    d = tmp_path_factory.mktemp("tasks")
    named = {
        "eurosat-finetune": ("finetune", 10, 64),
        "bigearthnets1-linprobe": ("linprobe", 19, 64),
        "bigearthnetmm-linprobe": ("linprobe", 19, 128),
        "dfc2020-linprobe": ("segmentation", 8, 64),
    }
    out = {
        task: save(d, task_file(kind, c, width), f"smarties-v1-vitb-{task}.safetensors")
        for task, (kind, c, width) in named.items()
    }
    out["s2"], out["s2_cube"] = _scene(d, "s2.tif", S2_L2A, "sentinel2-l2a", 300, 3000)
    out["s1"], out["s1_cube"] = _scene(d, "s1.tif", ["VV", "VH"], "sentinel1-grd", -25, -5, 1)
    return out


def _model(files, task: str) -> TaskModel:
    return load_task_model(files[task], num_heads=HEADS)


def _read(path: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    with rasterio.open(path) as k, rasterio.open(probabilities_path(path)) as p:
        info = dict(
            k_profile=k.profile, p_profile=p.profile, colormap=k.colormap(1), tags=k.tags(),
            band_tags=k.tags(1), k_desc=k.descriptions, p_desc=p.descriptions, p_tags=p.tags(),
        )  # fmt: skip
        return k.read(1), p.read(), info


def test_single_label_class_map_and_probabilities(files, tmp_path, monkeypatch):
    monkeypatch.setattr(tasks, "STRIP_ROWS", 4)  # several strips, as a large scene has
    out = predict_to_file(files["s2"], tmp_path / "map.tif", "sentinel2-l2a",
                          files["eurosat-finetune"], **FAST)  # fmt: skip
    k, p, info = _read(out)
    assert k.shape == (NY, NX) and p.shape == (10, NY, NX)
    assert np.isfinite(p).all() and p.min() >= 0 and p.max() <= 1
    np.testing.assert_allclose(p.sum(0), 1, atol=1e-5)
    assert np.array_equal(k, p.argmax(0)) and info["k_profile"]["dtype"] == "uint8"
    assert info["k_profile"]["nodata"] == 255 and info["k_desc"] == ("class",)
    assert info["p_desc"] == EUROSAT and info["band_tags"]["CLASS_9"] == "SeaLake"
    assert len(info["colormap"]) >= 10 and info["colormap"][1] != info["colormap"][0]
    assert info["tags"]["task"] == "eurosat-finetune" and info["tags"]["reducer"] == "argmax"
    assert info["tags"]["checkpoint"].endswith("eurosat-finetune.safetensors")
    assert len(info["tags"]["checkpoint_sha256"]) == 64
    scene = files["s2_cube"]
    ts = scene.rio.transform()
    for prof in (info["k_profile"], info["p_profile"]):
        assert prof["crs"] == scene.rio.crs and prof["transform"] == ts @ Affine.scale(S)
    # the strips written to the file are the in-memory map
    ds = predict_scene(files["s2_cube"], None, files["eurosat-finetune"], **FAST)
    np.testing.assert_allclose(ds.probabilities.values, p, atol=1e-6)
    assert list(ds.probabilities["class"].values) == list(EUROSAT)


def test_multi_label_head_gives_independent_sigmoid_probabilities(files):
    ds = predict_scene(files["s1"], "sentinel1-grd", files["bigearthnets1-linprobe"], **FAST)
    p, k = ds.probabilities.values, ds["class_map"].values
    assert p.shape == (19, NY, NX) and list(ds.probabilities["class"].values) == list(BIGEARTHNET19)
    assert p.min() >= 0 and p.max() <= 1 and not np.allclose(p.sum(0), 1, atol=1e-2)
    assert np.array_equal(k, p.argmax(0)) and ds.attrs["probabilities"] == "sigmoid per label"


@pytest.mark.parametrize("task", ["eurosat-finetune", "dfc2020-linprobe"])
def test_nodata_cells_are_nodata_in_both_outputs(files, task):
    cube = files["s2_cube"].copy(deep=True)
    cube[:, :40] = np.nan  # the top 5 cell rows
    ds = predict_scene(cube, None, files[task], **FAST)
    p, k = ds.probabilities.values, ds["class_map"].values
    assert np.isnan(p[:, :5]).all() and (k[:5] == 255).all()
    assert np.isfinite(p[:, 5:]).all() and (k[5:] < p.shape[0]).all()


def test_constant_scene_gives_a_constant_map_without_seams(files):
    model = _model(files, "eurosat-finetune")
    flat = files["s2_cube"].copy(data=np.broadcast_to(
        np.linspace(500, 2500, 12, dtype="float32")[:, None, None], (12, H, W)).copy())  # fmt: skip
    ds = predict_scene(flat, None, model, overlap=16, **FAST)
    p = ds.probabilities.values
    job = TaskJob(model, [(flat, "sentinel2-l2a")], PredictOptions(overlap=16, progress=False))
    assert len(job.windows) >= 9  # 100 x 90 px in 32-px windows, 16 px overlap
    (_, xs, _), bands = next(job.batches()), {"S2": job.inputs[0].specs}
    with torch.no_grad():
        one = model.probabilities(model(xs, bands))[0].numpy()
    np.testing.assert_allclose(p, np.broadcast_to(one[:, None, None], p.shape), atol=1e-5)
    assert len(np.unique(ds["class_map"].values)) == 1


def test_segmentation_blends_overlapping_windows(files):
    model = _model(files, "dfc2020-linprobe")
    opts = PredictOptions(overlap=16, progress=False, batch_size=4)
    job = TaskJob(model, [(files["s2_cube"], "sentinel2-l2a")], opts)
    t, ov = 4, 2  # window and overlap in cells
    assert len(job.windows) > 4 and job.overlap == 16
    ramp = np.minimum(1, np.minimum(np.arange(t) + 0.5, t - np.arange(t) - 0.5) / ov)
    acc, wsum = np.zeros((8, NY + t, NX + t)), np.zeros((NY + t, NX + t))
    bands = {"S2": job.inputs[0].specs}
    for wins, xs, _ in job.batches():
        with torch.no_grad():
            probs = torch.softmax(model.dense_logits(xs, bands), 1).numpy()
        for win, pr in zip(wins, probs):
            w = ramp[:, None] * ramp[None]
            acc[:, win.row : win.row + t, win.col : win.col + t] += pr * w
            wsum[win.row : win.row + t, win.col : win.col + t] += w
    ref = acc[:, :NY, :NX] / wsum[:NY, :NX]
    ds = predict_scene(files["s2_cube"], None, model, opts)
    np.testing.assert_allclose(ds.probabilities.values, ref, atol=1e-5)
    np.testing.assert_allclose(ds.probabilities.values.sum(0), 1, atol=1e-5)
    assert list(ds.probabilities["class"].values) == list(DFC2020)


def test_two_source_head_takes_co_registered_scenes_in_either_order(files, tmp_path):
    model = _model(files, "bigearthnetmm-linprobe")
    s2, s1 = files["s2"], files["s1"]
    a = predict_scene(s2, "sentinel2-l2a", model, second=s1, second_sensor="sentinel1-grd", **FAST)
    b = predict_scene(s1, "sentinel1-grd", model, second=s2, second_sensor="sentinel2-l2a", **FAST)
    np.testing.assert_array_equal(a.probabilities.values, b.probabilities.values)
    sources = a.attrs["sources"]
    assert sources.startswith("S2=sentinel2-l2a:") and ";S1=sentinel1-grd:" in sources
    with pytest.raises(UserError, match="takes 2 co-registered scenes.*--second SCENE"):
        predict_scene(s2, "sentinel2-l2a", model, **FAST)
    s1_cube = files["s1_cube"]
    for other in (s1_cube.assign_coords(x=s1_cube.x + 30), s1_cube.isel(y=slice(0, 64))):
        with pytest.raises(UserError, match="not co-registered.*reproject_match"):
            predict_scene(s2, "sentinel2-l2a", model, second=other, **FAST)
    with pytest.raises(UserError, match="multispectral"):
        predict_scene(s1, "sentinel1-grd", model, second=s1, second_sensor="sentinel1-grd", **FAST)
    assert not list(tmp_path.iterdir())


def test_wrong_scenes_and_checkpoints_are_one_clear_error(files, tmp_path, monkeypatch):
    def no_download(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr("smartiesviz.models.resolve.hub_download", no_download)
    s2, s1, euro = files["s2"], files["s1"], files["eurosat-finetune"]
    with pytest.raises(UserError, match="eurosat-finetune head takes a multispectral"):
        predict_scene(s1, "sentinel1-grd", euro, **FAST)
    with pytest.raises(UserError, match="drop the second scene"):
        predict_scene(s2, "sentinel2-l2a", euro, second=s2, second_sensor="sentinel2-l2a", **FAST)
    rgb = files["s2_cube"].isel(band=[1, 2, 3])
    with pytest.raises(UserError, match="lacks B01"):
        predict_scene(rgb, None, euro, **FAST)
    no_head = {k: v for k, v in task_file("finetune", 10).items() if not k.startswith("head.")}
    encoder_only = save(tmp_path, no_head, "encoder.safetensors")
    renamed = save(tmp_path, task_file("finetune", 10), "mine.safetensors")
    with pytest.raises(UserError, match="--task NAME.*eurosat-finetune"):
        predict_scene(s2, "sentinel2-l2a", renamed, **FAST)
    ds = predict_scene(s2, "sentinel2-l2a", renamed, task="eurosat-finetune", **FAST)
    assert ds.attrs["task"] == "eurosat-finetune"
    for ckpt in (encoder_only, "demo", "gsumbul/SMARTIES-v1-ViT-B"):  # the Hub one: no download
        with pytest.raises(UserError, match="has no task head; use `smartiesviz embed`"):
            predict_to_file(s2, tmp_path / "m.tif", "sentinel2-l2a", ckpt, **FAST)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["encoder.safetensors", "mine.safetensors"]


def test_outputs_are_atomic_and_not_overwritten(files, tmp_path, monkeypatch):
    out, euro = tmp_path / "m.tif", files["eurosat-finetune"]

    def broken(self):
        yield 0, np.full((10, 2, NX), 0.1, np.float32)
        raise RuntimeError("disk trouble")

    monkeypatch.setattr(TaskJob, "strips", broken)
    with pytest.raises(RuntimeError, match="disk trouble"):
        predict_to_file(files["s2"], out, "sentinel2-l2a", euro, **FAST)
    assert not list(tmp_path.iterdir())  # no output, no partial file
    monkeypatch.undo()
    with pytest.raises(UserError, match="input of this job"):
        predict_to_file(files["s2"], files["s2"], "sentinel2-l2a", euro, **FAST)
    (tmp_path / "in").mkdir()
    scene = tmp_path / "in" / "m.probabilities.tif"  # what the probabilities of m.tif would replace
    scene.write_bytes(files["s2"].read_bytes())
    with pytest.raises(UserError, match="input of this job"):
        predict_to_file(scene, tmp_path / "in" / "m.tif", "sentinel2-l2a", euro, **FAST)
    assert [p.name for p in (tmp_path / "in").iterdir()] == ["m.probabilities.tif"]
    probabilities_path(out).write_bytes(b"keep")
    with pytest.raises(UserError, match="already exists"):
        predict_to_file(files["s2"], out, "sentinel2-l2a", euro, **FAST)
    assert probabilities_path(out).read_bytes() == b"keep" and not out.exists()
    predict_to_file(files["s2"], out, "sentinel2-l2a", euro, overwrite=True, **FAST)
    assert out.exists() and probabilities_path(out).stat().st_size > 100


def test_options_from_embed_options():
    opts = PredictOptions.build(EmbedOptions(batch_size=3, overlap=16, progress=False))
    assert (opts.batch_size, opts.overlap, opts.progress) == (3, 16, False)
    assert PredictOptions.build(EmbedOptions()).overlap is None
    with pytest.raises(ValueError, match="head's bands and window size"):
        PredictOptions.build(EmbedOptions(bands=("B02",)))
    with pytest.raises(ValueError, match="batch size"):
        PredictOptions(batch_size=0)


def _cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="smartiesviz")
    task_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(list(argv))
    return args.func(args)


def test_predict_cli(files, tmp_path, capsys):
    out = tmp_path / "c.tif"
    base = [str(files["s2"]), "--sensor", "sentinel2-l2a", "--no-progress"]
    mm, second = str(files["bigearthnetmm-linprobe"]), ["--second", str(files["s1"])]
    code = _cli("predict", *base, "--checkpoint", mm, "--out", str(out), *second,
                "--second-sensor", "sentinel1-grd")  # fmt: skip
    assert code == 0 and "wrote" in capsys.readouterr().out
    k, p, info = _read(out)
    assert p.shape == (19, NY, NX) and np.array_equal(k, p.argmax(0))
    assert info["tags"]["task"] == "bigearthnetmm-linprobe"
    with pytest.raises(UserError, match=r"--second SCENE --second-sensor NAME \(\)") as err:
        _cli("predict", *base, "--checkpoint", str(files["bigearthnetmm-linprobe"]), "--out",
             str(tmp_path / "x.tif"))  # fmt: skip
    assert "\n" not in str(err.value)
    with pytest.raises(UserError, match="--batch-size must be"):
        _cli("predict", *base, "--checkpoint", "demo", "--out", "x.tif", "--batch-size", "0")
    with pytest.raises(UserError, match="has no task head"):
        _cli("predict", *base, "--checkpoint", "demo", "--out", str(tmp_path / "x.tif"))


# ------------------------------------------------------------------- demo encoder, trained head
@pytest.fixture(scope="module")
def water_task(s2_rgbn):
    """The demo encoder with a land/water head trained here on the 64-px windows of a coastal
    crop of the bundled scene (labels: most pixels with NDWI > 0)."""
    from smartiesviz.models.encoder import SmartiesEncoder
    from smartiesviz.models.heads import TaskSource, TaskSpec, build_head

    try:
        enc = SmartiesEncoder.from_pretrained("demo")
    except FileNotFoundError as err:
        pytest.skip(f"DEMO CHECKPOINT NOT AVAILABLE: {err}")
    crop = s2_rgbn.isel(y=slice(1024, 1536), x=slice(384, 896))
    bands = tuple(f"sentinel2-l1c/{b}" for b in ("B02", "B03", "B04", "B08"))
    spec = TaskSpec("demo-water", "demo", "finetune", "single-label", ("land", "water"),
                    (TaskSource("S2", bands, "SENTINEL2-L1C"),), "argmax")  # fmt: skip
    torch.manual_seed(0)
    model = TaskModel(enc, build_head("finetune", enc.embed_dim, 2), spec).eval()
    job = TaskJob(model, [(crop, "sentinel2-l1c")], PredictOptions(progress=False))
    g, n = (crop.sel(band=b).values.astype("float64") for b in ("B03", "B08"))
    water = (g - n) / (g + n) > 0
    feats, labels = [], []
    with torch.no_grad():
        for wins, xs, _ in job.batches():
            feats.append(model.features(xs, {"S2": job.inputs[0].specs}))
            labels += [water[w.y0 : w.y0 + 64, w.x0 : w.x0 + 64].mean() > 0.5 for w in wins]
    x, y = torch.cat(feats), torch.tensor(labels).long()
    opt = torch.optim.Adam(model.head.parameters(), lr=0.05)
    for _ in range(200):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model.head(x), y).backward()
        opt.step()
    cells = water.reshape(128, 4, 128, 4).mean(axis=(1, 3)) > 0.5  # per 4-px patch
    return model.eval(), crop, job, y.numpy(), cells


def test_demo_head_class_map_beats_chance_on_its_training_windows(water_task):
    model, crop, job, labels, cells = water_task
    assert 0.2 < labels.mean() < 0.8  # both classes present
    ds = predict_scene(crop, None, model, progress=False)
    k = ds["class_map"].values
    centre = np.array([k[w.row + 7 : w.row + 9, w.col + 7 : w.col + 9].mean() > 0.5
                       for w in job.windows])  # fmt: skip
    accuracy = (centre == labels.astype(bool)).mean()
    chance = max(labels.mean(), 1 - labels.mean())
    print(f"demo water head: accuracy {accuracy:.3f}, chance {chance:.3f}")
    assert accuracy >= chance + 0.5 * (1 - chance), (accuracy, chance)
    # the interpolated map, patch by patch, against each patch's own water label
    per_cell, cell_chance = (k == cells).mean(), max(cells.mean(), 1 - cells.mean())
    print(f"per patch: accuracy {per_cell:.3f}, chance {cell_chance:.3f}")
    assert per_cell >= cell_chance + 0.25 * (1 - cell_chance), (per_cell, cell_chance)


def test_predict_cli_many_scenes_into_a_folder(files, tmp_path, capsys):
    """Several scenes and an output folder: one class map (and its probabilities) per scene, a
    manifest per scene and the catalogue, through the archive runner."""
    import shutil

    scenes = tmp_path / "scenes"
    scenes.mkdir()
    for name in ("a.tif", "b.tif"):
        shutil.copy(files["s2"], scenes / name)
    out = tmp_path / "maps"
    code = _cli("predict", str(scenes / "*.tif"), "--sensor", "sentinel2-l2a", "--no-progress",
                "--checkpoint", str(files["eurosat-finetune"]), "--out", str(out))  # fmt: skip
    assert code == 0 and "2 done" in capsys.readouterr().out
    for name in ("a", "b"):
        k, p, info = _read(out / f"{name}.tif")
        assert p.shape == (10, NY, NX) and np.array_equal(k, p.argmax(0))
        assert info["tags"]["task"] == "eurosat-finetune"
    assert (out / "catalog.json").is_file() and len(list((out / "manifest").glob("*.json"))) == 2
    with pytest.raises(UserError, match="--second and --task apply to one scene"):
        _cli("predict", str(scenes / "*.tif"), "--sensor", "sentinel2-l2a", "--checkpoint",
             str(files["eurosat-finetune"]), "--out", str(out), "--task", "eurosat-finetune")  # fmt: skip
