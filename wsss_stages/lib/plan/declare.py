"""Stage declarations and the plug-in registry (no torch: the Snakefile imports this).

A **stage** is declared once, as a :class:`Stage`: its name (shared by the rule, the module,
the CLI subcommand and the results folder), what it reads (other stages' artifacts, through
:class:`Ref`), what it writes, and which config values it receives. From the declaration come
the Snakemake rule (inputs, outputs, ``params:``, the shell command with generated flags), the
stage graph used to share artifacts between experiments, and the rerun scope. The stage
*function* (``<module>.<name>``) takes exactly the declared arguments as keyword arguments, plus
``threads``; the CLI is built from its signature.

**Plug-ins** add to the registry, each with one module and one registration call:

- :class:`ClassifierMethod`: how the classifier is trained (``train_classifier.method``);
- :class:`CamSource`: how maps are read from a trained classifier (``make_cams.cam_type``);
- :class:`Refiner`: a refinement of CAMs with its own stages (``make_pseudo_masks.refinement``,
  chainable as ``rw+crf``).

Each brings its own config section with its own defaults (JSON Schema, merged into the
config schema). The built-in ones live in ``methods/<name>/`` and ``refiners/<name>/`` (declared in
their ``plugin.py``);
others are importable modules named by the config key ``plugins`` (the Snakefile imports them
before validating the config, and passes them to every job in ``WSSS_PLUGINS``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Union

from wsss_stages.lib.plan.registry import (  # noqa: F401 (what a plug-in imports from here)
    PLUGINS_ENV,
    REGISTRY,
    import_object,
    load_plugins,
    register_cam_source,
    register_method,
    register_refiner,
    register_stage,
)


# ============================================================================ stages
@dataclass(frozen=True)
class Ref:
    """An artifact of another stage: ``stage``'s output ``output``, for wildcard value ``variant``."""

    stage: str
    output: str
    variant: str = ""

    @property
    def node(self) -> tuple[str, str]:
        return (self.stage, self.variant)


@dataclass(frozen=True)
class Output:
    """A declared output, relative to ``results/<experiment>/<stage>/``; may hold the stage's wildcard."""

    path: str
    directory: bool = False
    root: bool = False  # relative to results/<experiment>/ itself (the experiment's summary files)
    report: str = ""  # a category of Snakemake's HTML report (snakemake --report) this output appears under


@dataclass(frozen=True)
class Derived:
    """A stage argument computed from config values ``keys`` (dotted) by ``value(cfg, variant)``."""

    keys: tuple[str, ...]
    value: Callable[[dict, str], Any]


def section(key: str) -> Derived:
    """A whole config section as one argument (a JSON object on the command line)."""
    return Derived((key,), lambda cfg, variant: dict(lookup(cfg, key)))


@dataclass(frozen=True)
class Threshold:
    """A background threshold argument: a number, or "auto" (or a rule's name) for the threshold that
    the stage ``sweep`` chooses (the stage then receives that stage's best.json and reads the value from it)."""

    value: Any
    sweep: Ref | None
    key: str

    @property
    def auto(self) -> bool:
        return isinstance(self.value, str)


Param = Union[str, Derived]  # noqa: UP007 (a runtime alias: `|` on a str and a class needs Python 3.10 types)
InputValue = Union[Ref, "list[Ref]", "dict[str, Ref]", None]


def _no_inputs(cfg: dict, variant: str) -> dict:
    return {}


