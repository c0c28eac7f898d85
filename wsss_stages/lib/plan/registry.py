"""The registry of stages and plug-ins, and how plug-ins are loaded (no torch; the Snakefile imports this).

The declaration types live in :mod:`wsss_stages.lib.plan.declare`; this module only collects them. It is
kept apart so that code which loads a plug-in at run time (the classifier, the CAM sources) depends on
how plug-ins are found, not on every declaration's shape: a stage's code fingerprint then does not
change when a declaration type gains a field.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wsss_stages import WsssError

if TYPE_CHECKING:  # annotations only: a fingerprint follows no import made for type checking
    from wsss_stages.lib.plan.declare import CamSource, ClassifierMethod, Refiner, Stage

PLUGINS_ENV = "WSSS_PLUGINS"


@dataclass
class Registry:
    stages: dict[str, Stage] = field(default_factory=dict)
    methods: dict[str, ClassifierMethod] = field(default_factory=dict)
    cam_sources: dict[str, CamSource] = field(default_factory=dict)
    refiners: dict[str, Refiner] = field(default_factory=dict)
    sections: dict[str, Any] = field(default_factory=dict)  # top-level config sections brought by plug-ins
    plugins: list[str] = field(default_factory=list)

    def stage(self, name: str) -> Stage:
        try:
            return self.stages[name]
        except KeyError:
            raise WsssError(f"unknown stage '{name}' (known: {', '.join(self.stages)})") from None


REGISTRY = Registry()


def _add(table: dict, name: str, item, what: str) -> None:
    if name in table and table[name] != item:
        raise WsssError(f"{what} '{name}' is registered twice")
    table[name] = item


RULE_KINDS = ("generated", "run", "none")


def register_stage(stage: Stage) -> Stage:
    if stage.rule not in RULE_KINDS:
        raise WsssError(f"stage '{stage.name}': rule must be one of {', '.join(RULE_KINDS)}, not '{stage.rule}'")
    unmerged = [n for n, out in stage.outputs.items() if stage.shardable and not out.directory and n not in stage.merge]
    if unmerged:
        raise WsssError(f"stage '{stage.name}' is shardable but declares no merge for its file outputs {unmerged}")
    _add(REGISTRY.stages, stage.name, stage, "stage")
    return stage


def register_method(method: ClassifierMethod) -> ClassifierMethod:
    _add(REGISTRY.methods, method.name, method, "classifier method")
    return method


def register_cam_source(source: CamSource) -> CamSource:
    _add(REGISTRY.cam_sources, source.name, source, "CAM source")
    return source


def register_refiner(refiner: Refiner) -> Refiner:
    if "+" in refiner.name or refiner.name in ("none", "cams", "gt"):
        raise WsssError(f"refiner name '{refiner.name}' is reserved or contains '+'")
    if refiner.apply not in {s.name for s in refiner.stages}:
        raise WsssError(f"refiner '{refiner.name}': its apply stage '{refiner.apply}' is not among its stages")
    for stage in refiner.stages:
        register_stage(stage)
    for name, section in refiner.sections.items():
        _add(REGISTRY.sections, name, section, "config section")
    _add(REGISTRY.refiners, refiner.name, refiner, "refiner")
    return refiner


BUILTIN_PACKAGES = ("wsss_stages.methods", "wsss_stages.refiners")


def builtin_plugins() -> list[str]:
    """The ``plugin`` module of every folder in the built-in plug-in packages, found without importing them."""
    found = []
    for package in BUILTIN_PACKAGES:
        folder = Path(importlib.util.find_spec(package).origin).parent
        found += [f"{package}.{sub.name}.plugin" for sub in sorted(folder.iterdir()) if (sub / "plugin.py").is_file()]
    return found


def load_plugins(names: list[str] | tuple[str, ...] = ()) -> Registry:
    """Register the core stages, the built-in plug-ins, those named in ``WSSS_PLUGINS`` and ``names``."""
    # by name, so that code fingerprints (codedeps) do not tie every stage to every declaration
    for builtin in ("wsss_stages.lib.plan.core_stages", *builtin_plugins()):
        importlib.import_module(builtin)

    wanted = [n for n in os.environ.get(PLUGINS_ENV, "").split(",") if n] + list(names)
    for name in wanted:
        if name in REGISTRY.plugins:
            continue
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise WsssError(f"config key 'plugins': cannot import plug-in module '{name}' ({exc})") from None
        REGISTRY.plugins.append(name)
    return REGISTRY


def import_object(path: str):
    """``"package.module:attribute"`` → the attribute."""
    module, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)
