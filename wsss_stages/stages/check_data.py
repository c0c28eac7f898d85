"""Stage check_data: one pass over everything a run will read, before any compute is spent.

Split files (present, non-empty, naming existing images), every image of those splits (decoded in
full: truncated and non-image files fail here), its labels (XML parsed, class names known) and
its mask where it has one (palette or greyscale, the image's size, values among the classes and
255, not empty), saliency maps where the tree has them. Every problem is collected and reported
at once, naming the file; a missing mask for an image of a scored split is a problem unless
``check_data.allow_missing_masks`` (then counted, and the scoring stages report the count).
The report is written only when the data pass: a failed check leaves no artifact that looks complete.
"""

from __future__ import annotations

import functools
import logging
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
from PIL import Image

from wsss_stages import WsssError
from wsss_stages.lib.data.artifacts import IGNORE, write_json
from wsss_stages.lib.data.voc import VOCDataset
from wsss_stages.lib.nets.parallel import parallel_map

log = logging.getLogger(__name__)
SHOWN = 50  # problems listed in the error message (all of them are in the log)


def read_split(root: Path, split: str) -> tuple[list[str], list[str]]:
    """The ids of a split file and the problems with it."""
    path = root / "ImageSets" / "Segmentation" / f"{split}.txt"
    if not path.is_file():
        return [], [f"{path}: split file missing"]
    ids = [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
    return ids, ([] if ids else [f"{path}: split file is empty"])


def check_image_file(path: Path) -> tuple[tuple[int, int] | None, str | None]:
    """(height, width) of a fully decoded image, or the problem with it."""
    if not path.is_file():
        return None, f"{path}: image missing"
    if path.stat().st_size == 0:
        return None, f"{path}: empty file"
    try:
        with Image.open(path) as image:
            image.load()  # decodes every pixel: a truncated JPEG fails here, not in the middle of training
            return (image.height, image.width), None
    except (OSError, SyntaxError, ValueError) as exc:
        return None, f"{path}: not a readable image ({exc})"


def check_mask_file(path: Path, size: tuple[int, int] | None, num_classes: int, what: str = "mask") -> str | None:
    if path.stat().st_size == 0:
        return f"{path}: empty {what} file"
    try:
        with Image.open(path) as image:
            mode = image.mode
            values = np.array(image)
    except (OSError, SyntaxError, ValueError) as exc:
        return f"{path}: not a readable {what} ({exc})"
    if what == "mask" and mode not in ("P", "L"):
        return f"{path}: {what} must be a palette or greyscale PNG, not mode {mode} (an RGB colour mask?)"
    if what == "saliency map" and mode not in ("L", "P", "I;16"):
        return f"{path}: {what} must be greyscale, not mode {mode}"
    if size is not None and values.shape[:2] != size:
        return f"{path}: {what} is {values.shape[1]}x{values.shape[0]}, its image {size[1]}x{size[0]}"
    if what == "mask":
        bad = np.setdiff1d(np.unique(values), [*range(num_classes), IGNORE])
        if bad.size:
            return f"{path}: mask values {bad.tolist()[:8]} outside 0..{num_classes - 1} and {IGNORE}"
    return None


def check_labels(dataset: VOCDataset, image_id: str, has_mask: bool) -> str | None:
    path = dataset.root / "Annotations" / f"{image_id}.xml"
    if not path.is_file():
        return None if has_mask else f"{path}: no labels (no annotation file and no mask)"
    try:
        names = [(obj.findtext("name") or "").strip() for obj in ET.parse(path).getroot().iter("object")]
    except ET.ParseError as exc:
        return f"{path}: malformed XML ({exc})"
    unknown = sorted(set(names) - set(dataset.class_names[1:]))
    return f"{path}: unknown class name(s) {unknown}" if unknown else None


def check_one(
    image_id: str, *, dataset: VOCDataset, scored: frozenset, saliency: bool, masks: bool
) -> tuple[list[str], bool]:
    """The problems of one image and whether it is a scored image without a mask."""
    size, problem = check_image_file(dataset.image_path(image_id))
    problems = [problem] if problem else []
    has_mask = masks and dataset.has_mask(image_id)
    if has_mask:
        problems.append(check_mask_file(dataset.mask_path(image_id), size, dataset.num_classes))
    problems.append(check_labels(dataset, image_id, has_mask))
    if saliency and dataset.saliency_path(image_id).is_file():
        problems.append(check_mask_file(dataset.saliency_path(image_id), size, dataset.num_classes, "saliency map"))
    return [p for p in problems if p], image_id in scored and not has_mask


def check_data(
    *,
    data_root: Path,
    out_report: Path,
    splits: list[str],
    scored_splits: list[str],
    mask_folder: str | None,
    allow_missing_masks: bool,
    fingerprint: str,
    threads: int = 1,
) -> None:
    """Check every file the run will read; write a report, or fail listing every problem.

    Args:
        data_root: VOC2012-layout root
        out_report: JSON report (images per split, missing masks, seconds); written only when the data pass
        splits: every split the run reads
        scored_splits: splits whose images are scored against masks (a missing mask there is a problem)
        mask_folder: SegmentationClass or SegmentationClassAug (None: whichever exists)
        allow_missing_masks: count scored images without a mask instead of failing
        fingerprint: identity of the data tree (names, sizes, times): the check reruns when it changes
        threads: worker processes
    """
    start = time.perf_counter()
    # the run reads a VOC tree through a content-named link under .snakemake/; problems name the user's own files
    dataset = VOCDataset(Path(data_root).resolve(), mask_folder)
    problems, members = [], {}
    try:
        _ = dataset.class_names  # reads the class list: a missing or malformed one is a problem to report
    except WsssError as error:
        problems.append(str(error))
    for split in splits:
        ids, split_problems = read_split(dataset.root, split)
        members[split], problems = ids, problems + split_problems
    unique = list(dict.fromkeys(i for ids in members.values() for i in ids))
    try:
        masks = dataset.mask_path("x").parent
    except WsssError as error:  # no mask folder at all: a labels-only run, unless the config named one
        if mask_folder:
            problems.append(str(error))
        masks = None
    scored = frozenset(i for s in scored_splits for i in members.get(s, []))
    saliency = (dataset.root / "SaliencyMaps").is_dir()
    work = functools.partial(check_one, dataset=dataset, scored=scored, saliency=saliency, masks=masks is not None)
    results = parallel_map(work, unique, threads, desc="check_data") if unique else []
    missing = [image_id for image_id, (_, no_mask) in zip(unique, results) if no_mask]
    for image_problems, _ in results:
        problems += image_problems
    labels_only = masks is None or not any(dataset.has_mask(i) for i in unique)
    if missing and not labels_only and not allow_missing_masks:
        problems.append(
            f"{len(missing)} image(s) of the scored splits {scored_splits} have no mask in {masks}, "
            f"first: {missing[:5]} (set check_data.allow_missing_masks to score without them)"
        )
    seconds = time.perf_counter() - start
    for problem in problems:
        log.error("%s", problem)
    if problems:
        listed = "\n  ".join(problems[:SHOWN]) + (
            f"\n  … and {len(problems) - SHOWN} more (see the log)" if len(problems) > SHOWN else ""
        )
        raise WsssError(f"{len(problems)} problem(s) in {dataset.root}:\n  {listed}")
    if labels_only:
        log.info("no image has a mask: a labels-only run (scores that need masks are left out of the reports)")
    elif missing:
        log.warning("%d scored image(s) have no mask and will not be scored, first: %s", len(missing), missing[:5])
    report = {
        "data_root": str(Path(dataset.root).resolve()),
        "fingerprint": fingerprint,
        "images": len(unique),
        "splits": {s: len(ids) for s, ids in members.items()},
        "saliency_maps": saliency,
        "labels_only": labels_only,
        "missing_masks": {"count": len(missing), "first": missing[:10]},
        "seconds": round(seconds, 2),
        "seconds_per_1000_images": round(1000 * seconds / max(len(unique), 1), 2),
    }
    write_json(out_report, report)
    log.info("%d images of %s checked in %.1f s: no problem", len(unique), dataset.root, seconds)
