"""Every stage is declared once, and its declaration, its function and the config schema agree."""

import importlib
import inspect

import pytest

from wsss_stages.lib.config import load_schema, validate_config
from wsss_stages.lib.declare import REGISTRY, load_plugins
from wsss_stages.lib.pipeline import closure, node_params

load_plugins()
STAGES = sorted(REGISTRY.stages)


def function_of(stage):
    return getattr(importlib.import_module(stage.module_name), stage.name)


def schema_node(schema: dict, dotted: str) -> dict:
    node = schema
    for part in dotted.split("."):
        node = node["properties"][part]
        while "$ref" in node:
            node = {**schema["$defs"][node["$ref"].rsplit("/", 1)[-1]], **{k: v for k, v in node.items() if k != "$ref"}}
    return node


@pytest.mark.parametrize("name", STAGES)
def test_the_function_takes_exactly_the_declared_arguments(name):
    stage = REGISTRY.stages[name]
    params = inspect.signature(function_of(stage)).parameters
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params.values())
    assert set(params) == {*stage.args, "threads"}, f"{name}: declaration and function disagree"


@pytest.mark.parametrize("name", STAGES)
def test_defaults_live_only_in_the_schema(name):
    """A stage parameter has no default of its own (only ``threads``), and every config key it is
    declared to read exists in the schema."""
    stage = REGISTRY.stages[name]
    params = inspect.signature(function_of(stage)).parameters
    with_defaults = {n for n, p in params.items() if p.default is not inspect.Parameter.empty}
    # context arguments are not config values (e.g. `wsss predict`'s options), nor is a shard (all images by default)
    allowed = {"threads", *stage.context, *(("shard",) if stage.shardable else ())}
    assert with_defaults <= allowed, f"{name}: defaults outside the schema: {with_defaults - allowed}"
    schema = load_schema()
    for key in stage.config_keys():
        assert "default" in schema_node(schema, key) or schema_node(schema, key).get("properties"), f"{name}: {key} has no schema default"


def test_every_node_of_the_default_configs_resolves():
    for config in ({}, {"make_pseudo_masks": {"refinement": "rw+crf", "compare": ["none", "rw", "crf"]}},
                   {"adversarial_erasing": {"enabled": True}, "make_cams": {"cam_type": "gradcam"}}):
        cfg = validate_config(config)
        nodes = closure(cfg, [("write_benchmark", ""), ("summarize_metrics", "")])
        assert ("train_classifier", "") in nodes
        for stage, variant in nodes:
            assert set(node_params(cfg, REGISTRY.stage(stage), variant)) == {*REGISTRY.stage(stage).params, *REGISTRY.stage(stage).threshold_args}


def test_crf_parameters_default_to_the_schema():
    from wsss_stages.lib.crf import CrfParams
    from wsss_stages.methods.crf import PARAMETERS

    defaults = validate_config({})["refine_crf"]
    assert CrfParams().__dict__ == {k: defaults[k] for k in PARAMETERS}


def test_plugin_sections_carry_their_own_defaults():
    cfg = validate_config({})
    assert cfg["train_classifier"]["puzzle"] == {"alpha": 4.0, "terms": ["cls", "pcls", "re"], "alpha_schedule": 0.5, "level": "feature",
                                                 "re_loss": "l1", "re_loss_option": "masking"}
    assert cfg["train_classifier"]["hide_and_seek"]["patch_sizes"] == [16, 32, 44, 56]
    assert cfg["make_cams"]["gradcam"] == {"layer": "high"}
    assert cfg["random_walk"]["beta"] == 10 and cfg["refine_crf"]["bilateral_sxy"] == 80
