"""Reader for a PASCAL VOC 2012 style tree (the real one, or the built-in demo).

Layout::

    <root>/JPEGImages/<id>.jpg
    <root>/Annotations/<id>.xml                     image-level labels (object names)
    <root>/SegmentationClass/<id>.png               masks (or SegmentationClassAug/)
    <root>/ImageSets/Segmentation/<split>.txt       one id per line
    <root>/SaliencyMaps/<id>.png                    optional, 8-bit saliency
    <root>/classes.txt                              optional: class names, one per line,
                                                    background first (default: VOC's 21)

Every problem is reported as a :class:`WsssError` naming the offending file.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
from PIL import Image

from wsss_stages import WsssError
from wsss_stages.lib.data.artifacts import load_mask

VOC_CLASSES = (
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)

MASK_FOLDERS = ("SegmentationClass", "SegmentationClassAug")


@dataclass
class VOCDataset:
    """Index of one VOC-layout root. Cheap to build; files are read on demand."""

    root: Path
    mask_folder: str | None = None  # None: SegmentationClass, else SegmentationClassAug
    _labels: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        if not self.root.is_dir():
            raise WsssError(f"data root {self.root} does not exist (config key: data_root)")
        if not (self.root / "JPEGImages").is_dir():
            raise WsssError(f"data root {self.root} has no JPEGImages/ folder: not a VOC2012 tree")

    # ---------------------------------------------------------------- classes
    @cached_property
    def class_names(self) -> tuple[str, ...]:
        path = self.root / "classes.txt"
        if not path.is_file():
            return VOC_CLASSES
        names = tuple(line.strip() for line in path.read_text().splitlines() if line.strip())
        if len(names) < 2 or names[0] != "background":
            raise WsssError(f"{path}: needs 'background' first and at least one class")
        return names

    @property
    def num_classes(self) -> int:
        """Number of classes including background."""
        return len(self.class_names)

    # ---------------------------------------------------------------- splits
    def split_ids(self, split: str) -> list[str]:
        path = self.root / "ImageSets" / "Segmentation" / f"{split}.txt"
        if not path.is_file():
            raise WsssError(f"split file {path} does not exist")
        ids = [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
        missing = [i for i in ids if not self.image_path(i).is_file()]
        if missing:
            raise WsssError(
                f"{path}: {len(missing)} id(s) have no image in {self.root / 'JPEGImages'}, first: {missing[0]}"
            )
        return ids

    # ---------------------------------------------------------------- files
    def image_path(self, image_id: str) -> Path:
        return self.root / "JPEGImages" / f"{image_id}.jpg"

    @cached_property
    def _mask_dir(self) -> Path:
        folders = (self.mask_folder,) if self.mask_folder else MASK_FOLDERS
        for folder in folders:
            if (self.root / folder).is_dir():
                return self.root / folder
        raise WsssError(f"{self.root} has no {' or '.join(folders)} folder with masks")

    def mask_path(self, image_id: str) -> Path:
        return self._mask_dir / f"{image_id}.png"

    def has_mask(self, image_id: str) -> bool:
        """Whether the image has a mask (False in a tree without a mask folder, unless one was named)."""
        try:
            return self.mask_path(image_id).is_file()
        except WsssError:
            if self.mask_folder:
                raise
            return False

    def saliency_path(self, image_id: str) -> Path:
        return self.root / "SaliencyMaps" / f"{image_id}.png"

    # ---------------------------------------------------------------- reading
    def load_image(self, image_id: str) -> np.ndarray:
        """RGB uint8 ``[H, W, 3]``."""
        path = self.image_path(image_id)
        try:
            with Image.open(path) as image:
                return np.array(image.convert("RGB"))
        except FileNotFoundError:
            raise WsssError(f"missing image {path}") from None
        except OSError as exc:
            raise WsssError(f"cannot read image {path}: {exc}") from None

    def image_size(self, image_id: str) -> tuple[int, int]:
        """(height, width) without decoding the pixels."""
        with Image.open(self.image_path(image_id)) as image:
            return image.height, image.width

    def load_mask(self, image_id: str) -> np.ndarray:
        """Class-index mask ``[H, W]`` (255 = void), checked against its image's size."""
        path = self.mask_path(image_id)
        mask = load_mask(path)
        size = self.image_size(image_id)
        if mask.shape != size:
            raise WsssError(f"mask {path} is {mask.shape[1]}x{mask.shape[0]} but its image is {size[1]}x{size[0]}")
        bad = np.setdiff1d(np.unique(mask), [*range(self.num_classes), 255])
        if bad.size:
            raise WsssError(f"mask {path} has values {bad.tolist()} outside 0..{self.num_classes - 1} and 255")
        return mask

    def labels(self, image_id: str) -> np.ndarray:
        """Foreground class indices (sorted, >= 1) present in the image, from its XML."""
        if image_id not in self._labels:
            self._labels[image_id] = self._read_xml_labels(image_id)
        return self._labels[image_id]

    def label_vector(self, image_id: str) -> np.ndarray:
        """Multi-hot float vector over the foreground classes (length num_classes - 1)."""
        vec = np.zeros(self.num_classes - 1, np.float32)
        vec[self.labels(image_id) - 1] = 1.0
        return vec

    def _read_xml_labels(self, image_id: str) -> np.ndarray:
        path = self.root / "Annotations" / f"{image_id}.xml"
        if not path.is_file():
            if self.has_mask(image_id):  # labels can also come from a mask
                values = np.unique(self.load_mask(image_id))
                return values[(values > 0) & (values < 255)].astype(np.int64)
            raise WsssError(f"no labels for {image_id}: {path} does not exist and there is no mask")
        try:
            tree = ET.parse(path)
        except ET.ParseError as exc:
            raise WsssError(f"cannot parse {path}: {exc}") from None
        index = {name: i for i, name in enumerate(self.class_names)}
        found = set()
        for obj in tree.getroot().iter("object"):
            name = (obj.findtext("name") or "").strip()
            if name not in index or name == "background":
                raise WsssError(f"{path} names unknown class '{name}' (known: {', '.join(self.class_names[1:])})")
            found.add(index[name])
        return np.array(sorted(found), dtype=np.int64)


def split_labelled(dataset: VOCDataset, ids: list[str], log) -> list[str]:
    """Drop images without any foreground label, logging how many (CAMs need a class)."""
    kept = [i for i in ids if dataset.labels(i).size]
    if len(kept) < len(ids):
        dropped = [i for i in ids if not dataset.labels(i).size]
        log.warning("left out %d image(s) with no image-level label, e.g. %s", len(dropped), dropped[:3])
    return kept
