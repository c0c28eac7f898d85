"""Other datasets as VOC-layout trees: COCO 2014 (instances JSON) and a folder of images with a label CSV.

The pipeline reads one layout (:mod:`wsss_stages.lib.data.voc`); ``convert_dataset`` writes any other
source into it once, so the DAG does not care which it came from. Images are linked, not copied
(``JPEGImages/<id>.jpg`` is a symlink to the original, whatever its format); labels become
``Annotations/<id>.xml``, class names ``classes.txt``, masks ``SegmentationClass/<id>.png`` (palette,
255 = void) and the splits ``ImageSets/Segmentation/<split>.txt``.

**COCO** (through pycocotools): the 80 categories, in the order of their COCO ids (1–90 with gaps),
become classes 1–80 (``category_ids.json`` records the mapping). An image's labels are the
categories of all its annotations, crowd ones included. Its mask draws the instances in order of
decreasing area, so where two overlap the smaller one (usually the one in front) keeps its pixels;
crowd regions (``iscrowd: 1``) are then set to 255 (ignored when scoring and training), as is
any pixel they cover. Images with no annotation are kept with no label (the CAM stages leave them
out, the classifier sees them as all-negative).

**Folder**: an image folder (``<id>.<ext>``), a CSV with columns ``id``, ``labels`` (class names
separated by spaces; ``|`` also works) and optionally ``split`` (default ``train``), a class list (one
name per line, background implied first) and optionally a folder of class-index masks ``<id>.png``.
"""

from __future__ import annotations

import csv
import logging
import os
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from wsss_stages import WsssError
from wsss_stages.lib.data.artifacts import IGNORE, load_mask, save_mask, write_json, write_manifest
from wsss_stages.lib.nets.runtime import progress

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def annotation_xml(image_id: str, width: int, height: int, names: Iterable[str]) -> str:
    """A VOC ``Annotations/<id>.xml`` naming the image's classes (what the pipeline reads of it)."""
    objects = "".join(f"<object><name>{name}</name><difficult>0</difficult></object>" for name in names)
    return (
        f"<annotation><folder>VOC2012</folder><filename>{image_id}.jpg</filename>"
        f"<size><width>{width}</width><height>{height}</height><depth>3</depth></size>{objects}</annotation>\n"
    )


def start_tree(root: Path, classes: list[str]) -> None:
    for folder in ("JPEGImages", "Annotations", "SegmentationClass", "ImageSets/Segmentation"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    (root / "classes.txt").write_text("\n".join(["background", *classes]) + "\n")


def link_image(root: Path, image_id: str, source: Path) -> None:
    if not source.is_file():
        raise WsssError(f"missing image {source}")
    os.symlink(source.resolve(), root / "JPEGImages" / f"{image_id}.jpg")


def write_splits(root: Path, splits: dict[str, list[str]]) -> None:
    for split, ids in splits.items():
        (root / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))


# ============================================================================ COCO
def coco_categories(coco) -> tuple[list[str], dict[int, int]]:
    """Class names in COCO id order, and COCO category id -> class index (1-based)."""
    cats = sorted(coco.loadCats(coco.getCatIds()), key=lambda c: c["id"])
    return [c["name"] for c in cats], {c["id"]: i + 1 for i, c in enumerate(cats)}


def coco_mask(coco, annotations: list[dict], index: dict[int, int], height: int, width: int) -> np.ndarray:
    """The semantic mask of one image: instances largest first (smaller ones stay on top), crowds 255."""
    mask = np.zeros((height, width), np.uint8)
    for ann in sorted((a for a in annotations if not a.get("iscrowd")), key=lambda a: -a.get("area", 0)):
        mask[coco.annToMask(ann).astype(bool)] = index[ann["category_id"]]
    for ann in (a for a in annotations if a.get("iscrowd")):
        mask[coco.annToMask(ann).astype(bool)] = IGNORE
    return mask


