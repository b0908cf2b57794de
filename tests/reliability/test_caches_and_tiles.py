"""Hostile caches and tile folders (issue 28): links, flipped bytes, look-alike names, unbounded
pyramids and an unbounded cache."""

from __future__ import annotations

import gc
import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from smartiesviz import cli
from smartiesviz.data import cache
from smartiesviz.data.cache import CacheRepairWarning
from smartiesviz.errors import UserError
from smartiesviz.predict import pyramid
from smartiesviz.predict.map_layers import SceneLayers

S2_L2A = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _cube(h: int = 64, w: int = 96, seed: int = 0, res: float = 10.0):
    """A georeferenced 12-band Sentinel-2 L2A cube (EPSG:32618)."""
    import rioxarray  # noqa: F401
    import xarray as xr
    from affine import Affine

    values = np.random.default_rng(seed).uniform(200, 3000, (12, h, w)).astype("float32")
    tr = Affine(res, 0, 500_000, 0, -res, 4_000_000)
    da = xr.DataArray(values, dims=("band", "y", "x"), attrs={"sensor": "sentinel2-l2a"},
                      coords={"band": S2_L2A, "y": tr.f + (np.arange(h) + 0.5) * tr.e,
                              "x": tr.c + (np.arange(w) + 0.5) * tr.a})  # fmt: skip
    return da.rio.write_crs("EPSG:32618").rio.write_transform(tr)


@pytest.fixture(scope="module")
def model():
    import smartiesviz

    torch.manual_seed(0)
    return smartiesviz.smarties_vit_tiny_patch8(img_size=64).eval()


@pytest.fixture
def cube():
    return _cube()


def _layers(cube, model, root: Path) -> SceneLayers:
    return SceneLayers(cube, model, cache=root)


def _colorize(t: np.ndarray) -> np.ndarray:
    return np.full((*t.shape[1:], 4), 255, np.uint8)


def _raster(path: Path, res: float = 10.0, size: int = 64) -> Path:
    """A ``size`` × ``size`` float32 GeoTIFF at ``res`` metres."""
    from affine import Affine

    with rasterio.open(path, "w", driver="GTiff", height=size, width=size, count=1, dtype="float32",
                       crs="EPSG:32618", transform=Affine(res, 0, 500_000, 0, -res, 4_000_000)) as dst:  # fmt: skip
        dst.write(np.ones((1, size, size), np.float32))
    return path


# ---------------------------------------------------------------- 1. links in the layer cache
def test_a_cached_layer_linked_to_a_file_outside_is_rebuilt_not_read(cube, model, tmp_path):
    root = tmp_path / "cache"
    first = _layers(cube, model, root).get("true colour")
    want = _digest(first.path)
    outside = tmp_path / "outside.tif"
    outside.write_bytes(first.path.read_bytes()[:100] + b"not the cache's to read or touch")
    before = _digest(outside)
    first.path.unlink()
    first.path.symlink_to(outside)
    with pytest.warns(CacheRepairWarning, match=rf"{first.path.name} is a link .*rebuilding it"):
        again = _layers(cube, model, root).get("true colour")
    assert again.path == first.path and not again.path.is_symlink()
    assert _digest(again.path) == want and _digest(outside) == before


def test_cached_embeddings_linked_outside_are_rebuilt_not_read(cube, model, tmp_path):
    root = tmp_path / "cache"
    emb = _layers(cube, model, root).embeddings()
    want = _digest(emb)
    outside = tmp_path / "outside.tif"
    outside.write_bytes(emb.read_bytes())  # even valid content is not read through a link
    before = _digest(outside)
    emb.unlink()
    emb.symlink_to(outside)
    with pytest.warns(CacheRepairWarning, match=r"embeddings\.tif is a link"):
        again = _layers(cube, model, root).embeddings()
    assert not again.is_symlink() and _digest(again) == want and _digest(outside) == before


def test_a_linked_entry_folder_is_replaced_and_nothing_is_written_outside(cube, model, tmp_path):
    root = tmp_path / "cache"
    store = _layers(cube, model, root)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("precious")
    store.folder.rmdir()
    store.folder.symlink_to(elsewhere, target_is_directory=True)
    with pytest.warns(CacheRepairWarning, match=f"{store.folder.name} is a link"):
        layer = _layers(cube, model, root).get("true colour")
    assert not store.folder.is_symlink() and layer.path.parent == store.folder
    assert [p.name for p in elsewhere.iterdir()] == ["keep.txt"]


