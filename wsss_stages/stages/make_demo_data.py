"""The built-in demo dataset: synthetic photos in VOC 2012 layout that make the WSSS problem real.

Design (each choice reproduces a difficulty of real data):

* Four classes whose *bodies* are drawn from one shared distribution of shapes and colours;
  what tells the classes apart is a small distinctive *marking* on the body (like a face on
  a dog). A classifier needs only the marking, so plain CAM lights the marking and a halo
  and misses most of the body: seeds are partial, refinement has something to recover.
* Textured backgrounds (water, grass, sand, cobbles) with colour noise.
* ``boat`` co-occurs with the ``water`` texture (80 % of its images, 5 % of the others), so
  its CAM spills onto water: the classic co-occurrence false positive.
* 0-3 objects per image with occlusion (15 % hold no class at all, so "none of the other
  markings" is no evidence for a class), and unmarked clutter bodies that are background;
  masks carry a thin 255 void border like VOC's.
* Saliency maps (blurred, slightly noisy object masks) for saliency-guided methods.

Every image is a pure function of (seed, split, index): the output is deterministic.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from wsss_stages.lib.data.artifacts import IGNORE, atomic_dir, save_mask, write_manifest
from wsss_stages.lib.data.datasets import annotation_xml

log = logging.getLogger(__name__)

CLASSES = ("background", "boat", "cat", "car", "bird")
WATER_WITH_BOAT, WATER_OTHERWISE = 0.8, 0.05
CLUTTER_PROBABILITY = 0.3
TEXTURES = ("water", "grass", "sand", "cobbles")
BODY_COLOURS = np.array(
    [
        [150, 110, 80],
        [120, 120, 130],
        [170, 140, 100],
        [100, 90, 120],
        [140, 100, 100],
        [110, 130, 110],
        [160, 150, 140],
        [90, 100, 90],
    ],
    np.float32,
)


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    return np.mgrid[0:size, 0:size].astype(np.float32)


def background(texture: str, size: int, rng: np.random.Generator) -> np.ndarray:
    yy, xx = _grid(size)
    noise = rng.normal(0, 1, (size, size, 1)).astype(np.float32)
    if texture == "water":
        freq, phase = rng.uniform(0.25, 0.5), rng.uniform(0, 2 * np.pi)
        wave = np.sin(yy * freq + 1.5 * np.sin(xx * 0.08 + phase))[..., None]
        base, amp = np.array([40, 90, 170], np.float32), np.array([25, 30, 35], np.float32)
        image = base + amp * wave + 8 * noise
    elif texture == "grass":
        streak = np.sin(xx * rng.uniform(0.8, 1.4) + rng.uniform(0, 6))[..., None]
        base = np.array([70, 130, 50], np.float32) + rng.uniform(-15, 15, 3)
        image = base + 18 * streak + 22 * noise
    elif texture == "sand":
        base = np.array([200, 180, 130], np.float32) + rng.uniform(-20, 20, 3)
        image = base + 14 * noise + 10 * np.sin(xx * 0.05 + yy * 0.07)[..., None]
    else:  # cobbles: a jittered checkerboard of grey tiles
        tile = int(rng.integers(10, 18))
        cells = ((yy // tile + xx // tile) % 2)[..., None]
        base = np.array([120, 115, 110], np.float32) + rng.uniform(-20, 20, 3)
        image = base + 30 * (cells - 0.5) + 10 * noise
    return image


def body_mask(size: int, rng: np.random.Generator) -> tuple[np.ndarray, tuple[float, float], float, float]:
    """Random ellipse, rounded box or triangle; returns mask, centre, extent, orientation."""
    yy, xx = _grid(size)
    extent = rng.uniform(0.16, 0.26) * size  # half-length of the major axis
    cy, cx = rng.uniform(extent * 0.7, size - extent * 0.7, 2)
    angle = rng.uniform(0, np.pi)
    u = (xx - cx) * np.cos(angle) + (yy - cy) * np.sin(angle)
    v = -(xx - cx) * np.sin(angle) + (yy - cy) * np.cos(angle)
    minor = extent * rng.uniform(0.55, 0.8)
    kind = rng.integers(3)
    if kind == 0:
        mask = (u / extent) ** 2 + (v / minor) ** 2 <= 1
    elif kind == 1:
        mask = (np.abs(u / extent) ** 4 + np.abs(v / minor) ** 4) <= 1
    else:
        mask = (u >= -extent) & (np.abs(v) <= minor * (extent - u) / (2 * extent)) & (u <= extent)
    return mask, (cy, cx), extent, angle


def marking_mask(cls: int, size: int, centre: tuple[float, float], radius: float) -> np.ndarray:
    """The class's distinctive small pattern (shape differs per class)."""
    yy, xx = _grid(size)
    dy, dx = yy - centre[0], xx - centre[1]
    r = np.hypot(dy, dx)
    name = CLASSES[cls]
    if name == "boat":  # filled triangle pointing up
        return (dy <= radius * 0.8) & (dy >= -radius) & (np.abs(dx) <= (dy + radius) * 0.6)
    if name == "cat":  # disc
        return r <= radius * 0.85
    if name == "car":  # plus sign
        return ((np.abs(dx) <= radius * 0.4) & (np.abs(dy) <= radius)) | (
            (np.abs(dy) <= radius * 0.4) & (np.abs(dx) <= radius)
        )
    return (
        (np.abs(dy) <= radius) & (np.abs(dx) <= radius) & (((dx + radius) // max(radius * 0.67, 1)) % 2 == 0)
    )  # bird: bars


MARK_COLOURS = {"boat": (230, 40, 40), "cat": (40, 225, 235), "car": (250, 250, 250), "bird": (220, 40, 220)}


def render_image(index: int, split: str, size: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Return (RGB uint8, mask with void borders, saliency uint8, object class names)."""
    rng = np.random.default_rng([seed, 0 if split == "train" else 1, index])
    # images without any class break the "no other marking, so it must be a cat" shortcut
    n_objects = int(rng.choice([0, 1, 2, 3], p=[0.15, 0.45, 0.28, 0.12]))
    classes = [int(c) for c in rng.integers(1, len(CLASSES), n_objects)]
    has_boat = CLASSES.index("boat") in classes
    if rng.random() < (WATER_WITH_BOAT if has_boat else WATER_OTHERWISE):
        texture = "water"
    else:
        texture = TEXTURES[1 + int(rng.integers(len(TEXTURES) - 1))]
    image = background(texture, size, rng)
    mask = np.zeros((size, size), np.uint8)
    if rng.random() < CLUTTER_PROBABILITY:  # an unmarked body: background that looks like an object
        clutter, *_ = body_mask(size, rng)
        image[clutter] = BODY_COLOURS[rng.integers(len(BODY_COLOURS))] + rng.normal(0, 6, (int(clutter.sum()), 3))
    for cls in classes:
        body, (cy, cx), extent, angle = body_mask(size, rng)
        colour = BODY_COLOURS[rng.integers(len(BODY_COLOURS))] + rng.uniform(-15, 15, 3)
        yy, xx = _grid(size)
        shade = ((xx - cx) * np.cos(angle) + (yy - cy) * np.sin(angle)) / extent
        texture_noise = rng.normal(0, 6, (size, size, 1))
        body_pixels = colour + 12 * shade[..., None] + texture_noise
        image[body] = body_pixels[body]
        # the marking sits towards one end of the body
        offset = extent * rng.uniform(0.35, 0.55) * (1 if rng.random() < 0.5 else -1)
        mark_centre = (cy + offset * np.sin(angle), cx + offset * np.cos(angle))
        mark = marking_mask(cls, size, mark_centre, radius=max(3.0, size * 0.07)) & body
        image[mark] = np.array(MARK_COLOURS[CLASSES[cls]], np.float32) + rng.normal(0, 5, (int(mark.sum()), 3))
        mask[body] = cls
    labels = mask.copy()
    mask = _void_borders(mask)
    saliency = _saliency(labels > 0, rng)
    names = [CLASSES[c] for c in sorted(set(np.unique(labels[labels > 0]).tolist()))]
    return np.clip(image, 0, 255).astype(np.uint8), mask, saliency, names


def _void_borders(mask: np.ndarray) -> np.ndarray:
    """Mark pixels whose 4-neighbourhood holds another label as void (255), as VOC does."""
    out = mask.copy()
    edge = np.zeros(mask.shape, bool)
    edge[1:] |= mask[1:] != mask[:-1]
    edge[:-1] |= mask[1:] != mask[:-1]
    edge[:, 1:] |= mask[:, 1:] != mask[:, :-1]
    edge[:, :-1] |= mask[:, 1:] != mask[:, :-1]
    out[edge] = IGNORE
    return out


def _saliency(foreground: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    soft = Image.fromarray((foreground * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(2))
    noisy = np.asarray(soft, np.float32) + rng.normal(0, 10, foreground.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def make_demo_data(
    *, out_dir: Path, num_train: int, num_seed_eval: int, num_val: int, image_size: int, seed: int, threads: int = 1
) -> None:
    """Write the demo dataset as a VOC2012-layout folder.

    Args:
        out_dir: folder to create (it becomes the data root, e.g. results/make_demo_data/VOC2012)
        num_train: images in train_aug (classifier and segmentation training)
        num_seed_eval: the first N of train_aug also form the `train` split (masks scored there)
        num_val: images in `val`
        image_size: side length of the square images
        seed: generator seed
        threads: unused (one process)
    """
    out_dir = Path(out_dir)
    splits = {
        "train_aug": [f"demo_train_{i:05d}" for i in range(num_train)],
        "val": [f"demo_val_{i:05d}" for i in range(num_val)],
    }
    splits["train"] = splits["train_aug"][:num_seed_eval]
    with atomic_dir(out_dir) as tmp:
        for folder in ("JPEGImages", "SegmentationClass", "Annotations", "SaliencyMaps", "ImageSets/Segmentation"):
            (tmp / folder).mkdir(parents=True)
        (tmp / "classes.txt").write_text("\n".join(CLASSES) + "\n")
        for split in ("train_aug", "val"):
            for index, image_id in enumerate(splits[split]):
                image, mask, saliency, names = render_image(
                    index, "train" if split == "train_aug" else "val", image_size, seed
                )
                Image.fromarray(image).save(tmp / "JPEGImages" / f"{image_id}.jpg", quality=95)
                save_mask(tmp / "SegmentationClass" / f"{image_id}.png", mask)
                Image.fromarray(saliency).save(tmp / "SaliencyMaps" / f"{image_id}.png")
                (tmp / "Annotations" / f"{image_id}.xml").write_text(
                    annotation_xml(image_id, image_size, image_size, names)
                )
        for split, ids in splits.items():
            (tmp / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(ids) + "\n")
        write_manifest(tmp, "voc-tree", splits["train_aug"] + splits["val"], classes=list(CLASSES))
    log.info(
        "wrote %d train_aug (%d with scored masks) and %d val images to %s", num_train, num_seed_eval, num_val, out_dir
    )
