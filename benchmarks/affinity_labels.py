"""How right are the affinity labels? Every construction side by side on one CAM folder.

    python benchmarks/affinity_labels.py results/voc12_cpu/make_cams/cams --data-root ../shared/data/voc2012-subset \
        --seed-threshold results/voc12_cpu/eval_cams/cams/best.json [--split train] [--limit 0]

For irn's absolute thresholds (0.30 / 0.05), thresholds relative to the seed threshold swept on
train, per-image quantiles (no ground truth) and psa's two background powers, it prints the share
of pixels labelled, how often the confident foreground and background are right, and the
precision and recall of the same-class / different-class pairs AffinityNet learns from (stride 8,
radius 10 by default, as the CPU preset trains it). Scored on the masks of ``--split``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from wsss_stages.lib.data.artifacts import load_cams, read_manifest
from wsss_stages.lib.data.voc import VOCDataset
from wsss_stages.lib.evaluation.reports import markdown_table
from wsss_stages.lib.evaluation.thresholds import resolve_threshold
from wsss_stages.lib.nets.runtime import progress
from wsss_stages.refiners.random_walk.affinity_labels import COUNTS, label_counts, label_scores
from wsss_stages.refiners.random_walk.make_affinity_labels import labels_for

IRN = {
    "crf": True,
    "conf_fg": 0.30,
    "conf_bg": 0.05,
    "relative_fg": 2.0,
    "relative_bg": 0.33,
    "quantile_fg": 0.8,
    "quantile_bg": 0.3,
}
VARIANTS = {
    "irn, absolute 0.30 / 0.05": ("irn", {**IRN, "thresholds": "absolute"}),
    "irn, relative 2.0 / 0.33 x seed threshold": ("irn", {**IRN, "thresholds": "relative"}),
    "irn, per-image quantiles 0.8 / 0.3": ("irn", {**IRN, "thresholds": "quantile"}),
    "psa, α 4 / 32": ("psa", {"alpha_low": 4, "alpha_high": 32}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cams", type=Path)
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--seed-threshold", required=True, help="a number, or eval_cams' best.json")
    parser.add_argument("--split", default="train")
    parser.add_argument("--stride", type=int, default=8)
    parser.add_argument("--radius", type=int, default=10)
    parser.add_argument("--limit", type=int, default=0, help="first N scored images (0: all)")
    args = parser.parse_args()
    dataset = VOCDataset(args.data_root)
    available = set(read_manifest(args.cams, "cams")["ids"])
    ids = [i for i in dataset.split_ids(args.split) if i in available and dataset.has_mask(i)][: args.limit or None]
    threshold = (
        resolve_threshold(None, args.seed_threshold)
        if args.seed_threshold.endswith(".json")
        else resolve_threshold(float(args.seed_threshold))
    )
    print(
        f"{len(ids)} images of '{args.split}', seed threshold {threshold:.2f}, pairs at stride {args.stride}, radius "
        f"{args.radius}\n"
    )
    columns = ["labels", "labelled (%)", "fg right (%)", "bg right (%)", "same-pair precision", "same-pair recall"]
    columns += ["diff-pair precision", "diff-pair recall"]
    cells = []
    for name, (method, options) in VARIANTS.items():
        totals = dict.fromkeys(COUNTS, 0)
        for image_id in progress(ids, desc=name):
            cams, classes = load_cams(args.cams / f"{image_id}.npz")
            labels, _ = labels_for(cams, classes, dataset.load_image(image_id), method, options, threshold)
            for key, value in label_counts(labels, dataset.load_mask(image_id), args.stride, args.radius).items():
                totals[key] += value
        s = label_scores(totals)
        cells.append(
            [name, f"{s['coverage']:.1f}", s["fg_precision"], s["bg_precision"], s["same_pair_precision"]]
            + [s["same_pair_recall"], s["diff_pair_precision"], s["diff_pair_recall"]]
        )
    print("\n".join(markdown_table(columns, cells, right=set(columns[1:]))))


if __name__ == "__main__":
    main()