# ---------------------------------------------------------------- 2. flipped or missing bytes
@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_a_damaged_cached_layer_is_rebuilt_with_a_warning(cube, model, tmp_path, damage):
    root = tmp_path / "cache"
    first = _layers(cube, model, root).get("true colour")
    want, size = _digest(first.path), first.path.stat().st_size
    with open(first.path, "r+b") as f:
        if damage == "flip":
            f.seek(size // 2)
            byte = f.read(1)
            f.seek(size // 2)
            f.write(bytes([byte[0] ^ 0xFF]))
        else:
            f.truncate(size // 3)
    message = "does not match the sha256" if damage == "flip" else rf"has {size // 3} bytes, {size}"
    with pytest.warns(CacheRepairWarning, match=rf"{first.path.name} {message}.*rebuilding it"):
        again = _layers(cube, model, root).get("true colour")
    assert _digest(again.path) == want


def test_a_damaged_record_is_rebuilt_too(cube, model, tmp_path):
    root = tmp_path / "cache"
    first = _layers(cube, model, root).get("true colour")
    first.path.with_suffix(".json").write_text("{not json")
    with pytest.warns(CacheRepairWarning, match="has no size and sha256 record"):
        again = _layers(cube, model, root).get("true colour")
    assert again.legend == first.legend and again.path.is_file()


# ---------------------------------------------------------------- 3. links in the tile folder
def test_links_in_the_tile_folder_are_replaced_never_written_through(cube, model, tmp_path, monkeypatch):
    from smartiesviz.widgets import MapExplorer
    from smartiesviz.widgets.map import display, explorer

    root, outside = tmp_path / "jupyter", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / explorer.TILES_FOLDER).symlink_to(outside, target_is_directory=True)
    monkeypatch.setattr(display, "jupyter_root", lambda: (root, "/"))
    with pytest.warns(CacheRepairWarning, match="is a link or a file where a folder of map tiles"):
        m = MapExplorer(cube, model=model, layers=("true colour",), tiles="always",
                        cache=tmp_path / "cache", threads=1)  # fmt: skip
    assert m.error.message == "" and m.layers["true colour"].mode == "tiles"
    assert list(outside.iterdir()) == []
    tiles = root / explorer.TILES_FOLDER
    assert not tiles.is_symlink() and (tiles / ".gitignore").is_file()
    assert list(tiles.rglob("*.png"))
    # the .gitignore (a dangling link) and the layer's folder (a link) replaced in turn
    (tiles / ".gitignore").unlink()
    (tiles / ".gitignore").symlink_to(outside / "ignored.txt")
    folder = m.layers["true colour"].file.path.stem
    layer_folder = tiles / m.store.key / folder
    import shutil

    shutil.rmtree(layer_folder)
    layer_folder.symlink_to(outside, target_is_directory=True)
    with pytest.warns(CacheRepairWarning, match="is a link"):
        m2 = MapExplorer(cube, model=model, layers=("true colour",), tiles="always",
                         cache=tmp_path / "cache", threads=1)  # fmt: skip
    assert m2.error.message == "" and list(outside.iterdir()) == []
    assert not (tiles / ".gitignore").is_symlink() and not layer_folder.is_symlink()
    assert (layer_folder / "done.txt").is_file()


def test_links_inside_a_pyramid_are_replaced_never_written_through(tmp_path):
    raster = _raster(tmp_path / "r.tif", size=512)
    folder = tmp_path / "tiles"
    first = pyramid.write_pyramid(raster, folder, _colorize)
    assert first.min_zoom < first.max_zoom
    outside = tmp_path / "outside"
    outside.mkdir()
    victim_file = outside / "precious.png"
    victim_file.write_bytes(b"precious")
    tile = next((folder / str(first.min_zoom)).rglob("*.png"))
    tile.unlink()
    os.link(victim_file, tile)  # a hard link: written in place, it would change the file outside
    zoom_folder = folder / str(first.max_zoom)
    column = next(zoom_folder.iterdir())
    import shutil

    shutil.rmtree(column)
    column.symlink_to(outside, target_is_directory=True)
    with pytest.warns(CacheRepairWarning, match=f"{column.name} is a link"):
        again = pyramid.write_pyramid(raster, folder, _colorize)
    assert again.tiles == first.tiles == len(list(folder.rglob("*.png")))
    assert sorted(p.name for p in outside.iterdir()) == ["precious.png"]
    assert victim_file.read_bytes() == b"precious" and not column.is_symlink()


# ---------------------------------------------------------------- 4. look-alike layer names
@pytest.mark.parametrize("names", [("My layer", "my-layer"), ("a/b", "a_b")])
def test_layer_names_that_slug_alike_keep_their_own_files(cube, model, tmp_path, names):
    store = _layers(cube, model, tmp_path / "cache")
    band = cube.isel(band=0)
    first = store.add(band, names[0])
    second = store.add(band * 0 + 7, names[1])
    assert first.path != second.path and first.path.parent == second.path.parent == store.folder
    with rasterio.open(first.path) as a, rasterio.open(second.path) as b:
        np.testing.assert_array_equal(a.read(1), band.values)
        assert (b.read(1) == 7).all()


# ---------------------------------------------------------------- 5. bounded pyramids
def test_a_huge_requested_zoom_is_refused_before_any_tile(tmp_path, monkeypatch):
    raster = _raster(tmp_path / "r.tif", res=100.0)  # 6.4 km
    folder = tmp_path / "tiles"

    def no_tiles(*args, **kwargs):
        raise AssertionError("a tile was rendered")

    monkeypatch.setattr(pyramid.Image, "fromarray", no_tiles)
    with pytest.raises(UserError, match=rf"max_zoom=30 is outside 0\.\.{pyramid.MAX_ZOOM}"):
        pyramid.write_pyramid(raster, folder, _colorize, max_zoom=30)
    with pytest.raises(UserError, match=r"would write [\d,]+ tiles \(zooms \d+-22\), over the limit "
                       rf"of {pyramid.MAX_TILES:,} \(pyramid\.MAX_TILES\); ask for max_zoom=\d+ or less"):  # fmt: skip
        pyramid.write_pyramid(raster, folder, _colorize, max_zoom=22)
    assert not folder.exists()


def test_a_default_zoom_over_the_tile_limit_is_lowered_with_a_warning(tmp_path):
    raster = _raster(tmp_path / "r.tif", size=1024)  # 10 km at 10 m: ~40 tiles, zooms 11-14
    with pytest.warns(UserWarning, match=r"writing zooms 11-13 \(\d+ tiles\), not down to its "
                      r"native zoom 14 \(over the limit of 20 tiles, \d+ tiles to zoom 14\)"):  # fmt: skip
        pyr = pyramid.write_pyramid(raster, tmp_path / "tiles", _colorize, max_tiles=20)
    assert pyr.tiles <= 20 and pyr.tiles == len(list((tmp_path / "tiles").rglob("*.png")))
    assert pyr.max_zoom == 13
    fine = _raster(tmp_path / "fine.tif", res=0.001)  # native zoom 27: capped at MAX_ZOOM
    with pytest.warns(UserWarning, match=rf"native zoom 27 \(MAX_ZOOM is {pyramid.MAX_ZOOM}\)"):
        pyr = pyramid.write_pyramid(fine, tmp_path / "fine", _colorize)
    assert pyr.max_zoom == pyramid.MAX_ZOOM


# ---------------------------------------------------------------- 6. size limit and eviction
def _entry_with_layer(root: Path, model, seed: int) -> Path:
    store = _layers(_cube(32, 32, seed), model, root)
    store.add(_cube(64, 64, seed).isel(band=0), "layer")
    return store.folder


def test_least_recently_used_entries_are_evicted_never_the_live_or_sample_ones(
    temp_cache, model, monkeypatch, capsys
):
    monkeypatch.setenv(cache.LIMIT_ENV, "none")
    sample = cache.cached_folder(cache.cache_dir() / "cubes" / "k",
                                 lambda f: (f / "values.npy").write_bytes(os.urandom(50_000)))  # fmt: skip
    root = cache.map_layer_cache()
    a, b = (_entry_with_layer(root, model, s) for s in (1, 2))
    store_c = _layers(_cube(32, 32, 3), model, root)  # alive: in use
    store_c.add(_cube(64, 64, 3).isel(band=0), "layer")
    c = store_c.folder
    gc.collect()
    for age, entry in ((300, c), (200, b), (100, a)):  # c least recently used, then b; a last
        os.utime(entry, (1e9 - age, 1e9 - age))
    size = max(cache.tree_size(e) for e in (a, b, c))
    monkeypatch.setenv(cache.LIMIT_ENV, str(cache.tree_size(sample.parent) + int(3.5 * size)))
    d = _entry_with_layer(root, model, 4)  # one entry must go: b (c is older but in use)
    assert sorted(cache.layer_entries(root)) == sorted([a, c, d])
    assert cache.check_entry(sample) == []

    assert cli.main(["cache", "info"]) == 0
    out = capsys.readouterr().out
    assert f"samples: {temp_cache}" in out and f"map-layers: {root}" in out
    assert "entries: 3, size:" in out and "($SMARTIESVIZ_CACHE_LIMIT)" in out
    assert cli.main(["cache", "clear"]) == 0
    assert "cleared map-layers" in capsys.readouterr().out
    assert cache.layer_entries(root) == [] and sample.is_dir()
    assert cli.main(["cache", "clear", "--all"]) == 0
    assert "cleared samples" in capsys.readouterr().out and not sample.parent.exists()


def test_a_bad_cache_limit_is_one_error_line(temp_cache, monkeypatch, capsys):
    monkeypatch.setenv(cache.LIMIT_ENV, "lots")
    assert cli.main(["cache", "info"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: $SMARTIESVIZ_CACHE_LIMIT='lots' is not a size")
    assert len(err.strip().splitlines()) == 1
    monkeypatch.setenv(cache.LIMIT_ENV, "1.5G")
    assert cache.cache_limit() == int(1.5 * 1024**3)

