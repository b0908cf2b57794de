"""Seamless products (issue 27 item 4): the boundary-jump measure, the window blender, every map
product of a scene of several windows, and tile pyramids without hairlines."""

import numpy as np
import pytest
import rasterio

from smartiesviz.data.tiling import Blender, PatchGrid, blend_ramp, scatter, seamless_overlap
from smartiesviz.predict.map_layers import SceneLayers
from smartiesviz.predict.seams import boundary_jumps, core_step, patch_means

from .conftest import smooth_s2_cube


def _smooth(ny, nx, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:ny, 0:nx]
    return np.stack([np.sin(yy / 7 + c) + np.cos(xx / 9 - c) + 0.05 * rng.normal(size=(ny, nx))
                     for c in range(3)])  # fmt: skip


def test_planted_window_jumps_are_found_and_a_smooth_field_is_not():
    field, step = _smooth(60, 72), 6
    assert boundary_jumps(field, step).ratio == pytest.approx(1.0, abs=0.1)
    offsets = np.random.default_rng(1).normal(0, 0.5, (3, 10, 12))  # one offset per window
    planted = field + np.kron(offsets, np.ones((step, step)))
    assert boundary_jumps(planted, step).ratio > 3
    # on the pixel grid (4 px per patch) the measure compares patch means: the same ratios
    pixels = np.kron(planted, np.ones((4, 4)))
    assert boundary_jumps(pixels, step, scale=4).ratio == pytest.approx(
        boundary_jumps(planted, step).ratio)  # fmt: skip
    # classes: labels that change exactly at window edges, and labels of a smooth field
    windows = np.kron(np.arange(120).reshape(10, 12) % 2, np.ones((step, step)))
    assert boundary_jumps(windows, step, kind="classes").ratio == float("inf")
    smooth_classes = np.digitize(field[0], [-1, 0, 1])
    assert boundary_jumps(smooth_classes, step, kind="classes").ratio == pytest.approx(1, abs=0.3)


def test_seam_measure_ignores_no_data_and_refuses_bad_input():
    field = _smooth(24, 24)
    field[:, :, 6] = np.nan  # a column of no data next to a boundary: its pairs are skipped
    st = boundary_jumps(field, 6)
    # 3 boundaries × 24 pairs per axis, less the 24 pairs (5, 6) and column 6's 3 vertical pairs
    assert np.isfinite(st.ratio) and st.n_across == 2 * 3 * 24 - 24 - 3
    assert patch_means(np.ones((1, 5, 5)), 4).shape == (1, 2, 2)
    with pytest.raises(ValueError, match="one channel"):
        boundary_jumps(np.zeros((2, 8, 8)), 4, kind="classes")
    with pytest.raises(ValueError, match="step"):
        boundary_jumps(np.zeros((8, 8)), 0)


@pytest.mark.parametrize(("h", "w", "scale", "overlap"), [(90, 115, 8, 32), (300, 260, 4, 16)])
def test_blender_streams_the_weighted_mean_of_overlapping_windows(h, w, scale, overlap):
    grid = PatchGrid(h, w, scale, 64, overlap)
    ny, nx = grid.shape
    t = grid.cells_per_tile * scale
    windows = grid.windows()
    maps = np.random.default_rng(0).normal(size=(len(windows), 2, t, t)).astype(np.float32)
    # reference: every window weighted by the ramps, accumulated on a padded canvas
    ramp = blend_ramp(grid.cells_per_tile, grid.margin, scale)
    acc = np.zeros((2, ny * scale + 2 * t, nx * scale + 2 * t))
    weight = np.zeros(acc.shape[1:])
    for win, m in zip(windows, maps):
        y0, x0 = (win.row - win.margin) * scale + t, (win.col - win.margin) * scale + t
        acc[:, y0 : y0 + t, x0 : x0 + t] += m * np.outer(ramp, ramp)
        weight[y0 : y0 + t, x0 : x0 + t] += np.outer(ramp, ramp)
    want = (acc / np.where(weight > 0, weight, 1))[:, t:-t, t:-t]
    got = np.full_like(want, np.nan, dtype=np.float32)
    blender, rows = Blender(grid, 2, scale), []
    for i in range(0, len(windows), 7):  # batches that do not follow window rows
        for r, block in blender.add(windows[i : i + 7], maps[i : i + 7]):
            got[:, r : r + block.shape[1]] = block
            rows.append((r, block.shape[1]))
    for r, block in blender.finish():
        got[:, r : r + block.shape[1]] = block
        rows.append((r, block.shape[1]))
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert sum(n for _, n in rows) == ny * scale and rows[0][0] == 0  # each row once, in order
    assert blender.acc.shape[1] == t  # memory: one window of rows, whatever the scene's height


