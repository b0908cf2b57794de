"""`smartiesviz embed` over an archive: inputs, shares, resuming, bad scenes, index, Slurm."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio

from smartiesviz.cli import main
from smartiesviz.errors import UserError
from smartiesviz.predict import archive as arc
from tests.predict_archive.conftest import EMBED_ARGS, REPO, cli_env, output_bytes, run_cli

SIX = 6


@pytest.fixture(scope="module")
def reference(archive, tiny_checkpoint, tmp_path_factory):
    """All seven scenes embedded in this process, one share: ``(out folder, stdout)``."""
    out = tmp_path_factory.mktemp("ref") / "emb"
    args = ["embed", str(archive / "all.txt"), "--out", str(out),
            "--checkpoint", str(tiny_checkpoint), *EMBED_ARGS]  # fmt: skip
    assert main(args) == 0
    return out


def test_inputs_list_glob_and_folder(archive, tmp_path):
    listed = arc.expand_inputs([archive / "all.txt"])
    assert len(listed) == SIX + 1 and [s.name for s in listed] == sorted(s.name for s in listed)
    by_name = {s.name: s for s in listed}
    assert by_name["zz_big"].sensor == "sentinel2-l2a"  # PATH sensor=NAME
    assert by_name["sentinel1_5_20200606T101010"].sensor == "sentinel1-grd"  # PATH<TAB>NAME
    assert by_name["landsat8_1_20200602T101010"].sensor is None  # detected from band names
    globbed = arc.expand_inputs([str(archive / "scenes" / "landsat8_*.tif")], "landsat8")
    assert [s.name for s in globbed] == ["landsat8_1_20200602T101010", "landsat8_4_20200605T101010"]
    assert {s.sensor for s in globbed} == {"landsat8"}
    assert len(arc.expand_inputs([archive / "scenes"])) == SIX + 1
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for d in ("a", "b"):  # one name in two folders: distinct outputs
        (tmp_path / d / "x.tif").write_bytes(b"")
    names = [s.name for s in arc.expand_inputs([str(tmp_path / "*" / "x.tif")])]
    assert len(set(names)) == 2 and all(n.startswith("x-") for n in names)
    bad = tmp_path / "bad.txt"
    bad.write_text("# header\nmissing.tif\tlandsat8\n")
    with pytest.raises(UserError, match=r"bad\.txt' line 2: .*missing\.tif' does not exist"):
        arc.expand_inputs([bad])
    with pytest.raises(UserError, match="matches no file"):
        arc.expand_inputs([str(tmp_path / "*.jp2")])


def test_shares_follow_the_launchers_environment():
    assert arc.shard_from_env({}) == (0, 1)
    assert arc.shard_from_env({"RANK": "1", "WORLD_SIZE": "2"}) == (1, 2)
    assert arc.shard_from_env({"SLURM_PROCID": "3", "SLURM_NTASKS": "4"}) == (3, 4)
    env = {"SMARTIESVIZ_SHARD": "2/5", "RANK": "0", "WORLD_SIZE": "1"}
    assert arc.shard_from_env(env) == (2, 5)
    with pytest.raises(UserError, match="invalid"):
        arc.shard_from_env({"RANK": "2", "WORLD_SIZE": "2"})


def test_outputs_are_cogs_with_provenance_and_the_index_reads_back(reference, archive):
    from smartiesviz.predict.catalog import open_catalog

    with rasterio.open(reference / "zz_big.tif") as src:
        tags = src.tags()
        structure = src.tags(ns="IMAGE_STRUCTURE")
        big = src.read()
        assert src.descriptions[0] == "feature_0000" and src.block_shapes[0] == (128, 128)
    assert structure["LAYOUT"] == "COG" and structure["COMPRESSION"] == "ZSTD"
    assert tags["token_norm"] == "pre-norm" and len(tags["model_sha256"]) == 64
    assert json.loads(tags["embed_options"])["batch_size"] == 2 and "smartiesviz_version" in tags
    entries = open_catalog(reference / "catalog.json")
    assert len(entries) == SIX + 1
    by_id = {e.id: e for e in entries}
    assert by_id["landsat8_4_20200605T101010"].sensor == "landsat8"
    assert by_id["sentinel2_0_20200601T101010"].datetime == "2020-06-01T10:10:10Z"
    assert by_id["zz_big"].properties["smartiesviz:token_norm"] == "pre-norm"
    assert by_id["zz_big"].bbox is not None and by_id["zz_big"].path == reference / "zz_big.tif"
    pystac = pytest.importorskip("pystac")
    features = json.loads((reference / "catalog.json").read_text())["features"]
    dated = [f for f in features if f["properties"]["datetime"]]  # zz_big's date is unknown
    collection = {"type": "FeatureCollection", "features": dated}
    assert len(pystac.ItemCollection.from_dict(collection)) == SIX
    vrts = sorted(p.name for p in reference.glob("mosaic-*.vrt"))
    assert vrts == ["mosaic-EPSG_32632.vrt", "mosaic-EPSG_32633.vrt"]
    with rasterio.open(reference / "mosaic-EPSG_32633.vrt") as vrt:
        window = vrt.window(*by_id["zz_big"].properties["proj:bbox"])
        np.testing.assert_array_equal(vrt.read(window=window), big)
    assert not list(reference.glob(".*partial*"))


def test_write_cog_adds_overviews_and_keeps_tags(tmp_path):
    from smartiesviz.predict.rasterfile import write_cog

    stage = tmp_path / "stage.tif"
    with rasterio.open(stage, "w", driver="GTiff", height=600, width=520, count=2,
                       dtype="float32", crs="EPSG:32633", transform=rasterio.Affine(10, 0, 4e5, 0, -10, 5e6),
                       nodata=float("nan"), tiled=True) as dst:  # fmt: skip
        dst.write(np.random.default_rng(0).normal(size=(2, 600, 520)).astype("float32"))
        dst.update_tags(token_norm="post-norm")
        dst.descriptions = ("feature_0000", "feature_0001")
    write_cog(stage, tmp_path / "cog.tif")
    with rasterio.open(tmp_path / "cog.tif") as src:
        assert src.overviews(1) == [2, 4] and src.block_shapes[0] == (256, 256)
        assert src.tags()["token_norm"] == "post-norm" and src.descriptions[1] == "feature_0001"
        assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG" and np.isnan(src.nodata)


@pytest.mark.slow  # a subprocess per process: torch's import dominates
def test_torchrun_two_processes_write_the_same_bytes(reference, archive, tiny_checkpoint, tmp_path):
    out = tmp_path / "emb"
    args = ["embed", str(archive / "six.txt"), "--out", str(out),
            "--checkpoint", str(tiny_checkpoint), *EMBED_ARGS]  # fmt: skip
    done = run_cli(args, tmp_path, torchrun=2)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "rank 0/2: 3 done" in done.stdout and "rank 1/2: 3 done" in done.stdout
    assert "6 of 6 scenes done" in done.stdout
    ref = output_bytes(reference)
    got = output_bytes(out)
    assert len(got) == SIX and all(got[name] == ref[name] for name in got)
    ranks = {json.loads(p.read_text())["rank"] for p in (out / "manifest").glob("*.json")}
    assert ranks == {0, 1}


def _status(out: Path) -> dict[str, str]:
    found = {}
    for p in (out / "manifest").glob("*.json"):
        try:
            found[p.stem] = json.loads(p.read_text())["status"]
        except (OSError, ValueError):
            pass
    return found


@pytest.mark.slow  # a subprocess per process: torch's import dominates
def test_a_killed_run_resumes_without_redoing_finished_scenes(
    reference, archive, tiny_checkpoint, tmp_path
):
    out = tmp_path / "emb"
    args = ["embed", str(archive / "all.txt"), "--out", str(out),
            "--checkpoint", str(tiny_checkpoint), *EMBED_ARGS]  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "smartiesviz.cli", *args], env=cli_env(tmp_path), cwd=REPO,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while proc.poll() is None and time.monotonic() < deadline:
            if _status(out).get("zz_big") == "running":
                proc.send_signal(signal.SIGKILL)  # midway through the last, largest scene
                break
            time.sleep(0.005)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    status = _status(out)
    assert status.pop("zz_big") == "running" and set(status.values()) == {"done"}
    assert not (out / "zz_big.tif").exists() and not (out / "catalog.json").exists()
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.tif")}
    assert len(before) == SIX
    assert main(args) == 0
    after = {p.name: p.stat().st_mtime_ns for p in out.glob("*.tif")}
    assert {k: after[k] for k in before} == before  # finished scenes not recomputed
    assert output_bytes(out) == output_bytes(reference)
    assert _status(out) == {k: "done" for k in _status(reference)}
    assert not [p for p in out.iterdir() if ".partial-" in p.name]
    assert not list((out / ".locks").iterdir())


def test_a_corrupt_scene_is_recorded_and_skipped_or_stops_the_run(
    archive, tiny_checkpoint, tmp_path, capsys
):
    folder = tmp_path / "scenes"
    folder.mkdir()
    (folder / "broken.tif").write_bytes(b"II*\x00 not a tiff at all")
    good = archive / "scenes" / "sentinel2_0_20200601T101010.tif"
    (folder / good.name).symlink_to(good)
    out = tmp_path / "emb"
    summary = arc.run_archive([folder], out, checkpoint=tiny_checkpoint, sensor="sentinel2-l2a",
                              progress=False)  # fmt: skip
    assert (summary.done, summary.failed) == (1, 1)
    record = json.loads((out / "manifest" / "broken.json").read_text())
    assert record["status"] == "failed" and "broken.tif" in record["error"]
    assert "\n" not in record["error"]
    assert not (out / "broken.tif").exists() and (out / f"{good.stem}.tif").exists()
    assert [e["id"] for e in json.loads((out / "catalog.json").read_text())["features"]] == [
        good.stem
    ]
    code = main(["embed", str(folder), "--out", str(tmp_path / "e2"), "--sensor",
                 "sentinel2-l2a", "--checkpoint", str(tiny_checkpoint), "--on-bad", "error",
                 *EMBED_ARGS])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "broken.tif" in err and len(err.strip().splitlines()) == 1


def test_single_scene_and_folder_outputs_are_told_apart(archive, tiny_checkpoint, tmp_path, capsys):
    scene = archive / "scenes" / "landsat8_1_20200602T101010.tif"
    assert main(["embed", str(archive / "six.txt"), "--out", str(tmp_path / "x.tif")]) == 2
    assert "many scenes need an output folder" in capsys.readouterr().err
    single = tmp_path / "one.tif"
    code = main(["embed", str(scene), "--sensor", "landsat8", "--out", str(single),
                 "--checkpoint", str(tiny_checkpoint), "--token-norm", "post-norm",
                 *EMBED_ARGS])  # fmt: skip
    assert code == 0 and capsys.readouterr().out.strip() == f"wrote {single}"
    with rasterio.open(single) as src:
        assert src.tags()["token_norm"] == "post-norm"


def test_token_norm_is_validated_and_changes_the_values(tmp_path):
    import smartiesviz
    from smartiesviz.predict.embed import EmbedOptions, embed

    with pytest.raises(ValueError, match="token_norm must be one of 'pre-norm', 'post-norm'"):
        EmbedOptions(token_norm="layer")
    from tests.predict.conftest import S2_L2A, make_cube

    rng = np.random.default_rng(0)
    cube = make_cube(rng.normal(size=(12, 32, 32)).astype("float32"), S2_L2A, "sentinel2-l2a")
    model = smartiesviz.smarties_vit_tiny_patch8(img_size=32).eval()
    pre = embed(cube, model=model, normalize=False, progress=False)
    post = embed(cube, model=model, normalize=False, progress=False, token_norm="post-norm")
    assert pre.attrs["token_norm"] == "pre-norm" and post.attrs["token_norm"] == "post-norm"
    assert not np.allclose(pre.values, post.values)
    np.testing.assert_allclose(post.values.mean(0), 0, atol=1e-4)  # LayerNorm: zero mean


def test_catalog_search_finds_the_query_patch_across_scenes(reference):
    from smartiesviz.predict.catalog import open_catalog, rank_of, search
    from smartiesviz.predict.similarity import vector_at

    entries = open_catalog(reference)
    target = next(e for e in entries if e.id == "landsat8_4_20200605T101010")
    query = vector_at(target.path, 3, 5)
    hits = search(entries, query, top_k=20)
    assert rank_of(hits, target.id, 3, 5) == 1 and hits[0].score == pytest.approx(1, abs=1e-5)
    assert len({h.id for h in hits}) > 1  # other scenes compete
    only_s1 = search(entries, query, top_k=5, sensors=["sentinel1-grd"])
    assert {h.id.split("_")[0] for h in only_s1} == {"sentinel1"}


def test_similarity_to_opens_a_catalogue(reference, archive, tiny_checkpoint):
    from smartiesviz.data.scene import open_scene
    from smartiesviz.predict.similarity import similarity_to

    cube = open_scene(archive / "scenes" / "sentinel2_3_20200604T101010.tif").cube
    maps = similarity_to(reference / "catalog.json", cube.isel(y=slice(0, 32), x=slice(0, 32)),
                         model=str(tiny_checkpoint), batch_size=2)  # fmt: skip
    assert len(maps) == SIX + 1
    sim = maps["sentinel2_3_20200604T101010"]
    assert sim.attrs["scene_sensor"] == "sentinel2-l2a" and np.nanmax(sim.values) <= 1


def test_launch_slurm_dry_run_prints_a_job_array(archive, tmp_path, capsys):
    base = ["launch", "slurm", "--nodes", "2", "--gpus-per-node", "2", "--dry-run",
            "--folder", str(tmp_path / "logs")]  # fmt: skip
    cmd = ["--", "embed", str(archive / "six.txt"), "--out", "emb", "--batch-size", "2"]
    assert main([*base, *cmd]) == 0
    script = capsys.readouterr().out
    assert "#SBATCH --array=0-3%4" in script and "SMARTIESVIZ_SHARD=i/4" in script
    assert f"--out {os.path.abspath('emb')}" in script and "#SBATCH --gpus-per-node=1" in script
    assert "%A_%a_0_log.out" in script and "#SBATCH --job-name=smartiesviz-embed" in script
    assert main([*base, "--job-name", "x;rm -rf", *cmd]) == 2
    assert "--job-name 'x;rm -rf' is not allowed" in capsys.readouterr().err
    assert main([*base, "--", "embed", str(archive / "six.txt"), "--out", "e.tif"]) == 2
    assert "many scenes" in capsys.readouterr().err


@pytest.mark.slow  # a subprocess per process: torch's import dominates
def test_launch_slurm_local_job_array_matches_the_single_process_run(
    reference, archive, tiny_checkpoint, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # as in the reference run
    out = tmp_path / "emb"
    code = main(["launch", "slurm", "--local", "--gpus-per-node", "0", "--tasks-per-node", "2",
                 "--folder", str(tmp_path / "logs"), "--timeout-min", "5", "--",
                 "embed", str(archive / "six.txt"), "--out", str(out),
                 "--checkpoint", str(tiny_checkpoint), *EMBED_ARGS])  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "submitted locally: 2 jobs" in printed and printed.count("finished") == 2
    ref = output_bytes(reference)
    got = output_bytes(out)
    assert len(got) == SIX and all(got[name] == ref[name] for name in got)
    assert (out / "catalog.json").is_file()


def test_the_map_searches_a_catalogue_and_marks_the_hits(archive, tiny_checkpoint, tmp_path):
    """``MapExplorer.search_catalog``: a patch of the map's scene finds itself first in the
    archive's catalogue (same model, same blended windows), and another model is refused."""
    from dataclasses import replace

    from smartiesviz.predict.catalog import open_catalog
    from smartiesviz.predict.embed import EmbedOptions
    from smartiesviz.widgets import MapExplorer

    opts = EmbedOptions(overlap="auto", batch_size=4, progress=False)
    out = tmp_path / "emb"
    summary = arc.run_archive([str(archive / "six.txt")], out, checkpoint=str(tiny_checkpoint),
                              options=opts, shard=(0, 1), progress=False)  # fmt: skip
    assert summary.failed == 0 and (out / "catalog.json").is_file()
    scene = archive / "scenes" / "sentinel2_0_20200601T101010.tif"
    m = MapExplorer(scene, sensor="sentinel2-l2a", model=str(tiny_checkpoint), layers=("true colour",),
                    tiles="never", cache=tmp_path / "cache", options=opts)  # fmt: skip
    assert m.error.message == ""
    (south, west), (north, east) = m.bounds
    hits = m.search_catalog(out, (south + north) / 2, (west + east) / 2, top_k=3)
    assert hits[0].id == scene.stem and hits[0].score > 0.999
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    markers = [lay for lay in m.map.layers if getattr(lay, "name", "") == "catalogue hits"]
    assert len(markers) == 1 and len(markers[0].layers) == 3
    entries = open_catalog(out)
    other = [replace(entries[0], properties={**entries[0].properties,
                                             "smartiesviz:model_sha256": "0" * 64})]  # fmt: skip
    with pytest.raises(ValueError, match="embedded by another model"):
        m.search_catalog(other, (south + north) / 2, (west + east) / 2)
