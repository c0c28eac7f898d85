"""Every file format the stages exchange, defined once.

=====================  =====================================================================
artifact               format
=====================  =====================================================================
CAM map                ``<id>.npz`` with ``cams`` float16 ``[K, H, W]`` in [0, 1] at image
(make_cams,            resolution (make_cams: each map divided by its own maximum; random_walk:
random_walk)           all maps by their joint maximum, as irn does) and ``classes`` int16
                       ``[K]``: the dataset class index (>= 1) of each map, the image's labels.
                       A background threshold turns them into scores (:func:`cams_to_scores`).
score map (refiners)   ``<id>.npz`` with ``scores`` float16 ``[K+1, H, W]`` and ``classes``
                       int16 ``[K+1]`` whose first entry is 0 (background). Scores are
                       per-pixel class probabilities (sum to 1 over the channel axis).
mask                   ``<id>.png``, 8-bit palette PNG (VOC palette), value = class index,
                       255 = ignore / void.
cue map (make_sec_     a mask (same file format) in a folder of kind ``cues``: the class of a
cues)                  localisation cue, 0 = background cue, 255 = no cue.
folder manifest        ``manifest.json`` in every per-image folder, written last: the folder
                       is complete only when it exists (``ids``, ``kind``, counts, params, and
                       ``sizes``: each file's size in bytes, checked when the file is read).
shard of a folder       the same files for a slice of the images (``results/<exp>/<stage>/shards/
(shards: N)            <k>of<N>/…``, temporary), with ``shard`` {index, count} and ``all_ids``
                       (the whole, ordered list) added to the manifest; ``gather_shards``
                       links the slices into the usual folder and writes the manifest an
                       unsharded run writes (:mod:`wsss_stages.lib.plan.shards`).
metrics                JSON objects (IoU values in percent) and CSV tables with a header row.
per-image confusions   ``per_image.npz`` beside a metrics file: ``ids`` (str ``[N]``) and
                       ``confusions`` int64 ``[N, C, C]`` (rows ground truth, columns
                       prediction), for paired per-image bootstrap intervals.
model weights          ``torch.save`` of ``{"state_dict": …, "meta": {…}}`` (plain types only,
                       so it loads with ``weights_only=True``).
=====================  =====================================================================

All writers go through :func:`atomic_path` / :func:`atomic_dir`: the data are written under a
temporary name next to the target and renamed into place, so a crash never leaves a half
artifact under the final name. A file that does not decode, or whose size is not the one its
folder's manifest recorded, stops the reader with :func:`damaged`: the file, the stage that
wrote it and the command that rebuilds it.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from wsss_stages import WsssError

MANIFEST = "manifest.json"
IGNORE = 255


# ----------------------------------------------------------------------------- atomic writes
@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary file path next to ``path``; rename it to ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(path: Path | str) -> Iterator[Path]:
    """Yield a temporary directory next to ``path``; swap it into place on success.

    An existing ``path`` is only removed once the new content is complete.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


# ----------------------------------------------------------------------------- damaged artifacts
RUN_LEVEL_STAGES = (
    "make_demo_data",
    "check_data",
    "convert_dataset",
)  # results/<stage>/…; the rest results/<experiment>/<stage>/…


def writer_of(path: Path | str) -> str | None:
    """The stage whose artifact ``path`` is, read from the results layout; None outside ``results/``."""
    parts = Path(path).parts
    if "results" not in parts:
        return None
    below = parts[len(parts) - parts[::-1].index("results") :]
    if below and below[0] in RUN_LEVEL_STAGES:
        return below[0]
    return below[1] if len(below) > 2 else None


def damaged(path: Path | str, problem: str) -> WsssError:
    """The error for an artifact that cannot be used: which file, what is wrong, who wrote it, how to rebuild it."""
    stage = writer_of(path)
    if stage is None:
        return WsssError(
            f"{path} is damaged ({problem}); it is not an artifact of the pipeline: replace it in the data tree"
        )
    return WsssError(
        f"{path} is damaged ({problem}); stage {stage} wrote it: rebuild it with "
        f"`snakemake --cores all --forcerun {stage}` (and the --configfile/--config of the run)"
    )


