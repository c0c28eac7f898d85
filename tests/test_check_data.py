"""check_data: every kind of bad data fails before any training, naming the file, all problems at once."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import write_voc_tree
from PIL import Image

from wsss_stages import WsssError
from wsss_stages.stages.check_data import check_data


def run_check(root, tmp_path, allow_missing=False, splits=("train", "val"), mask_folder=None):
    out = tmp_path / "report.json"
    check_data(
        data_root=root,
        out_report=out,
        splits=list(splits),
        scored_splits=["train", "val"],
        mask_folder=mask_folder,
        allow_missing_masks=allow_missing,
        fingerprint="test",
    )
    return json.loads(out.read_text())


@pytest.fixture
def tree(tmp_path):
    return write_voc_tree(tmp_path / "VOC2012", {"train": ["a", "b", "c", "d"], "val": ["e", "f"]})


def test_a_clean_tree_passes_with_a_report(tree, tmp_path):
    report = run_check(tree, tmp_path)
    assert (
        report["images"] == 6 and report["splits"] == {"train": 4, "val": 2} and report["missing_masks"]["count"] == 0
    )
    assert report["seconds_per_1000_images"] >= 0


@pytest.mark.parametrize(
    "damage, named",
    [
        (
            lambda r: (r / "JPEGImages/a.jpg").write_bytes((r / "JPEGImages/a.jpg").read_bytes()[:200]),
            "JPEGImages/a.jpg",
        ),
        (lambda r: (r / "JPEGImages/a.jpg").write_text("not an image"), "JPEGImages/a.jpg"),
        (lambda r: (r / "JPEGImages/a.jpg").write_bytes(b""), "a.jpg: empty file"),
        (lambda r: (r / "SegmentationClass/b.png").unlink(), "have no mask"),
        (
            lambda r: Image.fromarray(np.zeros((5, 5), np.uint8), mode="L").save(r / "SegmentationClass/b.png"),
            "SegmentationClass/b.png",
        ),
        (
            lambda r: Image.fromarray(np.zeros((24, 32, 3), np.uint8)).save(r / "SegmentationClass/b.png"),
            "not mode RGB",
        ),
        (
            lambda r: Image.fromarray(np.full((24, 32), 77, np.uint8), mode="L").save(r / "SegmentationClass/b.png"),
            "mask values [77]",
        ),
        (lambda r: (r / "SegmentationClass/b.png").write_bytes(b""), "empty mask file"),
        (
            lambda r: (r / "Annotations/c.xml").write_text(
                "<annotation><object><name>unicorn</name></object></annotation>"
            ),
            "unicorn",
        ),
        (lambda r: (r / "Annotations/c.xml").write_text("<annotation><object>"), "malformed XML"),
        (lambda r: (r / "ImageSets/Segmentation/val.txt").unlink(), "val.txt: split file missing"),
        (lambda r: (r / "ImageSets/Segmentation/val.txt").write_text("\n"), "val.txt: split file is empty"),
        (lambda r: (r / "ImageSets/Segmentation/val.txt").write_text("e\nghost\n"), "ghost.jpg: image missing"),
    ],
)
def test_each_kind_of_bad_data_is_named(tree, tmp_path, damage, named):
    damage(tree)
    with pytest.raises(WsssError, match="problem") as error:
        run_check(tree, tmp_path)
    assert named in str(error.value)
    assert not (tmp_path / "report.json").exists()  # nothing that looks like a passed check


def test_several_problems_are_reported_together(tree, tmp_path):
    (tree / "JPEGImages/a.jpg").write_text("not an image")
    (tree / "SegmentationClass/f.png").write_bytes(b"")
    (tree / "Annotations/c.xml").write_text("<annotation><object><name>unicorn</name></object></annotation>")
    with pytest.raises(WsssError, match="3 problem") as error:
        run_check(tree, tmp_path)
    assert all(name in str(error.value) for name in ("a.jpg", "f.png", "c.xml"))


def test_missing_masks_may_be_allowed_and_are_counted(tree, tmp_path):
    (tree / "SegmentationClass/e.png").unlink()
    report = run_check(tree, tmp_path, allow_missing=True)
    assert report["missing_masks"] == {"count": 1, "first": ["e"]}


def test_data_fingerprint_follows_contents_not_modification_times(tree, tmp_path, monkeypatch):
    from wsss_stages.lib.plan import pipeline

    def fingerprint(root):
        pipeline.tree_digest.cache_clear()  # one DAG build each
        return pipeline.data_fingerprint({"dataset": "voc", "data_root": str(root)}, cache_dir=tmp_path / "cache")

    first = fingerprint(tree)
    image = next((tree / "JPEGImages").iterdir())
    os.utime(image, ns=(1, 1))  # touched (a copy, a re-mount): same data
    assert fingerprint(tree) == first
    reads = []
    real = pipeline._file_sha1
    monkeypatch.setattr(pipeline, "_file_sha1", lambda path: reads.append(path.name) or real(path))
    assert fingerprint(tree) == first and reads == []  # unchanged files come from the hash cache
    mask = next((tree / "SegmentationClass").iterdir())
    data = bytearray(mask.read_bytes())
    data[-1] ^= 1  # same size, same name, other content
    mask.write_bytes(bytes(data))
    assert fingerprint(tree) != first and reads == [mask.name]


def test_the_stages_read_a_tree_through_a_link_named_by_its_contents(tree, tmp_path):
    import shutil

    from wsss_stages.lib.plan import pipeline

    links = tmp_path / "links"
    moved = tmp_path / "scratch" / "VOC2012"
    shutil.copytree(tree, moved)
    first = pipeline.linked_data_root({"dataset": "voc", "data_root": str(tree)}, links)
    assert Path(first).resolve() == tree.resolve()
    second = pipeline.linked_data_root({"dataset": "voc", "data_root": str(moved)}, links)
    assert second == first and Path(second).resolve() == moved.resolve()  # same data, same path: nothing reruns
    mask = next((moved / "SegmentationClass").iterdir())
    mask.write_bytes(mask.read_bytes()[:-1])
    pipeline.tree_digest.cache_clear()
    assert pipeline.linked_data_root({"dataset": "voc", "data_root": str(moved)}, links) != first  # other data
    blocked = tmp_path / "blocked"
    blocked.write_text("not a folder")  # a workflow directory where no link can be made
    assert pipeline.linked_data_root({"dataset": "voc", "data_root": str(tree)}, blocked / "links") == str(tree)


def test_a_tree_without_any_mask_is_a_labels_only_run(tree, tmp_path):
    import shutil

    shutil.rmtree(tree / "SegmentationClass")
    report = run_check(tree, tmp_path)
    assert report["labels_only"] and report["missing_masks"]["count"] > 0
    with pytest.raises(WsssError, match="no SegmentationClass folder"):
        run_check(tree, tmp_path, mask_folder="SegmentationClass")  # a named mask folder must exist
