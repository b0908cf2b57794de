import pytest

from smartiesviz.training.config import PretrainConfig, load_config, parse_overrides


def test_yaml_and_dotted_overrides(tiny_config_path):
    cfg = load_config(
        tiny_config_path,
        ["train.steps=11", "optim.base_lr=3e-4", "data.sources.0.weight=2", "model.kwargs.depth=2"],
    )
    assert cfg.train.steps == 11 and cfg.total_steps == 11
    assert cfg.optim.base_lr == pytest.approx(3e-4)
    assert cfg.data.sources[0].weight == 2.0
    assert cfg.model.kwargs["depth"] == 2
    # lr scaling rule: base_lr * global batch / 256
    assert cfg.lr == pytest.approx(3e-4 * cfg.train.global_batch_size / 256)


def test_epochs_define_steps_when_steps_is_zero():
    cfg = load_config(
        None,
        [
            "train.steps=0",
            "train.epochs=3",
            "data.samples_per_epoch=640",
            "train.global_batch_size=64",
        ],
    )
    assert cfg.total_steps == 30


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("train.stpes=3", "unknown config key(s) ['train.stpes']"),
        ("train.precision=fp8", "train.precision='fp8' is invalid"),
        ("train.mask_ratio=1.5", "train.mask_ratio=1.5"),
        ("train.steps=abc", "train.steps='abc' has the wrong type"),
        ("data.sources.0.partner=rgb", "data.sources[0].partner='rgb'"),
    ],
)
def test_bad_values_name_the_key(tiny_config_path, override, fragment):
    with pytest.raises(ValueError) as err:
        load_config(tiny_config_path, [override])
    assert fragment in str(err.value)


def test_override_syntax_and_missing_file(tmp_path):
    with pytest.raises(ValueError, match="key.sub=value"):
        parse_overrides(["train.steps"])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_round_trip_through_dict():
    from smartiesviz.training.config import config_from_dict

    cfg = PretrainConfig()
    assert config_from_dict(cfg.to_dict()) == cfg


def test_paper_recipe_config():
    """configs/smarties-vitb-paper.yaml: ViT-B/16 at 224 px, BigEarthNet-MM + fMoW pair lists,
    global batch 2048, 300 epochs, base lr 1.5e-4 (the paper's recipe)."""
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "smartiesviz" / "training" / "configs" / "smarties-vitb-paper.yaml"
    cfg = load_config(path)
    assert (cfg.model.name, cfg.model.img_size) == ("smarties_vit_base_patch16", 224)
    assert cfg.train.global_batch_size == 2048 and cfg.train.epochs == 300
    assert cfg.optim.base_lr == pytest.approx(1.5e-4) and cfg.train.mask_ratio == 0.75
    kinds = [(s.kind, s.sensor_a, s.sensor_b) for s in cfg.data.sources]
    assert kinds == [("pairs", "sentinel2-l2a", "sentinel1-grd"), ("pairs", "sentinel2-l1c", "rgb")]
    assert cfg.total_steps == 300 * (248000 // 2048)


def test_typed_options_are_checked_where_they_enter(tiny_config_path):
    with pytest.raises(ValueError, match=r"data.on_bad='ignore' is invalid: expected one of \('error', 'skip'\)"):
        load_config(tiny_config_path, ["data.on_bad=ignore"])
    with pytest.raises(ValueError, match=r"data.sources\[0\].root_b=None .*set for a 'pairs' source"):
        load_config(tiny_config_path, ["data.sources=[{kind: pairs, list: a.txt, root_a: ., sensor_a: rgb, sensor_b: rgb}]"])
    with pytest.raises(ValueError, match="train.mixup_mode='mirror' is invalid"):
        load_config(tiny_config_path, ["train.mixup_mode=mirror"])
