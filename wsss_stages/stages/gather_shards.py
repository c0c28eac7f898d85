"""Stage gather_shards: the shards of a sharded per-image stage assembled into the artifact an
unsharded run writes (folders hard-linked together with one manifest; files merged by the stage's
declared merge function). See :mod:`wsss_stages.lib.plan.shards`."""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path

from wsss_stages import WsssError
from wsss_stages.lib.data.artifacts import named_items
from wsss_stages.lib.plan.registry import import_object, load_plugins
from wsss_stages.lib.plan.shards import gather_folder, gather_json

log = logging.getLogger(__name__)


def gather_shards(*, stage: str, parts: list[str], outputs: list[str], threads: int = 1) -> None:
    """Assemble the outputs of a sharded stage from its shards' outputs.

    Args:
        stage: the sharded stage (its declaration says which outputs are folders and how files merge)
        parts: name=path of each shard's version of each output, shards in order
        outputs: name=path of each gathered output
        threads: unused (gathering links files)
    """
    declared = load_plugins().stage(stage)
    by_name: dict[str, list[Path]] = defaultdict(list)
    for name, path in named_items(parts, "parts"):
        by_name[name].append(Path(path))
    for name, path in named_items(outputs, "outputs"):
        if name not in declared.outputs:
            raise WsssError(f"stage {stage} has no output '{name}' (it has {', '.join(declared.outputs)})")
        shards = by_name.get(name)
        if not shards:
            raise WsssError(f"no shards given for output '{name}' of {stage}")
        if declared.outputs[name].directory:
            files = gather_folder(shards, Path(path))
            log.info("%s: gathered %d files from %d shards into %s", name, files, len(shards), path)
        else:
            gather_json(shards, Path(path), import_object(declared.merge[name]))
            log.info("%s: merged %d shards into %s", name, len(shards), path)
