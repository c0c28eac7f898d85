"""Training throughput on this machine: each training stage's loop on real images against its limit.

    python benchmarks/train_speed.py --data-root ../shared/data/voc2012-subset [--images 96] [--threads 2] [--rounds 3]

For the CPU preset's two big networks (the lite0 CAM classifier and the lite0 DeepLab v3+, 128
channels, both 256 px crops, batch 8, channels-last, BatchNorm frozen as the preset runs them), and
the classifier with its stem and first two stages fixed (``backbone.frozen_stages: 2``, as the preset
trains it) next to it with every stage trained, and DeepLab likewise with and without its stem and first
two stages fixed (``train_segmentation.backbone.frozen_stages: 2``, as the preset trains it):

- **limit**: forward, backward and SGD step on random tensors of the same shape, no data loading;
  fp32, and bf16 autocast when this CPU or GPU has native bf16 (``runtime.native_bf16``);
- **stage loop**: ``training.TrainLoop``, the loop every training stage runs, over ``--images`` real
  images with the stage's augmentation (the classifier on image labels, DeepLab on the ground-truth
  masks), with 0 and 1 DataLoader workers. It reports images/s and the share of the wall time spent
  waiting for the next batch (``TrainLoop.timing``, also logged by every training stage per epoch);
  where bf16 is native, the loop again under bf16 autocast (``training.precision: bf16``).

Prints a markdown table; the ratio columns are the best fp32 stage loop's images/s over the fp32
limit's, and the bf16 loop's over the best fp32 loop's (the speed-up a stage gets from bf16).
On a shared or virtualised machine one run moves by 10-25 %, as much as bf16 gains or loses, so
``--rounds N`` measures every cell N times, interleaved (each round runs fp32 and bf16 of one network
back to back, so a slow minute hits both), and prints the median with the range; a ratio is taken
within each round, then its median and range over the rounds.
"""

from __future__ import annotations

import argparse
import functools
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from wsss_stages.lib.data.artifacts import IGNORE, load_mask
from wsss_stages.lib.data.voc import VOCDataset
from wsss_stages.lib.evaluation.reports import markdown_table
from wsss_stages.lib.nets.models import CamClassifier, build_backbone, freeze_batchnorm
from wsss_stages.lib.nets.runtime import native_bf16, set_threads
from wsss_stages.lib.nets.segmentation import build_segmentation_net
from wsss_stages.lib.nets.training import Augment, EpochDataset, TrainLoop, make_optimizer

BACKBONE = {"name": "tf_efficientnet_lite0", "weights": "imagenet", "output_stride": 16}
CROP, BATCH = 256, 8


def classifier_net(frozen_stages: int = 0):
    return CamClassifier(
        build_backbone(BACKBONE["name"], BACKBONE["weights"], BACKBONE["output_stride"], frozen_stages), 20
    )


def deeplab_net(frozen_stages: int = 0):
    return build_segmentation_net("deeplabv3plus", 128, {**BACKBONE, "frozen_stages": frozen_stages}, 21)


def classifier_loss(model, x, targets):
    return F.multilabel_soft_margin_loss(model(x), targets["labels"])


def deeplab_loss(model, x, targets):
    logits = F.interpolate(model(x), size=x.shape[-2:], mode="bilinear", align_corners=False)
    return F.cross_entropy(logits, targets["mask"], ignore_index=IGNORE)


