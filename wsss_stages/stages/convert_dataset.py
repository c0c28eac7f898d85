"""Stage convert_dataset: a COCO 2014 or image-folder dataset written once as a VOC-layout tree
(images linked, labels as XML, masks as palette PNGs), so that every other stage reads one layout.
What is converted how: :mod:`wsss_stages.lib.data.datasets`."""

from __future__ import annotations

from pathlib import Path

from wsss_stages.lib.data.artifacts import atomic_dir
from wsss_stages.lib.data.datasets import convert, finish_tree


def convert_dataset(*, kind: str, source: dict, out_dir: Path, threads: int = 1) -> None:
    """Write the tree of a coco or folder dataset (it becomes the run's data root).

    Args:
        kind: coco or folder (config key dataset)
        source: the config section of that kind (coco: splits -> images, annotations; folder: images, labels, classes,
            masks)
        out_dir: the tree to create, e.g. results/convert_dataset/<key>/VOC2012
        threads: unused (one process)
    """
    with atomic_dir(Path(out_dir)) as tmp:
        finish_tree(tmp, kind, convert(kind, source, tmp))
