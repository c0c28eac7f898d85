from pathlib import Path

import pytest

from wsss_stages import WsssError
from wsss_stages.lib.plan.config import load_config_file, validate_config


def test_defaults_are_filled_recursively():
    config = validate_config({})
    crf = config["refine_crf"]
    assert {
        k: crf[k]
        for k in (
            "iterations",
            "gaussian_sxy",
            "gaussian_compat",
            "bilateral_sxy",
            "bilateral_srgb",
            "bilateral_compat",
        )
    } == {
        "iterations": 10,
        "gaussian_sxy": 3,
        "gaussian_compat": 3,
        "bilateral_sxy": 80,
        "bilateral_srgb": 13,
        "bilateral_compat": 10,
    }
    assert crf["bg_threshold"] == "auto"
    assert config["make_cams"]["scales"] == [1.0, 0.5, 1.5, 2.0]
    assert config["train_classifier"]["training"]["momentum"] == 0.9
    assert config["cam_bg_threshold"] == "auto"


@pytest.mark.parametrize(
    "config, key",
    [
        ({"bogus": 1}, "'bogus'"),
        ({"refine_crf": {"sxy": 3}}, "'refine_crf.sxy'"),
        ({"train_classifier": {"training": {"epoch": 3}}}, "'train_classifier.training.epoch'"),
    ],
)
def test_unknown_keys_are_named(config, key):
    with pytest.raises(WsssError, match=f"unknown config key {key}"):
        validate_config(config)


@pytest.mark.parametrize(
    "config, key",
    [
        ({"cam_bg_threshold": 1.5}, "cam_bg_threshold"),
        ({"cam_bg_threshold": -0.1}, "cam_bg_threshold"),
        ({"eval_cams": {"thresholds": [0.1, 2.0]}}, "eval_cams.thresholds.1"),
        ({"make_pseudo_masks": {"ignore_band": [0.6, 0.2]}}, "make_pseudo_masks.ignore_band"),
        # a refiner's own check hook (the random walk's), run with the core checks
        ({"make_affinity_labels": {"conf_fg": 0.2, "conf_bg": 0.4}}, "make_affinity_labels.conf_bg"),
        ({"make_affinity_labels": {"quantile_fg": 0.2, "quantile_bg": 0.4}}, "make_affinity_labels.quantile_bg"),
    ],
)
def test_thresholds_outside_unit_interval_are_named(config, key):
    with pytest.raises(WsssError, match=key.replace(".", r"\.")):
        validate_config(config)


@pytest.mark.parametrize(
    "name", ["make_demo_data", "convert_dataset", "predict", "gather_shards", "eval_cams.thresholds"]
)
def test_temporary_names_only_generated_stages_with_per_image_folders(name):
    # the data tree, the run-level rules and the commands without a rule cannot be temp(); accepting them did nothing
    with pytest.raises(WsssError, match=f"config key 'temporary': '{name}' is not a stage with per-image folders"):
        validate_config({"temporary": [name]})


def test_temporary_accepts_a_per_image_stage():
    assert validate_config({"temporary": ["make_cams", "refine_crf"]})["temporary"] == ["make_cams", "refine_crf"]


def test_voc_needs_an_existing_data_root(tmp_path):
    with pytest.raises(WsssError, match="data_root"):
        validate_config({"dataset": "voc"})
    with pytest.raises(WsssError, match="does not exist"):
        validate_config({"dataset": "voc", "data_root": str(tmp_path / "missing")})


def test_repository_configs_are_valid(tmp_path):
    from conftest import REPO

    for path in [REPO / "config.yaml", *sorted((REPO / "configs").glob("*.yaml"))]:
        data = load_config_file(path)
        if data.get("dataset") == "voc":
            data["data_root"] = str(tmp_path)
        if data.get("dataset") == "coco":  # the preset names no files of its own
            (tmp_path / "a.json").write_text("{}")
            data["coco"] = {"splits": {"train": {"images": str(tmp_path), "annotations": str(tmp_path / "a.json")}}}
        validate_config(data)


OVERLAYS = Path(__file__).resolve().parents[1] / "configs" / "experiments"


@pytest.mark.parametrize("overlay", sorted(p.name for p in OVERLAYS.glob("*.yaml")))
@pytest.mark.parametrize("preset", ["config.yaml", "configs/voc12_cpu.yaml", "configs/voc12.yaml"])
def test_every_experiment_overlay_expands_on_every_preset(tmp_path, preset, overlay):
    """A typo in an overlay would otherwise surface only once someone points it at real data."""
    from conftest import REPO

    from wsss_stages.lib.plan.experiments import deep_merge, expand_experiments

    config = deep_merge(load_config_file(REPO / preset), load_config_file(OVERLAYS / overlay))
    if config.get("dataset") == "voc":
        config["data_root"] = str(tmp_path)
    validated = validate_config(config)
    folders = expand_experiments(validated)
    named = config.get("experiments") or {}
    assert {f"{validated['experiment']}_{name}" for name in named} <= set(folders)
    repeats = [(o or {}).get("repeats", config.get("repeats", 1)) for o in named.values()] or [config.get("repeats", 1)]
    assert len(folders) == sum(repeats)


def test_bad_yaml_file_is_named(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("a: [1, 2\n")
    with pytest.raises(WsssError, match="c.yaml"):
        load_config_file(path)


def test_command_line_strings_are_coerced_where_numbers_are_expected():
    config = validate_config(
        {
            "refine_crf": {"bilateral_srgb": "9", "bg_threshold": "0.2"},
            "cam_bg_threshold": "auto",
            "make_cams": {"flip": "false", "scales": ["1.0", "0.5"]},
            "experiment": "123",
        }
    )
    assert config["refine_crf"]["bilateral_srgb"] == 9 and config["refine_crf"]["bg_threshold"] == 0.2
    assert config["cam_bg_threshold"] == "auto" and config["make_cams"]["flip"] is False
    assert config["make_cams"]["scales"] == [1.0, 0.5] and config["experiment"] == "123"