def convert_coco(splits: dict[str, dict], out: Path) -> list[str]:
    """Write a VOC-layout tree of COCO splits (split -> {"images": folder, "annotations": instances JSON})."""
    try:
        from pycocotools.coco import COCO
    except ImportError:
        raise WsssError("dataset 'coco' needs pycocotools (pip install pycocotools)") from None
    classes, index, all_ids, members = None, None, [], {}
    for split, paths in splits.items():
        annotations = Path(paths["annotations"])
        if not annotations.is_file():
            raise WsssError(f"config key 'coco.splits.{split}.annotations': {annotations} does not exist")
        coco = COCO(str(annotations))
        names, mapping = coco_categories(coco)
        if classes is None:
            classes, index = names, mapping
            start_tree(out, classes)
            write_json(out / "category_ids.json", {str(k): v for k, v in mapping.items()})
        elif names != classes:
            raise WsssError(f"{annotations}: its categories differ from those of the first split")
        ids = []
        for info in progress(coco.loadImgs(sorted(coco.getImgIds())), desc=f"convert_dataset {split}"):
            image_id = Path(info["file_name"]).stem
            link_image(out, image_id, Path(paths["images"]) / info["file_name"])
            anns = coco.loadAnns(coco.getAnnIds(imgIds=info["id"], iscrowd=None))
            labels = sorted({index[a["category_id"]] for a in anns})
            (out / "Annotations" / f"{image_id}.xml").write_text(
                annotation_xml(image_id, info["width"], info["height"], [classes[i - 1] for i in labels])
            )
            save_mask(
                out / "SegmentationClass" / f"{image_id}.png",
                coco_mask(coco, anns, index, info["height"], info["width"]),
            )
            ids.append(image_id)
        members[split] = ids
        all_ids += ids
    write_splits(out, members)
    return all_ids


# ============================================================================ a folder of images
def read_class_list(path: Path) -> list[str]:
    if not Path(path).is_file():
        raise WsssError(f"config key 'folder.classes': {path} does not exist")
    names = [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
    names = names[1:] if names and names[0] == "background" else names
    if not names or len(set(names)) < len(names):
        raise WsssError(f"{path}: needs at least one class name, each once")
    return names


def find_image(folder: Path, image_id: str) -> Path:
    for suffix in IMAGE_SUFFIXES:
        for candidate in (folder / f"{image_id}{suffix}", folder / f"{image_id}{suffix.upper()}"):
            if candidate.is_file():
                return candidate
    raise WsssError(f"no image for id {image_id!r} in {folder} (looked for {', '.join(IMAGE_SUFFIXES)})")


def convert_folder(images: Path, labels: Path, classes_file: Path, masks: Path | None, out: Path) -> list[str]:
    """Write a VOC-layout tree of an image folder labelled by a CSV (id, labels[, split])."""
    classes = read_class_list(classes_file)
    index = {name: i + 1 for i, name in enumerate(classes)}
    if not Path(labels).is_file():
        raise WsssError(f"config key 'folder.labels': {labels} does not exist")
    with open(labels, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or not {"id", "labels"} <= set(rows[0]):
        raise WsssError(f"{labels}: needs a header row with the columns id and labels (and optionally split)")
    start_tree(out, classes)
    members: dict[str, list[str]] = defaultdict(list)
    problems = []
    for line, row in enumerate(rows, start=2):
        image_id = (row["id"] or "").strip()
        names = (row["labels"] or "").replace("|", " ").split()
        unknown = [n for n in names if n not in index]
        if not image_id or unknown:
            problems.append(f"{labels}, line {line}: " + (f"unknown class(es) {unknown}" if image_id else "no id"))
            continue
        try:
            source = find_image(Path(images), image_id)
        except WsssError as error:
            problems.append(str(error))
            continue
        link_image(out, image_id, source)
        with Image.open(source) as image:
            width, height = image.size
        (out / "Annotations" / f"{image_id}.xml").write_text(
            annotation_xml(image_id, width, height, sorted(set(names), key=index.get))
        )
        if masks is not None and (Path(masks) / f"{image_id}.png").is_file():
            save_mask(out / "SegmentationClass" / f"{image_id}.png", load_mask(Path(masks) / f"{image_id}.png"))
        members[(row.get("split") or "train").strip() or "train"].append(image_id)
    if problems:
        raise WsssError(f"{len(problems)} problem(s) in the folder dataset:\n  " + "\n  ".join(problems))
    write_splits(out, dict(members))
    return [i for ids in members.values() for i in ids]


def convert(kind: str, source: dict, out: Path) -> list[str]:
    """Write the tree of a ``coco`` or ``folder`` source into ``out``; returns every image id."""
    if kind == "coco":
        return convert_coco(source["splits"], out)
    if kind == "folder":
        return convert_folder(
            Path(source["images"]),
            Path(source["labels"]),
            Path(source["classes"]),
            Path(source["masks"]) if source.get("masks") else None,
            out,
        )
    raise WsssError(f"unknown dataset kind {kind!r} (config key: dataset)")


def finish_tree(out: Path, kind: str, ids: list[str]) -> None:
    write_manifest(out, "voc-tree", ids, source=kind)
    log.info("wrote a VOC-layout tree of %d %s images to %s", len(ids), kind, out)
