"""Background thresholds chosen without ground truth against the ones a sweep tunes on masks.

    python benchmarks/label_free_thresholds.py --data-root /path/to/VOC2012 \
        seeds=results/voc12_cpu/make_cams/cams pamr=results/voc12_cpu/refine_pamr/cams/maps

For each named folder of CAM-format maps (the seeds, or a refiner's such as PAMR, SCG or the walk) on
the seed split: the threshold of each label-free rule (``wsss_stages/lib/evaluation/label_free.py``)
and the mIoU it gives, against the best threshold of the sweep on the masks (what ``auto`` picks)
and its mIoU, on the same images. Prints a markdown table; ``--json`` also writes the numbers, for a
record.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

DEFAULT_GRID = [round(0.05 * k, 2) for k in range(1, 17)]  # 0.05 … 0.80, eval_cams' default range


def score_folder(dataset, folder: Path, split: str, grid: list[float]) -> dict:
    """The sweep's best and each rule's threshold and mIoU for one folder of CAM-format maps."""
    from wsss_stages.lib.data.artifacts import load_cams, read_manifest
    from wsss_stages.lib.evaluation.evaluation import ids_with_masks
    from wsss_stages.lib.evaluation.label_free import RULES, choose_threshold
    from wsss_stages.lib.evaluation.metrics import scores_from_confusion
    from wsss_stages.stages.eval_cams import sweep_confusions

    ids = ids_with_masks(dataset, split, set(read_manifest(folder, "cams")["ids"]))
    picked = {rule: choose_threshold(rule, (load_cams(folder / f"{i}.npz") for i in ids), grid) for rule in RULES}
    thresholds = sorted(set(grid) | set(picked.values()))
    conf = sweep_confusions(dataset, folder, ids, thresholds)
    miou = {t: scores_from_confusion(c, dataset.class_names)["miou"] for t, c in zip(thresholds, conf)}
    best = max(grid, key=lambda t: miou[t])
    row = {"images": len(ids), "swept": best, "swept_miou": miou[best]}
    for rule, t in picked.items():
        row[rule], row[f"{rule}_miou"], row[f"{rule}_loss"] = t, miou[t], miou[t] - miou[best]
    return row


def main() -> None:
    from wsss_stages.lib.data.voc import VOCDataset
    from wsss_stages.lib.evaluation.label_free import RULES
    from wsss_stages.lib.evaluation.reports import markdown_table

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", help="name=folder of CAM-format maps")
    parser.add_argument("--data-root", type=Path, required=True)
    parser.add_argument("--split", default="train")
    parser.add_argument("--grid", type=float, nargs="+", default=DEFAULT_GRID, help="candidate thresholds")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    dataset = VOCDataset(args.data_root)
    rows = {}
    for item in args.folders:
        name, _, folder = item.partition("=")
        rows[name] = score_folder(dataset, Path(folder), args.split, list(args.grid))
    columns = ["maps", "images", "swept on masks (mIoU)"] + [f"{rule} (mIoU, Δ)" for rule in RULES]
    cells = [
        [name, r["images"], f"{r['swept']:.2f} ({r['swept_miou']:.2f})"]
        + [f"{r[rule]:.2f} ({r[f'{rule}_miou']:.2f}, {r[f'{rule}_loss']:+.2f})" for rule in RULES]
        for name, r in rows.items()
    ]
    print("\n".join(markdown_table(columns, cells, right={"images"})))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
