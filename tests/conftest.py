import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wsss_stages.lib.data.artifacts import save_mask
from wsss_stages.lib.data.voc import VOC_CLASSES

REPO = Path(__file__).resolve().parents[1]


def stage_args(stage: str, overrides: dict | None = None, variant: str = "") -> dict:
    """The config arguments a stage's rule passes it, for the schema defaults with ``overrides``."""
    from wsss_stages.lib.plan.config import validate_config
    from wsss_stages.lib.plan.declare import REGISTRY
    from wsss_stages.lib.plan.pipeline import node_params

    return node_params(validate_config(overrides or {}), REGISTRY.stage(stage), variant)


def write_voc_tree(root: Path, ids: dict[str, list[str]], size=(24, 32), classes_txt=None, labels=None) -> Path:
    """A minimal VOC tree: each image gets a mask with one square object of its first class."""
    names = list(classes_txt or VOC_CLASSES)
    default_objects = ["cat", "dog"] if classes_txt is None else names[1:]
    for folder in ("JPEGImages", "SegmentationClass", "Annotations", "ImageSets/Segmentation"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    if classes_txt:
        (root / "classes.txt").write_text("\n".join(classes_txt) + "\n")
    rng = np.random.default_rng(0)
    all_ids = sorted({i for split in ids.values() for i in split})
    for n, image_id in enumerate(all_ids):
        h, w = size
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(root / "JPEGImages" / f"{image_id}.jpg")
        objs = (labels or {}).get(image_id, [default_objects[n % len(default_objects)]])
        mask = np.zeros((h, w), np.uint8)
        for k, name in enumerate(objs):
            mask[4 + k : 12 + k, 4 + 8 * k : 12 + 8 * k] = names.index(name)
        save_mask(root / "SegmentationClass" / f"{image_id}.png", mask)
        objects = "".join(f"<object><name>{o}</name></object>" for o in objs)
        (root / "Annotations" / f"{image_id}.xml").write_text(f"<annotation>{objects}</annotation>")
    for split, members in ids.items():
        (root / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(members) + "\n")
    return root


@pytest.fixture
def voc_tree(tmp_path):
    return write_voc_tree(tmp_path / "VOC2012", {"train": ["a", "b", "c"], "val": ["d"]})


# The README's test command runs the files on pytest-xdist workers (`-n auto --dist loadgroup`). Each file
# is one group, so its module fixtures (a whole tiny DAG run, a fake cluster) are built once, on one worker;
# test_shards joins test_pipeline's group because it reuses that file's finished run.
SAME_WORKER_AS = {"test_shards": "test_pipeline"}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    for item in items:
        item.add_marker(pytest.mark.xdist_group(SAME_WORKER_AS.get(item.path.stem, item.path.stem)))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node, ids):
    """Stop when --dist loadgroup does not group: xdist marks a grouped test by appending "@group" to its
    node id, which pytest 9.2 no longer lets it change (pytest-dev/pytest-xdist#1386). The tests still
    pass then, but every worker builds every module fixture (the tiny DAGs) again: minutes of CI."""
    if node.config.getvalue("dist") == "loadgroup" and ids and not any("@" in nodeid for nodeid in ids):
        pytest.exit(
            "--dist loadgroup does not group the tests on this pytest/pytest-xdist pair (pytest-xdist issue "
            "1386, pytest 9.2): install the Makefile's pinned pytest",
            returncode=4,
        )


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory):
    """The whole DAG of tests/tiny_config.yaml, finished (targets `all benchmarks`). Tests only dry-run it
    or add targets to it; one that must change its artifacts works on a copy."""
    from test_pipeline import snakemake

    workdir = tmp_path_factory.mktemp("dag")
    snakemake(workdir, "all", "benchmarks")
    return workdir


@pytest.fixture(autouse=True)
def _few_threads():
    import torch

    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
