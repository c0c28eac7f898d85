"""Command build_train_aug: VOC 2012's 10,582-image ``train_aug`` from the SBD annotations (Hariharan
et al. 2011), the first thing the GPU preset needs.

It writes into the VOC tree, and never over anything already there:

- ``SegmentationClassAug/<id>.png`` (palette, 255 = void): the SBD mask (``cls/<id>.mat``, field
  ``GTcls.Segmentation``) of every SBD image, and VOC's official mask (``SegmentationClass/``) of every
  VOC train/val image, which wins where both exist (it carries the void borders and is the one scored);
- ``ImageSets/Segmentation/train_aug.txt``: (VOC train ∪ SBD train ∪ SBD val) − VOC val, sorted.

Every image must be in ``JPEGImages/`` (SBD's images are VOC 2011's, all in VOC 2012); a missing one
stops the command naming it, with nothing written.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np

from wsss_stages import WsssError
from wsss_stages.lib.data.artifacts import atomic_dir, atomic_path, save_mask
from wsss_stages.lib.nets.runtime import progress

log = logging.getLogger(__name__)


def read_ids(path: Path) -> list[str]:
    if not path.is_file():
        raise WsssError(f"missing list {path}")
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


def sbd_mask(path: Path) -> np.ndarray:
    from scipy.io import loadmat

    try:
        return np.asarray(loadmat(path, squeeze_me=True, struct_as_record=False)["GTcls"].Segmentation, np.uint8)
    except (OSError, KeyError, AttributeError, ValueError) as exc:
        raise WsssError(f"{path} is not an SBD class annotation (GTcls.Segmentation): {exc}") from None


def build_train_aug(*, sbd: Path, voc: Path, threads: int = 1) -> None:
    """Write SegmentationClassAug/ and ImageSets/Segmentation/train_aug.txt into a VOC 2012 tree from SBD.

    Args:
        sbd: SBD's dataset folder (benchmark_RELEASE/dataset: cls/, train.txt, val.txt)
        voc: the VOC2012 tree (JPEGImages/, SegmentationClass/, ImageSets/Segmentation/train.txt, val.txt)
        threads: unused (one process)
    """
    sbd, voc = Path(sbd), Path(voc)
    lists = voc / "ImageSets" / "Segmentation"
    out_masks, out_list = voc / "SegmentationClassAug", lists / "train_aug.txt"
    for existing in (out_masks, out_list):
        if existing.exists():
            raise WsssError(f"{existing} already exists: remove it to build it again")
    voc_train, voc_val = read_ids(lists / "train.txt"), read_ids(lists / "val.txt")
    sbd_ids = sorted(set(read_ids(sbd / "train.txt")) | set(read_ids(sbd / "val.txt")))
    official = set(voc_train) | set(voc_val)
    train_aug = sorted((set(voc_train) | set(sbd_ids)) - set(voc_val))
    missing = [i for i in sorted(set(sbd_ids) | official) if not (voc / "JPEGImages" / f"{i}.jpg").is_file()]
    if missing:
        raise WsssError(
            f"{len(missing)} image(s) of SBD / VOC lists are not in {voc / 'JPEGImages'}, first: {missing[:3]}"
        )
    with atomic_dir(out_masks) as tmp:
        for image_id in progress(sorted(official), desc="VOC masks"):
            shutil.copyfile(voc / "SegmentationClass" / f"{image_id}.png", tmp / f"{image_id}.png")
        for image_id in progress([i for i in sbd_ids if i not in official], desc="SBD masks"):
            save_mask(tmp / f"{image_id}.png", sbd_mask(sbd / "cls" / f"{image_id}.mat"))
    with atomic_path(out_list) as tmp:
        tmp.write_text("".join(f"{i}\n" for i in train_aug))
    log.info(
        "train_aug: %d images (VOC train %d, SBD %d, minus VOC val %d); %d masks in %s",
        len(train_aug),
        len(voc_train),
        len(sbd_ids),
        len(voc_val),
        len(official | set(sbd_ids)),
        out_masks,
    )
