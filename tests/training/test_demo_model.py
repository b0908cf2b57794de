"""The shipped demo weights: loadable, from the committed config, and meeting the quality targets."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import smartiesviz
from smartiesviz.models.demo import demo_holdout, demo_weights_path
from smartiesviz.training.config import load_config

DEMO_CONFIG = Path(smartiesviz.__file__).parent / "training" / "configs" / "demo.yaml"
RUN_ONLY_KEYS = {"output_dir", "progress"}  # where the run wrote its files; not the recipe


@pytest.fixture(scope="module")
def demo_model():
    return smartiesviz.load_demo_model()


def test_load_demo_model(demo_model):
    assert not demo_model.training
    assert (demo_model.img_size, demo_model.patch_size) == (64, 8)
    assert demo_weights_path().stat().st_size <= 12 * 1024**2
    meta = demo_model.checkpoint_info["metadata"]
    assert meta["trained_with"] == "smartiesviz pretrain"
    held = demo_holdout()
    block = held["sentinel2_sample"]
    assert block["y_stop"] > block["y_start"] and block["x_stop"] > block["x_start"]
    assert isinstance(held["bigearthnet_pair"]["name"], str)
    x = torch.zeros(1, 3, 64, 64)
    out = demo_model(x, ["rgb/red", "rgb/green", "rgb/blue"])
    assert out.recon_a.shape == (1, 3, 64, 64)


def test_weights_come_from_the_committed_config(demo_model):
    trained = demo_model.checkpoint_info["metadata"]["config"]
    committed = load_config(DEMO_CONFIG).to_dict()
    for section in ("model", "data", "optim"):
        assert trained[section] == committed[section], section
    strip = lambda d: {k: v for k, v in d.items() if k not in RUN_ONLY_KEYS}  # noqa: E731
    assert strip(trained["train"]) == strip(committed["train"])
    assert demo_model.checkpoint_info["metadata"]["steps"] == load_config(DEMO_CONFIG).total_steps


def test_held_out_quality_targets(demo_model):
    from smartiesviz.training.evaluate import TARGETS, evaluate_demo, summary_lines

    torch.set_num_threads(1)
    results = evaluate_demo(demo_model, demo_holdout())
    report = "\n".join(summary_lines(results))
    assert results["s2_full"].ratio <= TARGETS["s2_full"], report
    assert results["s1"].ratio <= TARGETS["s1"], report
    assert results["s2_30m"].ratio <= TARGETS["s2_30m"], report
    name, worst = results["s2_subsets_worst"]
    assert worst.ratio <= TARGETS["s2_subsets_worst"], f"{name}\n{report}"
    assert min(len(n.split("/")) for n in results["s2_subsets"]) == 3  # 3..6-band subsets evaluated
