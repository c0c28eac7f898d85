"""Classification mAP of trained classifiers: does a seed method's classifier still classify?

A CAM is only as good as the classifier behind it: a method whose classifier underfits in the
given schedule (e.g. Hide-and-Seek hiding half of every image) gives sparse, weak CAMs. This
prints the multi-label mAP (single scale, longer side resized to --size) of each classifier on
the splits asked for, without the background class.

    python benchmarks/classifier_map.py --data-root ../shared/data/voc2012-subset \
        results/voc12_cpu/train_classifier/model.pt results/voc12_cpu_puzzle/train_classifier/model.pt
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]

from wsss_stages.lib.models import load_model
from wsss_stages.lib.seed_methods import average_precision
from wsss_stages.lib.models import to_tensor
from wsss_stages.lib.runtime import autocast, for_inference, inference_dtype, pick_device, progress, set_threads
from wsss_stages.lib.training import resize_with_maps
from wsss_stages.lib.voc import VOCDataset


def classifier_map(model_path: Path, dataset: VOCDataset, ids: list[str], size: int, device: torch.device) -> float:
    net, meta = load_model(model_path, ("classifier",))
    net = for_inference(net.eval(), device)
    scores, targets = [], []
    with torch.no_grad(), autocast(device, inference_dtype("auto", device)):
        for image_id in progress(ids, desc=model_path.parent.parent.name, leave=False):
            image = dataset.load_image(image_id)
            image, _ = resize_with_maps(image, {}, size / max(image.shape[:2]))
            x = to_tensor(image, meta["mean"], meta["std"])[None].to(device)
            scores.append(net(x)[0].float().cpu().numpy())
            targets.append(dataset.label_vector(image_id))
    return average_precision(np.array(scores), np.array(targets))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="+", type=Path, help="classifier model.pt files")
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--splits", nargs="+", default=["train", "val"])
    parser.add_argument("--images", type=int, default=0, help="first N images of each split (0: all)")
    parser.add_argument("--size", type=int, default=320, help="longer image side")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    set_threads(args.threads)
    dataset, device = VOCDataset(args.data_root), pick_device("auto")
    print("| classifier | " + " | ".join(f"mAP {s} (%)" for s in args.splits) + " |")
    print("| --- | " + " | ".join("---:" for _ in args.splits) + " |")
    for model in args.models:
        row = []
        for split in args.splits:
            ids = [i for i in dataset.split_ids(split) if dataset.labels(i).size]
            row.append(classifier_map(model, dataset, ids[: args.images or None], args.size, device))
        print(f"| {model} | " + " | ".join(f"{v:.1f}" for v in row) + " |", flush=True)


if __name__ == "__main__":
    main()
