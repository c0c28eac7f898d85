"""psa's walk at several background powers at once, scored on the masks of a split.

    python benchmarks/psa_bg_power.py --model results/<exp>/train_affinitynet/model.pt \\
        --cams results/<exp>/make_cams/cams --data-root /path/to/VOC2012 [--powers 1 2 4 8 16 32] [--split train]

psa walks a background channel (1 − max CAM)^α with the CAMs and takes the argmax after the walk
(α 16 in psa's infer_aff). The walk is linear and the same for every channel, so the background
channels of all α walk together in one pass, each then competing with the same walked CAMs: this
equals one psa walk per α (``random_walk.psa.bg_power``) at the cost of one. Prints mIoU,
precision and recall per α; ``--json`` writes them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from wsss_stages.lib.evaluation.reports import markdown_table


def sweep(
    model: Path,
    cams: Path,
    data_root: Path,
    split: str,
    powers: list[float],
    beta: float,
    exp_times: int,
    radius: int,
    limit: int | None,
) -> list[dict]:
    import torch
    import torch.nn.functional as F

    from wsss_stages.lib.data.artifacts import load_cams, read_manifest
    from wsss_stages.lib.data.voc import VOCDataset
    from wsss_stages.lib.evaluation.evaluation import ids_with_masks
    from wsss_stages.lib.evaluation.metrics import confusion_matrix, scores_from_confusion
    from wsss_stages.lib.nets.models import load_model, to_tensor
    from wsss_stages.lib.nets.runtime import progress
    from wsss_stages.refiners.random_walk.affinity import build_affinitynet, transition_matrix
    from wsss_stages.refiners.random_walk.affinity import random_walk as propagate

    net, meta = load_model(model, ("affinitynet",), build_affinitynet)
    net.eval()
    dataset = VOCDataset(data_root)
    ids = ids_with_masks(dataset, split, set(read_manifest(cams, "cams")["ids"]))[:limit]
    conf = np.zeros((len(powers), dataset.num_classes, dataset.num_classes), np.int64)
    with torch.inference_mode():
        for image_id in progress(ids, desc="psa walks"):
            image = dataset.load_image(image_id)
            cam, classes = load_cams(cams / f"{image_id}.npz")
            maps = torch.from_numpy(cam)
            embedding = net(to_tensor(image, meta["mean"], meta["std"])[None])[0].float()
            strongest = maps.max(0, keepdim=True).values if len(classes) else torch.zeros(1, *image.shape[:2])
            backgrounds = torch.cat([(1.0 - strongest).clamp_min(0) ** p for p in powers])
            small = F.adaptive_avg_pool2d(torch.cat([backgrounds, maps])[None], embedding.shape[-2:])[0]
            walked = propagate(small, transition_matrix(embedding, radius, beta), 2**exp_times)
            up = F.interpolate(walked[None], size=image.shape[:2], mode="bilinear", align_corners=False)[0]
            labels = np.concatenate([[0], classes])
            gt = dataset.load_mask(image_id)
            for k in range(len(powers)):
                scores = torch.cat([up[k : k + 1], up[len(powers) :]])
                conf[k] += confusion_matrix(gt, labels[scores.argmax(0).numpy()], dataset.num_classes)
    rows = []
    for power, c in zip(powers, conf):
        s = scores_from_confusion(c, dataset.class_names)
        rows.append(
            {
                "bg_power": power,
                "miou": round(s["miou"], 2),
                "precision": round(s["precision"], 2),
                "recall": round(s["recall"], 2),
                "images": len(ids),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model",
        type=Path,
        required=True,
        help="psa AffinityNet weights (train_affinitynet with random_walk.method psa)",
    )
    parser.add_argument("--cams", type=Path, required=True, help="CAM folder (make_cams)")
    parser.add_argument("--data-root", type=Path, required=True)
    parser.add_argument("--split", default="train")
    parser.add_argument("--powers", type=float, nargs="+", default=[1, 2, 4, 8, 16, 32])
    parser.add_argument("--beta", type=float, default=8)
    parser.add_argument("--exp-times", type=int, default=8)
    parser.add_argument("--radius", type=int, default=5)
    parser.add_argument("--limit", type=int, default=None, help="score only the first N images")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    rows = sweep(
        args.model,
        args.cams,
        args.data_root,
        args.split,
        args.powers,
        args.beta,
        args.exp_times,
        args.radius,
        args.limit,
    )
    columns = ["bg_power α", "mIoU", "precision", "recall"]
    cells = [[f"{r['bg_power']:g}", f"{r['miou']:.2f}", f"{r['precision']:.2f}", f"{r['recall']:.2f}"] for r in rows]
    print("\n".join(markdown_table(columns, cells, right=set(columns))))
    print(f"({rows[0]['images']} images of '{args.split}')")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
