"""Several experiments in one DAG: overlays on one base config.

An experiment is the base config with an overlay from ``experiments:`` deep-merged onto it
(mappings merge, everything else replaces). Its results folder is ``results/<experiment>_<name>/``.
The base config itself keeps ``results/<experiment>/`` (its *home*, :func:`preset_folders`): what an
experiment would build exactly as the base does is built there, so a plain run of the preset and
every overlay run on it share those files across runs.

Which artifacts they share is decided in :mod:`wsss_stages.lib.plan.pipeline` (``Experiments``).
Light on imports on purpose (the Snakefile imports it).
"""

from __future__ import annotations

import copy
from typing import Any

from wsss_stages import WsssError
from wsss_stages.lib.plan.config import validate_config

# overlays may not change these: they name the run as a whole or its shared demo data
RUN_KEYS = ("experiment", "experiments", "leaderboard", "make_demo_data", "plugins", "temporary")


# ============================================================================ expansion
def deep_merge(base: dict, overlay: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def base_config(config: dict[str, Any]) -> dict[str, Any]:
    """The run's config without its overlays: what every experiment is merged onto."""
    return {k: v for k, v in config.items() if k not in ("experiments", "leaderboard")}


def expand_experiments(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Folder name → validated config of each experiment and each of its repeats.

    Without overlays the run is one experiment, named ``experiment``. An experiment with
    ``repeats: N`` becomes N folders: repeat 0 keeps the experiment's folder and seed, repeat r
    trains with ``seed + r`` in ``<folder>_r<r>``. Every config also gets ``repeat``: ``{"of": the
    experiment's folder, "index": r}`` (set after validation: it is not a config key)."""
    overlays = config.get("experiments") or {}
    base = base_config(config)
    if not overlays:
        return dict(with_repeats(config["experiment"], base))
    experiments = {}
    for name, overlay in overlays.items():
        overlay = overlay or {}
        if not isinstance(overlay, dict):
            raise WsssError(f"invalid config:\n  config key 'experiments.{name}' must be a mapping of config keys")
        fixed = [k for k in overlay if k in RUN_KEYS]
        if fixed:
            raise WsssError(
                f"invalid config:\n  config key 'experiments.{name}.{fixed[0]}' belongs to the whole run; set it at "
                f"the top level"
            )
        try:
            merged = validate_config(deep_merge(base, overlay))
        except WsssError as error:
            raise WsssError(str(error).replace("config key '", f"config key 'experiments.{name}.")) from None
        experiments.update(with_repeats(f"{config['experiment']}_{name}", merged))
    return experiments


def preset_folders(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The base config's own folders (its home), when the run has overlays: ``results/<experiment>/``
    and, when experiments repeat, ``<experiment>_r<r>`` for as many repeats as the most-repeated
    experiment, each the base config with that repeat's seed. Without overlays the run is the base."""
    overlays = config.get("experiments") or {}
    if not overlays:
        return {}
    base = base_config(config)
    most = max(
        [config.get("repeats", 1), *((o or {}).get("repeats", 1) for o in overlays.values() if isinstance(o, dict))]
    )
    return dict(with_repeats(config["experiment"], {**base, "repeats": most}))


def with_repeats(folder: str, config: dict[str, Any]):
    """``(folder, config)`` of each repeat of one experiment (the training seed advanced by one each)."""
    for index in range(config.get("repeats", 1)):
        repeat = copy.deepcopy(config)
        repeat["seed"] = config["seed"] + index
        repeat["experiment"] = folder if index == 0 else f"{folder}_r{index}"
        repeat["repeat"] = {"of": folder, "index": index}
        yield repeat["experiment"], repeat