@dataclass(frozen=True)
class Stage:
    """One pipeline stage. ``params`` maps argument → dotted config key (or :class:`Derived`);
    ``inputs(cfg, variant)`` maps argument → :class:`Ref` (or a list / name→Ref mapping, or None
    when absent); ``thresholds(cfg, variant)`` maps argument → :class:`Threshold` (or None)."""

    name: str
    help: str
    outputs: Mapping[str, Output]
    inputs: Callable[[dict, str], Mapping[str, InputValue]] = _no_inputs
    input_args: tuple[str, ...] = ()
    params: Mapping[str, Param] = field(default_factory=dict)
    thresholds: Callable[[dict, str], Mapping[str, Threshold | None]] | None = None
    threshold_args: tuple[str, ...] = ()
    context: tuple[str, ...] = ()  # arguments about the run rather than the data (e.g. the jobs a report covers)
    variant: str = ""  # the wildcard's name, e.g. "source"; empty for a stage built once per experiment
    variant_extra: tuple[str, ...] = ()  # wildcard values besides the seeds / refinement chains (e.g. "gt")
    data: bool = True  # reads the data tree: receives data_root
    # where its rule comes from: "generated" (rules/stages.smk, from this declaration, per experiment), "run"
    # (written by hand in data.smk / report.smk / shards.smk, once per run) or "none" (a command users run, no rule)
    rule: str = "generated"
    threads: str | int = 1  # "heavy" (training/inference, capped), "all" (process pools) or a number
    mem_mb: int = 2000
    runtime: int = 60  # minutes
    gpu: bool = False
    module: str = ""  # implementation module; default wsss_stages.stages.<name> (the core stages)
    code: Callable[[dict], list[str]] | None = None  # modules loaded by name at run time (plug-in implementations)
    # a per-image stage whose images can be split into shards (config `shards`; lib/shards.py): the function
    # then takes `shard` ("k/N"); `merge` names, for each output that is a file, "module:function" that
    # merges the shards' versions (folders are merged generically)
    shardable: bool = False
    # a training stage that runs as several data-parallel processes under torchrun (config `processes`)
    distributed: bool = False
    merge: Mapping[str, str] = field(default_factory=dict)

    @property
    def module_name(self) -> str:
        return self.module or f"wsss_stages.stages.{self.name}"

    @property
    def args(self) -> tuple[str, ...]:
        """Every argument of the stage function except ``threads``, in command-line order."""
        data = ("data_root",) if self.data else ()
        shard = ("shard",) if self.shardable else ()
        thresholds = [
            name for arg in self.threshold_args for name in (arg, f"{arg}_sweep")
        ]  # a number, or a sweep's result
        return (*self.input_args, *data, *self.outputs, *self.params, *thresholds, *self.context, *shard)

    def output_path(self, name: str, variant: str = "") -> str:
        """Path of output ``name`` relative to ``results/<experiment>/``, for wildcard value ``variant``
        (or with the wildcard left in place when ``variant`` is empty)."""
        output = self.outputs[name]
        path = output.path.format(**{self.variant: variant}) if self.variant and variant else output.path
        return path if output.root else f"{self.name}/{path}"

    @property
    def temporary_outputs(self) -> tuple[str, ...]:
        """The outputs config ``temporary`` can make temp(): a generated rule's per-image folders (not its figures)."""
        if self.rule != "generated":
            return ()
        return tuple(n for n, out in self.outputs.items() if out.directory and not out.report)

    def config_keys(self) -> list[str]:
        """The dotted config keys behind the stage's parameters (for tests and documentation)."""
        keys = []
        for param in self.params.values():
            keys += [param] if isinstance(param, str) else list(param.keys)
        return keys


def lookup(cfg: dict, dotted: str):
    value = cfg
    for part in dotted.split("."):
        value = value[part]
    return value


def param_value(cfg: dict, param: Param, variant: str):
    return lookup(cfg, param) if isinstance(param, str) else param.value(cfg, variant)


# ============================================================================ plug-ins
@dataclass(frozen=True)
class ClassifierMethod:
    """How the classifier is trained. ``impl`` ("module:Class") is the torch side (see
    :class:`wsss_stages.lib.nets.classifier.Method`); the rest is light, for the DAG and the leaderboard.

    ``schema``: JSON Schema properties of its section ``train_classifier.<name>`` (with defaults);
    ``label(options)``: its leaderboard name; ``check(options, section)``: problems naming config keys;
    ``relevant(options)``: the options that change what training produces (they enter the checkpoint
    and artifact signatures; default all of them)."""

    name: str
    impl: str
    label: Callable[[dict], str]
    schema: Mapping[str, Any] = field(default_factory=dict)
    check: Callable[[dict, dict], list[str]] | None = None
    relevant: Callable[[dict], dict] | None = None
    description: str = ""


@dataclass(frozen=True)
class CamSource:
    """How class maps are read from a trained classifier. ``impl`` ("module:function") builds the
    maps function ``maps(x) -> [B, C, h, w]`` from ``(model, options, classes)``; None means the
    classifier's own class maps (CAM). ``schema``: properties of ``make_cams.<name>``."""

    name: str
    label: Callable[[dict], str | None]
    impl: str | None = None
    needs_grad: bool = False
    schema: Mapping[str, Any] = field(default_factory=dict)
    check: Callable[[dict], list[str]] | None = None  # problems with the whole config, naming keys
    description: str = ""


@dataclass(frozen=True)
class Refiner:
    """A refinement of CAMs. ``stages`` are its own stages; ``apply`` names the one that refines a
    chain's maps (its wildcard ``source`` is the chain before it: "cams" for the seeds, or e.g. "rw").
    ``output`` is "cams" (CAM format: a background threshold, config key ``threshold``, turns them into
    labels, swept by eval_cams) or "scores" (they carry their own background), or a function of the
    config that says which, or "same" (the kind of the maps it refines). ``accepts``: the kinds
    of maps it can refine (default: CAM format only). ``sections``: top-level config sections it
    brings (name → JSON Schema). ``check(config)``: problems across its keys that the schema cannot
    express, each naming its config key (run whether or not the refiner is used)."""

    name: str
    title: str
    stages: tuple[Stage, ...]
    apply: str
    artifact: str
    output: str | Callable[[dict], str]
    threshold: str | None = None
    accepts: tuple[str, ...] = ("cams",)
    sections: Mapping[str, Any] = field(default_factory=dict)
    check: Callable[[dict], list[str]] | None = None

    def output_kind(self, cfg: dict, input_kind: str = "cams") -> str:
        """ "cams" or "scores" for this config (a refiner may write either, by its settings); "same" as
        its input for a refiner that keeps the kind it reads (e.g. PAMR)."""
        kind = self.output(cfg) if callable(self.output) else self.output
        return input_kind if kind == "same" else kind
