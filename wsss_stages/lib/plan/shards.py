"""Sharded per-image stages: one job per slice of the images, gathered into the usual artifact.

A per-image stage (``make_cams``, ``refine_crf``, ``random_walk``, ``make_pseudo_masks``,
``predict_segmentation``, …; declared with ``shardable=True``) takes a ``shard`` argument
``"k/N"``: it processes the k-th of N slices of its images and writes the same files it would
write unsharded, with a manifest that also records the shard and the full, ordered id list
(``all_ids``). ``"0/1"`` is the whole set, the stage as it always ran.

With ``shards: N`` (config), the shard jobs write under
``results/<experiment>/<stage>/shards/<k>of<N>/`` (temporary: Snakemake deletes them once
gathered) and ``gather_shards`` assembles the artifact consumers read, at its usual path:

- a folder with a manifest: the shards' files are hard-linked (copied across file systems) into
  one folder, and the manifest becomes the one an unsharded run writes: ``ids`` in the original
  order, the other fields equal in every shard (checked), per-image timings averaged;
- a folder without a manifest (figures): the union of the files;
- a JSON file: merged by the stage's declared merge function (e.g. the random walk's affinity
  histograms are summed and the ROC-AUC computed from the sums).

A slice is chosen so that no image's result depends on the shard count: images that a stage
batches together (make_cams batches images of equal size) stay in one shard, so fp32 artifacts
are byte-identical for every N (tested).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from wsss_stages import WsssError
from wsss_stages.lib.data.artifacts import MANIFEST, atomic_dir, read_manifest, write_json

T = TypeVar("T")
SHARD_FIELDS = ("shard", "all_ids")  # manifest fields only a shard's manifest has
AVERAGED_FIELDS = ("seconds_per_image",)  # per-shard measurements, averaged over images when gathered


@dataclass(frozen=True)
class Shard:
    """Slice ``index`` of ``count`` (0-based)."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        match = re.fullmatch(r"(\d+)/(\d+)", str(text).strip())
        if not match or not 0 <= int(match[1]) < int(match[2]):
            raise WsssError(f"shard must be 'k/N' with 0 <= k < N, not {text!r}")
        return cls(int(match[1]), int(match[2]))

    @property
    def whole(self) -> bool:
        return self.count == 1

    def take(self, items: Sequence[T]) -> list[T]:
        """This shard's items: every count-th item from index (balanced, and the same for any run)."""
        return list(items)[self.index :: self.count]

    def take_groups(self, groups: Sequence[Sequence[str]], ids: Sequence[str]) -> tuple[list, list[str]]:
        """This shard's groups when whole ``groups`` (e.g. batches) must stay together, and their ids in
        the order of ``ids``."""
        mine = self.take(groups)
        members = {i for group in mine for i in group}
        return mine, [i for i in ids if i in members]

    def manifest_fields(self, all_ids: Sequence[str]) -> dict:
        """What a shard's manifest adds (nothing for the whole set: an unsharded artifact is unchanged)."""
        return {} if self.whole else {"shard": {"index": self.index, "count": self.count}, "all_ids": list(all_ids)}

    @property
    def spec(self) -> str:
        """The stage argument: ``k/N`` (0-based k)."""
        return f"{self.index}/{self.count}"

    @property
    def folder(self) -> str:
        """The wildcard value of this shard in paths: ``<k>of<N>`` (1-based k, for people)."""
        return f"{self.index + 1}of{self.count}"


WHOLE = Shard(0, 1)


def shard_from_folder(folder: str) -> Shard:
    match = re.fullmatch(r"(\d+)of(\d+)", folder)
    if not match:
        raise WsssError(f"shard folder must be '<k>of<N>', not {folder!r}")
    return Shard.parse(f"{int(match[1]) - 1}/{match[2]}")


# ============================================================================ gathering
def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def merged_manifest(manifests: Sequence[dict], where: str) -> dict:
    """The manifest an unsharded run writes, from those of its shards."""
    first = manifests[0]
    all_ids = first.get("all_ids")
    if all_ids is None:
        raise WsssError(f"{where}: shard manifests lack 'all_ids' (written by an unsharded run?)")
    counts = {m.get("shard", {}).get("count") for m in manifests}
    if counts != {len(manifests)}:
        raise WsssError(f"{where}: expected {len(manifests)} shards, the manifests say {sorted(map(str, counts))}")
    seen: list[str] = [i for m in manifests for i in m["ids"]]
    if sorted(seen) != sorted(all_ids):
        raise WsssError(
            f"{where}: the shards hold {len(seen)} images, not the {len(all_ids)} of the whole set exactly once"
        )
    skip = {"ids", "count", "sizes", *SHARD_FIELDS, *AVERAGED_FIELDS}
    for manifest in manifests[1:]:
        for key in set(manifest) | set(first):
            if key not in skip and manifest.get(key) != first.get(key):
                raise WsssError(f"{where}: shards disagree on manifest field '{key}'")
    merged = {}
    for key, value in first.items():  # same key order as an unsharded manifest
        if key in SHARD_FIELDS:
            continue
        if key == "ids":
            value = list(all_ids)
        elif key == "count":
            value = len(all_ids)
        elif key == "sizes":
            value = dict(sorted((name, size) for m in manifests for name, size in m.get("sizes", {}).items()))
        elif key in AVERAGED_FIELDS:
            weighted = [(m[key], len(m["ids"])) for m in manifests if m.get(key) is not None]
            value = sum(v * n for v, n in weighted) / sum(n for _, n in weighted) if weighted else None
        merged[key] = value
    return merged


def gather_folder(shard_dirs: Sequence[Path], out_dir: Path) -> int:
    """Assemble per-image folders into ``out_dir`` (atomically); returns the number of files."""
    shard_dirs = [Path(d) for d in shard_dirs]
    with_manifest = [(d / MANIFEST).is_file() for d in shard_dirs]
    if any(with_manifest) and not all(with_manifest):
        missing = [str(d) for d, has in zip(shard_dirs, with_manifest) if not has]
        raise WsssError(f"incomplete shard folders (no {MANIFEST}): {', '.join(missing)}")
    files = 0
    with atomic_dir(out_dir) as tmp:
        for folder in shard_dirs:
            for entry in sorted(folder.iterdir()):
                if entry.name == MANIFEST or entry.name.startswith("."):  # Snakemake's .snakemake_timestamp
                    continue
                if (tmp / entry.name).exists():
                    raise WsssError(f"{entry.name} is in more than one shard of {out_dir}")
                _link_or_copy(entry, tmp / entry.name)
                files += 1
        if all(with_manifest):
            manifest = merged_manifest([read_manifest(d) for d in shard_dirs], str(out_dir))
            write_json(tmp / MANIFEST, manifest)
    return files


def gather_json(shard_files: Sequence[Path], out_file: Path, merge: Callable[[list[dict]], dict]) -> None:
    reports = []
    for path in shard_files:
        try:
            reports.append(json.loads(Path(path).read_text()))
        except FileNotFoundError:
            raise WsssError(f"missing shard file {path}") from None
    write_json(out_file, merge(reports))
