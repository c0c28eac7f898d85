"""Stage make_affinity_labels: affinity labels from CAMs (irn's cam_to_ir_label): confident foreground, confident background, 255 between.

Foreground: pixels whose CAM exceeds ``conf_fg`` after a CRF on the labels; background:
pixels below ``conf_bg`` after a CRF; where the two disagree or are unsure, 255.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np

from wsss_stages import WsssError
from wsss_stages.lib.artifacts import IGNORE, atomic_dir, load_cams, read_manifest, save_mask, write_manifest
from wsss_stages.lib.crf import crf_on_labels
from wsss_stages.lib.parallel import parallel_map
from wsss_stages.lib.voc import VOCDataset

log = logging.getLogger(__name__)


def confident_labels(cams: np.ndarray, classes: np.ndarray, threshold: float, image: np.ndarray | None) -> np.ndarray:
    """Class map of [threshold, CAMs] by argmax, refined by a label CRF when an image is given."""
    keys = np.concatenate([[0], classes])
    h, w = cams.shape[1:]
    local = np.concatenate([np.full((1, h, w), threshold, np.float32), cams]).argmax(0)
    if image is not None:
        local = crf_on_labels(image, local, len(keys))
    return keys[local]


def affinity_labels(cams: np.ndarray, classes: np.ndarray, conf_fg: float, conf_bg: float, image: np.ndarray | None) -> np.ndarray:
    """0 = confident background, c = confident class c, 255 = unsure."""
    fg = confident_labels(cams, classes, conf_fg, image)
    bg = confident_labels(cams, classes, conf_bg, image)
    labels = fg.astype(np.uint8)
    labels[fg == 0] = IGNORE  # not confidently foreground ...
    labels[(fg == 0) & (bg == 0)] = 0  # ... but confidently background
    return labels


def _one(image_id: str, *, dataset: VOCDataset, cams_dir: Path, out_dir: Path, conf_fg: float, conf_bg: float, crf: bool) -> None:
    cams, classes = load_cams(cams_dir / f"{image_id}.npz")
    image = dataset.load_image(image_id) if crf else None
    save_mask(out_dir / f"{image_id}.png", affinity_labels(cams, classes, conf_fg, conf_bg, image))


def make_affinity_labels(*, cams: Path, data_root: Path, out_dir: Path, conf_fg: float, conf_bg: float, crf: bool, threads: int = 1) -> None:
    """Write affinity labels (palette PNG, 255 = unsure) for every image of a CAM folder.

    Args:
        cams: CAM folder from make_cams
        data_root: VOC2012-layout root (images for the label CRF)
        out_dir: output folder of <id>.png label maps
        conf_fg: CAM score above which a pixel is confident foreground (irn 0.30)
        conf_bg: CAM score below which a pixel is confident background (irn 0.05)
        crf: refine both label maps with irn's label CRF
        threads: worker processes
    """
    if not 0 <= conf_bg <= conf_fg <= 1:
        raise WsssError(f"need 0 <= conf_bg ({conf_bg}) <= conf_fg ({conf_fg}) <= 1 (config: make_affinity_labels)")
    ids = read_manifest(cams, "cams")["ids"]
    dataset = VOCDataset(data_root)
    with atomic_dir(out_dir) as tmp:
        work = functools.partial(_one, dataset=dataset, cams_dir=Path(cams), out_dir=tmp, conf_fg=conf_fg, conf_bg=conf_bg, crf=crf)
        parallel_map(work, ids, threads, desc="make_affinity_labels")
        write_manifest(tmp, "masks", ids, conf_fg=conf_fg, conf_bg=conf_bg, crf=crf, bg_threshold=None, source=str(cams))
    log.info("wrote affinity labels for %d images", len(ids))
