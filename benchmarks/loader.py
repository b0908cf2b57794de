"""Data loading rate for pretraining: pair lists vs shards, 0/1/2 DataLoader workers, side by side,
next to the training step rates it has to feed.

Data: the bundled BigEarthNet-MM S2 L2A / S1 pairs in the release's layout (v1 band folders,
``<s2> <s1>`` pair list, each pair listed ``--repeat`` times), and the same list written as shards
(``smartiesviz shards build``). Each variant draws training batches of 224 px S2+S1 pairs through
the real training dataset (:class:`~smartiesviz.training.steps.PretrainDataset`: reading,
normalization, paired random resized crop to 224 px, flips, masks) and a DataLoader with 0, 1 or 2
workers; images/s counts both images of a pair, after one warm-up batch.

Step rates: one optimizer step (forward + backward + AdamW) of the demo model (64 px, batch 32) and
of ViT-B/16 at 224 px on S2+S1 pairs (batch ``--vitb-batch``), on this machine's CPU.

Workers per GPU for ViT-B: a GPU step rate is not measured here (no GPU); the published figure used
is DailyMAE (Wang et al. 2024, arXiv:2404.00509): MAE-Base/16, ImageNet-1K, 800 epochs in 18 h on
8 A100, i.e. 1.28M x 800 / 64 800 s / 8 = about 1 980 images/s per A100. Workers needed per GPU =
that rate / the measured images/s of one shard worker.

    python benchmarks/loader.py [--batches 6] [--batch 8] [--repeat 4]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import torch

from smartiesviz.data import bigearthnet_sample_dirs, find_pairs
from smartiesviz.data.archives import build_shards
from smartiesviz.data.datasets import collate
from smartiesviz.training.config import ModelConfig, config_from_dict
from smartiesviz.training.engine import build_model
from smartiesviz.training.steps import GlobalBatchSampler, PretrainDataset, build_sources

A100_MAE_B_IMAGES_PER_S = 1.28e6 * 800 / (18 * 3600) / 8  # DailyMAE (arXiv:2404.00509)


def make_archive(root: Path, repeat: int) -> tuple[dict, dict]:
    """Band-folder copy of the bundled pairs, a pair list, and shards of it: two source configs."""
    s2_root, s1_root = bigearthnet_sample_dirs()
    pairs = find_pairs(s2_root, s1_root)
    for s2, s1 in pairs:
        shutil.copytree(s2_root / s2, root / "S2" / s2)
        shutil.copytree(s1_root / s1, root / "S1" / s1)
    (root / "pairs.txt").write_text("".join(f"{a} {b}\n" for a, b in pairs * repeat))
    listed = {"kind": "pairs", "list": str(root / "pairs.txt"), "root_a": str(root / "S2"),
              "root_b": str(root / "S1"), "sensor_a": "sentinel2-l2a", "sensor_b": "sentinel1-grd"}  # fmt: skip
    build_shards([config_from_dict({"data": {"sources": [listed]}}).data.sources[0]], root / "shards", 8)
    return listed, {"kind": "shards", "path": str(root / "shards"), "shuffle": 16}


def loader_images_per_s(source: dict, workers: int, batches: int, batch: int) -> float:
    """S2+S1 images/s of the training data path for one source config and worker count."""
    cfg = config_from_dict({
        "model": {"img_size": 224},
        "data": {"sources": [source], "num_workers": workers},
        "train": {"global_batch_size": batch, "steps": batches + 1, "progress": False},
    })  # fmt: skip
    dataset = PretrainDataset(cfg, build_sources(cfg), patch_size=16)
    sampler = GlobalBatchSampler(0, batches + 1, batch)
    loader = torch.utils.data.DataLoader(
        dataset, batch_sampler=sampler, collate_fn=collate, num_workers=workers,
        **({"prefetch_factor": 2} if workers else {}),
    )  # fmt: skip
    it = iter(loader)
    next(it)  # warm-up: worker start-up, first file opens
    t0 = time.perf_counter()
    pairs = sum(int(b["x_a"].shape[0]) for b in it)
    return 2 * pairs / (time.perf_counter() - t0)  # both images of each pair


def step_images_per_s(model_name: str, img: int, batch: int, bands: tuple[int, int], reps: int) -> float:
    """Images/s of optimizer steps (forward + backward + AdamW) on S2+S1-like pairs."""
    model = build_model(ModelConfig(name=model_name, img_size=img))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    s2 = [f"sentinel2-l2a/{b}" for b in ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]]
    s1 = ["sentinel1-grd/VV", "sentinel1-grd/VH"]
    xa, xb = torch.randn(batch, bands[0], img, img), torch.randn(batch, bands[1], img, img)

    def step() -> None:
        loss = model(xa, s2[: bands[0]], xb, s1[: bands[1]], mask_ratio=0.75).loss
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()
    t0 = time.perf_counter()
    for _ in range(reps):
        step()
    return 2 * batch * reps / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=6, help="measured batches per variant")
    parser.add_argument("--batch", type=int, default=8, help="pairs per batch")
    parser.add_argument("--repeat", type=int, default=4, help="times each bundled pair is listed")
    parser.add_argument("--vitb-batch", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="smartiesviz-loader-") as tmp:
        listed, sharded = make_archive(Path(tmp), args.repeat)
        rates = {}
        for workers in (0, 1, 2):  # round-robin over the variants: same machine load for both
            for name, src in (("pair list", listed), ("shards", sharded)):
                rates[(name, workers)] = loader_images_per_s(src, workers, args.batches, args.batch)
    print(f"data loading, 224 px S2+S1 pairs (images/s; {args.batches} batches of {args.batch} pairs)")
    print(f"{'workers':>8} {'pair list':>10} {'shards':>10} {'shards/list':>12}")
    for workers in (0, 1, 2):
        a, b = rates[("pair list", workers)], rates[("shards", workers)]
        print(f"{workers:>8} {a:10.1f} {b:10.1f} {b / a:11.2f}x")
    demo = step_images_per_s("smarties_vit_tiny_patch4", 64, 32, (12, 2), reps=3)
    vitb = step_images_per_s("smarties_vit_base_patch16", 224, args.vitb_batch, (12, 2), reps=1)
    print(f"training step, CPU 1 thread (images/s): demo 64 px {demo:.1f}; ViT-B/16 224 px {vitb:.2f}")
    per_worker = rates[("shards", 1)]
    print(f"ViT-B on an A100 (published MAE-B/16 rate, DailyMAE arXiv:2404.00509): "
          f"~{A100_MAE_B_IMAGES_PER_S:.0f} images/s per GPU -> "
          f"{A100_MAE_B_IMAGES_PER_S / per_worker:.0f} shard workers per GPU at the measured "
          f"{per_worker:.1f} images/s per worker (1 thread each)")  # fmt: skip


if __name__ == "__main__":
    main()
