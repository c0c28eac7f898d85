"""COCO 2014 and image-folder datasets, converted to the VOC layout the pipeline reads."""

import json

import numpy as np
import pytest
from PIL import Image

from wsss_stages import WsssError
from wsss_stages.lib.data.voc import VOCDataset

pytest.importorskip("pycocotools")


def write_coco(root, split, images):
    """A tiny instances JSON: ``images`` = [(file stem, [(category id, polygon box (x0, y0, x1, y1), iscrowd)])]."""
    folder = root / f"{split}2014"
    folder.mkdir(parents=True)
    cats = [
        {"id": 1, "name": "person", "supercategory": "person"},
        {"id": 3, "name": "car", "supercategory": "vehicle"},
        {"id": 18, "name": "dog", "supercategory": "animal"},
    ]  # ids with gaps, like COCO's
    data = {"images": [], "annotations": [], "categories": cats}
    for n, (stem, objects) in enumerate(images, start=1):
        rng = np.random.default_rng(n)
        Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(folder / f"{stem}.jpg")
        data["images"].append({"id": n, "file_name": f"{stem}.jpg", "height": 40, "width": 60})
        for cat, (x0, y0, x1, y1), crowd in objects:
            ann = {
                "id": len(data["annotations"]) + 1,
                "image_id": n,
                "category_id": cat,
                "iscrowd": crowd,
                "area": float((x1 - x0) * (y1 - y0)),
                "bbox": [x0, y0, x1 - x0, y1 - y0],
            }
            if crowd:  # uncompressed RLE, column-major, as COCO stores crowds
                m = np.zeros((40, 60), np.uint8)
                m[y0:y1, x0:x1] = 1
                flat, counts, value, run = m.flatten(order="F"), [], 0, 0
                for v in flat:
                    if v == value:
                        run += 1
                    else:
                        counts.append(run)
                        value, run = v, 1
                counts.append(run)
                ann["segmentation"] = {"counts": counts, "size": [40, 60]}
            else:
                ann["segmentation"] = [[x0, y0, x1, y0, x1, y1, x0, y1]]
            data["annotations"].append(ann)
    path = root / "annotations" / f"instances_{split}2014.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(data))
    return {"images": str(folder), "annotations": str(path)}


def test_coco_becomes_a_voc_tree_with_contiguous_classes_crowds_ignored_and_small_instances_on_top(tmp_path):
    from wsss_stages.stages.convert_dataset import convert_dataset

    splits = {
        "train": write_coco(
            tmp_path,
            "train",
            [("a", [(1, (0, 0, 40, 40), 0), (18, (10, 10, 20, 20), 0), (3, (50, 0, 60, 10), 1)]), ("b", [])],
        ),
        "val": write_coco(tmp_path, "val", [("c", [(3, (5, 5, 25, 25), 0)])]),
    }
    convert_dataset(kind="coco", source={"splits": splits}, out_dir=tmp_path / "VOC2012")
    ds = VOCDataset(tmp_path / "VOC2012")
    assert ds.class_names == ("background", "person", "car", "dog")  # COCO id order 1, 3, 18 -> 1, 2, 3
    assert ds.split_ids("train") == ["a", "b"] and ds.split_ids("val") == ["c"]
    assert ds.labels("a").tolist() == [1, 2, 3] and ds.labels("b").tolist() == []  # the crowd's class is a label too
    mask = ds.load_mask("a")
    assert mask[15, 15] == 3 and mask[30, 30] == 1  # the small dog drawn over the large person
    assert (mask[0:10, 50:60] == 255).all() and mask[35, 55] == 0  # the crowd is void
    assert ds.load_image("c").shape == (40, 60, 3) and (tmp_path / "VOC2012" / "JPEGImages" / "c.jpg").is_symlink()
    assert json.loads((tmp_path / "VOC2012" / "category_ids.json").read_text()) == {"1": 1, "3": 2, "18": 3}


def write_folder(tmp_path, rows, masks=False):
    images = tmp_path / "photos"
    images.mkdir()
    for stem in ("x", "y", "z"):
        Image.fromarray(np.full((20, 30, 3), 90, np.uint8)).save(images / f"{stem}.png")
    (tmp_path / "labels.csv").write_text("id,labels,split\n" + "".join(f"{r}\n" for r in rows))
    (tmp_path / "classes.txt").write_text("cat\ndog\n")
    mask_dir = None
    if masks:
        mask_dir = tmp_path / "masks"
        mask_dir.mkdir()
        Image.fromarray(np.ones((20, 30), np.uint8), mode="L").save(mask_dir / "x.png")
    return {
        "images": str(images),
        "labels": str(tmp_path / "labels.csv"),
        "classes": str(tmp_path / "classes.txt"),
        "masks": str(mask_dir) if mask_dir else None,
    }


def test_an_image_folder_with_a_label_csv_becomes_a_voc_tree(tmp_path):
    from wsss_stages.stages.convert_dataset import convert_dataset

    source = write_folder(tmp_path, ["x,cat,train", "y,cat dog,train", "z,dog,val"], masks=True)
    convert_dataset(kind="folder", source=source, out_dir=tmp_path / "VOC2012")
    ds = VOCDataset(tmp_path / "VOC2012")
    assert (
        ds.class_names == ("background", "cat", "dog")
        and ds.split_ids("train") == ["x", "y"]
        and ds.split_ids("val") == ["z"]
    )
    assert ds.labels("y").tolist() == [1, 2] and ds.has_mask("x") and not ds.has_mask("y")
    assert ds.load_image("x").shape == (20, 30, 3)  # a PNG behind the .jpg link