def test_blender_without_overlap_is_the_scatter_of_cores():
    grid = PatchGrid(90, 115, 8, 64, 0)
    windows = grid.windows()
    maps = np.random.default_rng(0).normal(size=(len(windows), 1, 8, 8)).astype(np.float32)
    want = np.zeros((1, *grid.shape), np.float32)
    scatter(want, windows, maps)
    blender = Blender(grid, 1)
    got = np.concatenate([b for _, b in [*blender.add(windows, maps), *blender.finish()]], 1)
    np.testing.assert_array_equal(got, want)
    assert seamless_overlap(64, 4) == 32 and seamless_overlap(64, 8) == 32
    assert seamless_overlap(224, 16) == 96 and seamless_overlap(16, 8) == 0


def _layer_values(layer):
    with rasterio.open(layer.path) as src:
        v = src.read().astype(np.float64)
    if layer.kind == "rgb":
        v, alpha = v[:3], v[3]
        v[:, alpha == 0] = np.nan
    elif layer.kind == "classes":
        v[v == 255] = np.nan
    return v


@pytest.fixture(scope="module")
def seam_scene():
    """A 192 × 240 px Sentinel-2 L2A scene in model units: smooth fields plus noise, 24 × 30
    patches of the tiny model (8 px), so 6 × 8 windows of 32-px step."""
    return smooth_s2_cube(192, 240)


def test_every_map_product_is_seamless(seam_scene, tiny_model, tmp_path):
    from smartiesviz.predict.embed import EmbedOptions

    opts = EmbedOptions(normalize=False, batch_size=16)
    store = SceneLayers(seam_scene, tiny_model, tmp_path, options=opts)
    grid = store.product_options.job(seam_scene, "sentinel2-l2a", tiny_model).grid
    assert grid.overlap == 32 and len(grid.windows()) == 48
    step, ratios = core_step(grid), {}
    for name in ["reconstruction", "reconstruction error", "PCA colour", "k-means classes",
                 "NIR from RGB"]:  # fmt: skip
        layer = store.get(name)
        values = _layer_values(layer)
        scale = grid.patch_size if values.shape[1] == seam_scene.sizes["y"] else 1
        kind = "classes" if layer.kind == "classes" else "continuous"
        ratios[name] = boundary_jumps(values, step, scale, kind).ratio
    west, south, east, north = seam_scene.rio.transform_bounds("EPSG:4326")
    sim = store.similarity_at((south + north) / 2, (west + east) / 2)
    ratios["similarity"] = boundary_jumps(sim.values, step).ratio
    assert all(r <= 1.2 for r in ratios.values()), ratios
    # the measure tells: the same scene in windows without overlap shows its tile grid
    plain = SceneLayers(seam_scene, tiny_model, tmp_path, options=opts, overlap=0)
    pca = _layer_values(plain.get("PCA colour"))
    plain_grid = plain.product_options.job(seam_scene, None, tiny_model).grid
    assert plain_grid.overlap == 0 and boundary_jumps(pca, core_step(plain_grid)).ratio > 1.5


def test_overlap_is_checked_once(seam_scene, tiny_model, tmp_path):
    with pytest.raises(ValueError, match="overlap"):
        SceneLayers(seam_scene, tiny_model, tmp_path, overlap=12)
    with pytest.raises(ValueError, match="overlap"):
        SceneLayers(seam_scene, tiny_model, tmp_path, overlap="half")


