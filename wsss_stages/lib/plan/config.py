"""Config validation: JSON Schema (with defaults and descriptions) plus cross-key checks.

Used by the Snakefile before the DAG is built and by tests. Light on imports on purpose.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from wsss_stages import WsssError
from wsss_stages.lib.plan.declare import REGISTRY, load_plugins

SCHEMA_PATH = Path(__file__).parent / "schema" / "config.schema.yaml"


def load_schema() -> dict:
    """The config schema: the core sections (``schema/config.schema.yaml``) plus those the registered
    plug-ins bring (a classifier method's ``train_classifier.<name>``, a CAM source's
    ``make_cams.<name>``, a refiner's top-level sections)."""
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    props = schema["properties"]
    _add_choices(props["train_classifier"], "method", REGISTRY.methods)
    _add_choices(props["make_cams"], "cam_type", REGISTRY.cam_sources)
    for name, section in REGISTRY.sections.items():
        props[name] = copy.deepcopy(section)
    return schema


def core_definition(name: str, **defaults) -> dict:
    """A copy of the core schema's ``$defs/<name>`` object with other defaults for some of its keys,
    for a plug-in section whose defaults differ (e.g. a training recipe): a user's partial section then
    keeps the plug-in's defaults for the keys it leaves out."""
    definition = copy.deepcopy(yaml.safe_load(SCHEMA_PATH.read_text())["$defs"][name])
    unknown = set(defaults) - set(definition["properties"])
    if unknown:
        raise WsssError(f"$defs/{name} has no properties {sorted(unknown)}")
    for key, value in defaults.items():
        definition["properties"][key] = {**definition["properties"][key], "default": value}
    return {**definition, "default": {}}


def _add_choices(section: dict, key: str, plugins: dict) -> None:
    """``section.<key>`` names one of ``plugins``; each plug-in's options are ``section.<plug-in name>``."""
    section["properties"][key]["enum"] = list(plugins)
    for name, plugin in plugins.items():
        section["properties"][name] = {
            "type": "object",
            "additionalProperties": False,
            "default": {},
            "description": f"options of {key} '{name}': {plugin.description}".rstrip(": "),
            "properties": copy.deepcopy(dict(plugin.schema)),
        }


def _validator_filling_defaults():
    base = jsonschema.Draft202012Validator
    validate_properties = base.VALIDATORS["properties"]

    def properties_with_defaults(validator, properties, instance, schema):
        if validator.is_type(instance, "object"):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(base, {"properties": properties_with_defaults})


_Validator = _validator_filling_defaults()


def validate_config(config: dict[str, Any]) -> dict[str, Any]:
    """Return a validated copy of ``config`` with every default filled in.

    Raises :class:`WsssError` naming each offending key (dotted path).
    """
    config = copy.deepcopy(dict(config))
    load_plugins(config.get("plugins") or [])
    schema = load_schema()
    _coerce_strings(config, schema, schema)
    # Fill defaults first (the validator does it while walking), then collect errors on the result.
    list(_Validator(schema).iter_errors(config))
    errors = sorted(_Validator(schema).iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        raise WsssError("invalid config:\n" + "\n".join(_describe(e) for e in errors))
    _check_cross_keys(config)
    return config


def resolve_ref(sub: dict, root: dict) -> dict:
    """A (sub)schema with its ``$ref`` to ``root``'s ``$defs`` replaced by the definition (its own keys win)."""
    while "$ref" in sub:
        sub = {**root["$defs"][sub["$ref"].rsplit("/", 1)[-1]], **{k: v for k, v in sub.items() if k != "$ref"}}
    return sub


def _allows(sub: dict, root: dict, kind: str) -> bool:
    """Whether a (sub)schema accepts values of JSON type ``kind`` anywhere in its alternatives."""
    sub = resolve_ref(sub, root)
    kinds = sub.get("type", [])
    kinds = [kinds] if isinstance(kinds, str) else kinds
    if kind in kinds or (kind == "number" and "integer" in kinds):
        return True
    return any(_allows(option, root, kind) for option in sub.get("oneOf", []) + sub.get("anyOf", []))


def _coerce_strings(node: Any, sub: dict, root: dict) -> Any:
    """Turn "0.3" / "true" into numbers / booleans where the schema wants no string.

    ``snakemake --config 'section={key: 9}'`` delivers nested values as strings; without this,
    a command-line override would be rejected for its type rather than checked for its value.
    """
    sub = resolve_ref(sub, root)
    if isinstance(node, dict):
        objects = [sub, *(o for o in sub.get("oneOf", []) + sub.get("anyOf", []) if _allows(o, root, "object"))]
        for key, value in node.items():
            for option in map(lambda o: resolve_ref(o, root), objects):
                inner = option.get("properties", {}).get(key, option.get("additionalProperties"))
                if isinstance(inner, dict):
                    node[key] = _coerce_strings(value, inner, root)
                    break
        return node
    if isinstance(node, list) and isinstance(sub.get("items"), dict):
        return [_coerce_strings(v, sub["items"], root) for v in node]
    if isinstance(node, str) and node.strip() and not _allows(sub, root, "string"):
        parsed = yaml.safe_load(node)
        wanted = "boolean" if isinstance(parsed, bool) else "number" if isinstance(parsed, (int, float)) else None
        if wanted and _allows(sub, root, wanted):
            return parsed
    return node


def _describe(error: jsonschema.ValidationError) -> str:
    key = ".".join(str(p) for p in error.absolute_path) or "<top level>"
    if error.validator == "additionalProperties":
        unknown = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        where = f"{key}." if error.absolute_path else ""
        return "  " + "; ".join(f"unknown config key '{where}{name}'" for name in unknown)
    if error.validator == "oneOf" and error.context:
        # the branch that failed on a value (range, length) says more than one of the wrong type
        specific = [e for e in error.context if e.validator not in ("type", "const", "enum")]
        detail = min(specific or error.context, key=lambda e: len(e.message)).message
        return f"  config key '{key}': {error.instance!r} is not valid ({detail})"
    return f"  config key '{key}': {error.message}"


def _check_cross_keys(config: dict) -> None:
    problems = []
    if config["dataset"] == "coco" and not config["coco"]["splits"]:
        problems.append(
            "config key 'coco.splits' must name at least one split (train: {images: …, annotations: …}) when dataset "
            "is 'coco'"
        )
    for split, paths in config["coco"]["splits"].items() if config["dataset"] == "coco" else ():
        problems += [
            f"config key 'coco.splits.{split}.{k}': {paths[k]} does not exist"
            for k in ("images", "annotations")
            if not Path(paths[k]).exists()
        ]
    if config["dataset"] == "folder":
        for key in ("images", "labels", "classes", "masks"):
            value = config["folder"][key]
            if value is None and key != "masks":
                problems.append(f"config key 'folder.{key}' is required when dataset is 'folder'")
            elif value is not None and not Path(value).exists():
                problems.append(f"config key 'folder.{key}': {value} does not exist")
    if config["dataset"] == "voc" and not config["data_root"]:
        problems.append(
            "config key 'data_root' is required when dataset is 'voc' (--config data_root=/path/to/VOC2012)"
        )
    if config["dataset"] == "voc" and config["data_root"] and not Path(config["data_root"]).is_dir():
        problems.append(f"config key 'data_root': {config['data_root']} does not exist")
    band = config["make_pseudo_masks"]["ignore_band"]
    if band is not None and band[0] > band[1]:
        problems.append(
            f"config key 'make_pseudo_masks.ignore_band': lower bound {band[0]} exceeds upper bound {band[1]}"
        )
    for refiner in REGISTRY.refiners.values():
        problems += refiner.check(config) if refiner.check else []
    problems += _chain_problems(config)
    per_image = sorted(n for n, stage in REGISTRY.stages.items() if stage.temporary_outputs)
    problems += [
        f"config key 'temporary': '{name}' is not a stage with per-image folders ({', '.join(per_image)})"
        for name in config["temporary"]
        if name not in per_image
    ]
    for key, kind in (("shards", "shardable"), ("processes", "distributed")):
        if isinstance(config[key], dict):
            allowed = sorted(n for n, stage in REGISTRY.stages.items() if getattr(stage, kind))
            problems += [
                f"config key '{key}.{name}': '{name}' is not a {kind} stage ({kind}: {', '.join(allowed)})"
                for name in config[key]
                if name not in allowed
            ]
    classifier = config["train_classifier"]
    problems += _acr_problems(config)
    method = REGISTRY.methods[classifier["method"]]
    if method.check:
        problems += method.check(classifier.get(method.name, {}), classifier)
    source = REGISTRY.cam_sources[config["make_cams"]["cam_type"]]
    if source.check:
        problems += source.check(config)
    demo = config["make_demo_data"]
    if demo["num_seed_eval"] > demo["num_train"]:
        problems.append("config key 'make_demo_data.num_seed_eval' exceeds make_demo_data.num_train")
    for stage in ("train_classifier", "train_segmentation"):
        lo, hi = config[stage]["training"]["scale_range"]
        if lo > hi:
            problems.append(f"config key '{stage}.training.scale_range': {lo} > {hi}")
    if problems:
        raise WsssError("invalid config:\n" + "\n".join("  " + p for p in problems))


def _acr_problems(config: dict) -> list[str]:
    acr = config["acr"]
    if not acr["enabled"]:
        return []
    problems = []
    if config["adversarial_erasing"]["enabled"]:
        problems.append("config key 'acr.enabled': ACR and adversarial_erasing cannot both replace the classifier")
    if config["train_classifier"]["method"] != "cam":
        problems.append(
            f"config key 'train_classifier.method': ACR trains a plain CAM classifier ('cam'), not "
            f"'{config['train_classifier']['method']}'"
        )
    side = config["train_classifier"]["training"]["crop_size"] * acr["reconstructor"]["scale"]
    if side != round(side) or round(side) % 4:
        problems.append(
            f"config key 'acr.reconstructor.scale': the rebuilt crop (crop_size × scale = {side:g} px) must be a "
            f"whole number of pixels divisible by 4"
        )
    return problems


def _chain_problems(config: dict) -> list[str]:
    from wsss_stages.lib.plan.pipeline import check_chain

    chains = [("make_pseudo_masks.refinement", config["make_pseudo_masks"]["refinement"])]
    chains += [(f"make_pseudo_masks.compare.{i}", r) for i, r in enumerate(config["make_pseudo_masks"]["compare"])]
    chains += [(f"write_benchmark.refinements.{i}", r) for i, r in enumerate(config["write_benchmark"]["refinements"])]
    problems = []
    for key, chain in chains:
        try:
            check_chain(config, chain, key)
        except WsssError as error:
            problems.append(str(error))
    return problems


def load_config_file(path: Path | str) -> dict:
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except FileNotFoundError:
        raise WsssError(f"config file {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise WsssError(f"config file {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise WsssError(f"config file {path} must hold a mapping at the top level")
    return data