@lru_cache(maxsize=64)
def _recorded_sizes(folder: str, stamp: float) -> dict:
    try:
        return json.loads((Path(folder) / MANIFEST).read_text()).get("sizes", {})
    except (OSError, ValueError):
        return {}


def check_size(path: Path) -> None:
    """Stop on a file whose size differs from what its folder's manifest recorded (a truncated copy, a partial sync)."""
    manifest = path.parent / MANIFEST
    try:
        stamp = manifest.stat().st_mtime
    except OSError:
        return
    recorded = _recorded_sizes(str(path.parent), stamp).get(path.name)
    if recorded is not None and path.stat().st_size != recorded:
        raise damaged(path, f"{path.stat().st_size} bytes, its manifest recorded {recorded}")


# ----------------------------------------------------------------------------- command-line items
def named_items(items: list[str], what: str) -> list[tuple[str, str]]:
    """``name=value`` command-line items (e.g. ``--parts out_dir=…``) as pairs, in order."""
    pairs = []
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise WsssError(f"--{what} takes name=value items, not {item!r}")
        pairs.append((name, value))
    return pairs


# ----------------------------------------------------------------------------- manifests
def file_sizes(folder: Path) -> dict[str, int]:
    """Size in bytes of every file directly in ``folder`` (links followed), the manifest and hidden files aside."""
    return {
        p.name: p.stat().st_size
        for p in sorted(Path(folder).iterdir())
        if p.is_file() and p.name != MANIFEST and not p.name.startswith(".")
    }


def write_manifest(folder: Path, kind: str, ids: Sequence[str], **extra) -> None:
    """The folder's manifest, written last: its kind, ids, the stage's parameters and every file's size."""
    sizes = file_sizes(folder)
    write_json(Path(folder) / MANIFEST, {"kind": kind, "count": len(ids), "ids": list(ids), **extra, "sizes": sizes})


def read_manifest(folder: Path | str, kind: str | None = None) -> dict:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise WsssError(f"{folder} is not a complete artifact folder (no {MANIFEST})")
    manifest = read_json(path)
    if kind is not None and manifest.get("kind") != kind:
        raise WsssError(f"{folder} holds '{manifest.get('kind')}' artifacts, expected '{kind}'")
    return manifest


def read_maps_manifest(folder: Path | str, needs: str) -> tuple[dict, str]:
    """The manifest of a folder of CAMs or score maps and which of the two it holds; ``needs`` says
    who reads it, for the error (e.g. "the CRF refines")."""
    manifest = read_manifest(folder)
    kind = manifest.get("kind")
    if kind not in ("cams", "scores"):
        raise WsssError(f"{folder} holds '{kind}' artifacts; {needs} CAMs or score maps")
    return manifest, kind


# ----------------------------------------------------------------------------- CAMs and scores
def save_cams(path: Path, cams: np.ndarray, classes: Sequence[int]) -> None:
    """Save normalised CAMs ``[K, H, W]`` for foreground ``classes`` (dataset indices >= 1)."""
    cams = np.asarray(cams)
    if cams.ndim != 3 or cams.shape[0] != len(classes):
        raise ValueError(f"cams shape {cams.shape} does not match {len(classes)} classes")
    _save_npz(path, cams=cams.astype(np.float16), classes=np.asarray(classes, dtype=np.int16))


def load_cams(path: Path) -> tuple[np.ndarray, np.ndarray]:
    data = _load_npz(path, ("cams", "classes"))
    return data["cams"].astype(np.float32), data["classes"].astype(np.int64)


def save_scores(path: Path, scores: np.ndarray, classes: Sequence[int]) -> None:
    """Save class probabilities ``[K+1, H, W]``; ``classes[0]`` must be 0 (background)."""
    classes = np.asarray(classes, dtype=np.int16)
    if classes.size == 0 or classes[0] != 0 or scores.shape[0] != classes.size:
        raise ValueError("score maps need a background channel first and one entry per channel")
    _save_npz(path, scores=np.asarray(scores).astype(np.float16), classes=classes)


