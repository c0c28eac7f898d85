"""Multi-scale + flip class maps: the one extraction loop (make_cams, adversarial erasing, benchmarks).

For each image and each of its labelled classes c: CAM_c = sum over scales s and flips of
upsample(ReLU(maps_c(image_s))), then divided by its maximum, so every map peaks at 1. ``maps`` is
the classifier's class maps (CAM) or a registered CAM source's function (e.g. Grad-CAM).
Speed, against the reference repositories' loop (one forward per image, scale and flip, fp32):
images of equal size are batched together with their flips, the network runs in channels-last
layout, and where the hardware has native bf16 (AMX CPUs, recent GPUs) under bf16 autocast
(``precision: auto``; the maps are summed in fp32). ``benchmarks/speed.py`` measures the difference.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from wsss_stages.lib.data.artifacts import atomic_dir, save_cams, write_manifest
from wsss_stages.lib.data.voc import VOCDataset, split_labelled
from wsss_stages.lib.nets.models import CamClassifier, load_model, to_tensor
from wsss_stages.lib.nets.runtime import autocast, for_inference, inference_dtype, pick_device, progress
from wsss_stages.lib.nets.seed_methods import gradcam_maps
from wsss_stages.lib.plan.registry import import_object
from wsss_stages.lib.plan.shards import WHOLE, Shard

if TYPE_CHECKING:
    from wsss_stages.lib.plan.declare import CamSource

# measured with tf_efficientnet_lite0 on 2 cores: per-image time is lowest up to ~400k input pixels a forward
CPU_MAX_PIXELS = 400_000
CAM_BATCH = 4  # images of equal size per forward


def normalise_cams(cams: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Divide each map ``[K, H, W]`` by its own maximum (maps that are all zero stay zero)."""
    peak = cams.flatten(1).max(dim=1).values.clamp_min(eps)
    return cams / peak[:, None, None]


def gradcam_function(model: CamClassifier, layer: str, classes: Sequence[int] | None = None):
    """A ``maps(x) -> [B, C, h, w]`` (CAM's interface) computing Grad-CAM for ``classes`` (0-based;
    default all), zero for the others: one backward pass per class, so only the batch's classes."""
    num = model.classifier.out_channels
    wanted = list(range(num)) if classes is None else sorted(set(classes))

    def maps(x: torch.Tensor) -> torch.Tensor:
        some = gradcam_maps(model, x, wanted, layer)
        out = some.new_zeros((some.shape[0], num, *some.shape[2:]))
        out[:, wanted] = some
        return out

    return maps