def test_folder_problems_are_reported_together_naming_the_lines(tmp_path):
    from wsss_stages.stages.convert_dataset import convert_dataset

    source = write_folder(tmp_path, ["x,cat", "q,dog", "z,horse"])
    with pytest.raises(WsssError) as error:
        convert_dataset(kind="folder", source=source, out_dir=tmp_path / "VOC2012")
    assert (
        "2 problem(s)" in str(error.value)
        and "no image for id 'q'" in str(error.value)
        and "line 4: unknown class(es) ['horse']" in str(error.value)
    )
    assert not (tmp_path / "VOC2012").exists()


def test_missing_sources_are_config_errors(tmp_path):
    from wsss_stages.lib.plan.config import validate_config

    with pytest.raises(WsssError, match="config key 'folder.labels' is required"):
        validate_config({"dataset": "folder", "folder": {"images": str(tmp_path), "classes": str(tmp_path)}})
    with pytest.raises(WsssError, match="config key 'coco.splits.train.annotations'"):
        validate_config(
            {
                "dataset": "coco",
                "coco": {"splits": {"train": {"images": str(tmp_path), "annotations": str(tmp_path / "no.json")}}},
            }
        )


SEEDS_ONLY = [
    "make_pseudo_masks={refinement: none, compare: []}",
    "train_segmentation={enabled: false}",
    "eval_cams={score_val: false}",
    "train_classifier={training: {epochs: 3}}",
]


@pytest.mark.integration
@pytest.mark.parametrize("kind", ["coco", "folder"])
def test_a_converted_dataset_runs_the_dag_to_its_seeds(tmp_path, kind):
    from test_pipeline import snakemake

    if kind == "coco":
        boxes = [(1, (0, 0, 30, 40), 0), (3, (30, 10, 60, 30), 0)]
        splits = {
            "train": write_coco(tmp_path, "train", [(f"t{i}", boxes[: 1 + i % 2]) for i in range(16)]),
            "val": write_coco(tmp_path, "val", [("v0", boxes)]),
        }
        settings = [f"coco={json.dumps({'splits': splits})}"]
    else:
        source = write_folder(tmp_path, ["x,cat,train", "y,cat dog,train", "z,dog,train"], masks=True)
        settings = [f"folder={json.dumps(source)}", "check_data={allow_missing_masks: true}"]
    split_cfg = "splits={classifier: train, seeds: train, segmentation: train, val: " + (
        "val}" if kind == "coco" else "train}"
    )
    batch = [] if kind == "coco" else ["train_classifier={training: {epochs: 3, batch_size: 2}}"]
    snakemake(tmp_path / "w", "--config", f"dataset={kind}", split_cfg, *settings, *SEEDS_ONLY, *batch)
    metrics = json.loads((tmp_path / "w" / "results" / "tiny" / "metrics.json").read_text())
    assert metrics["cam_miou"] is not None and (tmp_path / "w" / "results" / "convert_dataset").is_dir()


def test_the_coco_preset_validates_once_its_files_are_named(tmp_path):
    import yaml
    from conftest import REPO

    from wsss_stages.lib.plan.config import validate_config

    preset = yaml.safe_load((REPO / "configs" / "coco14.yaml").read_text())
    (tmp_path / "a.json").write_text("{}")
    preset["coco"] = {
        "splits": {s: {"images": str(tmp_path), "annotations": str(tmp_path / "a.json")} for s in ("train", "val")}
    }
    cfg = validate_config(preset)
    assert (
        cfg["shards"]["make_cams"] == 64
        and cfg["processes"]["train_classifier"] == 4
        and cfg["temporary"] == ["refine_crf"]
    )


def test_train_aug_from_sbd_takes_official_masks_first_and_leaves_val_out(tmp_path):
    from conftest import write_voc_tree
    from scipy.io import savemat

    from wsss_stages.stages.build_train_aug import build_train_aug

    voc = write_voc_tree(tmp_path / "VOC2012", {"train": ["t1"], "val": ["v1"]}, size=(8, 10))
    sbd = tmp_path / "sbd"
    (sbd / "cls").mkdir(parents=True)
    for image_id in ("s1", "t1", "v1"):  # s1 only in SBD; t1 and v1 in both
        Image.fromarray(np.zeros((8, 10, 3), np.uint8)).save(voc / "JPEGImages" / f"{image_id}.jpg")
        seg = np.full((8, 10), 2, np.uint8)
        savemat(sbd / "cls" / f"{image_id}.mat", {"GTcls": {"Segmentation": seg, "CategoriesPresent": np.array([2])}})
    (sbd / "train.txt").write_text("s1\nv1\n")
    (sbd / "val.txt").write_text("t1\n")
    build_train_aug(sbd=sbd, voc=voc)
    assert (voc / "ImageSets" / "Segmentation" / "train_aug.txt").read_text().split() == ["s1", "t1"]
    aug = VOCDataset(voc, "SegmentationClassAug")
    assert (aug.load_mask("s1") == 2).all()  # from SBD
    assert (aug.load_mask("t1") == VOCDataset(voc).load_mask("t1")).all()  # the official mask wins
    with pytest.raises(WsssError, match="already exists"):
        build_train_aug(sbd=sbd, voc=voc)