def load_scores(path: Path) -> tuple[np.ndarray, np.ndarray]:
    data = _load_npz(path, ("scores", "classes"))
    return data["scores"].astype(np.float32), data["classes"].astype(np.int64)


def cams_to_scores(cams: np.ndarray, bg_threshold: float) -> np.ndarray:
    """Prepend a constant background channel: ``argmax`` then gives the thresholded CAM labels."""
    h, w = cams.shape[1:]
    return np.concatenate([np.full((1, h, w), bg_threshold, np.float32), cams.astype(np.float32)])


def load_score_like(
    folder: Path, image_id: str, kind: str, bg_threshold: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """Score maps and their classes (background first) from a score folder, or from a CAM folder
    by prepending the constant background score ``bg_threshold``."""
    if kind == "cams":
        cams, classes = load_cams(Path(folder) / f"{image_id}.npz")
        return cams_to_scores(cams, bg_threshold), np.concatenate([[0], classes])
    return load_scores(Path(folder) / f"{image_id}.npz")


def _save_npz(path: Path, **arrays) -> None:
    # np.savez appends ".npz" to names that lack it, so write to a buffer and move that
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())


def _load_npz(path: Path, keys: Iterable[str]) -> dict[str, np.ndarray]:
    path = Path(path)
    if not path.is_file():
        raise WsssError(f"missing artifact {path}")
    check_size(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in keys}
    except KeyError as exc:
        raise damaged(path, f"no array {exc}") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, OSError) as exc:
        raise damaged(path, f"not a readable .npz: {exc}") from None


# ----------------------------------------------------------------------------- masks
def voc_palette() -> list[int]:
    """The standard PASCAL VOC colour map (bit-interleaved), 256 RGB triplets flattened."""
    palette = []
    for index in range(256):
        r = g = b = 0
        c = index
        for bit in range(8):
            r |= ((c >> 0) & 1) << (7 - bit)
            g |= ((c >> 1) & 1) << (7 - bit)
            b |= ((c >> 2) & 1) << (7 - bit)
            c >>= 3
        palette += [r, g, b]
    return palette


_PALETTE = voc_palette()


def save_mask(path: Path, mask: np.ndarray) -> None:
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {mask.shape}")
    image = Image.fromarray(mask.astype(np.uint8), mode="P")
    image.putpalette(_PALETTE)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")


def load_mask(path: Path) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise WsssError(f"missing mask {path}")
    check_size(path)
    try:
        with Image.open(path) as image:
            if image.mode not in ("P", "L"):
                raise WsssError(f"{path}: masks must be palette or greyscale PNGs, got mode {image.mode}")
            return np.array(image, dtype=np.uint8)
    except (OSError, SyntaxError, ValueError, zlib.error) as exc:  # PIL's UnidentifiedImageError is an OSError
        raise damaged(path, f"not a readable PNG: {exc}") from None


# ----------------------------------------------------------------------------- per-image confusions
def save_confusions(path: Path, ids: Sequence[str], confusions: np.ndarray) -> None:
    _save_npz(Path(path), ids=np.asarray(list(ids), dtype=str), confusions=np.asarray(confusions, dtype=np.int64))


def load_confusions(path: Path) -> tuple[list[str], np.ndarray]:
    data = _load_npz(Path(path), ("ids", "confusions"))
    return data["ids"].tolist(), data["confusions"]


# ----------------------------------------------------------------------------- metrics files
def write_json(path: Path, data: Mapping) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise WsssError(f"missing file {path}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise damaged(path, f"not valid JSON: {exc}") from None


def write_csv(path: Path, rows: Sequence[Mapping]) -> None:
    if not rows:
        raise ValueError(f"no rows to write to {path}")
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0].keys()))
        writer.writeheader()
        writer.writerows(rows)
