"""``wsss predict``: apply a trained segmentation network to a folder of new images.

Not a pipeline stage (no rule runs it): the command a user runs after training, e.g.

    wsss predict --model results/voc12_cpu/train_segmentation/crf/model.pt --images my_photos/ --out-dir my_masks/
    --overlays true

Writes ``<name>.png`` palette masks (the VOC colours, class index = pixel value) and, when asked,
``<name>_overlay.jpg`` (the image with the mask blended over it), with a progress bar.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from wsss_stages import WsssError
from wsss_stages.lib.data.artifacts import atomic_dir, save_mask, write_manifest
from wsss_stages.lib.evaluation.figures import colour_labels
from wsss_stages.lib.nets.inference import load_segmentation_net, predict_mask
from wsss_stages.lib.nets.runtime import autocast, pick_device, progress, set_threads

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def image_files(folder: Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise WsssError(f"{folder} is not a folder of images")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise WsssError(f"{folder} holds no image ({', '.join(IMAGE_SUFFIXES)})")
    return files


def overlay(image: np.ndarray, mask: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """The image with the coloured mask blended over its labelled (non-background) pixels."""
    colours = colour_labels(mask).astype(np.float32)
    blended = image.astype(np.float32)
    labelled = mask > 0
    blended[labelled] = (1 - alpha) * blended[labelled] + alpha * colours[labelled]
    return blended.round().astype(np.uint8)


def predict(
    *,
    model: Path,
    images: Path,
    out_dir: Path,
    overlays: bool = False,
    scales: list[float] = (1.0,),
    flip: bool = True,
    crf: bool = False,
    precision: str = "auto",
    device: str = "auto",
    threads: int = 1,
) -> None:
    """Predict a palette-PNG mask (and optionally an overlay) for every image of a folder.

    Args:
        model: segmentation weights from train_segmentation
        images: folder of images (jpg, png, bmp, webp)
        out_dir: output folder (created; replaced as a whole when complete)
        overlays: also write <name>_overlay.jpg, the mask blended over the image
        scales: test-time scales (softmax averaged)
        flip: also average the flipped prediction
        crf: dense-CRF post-processing with the DeepLab parameters
        precision: auto (bf16 autocast where the hardware runs it natively), fp32 or bf16
        device: auto, cpu or cuda
        threads: CPU threads to use
    """
    set_threads(threads)
    files = image_files(images)
    torch_device = pick_device(device)
    net, meta, dtype = load_segmentation_net(model, torch_device, precision)
    with atomic_dir(out_dir) as tmp, torch.inference_mode(), autocast(torch_device, dtype):
        for path in progress(files, desc="predict"):
            try:
                with Image.open(path) as picture:
                    image = np.array(picture.convert("RGB"))
            except OSError as exc:
                raise WsssError(f"cannot read image {path}: {exc}") from None
            mask = predict_mask(net, meta, image, torch_device, scales, flip, crf)
            save_mask(tmp / f"{path.stem}.png", mask)
            if overlays:
                Image.fromarray(overlay(image, mask)).save(tmp / f"{path.stem}_overlay.jpg", quality=90)
        write_manifest(
            tmp, "masks", [p.stem for p in files], model=str(model), class_names=meta["class_names"], images=str(images)
        )
    log.info("predicted %d images of %s into %s", len(files), images, out_dir)
