"""Classification mAP of trained classifiers: does a seed method's classifier still classify?

A CAM is only as good as the classifier behind it: a method whose classifier underfits in the
given schedule (e.g. Hide-and-Seek hiding half of every image) gives sparse, weak CAMs. This
prints the multi-label mAP (single scale, longer side resized to --size) of each classifier on
the splits asked for, without the background class. The pipeline's score_classifier stage does
the same for every experiment (metrics.json: classifier_map); this scores any model files.

    python benchmarks/classifier_map.py --data-root ../shared/data/voc2012-subset \
        results/voc12_cpu/train_classifier/model.pt results/voc12_cpu_puzzle/train_classifier/model.pt
"""

from __future__ import annotations

import argparse
from pathlib import Path

from wsss_stages.lib.data.voc import VOCDataset
from wsss_stages.lib.evaluation.reports import markdown_table
from wsss_stages.lib.nets.classification import classification_map
from wsss_stages.lib.nets.runtime import pick_device, set_threads


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
    cells = []
    for model in args.models:
        row = []
        for split in args.splits:
            ids = [i for i in dataset.split_ids(split) if dataset.labels(i).size]
            row.append(
                classification_map(model, dataset, ids[: args.images or None], device, precision="auto", size=args.size)
            )
        cells.append([model, *(f"{v:.1f}" for v in row)])
    columns = ["classifier", *(f"mAP {s} (%)" for s in args.splits)]
    print("\n".join(markdown_table(columns, cells, right=set(columns[1:]))))


if __name__ == "__main__":
    main()
