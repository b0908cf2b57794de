"""Torch datasets: paired geometric augmentation, simulated RGB, BigEarthNet folders, collate."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from smartiesviz.data import (
    BigEarthNetMM,
    PairedDataset,
    TileDataset,
    collate,
    make_cube,
    normalize,
    simulate_rgb,
    tile,
)
from smartiesviz.data.datasets import sample_crop


def _coordinate_pair(n=96):
    """A model-units S1-like cube whose VV = row index and VH = column index, and its copy."""
    rows, cols = np.mgrid[0:n, 0:n].astype(np.float32)
    from affine import Affine

    cube = make_cube(
        np.stack([rows, cols]),
        Affine(10, 0, 0, 0, -10, 0),
        "EPSG:32633",
        ["VV", "VH"],
        {"sensor": "sentinel1-grd", "units": "model"},
    )
    return cube, cube.copy()


def test_paired_augmentation_moves_both_images_together():
    a, b = _coordinate_pair()
    ds = PairedDataset([(a, b)] * 40, output_size=32, seed=3)
    seen_rot, seen_flip = set(), set()
    for i in range(len(ds)):
        item = ds[i]
        xa, xb = item["x_a"], item["x_b"]
        assert xa.shape == xb.shape == (2, 32, 32)
        torch.testing.assert_close(xa, xb, rtol=0, atol=0)  # identical inputs stay identical
        top, left, h, w = item["crop"]
        assert 0.25 * 96 * 96 * 0.9 <= h * w <= 96 * 96 and 3 / 4 - 0.05 <= w / h <= 4 / 3 + 0.05
        # the crop is where the pixels came from: mean row/col index of the output = crop centre
        assert float(xa[0].mean()) == pytest.approx(top + (h - 1) / 2, abs=1.0)
        assert float(xa[1].mean()) == pytest.approx(left + (w - 1) / 2, abs=1.0)
        # undoing the reported rotation and flips restores increasing rows downwards and columns rightwards
        x = torch.rot90(xa, -item["rot90"], dims=(-2, -1))
        fh, fv = item["flip"]
        x = x.flip(-2) if fv else x
        x = x.flip(-1) if fh else x
        assert (x[0, 1:, :] >= x[0, :-1, :]).all() and (x[1, :, 1:] >= x[1, :, :-1]).all()
        seen_rot.add(item["rot90"])
        seen_flip.add(item["flip"])
    assert seen_rot == {0, 1, 2, 3} and len(seen_flip) == 4
    # seeded: the same item twice is the same; another epoch draws differently
    torch.testing.assert_close(ds[5]["x_a"], ds[5]["x_a"])
    crops = [ds[i]["crop"] for i in range(10)]
    ds.set_epoch(1)
    assert [ds[i]["crop"] for i in range(10)] != crops


def test_crop_sampler_respects_scale_bounds():
    g = torch.Generator().manual_seed(0)
    areas = [
        np.prod(sample_crop(120, 120, (0.25, 1.0), generator=g)[2:]) / 120**2 for _ in range(300)
    ]
    assert (
        min(areas) >= 0.23
        and max(areas) <= 1.0
        and np.mean(areas) == pytest.approx(0.625, abs=0.06)
    )
    with pytest.raises(ValueError, match="scale=.*0 < min"):
        sample_crop(10, 10, (0.0, 1.0))


def test_bigearthnet_paired_dataset(ben_pairs):
    ds = PairedDataset.from_bigearthnet(ben_pairs, output_size=64, seed=0)
    assert len(ds) == 6
    item = ds[2]
    assert item["x_a"].shape == (12, 64, 64) and item["x_b"].shape == (2, 64, 64)
    assert item["bands_a"] == "sentinel2-l2a" and item["bands_b"] == "sentinel1-grd"
    assert item["simulated_b"] is False and item["label_names"] == ben_pairs[2].labels
    assert item["name"] == ben_pairs[2].name and item["bounds"] == pytest.approx(
        ben_pairs[2].bounds
    )
    assert torch.isfinite(item["x_a"]).all() and item["x_a"].dtype == torch.float32
    plain = PairedDataset.from_bigearthnet(ben_pairs, output_size=None, augment=False)[2]
    np.testing.assert_array_equal(plain["x_a"].numpy(), normalize(ben_pairs[2].s2).values)
    np.testing.assert_array_equal(plain["x_b"].numpy(), normalize(ben_pairs[2].s1).values)
    with pytest.raises(ValueError, match="must share their pixel grid"):
        PairedDataset([(ben_pairs[0].s2, ben_pairs[0].s1.isel(x=slice(0, 60)))])
    with pytest.raises(ValueError, match="a is in EPSG:32633 and b in EPSG:32629"):
        PairedDataset([(ben_pairs[0].s2, ben_pairs[1].s1)])


def test_simulated_rgb_partner_is_marked(ben_pairs, s2_small):
    s2 = ben_pairs[0].s2
    rgb = simulate_rgb(s2)
    assert rgb.attrs["simulated"] is True and rgb.attrs["sensor"] == "rgb"
    assert list(rgb["band"].values) == ["red", "green", "blue"]
    np.testing.assert_allclose(
        rgb.values[0], np.clip(s2.sel(band="B04").values / 3000 * 255, 0, 255), rtol=1e-6
    )
    assert rgb.rio.transform() == s2.rio.transform()
    ds = PairedDataset.with_simulated_rgb([s2_small], tile_size=64, output_size=48, seed=1)
    assert len(ds) == len(tile(s2_small, 64))
    item = ds[0]
    assert (
        item["simulated_b"] is True
        and item["bands_b"] == "rgb"
        and item["sensor_a"] == "sentinel2-l1c"
    )
    assert item["x_a"].shape == (13, 48, 48) and item["x_b"].shape == (3, 48, 48)
    with pytest.raises(ValueError, match="needs a Sentinel-2 cube"):
        simulate_rgb(ben_pairs[0].s1)


def test_paired_windows_of_two_rasters(s2_small):
    a = s2_small.sel(band=["B02", "B03", "B04", "B08"])
    b = simulate_rgb(s2_small)
    ds = PairedDataset.from_rasters(a, b, tile_size=64, augment=False, output_size=None)
    assert len(ds) == 12
    item = ds[4]
    r, c, h, w = item["window"]
    np.testing.assert_array_equal(item["x_a"].numpy(), normalize(a).values[:, r : r + h, c : c + w])
    assert item["bands_a"] == [f"sentinel2-l1c/{n}" for n in ["B02", "B03", "B04", "B08"]]
    with pytest.raises(ValueError, match="must share one grid"):
        PairedDataset.from_rasters(a, b.isel(y=slice(0, 100)), tile_size=64)


def test_tile_dataset(s2_small):
    ds = TileDataset(s2_small, 64, augment=True, seed=0)
    ts = tile(s2_small, 64)
    assert len(ds) == len(ts)
    item = ds[7]
    assert item["x_a"].shape == (13, 64, 64) and item["bands_a"] == "sentinel2-l1c"
    assert item["bounds"] == pytest.approx(ts[7].bounds)
    plain = TileDataset(s2_small, 64)[7]["x_a"].numpy()
    np.testing.assert_array_equal(
        plain, normalize(s2_small).values[:, ts[7].row : ts[7].row + 64, ts[7].col : ts[7].col + 64]
    )
    # augmentation only rearranges pixels
    np.testing.assert_allclose(np.sort(item["x_a"].numpy().ravel()), np.sort(plain.ravel()))


def test_bigearthnet_folder_dataset_and_collate(ben_pairs):
    ds = BigEarthNetMM.from_samples()
    assert len(ds) == 6 and [p[0] for p in ds.pairs] == [p.name for p in ben_pairs]
    item = ds[3]
    assert item["labels"].shape == (19,) and item["labels"].sum() >= 1
    assert item["x_a"].shape == (12, 120, 120) and item["x_b"].shape == (2, 120, 120)
    np.testing.assert_array_equal(item["x_a"].numpy(), normalize(ben_pairs[3].s2).values)
    ds43 = BigEarthNetMM.from_samples(nomenclature=43, output_size=64, augment=True, seed=0)
    assert [int(ds43[i]["labels"].sum()) for i in range(6)] == [len(p.labels) for p in ben_pairs]
    loader = DataLoader(ds43, batch_size=4, collate_fn=collate)
    batch = next(iter(loader))
    assert batch["x_a"].shape == (4, 12, 64, 64) and batch["x_b"].shape == (4, 2, 64, 64)
    assert batch["labels"].shape == (4, 43) and batch["bands_a"] == "sentinel2-l2a"
    assert len(batch["name"]) == 4 and batch["simulated_b"] is False
    # the band spec resolves in the spectrum registry as the model expects
    from smartiesviz.spectrum import resolve_bands

    assert resolve_bands(batch["bands_a"]).weights.shape[0] == 12
    mixed = [ds43[0], {**ds43[1], "bands_a": ["sentinel2-l2a/B04"]}]
    with pytest.raises(ValueError, match="a batch must share bands_a"):
        collate(mixed)
    pair_file = ds.s1_root.parent / "pairs.txt"
    pair_file.write_text("# s2,s1\n" + f"{ds.pairs[1][0]},{ds.pairs[1][1]}\n")
    assert BigEarthNetMM(ds.s2_root, ds.s1_root, pairs=pair_file).pairs == [ds.pairs[1]]


def test_simulated_rgb_partner_is_one_function_in_training_and_datasets(s2_small):
    """Training's RGB partner and the public function give identical tensors for the same tile:
    RGB simulated from B04/B03/B02 and normalized with the RGB sensor's statistics."""
    from smartiesviz.data import sentinel2_sample
    from smartiesviz.data.sources import SceneSource
    from smartiesviz.data.transforms import (
        RGB_PARTNER_BANDS,
        simulated_rgb_partner,
        simulated_rgb_tensor,
    )

    source = SceneSource("top", 0.25, 32, partner="rgb")
    assert source.bands_b == list(RGB_PARTNER_BANDS)
    y0, y1, x0, x1 = source.holdout.scene.train_window
    cube = sentinel2_sample()
    r, c, size = 100, 200, 64  # a tile of the training region, in its own pixel coordinates
    tile_cube = cube.isel(y=slice(y0 + r, y0 + r + size), x=slice(x0 + c, x0 + c + size))
    torch.testing.assert_close(
        source.rgb[:, r : r + size, c : c + size], simulated_rgb_tensor(tile_cube), rtol=0, atol=0
    )
    square = s2_small.isel(y=slice(0, 64), x=slice(0, 64))
    partner = simulated_rgb_partner(square)
    assert partner.attrs["sensor"] == "rgb" and partner.attrs["simulated"] is True
    np.testing.assert_allclose(partner.values, normalize(simulate_rgb(square), "rgb").values)
    # the datasets' simulated partner is the same image
    ds = PairedDataset.with_simulated_rgb([square], augment=False, output_size=None)
    np.testing.assert_allclose(ds[0]["x_b"].numpy(), partner.values, rtol=1e-6, atol=1e-6)
