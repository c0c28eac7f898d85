"""Every stage is declared once, and its declaration, its function and the config schema agree."""

import importlib
import inspect

import pytest

from wsss_stages.lib.plan.config import load_schema, validate_config
from wsss_stages.lib.plan.declare import REGISTRY, load_plugins
from wsss_stages.lib.plan.pipeline import closure, node_params

load_plugins()
STAGES = sorted(REGISTRY.stages)


def function_of(stage):
    return getattr(importlib.import_module(stage.module_name), stage.name)


def schema_node(schema: dict, dotted: str) -> dict:
    node = schema
    for part in dotted.split("."):
        node = node["properties"][part]
        while "$ref" in node:
            node = {
                **schema["$defs"][node["$ref"].rsplit("/", 1)[-1]],
                **{k: v for k, v in node.items() if k != "$ref"},
            }
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
        assert "default" in schema_node(schema, key) or schema_node(schema, key).get("properties"), (
            f"{name}: {key} has no schema default"
        )


def test_every_node_of_the_default_configs_resolves():
    for config in (
        {},
        {"make_pseudo_masks": {"refinement": "rw+crf", "compare": ["none", "rw", "crf"]}},
        {"adversarial_erasing": {"enabled": True}, "make_cams": {"cam_type": "gradcam"}},
    ):
        cfg = validate_config(config)
        nodes = closure(cfg, [("write_benchmark", ""), ("summarize_metrics", "")])
        assert ("train_classifier", "") in nodes
        for stage, variant in nodes:
            assert set(node_params(cfg, REGISTRY.stage(stage), variant)) == {
                *REGISTRY.stage(stage).params,
                *REGISTRY.stage(stage).threshold_args,
            }


def test_crf_parameters_default_to_the_schema():
    from wsss_stages.refiners.crf.densecrf import DEEPLAB_CRF, CrfParams
    from wsss_stages.refiners.crf.plugin import PARAMETERS

    defaults = validate_config({})["refine_crf"]
    assert CrfParams().__dict__ == {k: defaults[k] for k in PARAMETERS}
    assert DEEPLAB_CRF.__dict__ == {k: defaults["chained"][k] for k in PARAMETERS}  # after another refiner


def test_plugin_sections_carry_their_own_defaults():
    cfg = validate_config({})
    assert cfg["train_classifier"]["puzzle"] == {
        "alpha": 4.0,
        "terms": ["cls", "pcls", "re"],
        "alpha_schedule": 0.5,
        "level": "feature",
        "re_loss": "l1",
        "re_loss_option": "masking",
    }
    assert cfg["train_classifier"]["hide_and_seek"]["patch_sizes"] == [0, 16, 32, 44, 56]
    assert cfg["make_cams"]["gradcam"] == {"layer": "high"}
    assert cfg["random_walk"]["beta"] == 10 and cfg["refine_crf"]["bilateral_sxy"] == 80


def test_the_crf_after_a_refiner_gets_its_own_swept_background_score():
    """rw+crf sweeps the CRF's background score on the walked maps (tune_crf/rw), not on the seeds;
    "inherit" takes the walk's own swept threshold; on score maps (psa) there is nothing to sweep."""
    from wsss_stages.lib.plan.declare import Ref
    from wsss_stages.lib.plan.pipeline import node_inputs

    crf = REGISTRY.stage("refine_crf")
    cfg = validate_config({"make_pseudo_masks": {"refinement": "rw+crf", "compare": ["crf"]}})
    nodes = closure(cfg, [("summarize_metrics", "")])
    assert {("tune_crf", "cams"), ("tune_crf", "rw")} <= set(nodes)
    assert node_inputs(cfg, crf, "rw")["bg_threshold_sweep"] == Ref("tune_crf", "out_best", "rw")
    assert node_inputs(cfg, REGISTRY.stage("tune_crf"), "rw")["cams"] == Ref("random_walk", "out_dir", "cams")
    assert node_inputs(cfg, crf, "cams")["bg_threshold_sweep"] == Ref("tune_crf", "out_best", "cams")
    # the seeds get psa's CRF, a refiner's maps DeepLab's, each with its own sweep
    assert (
        node_params(cfg, crf, "cams")["crf"]["bilateral_compat"] == 10
        and node_params(cfg, crf, "rw")["crf"]["bilateral_compat"] == 4
    )
    tune = REGISTRY.stage("tune_crf")
    assert node_params(cfg, tune, "rw")["crf"] == node_params(cfg, crf, "rw")["crf"]
    assert (
        node_params(cfg, tune, "rw")["thresholds"]
        == [0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5]
        != node_params(cfg, tune, "cams")["thresholds"]
    )

    inherit = validate_config(
        {
            "make_pseudo_masks": {"refinement": "rw+crf"},
            "refine_crf": {"chained": {"bg_threshold": "inherit"}},
            "random_walk": {"bg_threshold": "auto"},
        }
    )
    assert node_inputs(inherit, crf, "rw")["bg_threshold_sweep"] == Ref("eval_cams", "out_best", "rw")
    assert ("tune_crf", "rw") not in closure(inherit, [("summarize_metrics", "")])
    fixed = validate_config(
        {"make_pseudo_masks": {"refinement": "rw+crf"}, "refine_crf": {"chained": {"bg_threshold": 0.2}}}
    )
    assert (
        node_params(fixed, crf, "rw")["bg_threshold"] == 0.2
        and node_inputs(fixed, crf, "rw")["bg_threshold_sweep"] is None
    )

    psa = validate_config(
        {
            "make_pseudo_masks": {"refinement": "rw+crf"},
            "random_walk": {"method": "psa"},
            "make_affinity_labels": {"method": "psa"},
        }
    )
    assert node_params(psa, crf, "rw")["bg_threshold"] is None
    assert ("tune_crf", "rw") not in closure(psa, [("summarize_metrics", "")])