def forward_in_chunks(model: CamClassifier, batch: torch.Tensor, max_pixels: int | None, maps_fn=None) -> torch.Tensor:
    """``maps_fn`` (default ``model.class_maps``) over sub-batches of at most ``max_pixels`` input pixels
    (at least one image).

    On a CPU, large batches of large images run slower per image than small ones (cache misses);
    on a GPU, pass ``None`` to run the whole batch at once.
    """
    n, _, h, w = batch.shape
    per_chunk = n if max_pixels is None else max(1, max_pixels // (h * w))
    chunks = [batch[i : i + per_chunk].contiguous(memory_format=torch.channels_last) for i in range(0, n, per_chunk)]
    maps_fn = maps_fn or model.class_maps
    return torch.cat([maps_fn(chunk).float() for chunk in chunks])


def class_maps_multiscale(
    model: CamClassifier,
    images: torch.Tensor,
    scales: Sequence[float],
    flip: bool,
    max_pixels: int | None = None,
    maps_fn=None,
) -> torch.Tensor:
    """Summed ReLU class maps ``[B, C, H, W]`` at the input resolution, over scales and flips."""
    _, _, h, w = images.shape
    total = None
    for scale in scales:
        x = (
            images
            if scale == 1.0
            else F.interpolate(
                images, scale_factor=scale, mode="bilinear", align_corners=False, recompute_scale_factor=False
            )
        )
        batch = torch.cat([x, x.flip(-1)]) if flip else x
        maps = F.relu(forward_in_chunks(model, batch, max_pixels, maps_fn))
        if flip:
            half = maps.shape[0] // 2
            maps = maps[:half] + maps[half:].flip(-1)
        maps = F.interpolate(maps, size=(h, w), mode="bilinear", align_corners=False)
        total = maps if total is None else total + maps
    return total


def batches_by_size(dataset: VOCDataset, ids: Sequence[str], batch_size: int) -> Iterator[list[str]]:
    """Group ids of identical image size (most of VOC is 500x375) into batches."""
    groups: dict[tuple[int, int], list[str]] = defaultdict(list)
    for image_id in ids:
        groups[dataset.image_size(image_id)].append(image_id)
    for members in groups.values():
        for start in range(0, len(members), batch_size):
            yield members[start : start + batch_size]


def extract_cams(
    net: CamClassifier,
    meta: dict,
    dataset: VOCDataset,
    ids: Sequence[str],
    scales: Sequence[float],
    flip: bool,
    device: torch.device,
    dtype: torch.dtype | None,
    load_image,
    source: CamSource | None = None,
    options: dict | None = None,
    batch_size: int = CAM_BATCH,
    batches: Sequence[Sequence[str]] | None = None,
) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """``(image_id, normalised CAMs [K, H, W], classes [K])`` per image: batches of equal size (or the
    given ``batches``), autocast to ``dtype`` (None = fp32), the model already prepared by
    :func:`for_inference`. ``source``: a registered CAM source (None or "cam": the classifier's class maps)."""
    factory = import_object(source.impl) if source is not None and source.impl else None
    no_grad = (
        torch.no_grad() if source is not None and source.needs_grad else torch.inference_mode()
    )  # Grad-CAM differentiates inside
    with no_grad, autocast(device, dtype):
        batches = list(batches_by_size(dataset, ids, batch_size)) if batches is None else batches
        for batch_ids in progress(batches, desc="make_cams", unit="batch"):
            images = torch.stack([to_tensor(load_image(i), meta["mean"], meta["std"]) for i in batch_ids]).to(device)
            maps_fn = None
            if factory is not None:
                maps_fn = factory(net, options or {}, [c - 1 for i in batch_ids for c in dataset.labels(i)])
            summed = class_maps_multiscale(
                net, images, scales, flip, None if device.type == "cuda" else CPU_MAX_PIXELS, maps_fn
            )
            for image_id, maps in zip(batch_ids, summed):
                classes = dataset.labels(image_id)
                cams = normalise_cams(maps[torch.as_tensor(classes - 1, device=maps.device)])
                yield image_id, cams.cpu().numpy(), classes


def plain_loop_cams(
    net: CamClassifier, image: np.ndarray, classes: np.ndarray, mean, std, scales, flip: bool, device
) -> np.ndarray:
    """Reference-style extraction: one forward per scale and per flip of one image (for benchmarks)."""
    h, w = image.shape[:2]
    total = torch.zeros(len(classes), h, w, device=device)
    with torch.inference_mode():
        x = to_tensor(image, mean, std)[None].to(device)
        for scale in scales:
            xs = F.interpolate(
                x, scale_factor=scale, mode="bilinear", align_corners=False, recompute_scale_factor=False
            )
            for flipped in [False, True] if flip else [False]:
                inp = xs.flip(-1) if flipped else xs
                maps = F.relu(net.class_maps(inp))[0]
                maps = maps.flip(-1) if flipped else maps
                maps = F.interpolate(maps[None], size=(h, w), mode="bilinear", align_corners=False)[0]
                total += maps[torch.as_tensor(classes - 1)]
    return normalise_cams(total).cpu().numpy()


def write_cams(
    *,
    model: Path,
    dataset: VOCDataset,
    ids: Sequence[str],
    out_dir: Path,
    scales: Sequence[float],
    flip: bool,
    precision: str,
    device: str,
    load_image=None,
    source: CamSource | None = None,
    options: dict | None = None,
    log=None,
    shard: Shard = WHOLE,
    **manifest_extra,
) -> list[str]:
    """Compute CAMs of ``ids`` (those with a label) with a saved classifier; write the CAM folder atomically.
    With a ``shard``, only its slice of the batches (whole batches, so that no image's maps depend on the
    shard count)."""
    device = pick_device(device)
    net, meta = load_model(model, ("classifier",))
    net = for_inference(net, device)
    dtype = inference_dtype(precision, device)
    all_ids = split_labelled(dataset, list(ids), log)
    batches, ids = shard.take_groups(list(batches_by_size(dataset, all_ids, CAM_BATCH)), all_ids)
    name = source.name if source is not None else "cam"
    if log:
        log.info(
            "%s for %d images, scales %s, flip %s, on %s, %s",
            name,
            len(ids),
            list(scales),
            flip,
            device,
            dtype or torch.float32,
        )
    with atomic_dir(out_dir) as tmp:
        for image_id, maps, classes in extract_cams(
            net,
            meta,
            dataset,
            ids,
            scales,
            flip,
            device,
            dtype,
            load_image or dataset.load_image,
            source,
            options,
            batches=batches,
        ):
            save_cams(tmp / f"{image_id}.npz", maps, classes)
        write_manifest(
            tmp,
            "cams",
            ids,
            scales=list(scales),
            flip=flip,
            model=str(model),
            cam_type=name,
            cam_options=options or {},
            dtype=str(dtype or torch.float32),
            **manifest_extra,
            **shard.manifest_fields(all_ids),
        )
    return ids