@pytest.mark.parametrize("kind", ["rgb", "scalar", "classes"])
def test_pyramid_tiles_meet_without_hairlines(kind, tmp_path):
    from affine import Affine
    from PIL import Image
    from rasterio.enums import ColorInterp

    from smartiesviz.predict import rasterfile
    from smartiesviz.predict.map_layers import LayerFile
    from smartiesviz.predict.pyramid import write_pyramid
    from smartiesviz.widgets.map import display

    h = w = 700
    if kind == "rgb":
        values, nodata = np.full((4, h, w), 100, np.uint8), None
        values[3] = 255
    elif kind == "scalar":
        values, nodata = np.full((1, h, w), 0.5, np.float32), float("nan")
    else:
        values, nodata = np.full((1, h, w), 2, np.uint8), 255
    path = tmp_path / f"{kind}.tif"
    transform = Affine(10, 0, 500_000, 0, -10, 4_000_000)
    profile = rasterfile.geotiff_profile(h, w, len(values), str(values.dtype), "EPSG:32618",
                                         transform, nodata)  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        if kind == "rgb":
            dst.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue,
                               ColorInterp.alpha]  # fmt: skip
        dst.write(values)
        rasterfile.build_overviews(dst, "nearest" if kind == "classes" else "average")
    layer = LayerFile(kind, path, kind, kind, "gray", 0.0, 1.0, ("a", "b", "c"))
    pyr = write_pyramid(path, tmp_path / "tiles", display.colorizer(layer), layer.resampling)
    z = pyr.max_zoom
    tiles = {(int(f.parent.name), int(f.stem)): np.asarray(Image.open(f))
             for f in (pyr.folder / str(z)).rglob("*.png")}  # fmt: skip
    (x0, y0), (x1, y1) = min(tiles), max(tiles)
    mosaic = np.zeros(((y1 - y0 + 1) * 256, (x1 - x0 + 1) * 256, 4), np.uint8)
    for (x, y), t in tiles.items():
        mosaic[(y - y0) * 256 : (y - y0 + 1) * 256, (x - x0) * 256 : (x - x0 + 1) * 256] = t
    opaque = mosaic[..., 3] == 255
    colour = np.median(mosaic[opaque][:, :3], 0)
    assert (np.abs(mosaic[opaque][:, :3] - colour) <= 1).all()  # no line of another colour
    rows, cols = np.nonzero(opaque)
    inside = mosaic[rows.min() + 2 : rows.max() - 1, cols.min() + 2 : cols.max() - 1, 3]
    assert (inside == 255).all()  # no gap (a transparent line shows the basemap) at tile edges
    assert mosaic.shape[0] > 256 and mosaic.shape[1] > 256  # several tiles met


def test_embed_with_overlap_has_no_seams_and_without_it_does(seam_scene, tiny_model, tmp_path):
    """``embed``/``embed_to_file`` (the bring-your-own path) cross-fade tiles that overlap."""
    from smartiesviz.predict import embed, embed_to_file
    from smartiesviz.predict.maps import pca_map

    kw = dict(model=tiny_model, normalize=False, batch_size=16, progress=False)
    ratios = {}
    for overlap in (0, "auto"):
        emb = embed(seam_scene, "sentinel2-l2a", overlap=overlap, **kw)
        job_grid = PatchGrid(192, 240, 8, 64, 32 if overlap == "auto" else 0)
        pca = pca_map(emb, seed=0).values
        ratios[overlap] = boundary_jumps(pca, core_step(job_grid)).ratio
    assert ratios["auto"] <= 1.2 < 1.5 < ratios[0], ratios
    path = embed_to_file(seam_scene, tmp_path / "e.tif", "sentinel2-l2a", overlap="auto", **kw)
    with rasterio.open(path) as src:
        np.testing.assert_allclose(src.read(), emb.values, rtol=1e-6, atol=1e-6)
        assert src.tags()["overlap"] == "32"