def limit(make_net, loss_fn, targets: dict, dtype, steps: int) -> float:
    """Images/s of forward + backward + SGD on one random batch, repeated (the compute limit)."""
    torch.manual_seed(0)
    net = make_net().to(memory_format=torch.channels_last).train()
    freeze_batchnorm(net.backbone)
    optimizer = make_optimizer(net, net.head_parameters(), 1e-3, 10, 1e-4, 0.9)
    x = torch.randn(BATCH, 3, CROP, CROP).contiguous(memory_format=torch.channels_last)

    def step():
        with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = loss_fn(net, x, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()  # warm-up: oneDNN picks its kernels on the first calls
    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return BATCH * steps / (time.perf_counter() - start)


def stage_loop(make_net, loss_fn, load, count: int, workers: int, dtype=None) -> dict:
    """TrainLoop's own images/s and data-waiting share over ``count`` real images (one epoch; fp32, or
    autocast to ``dtype`` as a stage with ``training.precision`` bf16 runs it)."""
    torch.manual_seed(0)
    net = make_net()
    optimizer = make_optimizer(net, net.head_parameters(), 1e-3, 10, 1e-4, 0.9)
    augment = Augment(CROP, (0.5, 1.0), net.backbone.mean, net.backbone.std, 0)
    with tempfile.TemporaryDirectory() as checkpoints:
        loop = TrainLoop(
            net,
            optimizer,
            EpochDataset(count, load, augment),
            BATCH,
            1,
            torch.device("cpu"),
            Path(checkpoints),
            {},
            freeze_bn=True,
            workers=workers,
            dtype=dtype,
        )
        loop.run(loss_fn)
    return loop.timing[-1]


def spread(values: list[float], digits: int = 1) -> str:
    """``median (min–max)`` over rounds, or the one value."""
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{float(np.median(values)):.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def measure_round(make_net, loss_fn, load, count: int, targets: dict, steps: int, bf16: bool) -> dict:
    """One round of every cell of a network's row: limits, fp32 loops with 0 and 1 workers, bf16 loop."""
    row = {"limit": limit(make_net, loss_fn, targets, None, steps)}
    if bf16:
        row["limit_bf16"] = limit(make_net, loss_fn, targets, torch.bfloat16, steps)
    row["loops"] = [stage_loop(make_net, loss_fn, load, count, workers) for workers in (0, 1)]
    if bf16:
        row["loop_bf16"] = stage_loop(make_net, loss_fn, load, count, 0, torch.bfloat16)
    return row


def timing_cell(timings: list[dict]) -> str:
    """A stage loop's images/s over rounds, with its median share of time waiting for data."""
    return f"{spread([t['images_per_s'] for t in timings])} ({np.median([t['data_share'] for t in timings]):.0f} %)"


def table_row(name: str, rounds: list[dict], bf16: bool) -> list[str]:
    """A network's table cells from its rounds (medians and ranges; ratios taken within a round)."""
    best = [max(t["images_per_s"] for t in r["loops"]) for r in rounds]  # the faster of 0 and 1 workers
    cells = [
        spread([r["limit"] for r in rounds]),
        spread([r["limit_bf16"] for r in rounds]) if bf16 else "not native",
        *(timing_cell([r["loops"][w] for r in rounds]) for w in (0, 1)),
        spread([b / r["limit"] for b, r in zip(best, rounds)], 2),
    ]
    if bf16:
        cells += [
            timing_cell([r["loop_bf16"] for r in rounds]),
            spread([r["loop_bf16"]["images_per_s"] / b for b, r in zip(best, rounds)], 2),
        ]
    else:
        cells += ["not native", ""]
    return [name, *cells]


def training_table(data_root: str, images: int = 96, steps: int = 6, rounds: int = 1) -> str:
    """The markdown table of the module docstring, measured now."""
    dataset = VOCDataset(data_root)
    masks = Path(data_root) / "SegmentationClass"
    labelled = dataset.split_ids("train_aug")[:images]
    masked = [i for i in dataset.split_ids("train_aug") if (masks / f"{i}.png").is_file()][:images]

    def load_labels(index: int):
        image_id = labelled[index]
        return dataset.load_image(image_id), {}, {"labels": torch.from_numpy(dataset.label_vector(image_id))}

    def load_mask_sample(index: int):
        image_id = masked[index]
        return dataset.load_image(image_id), {"mask": load_mask(masks / f"{image_id}.png")}, {}

    rng = np.random.default_rng(0)
    labels = {"labels": torch.from_numpy((rng.random((BATCH, 20)) > 0.85).astype(np.float32))}
    masks_target = {"mask": torch.from_numpy(rng.integers(0, 21, (BATCH, CROP, CROP)))}
    networks = (
        ("lite0 CAM classifier", classifier_net, classifier_loss, load_labels, len(labelled), labels),
        (
            "lite0 CAM classifier, stem + 2 stages fixed",
            functools.partial(classifier_net, 2),
            classifier_loss,
            load_labels,
            len(labelled),
            labels,
        ),
        ("lite0 DeepLab v3+ (128)", deeplab_net, deeplab_loss, load_mask_sample, len(masked), masks_target),
        (
            "lite0 DeepLab v3+ (128), stem + 2 stages fixed",
            functools.partial(deeplab_net, 2),
            deeplab_loss,
            load_mask_sample,
            len(masked),
            masks_target,
        ),
    )
    bf16 = native_bf16(torch.device("cpu"))
    measured = {name: [] for name, *_ in networks}
    for _ in range(rounds):  # rounds outermost: a slow spell of the machine spreads over every network
        for name, make_net, loss_fn, load, count, targets in networks:
            measured[name].append(measure_round(make_net, loss_fn, load, count, targets, steps, bf16))
    how = f"median (range) of {rounds} interleaved rounds" if rounds > 1 else "one round"
    lines = [
        f"{torch.get_num_threads()} threads; native bf16 here: {bf16} (AMX tiles {torch.cpu._is_amx_tile_supported()}, "
        f"AVX512-BF16 {torch.cpu._is_avx512_bf16_supported()}); {CROP} px crops, batch {BATCH}, channels-last, "
        f"BatchNorm frozen; "
        f"stage loop over {images} real images; {how}",
        "",
    ]
    columns = ["network", "limit fp32 (img/s)", "limit bf16 (img/s)", "stage loop, 0 workers (img/s, data share)"]
    columns += ["stage loop, 1 worker (img/s, data share)", "stage loop / fp32 limit", "stage loop bf16, 0 workers"]
    columns.append("bf16 loop / best fp32 loop")
    cells = [table_row(name, measured[name], bf16) for name, *_ in networks]
    return "\n".join(lines + markdown_table(columns, cells, right=set(columns[1:])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data-root", required=True, help="VOC2012-layout root (train_aug images, SegmentationClass masks)"
    )
    parser.add_argument("--images", type=int, default=96, help="real images per stage loop (one epoch)")
    parser.add_argument("--steps", type=int, default=6, help="timed steps of the limit")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--rounds", type=int, default=1, help="measure every cell this many times, interleaved; print median (range)"
    )
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    set_threads(args.threads)
    print(training_table(args.data_root, args.images, args.steps, args.rounds))


if __name__ == "__main__":
    main()
