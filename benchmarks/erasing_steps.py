"""Adversarial erasing step by step: which step's maps help or hurt the seeds, scored on the masks of a split.

    python benchmarks/erasing_steps.py results/<exp>/.checkpoints/train_erasing --data-root /path/to/VOC2012 \\
        [--split train] [--thresholds 0.05 0.1 ...] [--json out.json]

``train_erasing`` keeps each step's CAMs (``step<t>/cams``) and its mined masks (``step<t>/mined``, the
union of every region mined up to step t) in its checkpoint folder. For every t this prints, each with its
background threshold swept on the split as ``eval_cams`` does:

- the seeds fused over steps 1..t (per class the maximum of the steps' normalised CAMs: t = T is the
  stage's output, t = 1 the plain classifier's CAMs),
- step t's CAMs alone,
- the pixels step t newly mined: their share of the image, how often their class is the ground truth's
  and how often the ground truth there is background.

So a drop from t - 1 to t tells whether step t's classifier found more of the object or mined background.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np

from wsss_stages.lib.data.artifacts import load_cams, load_mask, read_manifest
from wsss_stages.lib.data.voc import VOCDataset
from wsss_stages.lib.evaluation.evaluation import ids_with_masks
from wsss_stages.lib.evaluation.metrics import confusion_matrix, scores_from_confusion
from wsss_stages.lib.evaluation.reports import markdown_table
from wsss_stages.lib.evaluation.thresholds import strongest
from wsss_stages.lib.nets.runtime import progress

DEFAULT_THRESHOLDS = [round(0.05 * k, 2) for k in range(1, 16)]


def step_folders(work: Path) -> list[Path]:
    """The step folders of a train_erasing checkpoint folder, in step order (only steps with CAMs)."""
    steps = [p for p in Path(work).iterdir() if re.fullmatch(r"step\d+", p.name) and (p / "cams").is_dir()]
    if not steps:
        raise SystemExit(f"{work}: no step<t>/cams folders; point at results/<exp>/.checkpoints/train_erasing")
    return sorted(steps, key=lambda p: int(p.name[4:]))


def thresholded(cams: np.ndarray, classes: np.ndarray, thresholds: list[float]) -> list[np.ndarray]:
    label, value = strongest(cams, classes)
    return [np.where(value > t, label, 0) for t in thresholds]


def newly_mined(gt: np.ndarray, before: np.ndarray | None, after: np.ndarray) -> np.ndarray:
    """Counts [mined pixels, of them with the ground truth's class, of them on ground-truth background,
    valid pixels]."""
    new = after > 0 if before is None else (after > 0) & (before == 0)
    valid = gt != 255
    new &= valid
    return np.array([new.sum(), (new & (gt == after)).sum(), (new & (gt == 0)).sum(), valid.sum()], np.int64)


def score_steps(
    work: Path, data_root: Path, split: str, thresholds: list[float], limit: int | None = None
) -> list[dict]:
    folders = step_folders(work)
    dataset = VOCDataset(data_root)
    n, c = len(folders), dataset.num_classes
    ids = ids_with_masks(dataset, split, set(read_manifest(folders[0] / "cams", "cams")["ids"]))[:limit]
    fused_conf = np.zeros((n, len(thresholds), c, c), np.int64)
    alone_conf = np.zeros_like(fused_conf)
    mined = np.zeros((n, 4), np.int64)
    for image_id in progress(ids, desc="erasing steps"):
        gt = dataset.load_mask(image_id)
        fused, before = None, None
        for s, folder in enumerate(folders):
            cams, classes = load_cams(folder / "cams" / f"{image_id}.npz")
            fused = cams if fused is None else np.maximum(fused, cams)
            for t, (a, f) in enumerate(
                zip(thresholded(cams, classes, thresholds), thresholded(fused, classes, thresholds))
            ):
                alone_conf[s, t] += confusion_matrix(gt, a, c)
                fused_conf[s, t] += confusion_matrix(gt, f, c)
            if (folder / "mined" / f"{image_id}.png").exists():
                after = load_mask(folder / "mined" / f"{image_id}.png")
                mined[s] += newly_mined(gt, before, after)
                before = after
    rows = []
    for s, folder in enumerate(folders):
        fused_best, alone_best = (
            best_of(conf[s], thresholds, dataset.class_names) for conf in (fused_conf, alone_conf)
        )
        pixels, right, background, valid = mined[s]
        rows.append(
            {
                "step": int(folder.name[4:]),
                "images": len(ids),
                "fused": fused_best,
                "alone": alone_best,
                "mined_share": 100.0 * pixels / max(valid, 1),
                "mined_right": 100.0 * right / pixels if pixels else None,
                "mined_background": 100.0 * background / pixels if pixels else None,
            }
        )
    return rows


def best_of(conf: np.ndarray, thresholds: list[float], class_names) -> dict:
    """The best threshold of a sweep of confusion matrices ``[T, C, C]`` and its scores."""
    results = [scores_from_confusion(m, class_names) for m in conf]
    best = int(np.nanargmax([r["miou"] for r in results]))
    r = results[best]
    return {"threshold": thresholds[best], "miou": r["miou"], "precision": r["precision"], "recall": r["recall"]}


def table(rows: list[dict]) -> str:
    def cell(best: dict) -> str:
        return f"{best['miou']:.2f} (thr {best['threshold']:.2f}, P {best['precision']:.1f} / R {best['recall']:.1f})"

    def share(value) -> str:
        return "" if value is None else f"{value:.1f}"

    header = [
        "step t",
        "seeds fused over steps 1..t",
        "step t's CAMs alone",
        "newly mined, % of pixels",
        "of them right class, %",
        "of them background, %",
    ]
    cells = [
        [r["step"], cell(r["fused"]), cell(r["alone"]), f"{r['mined_share']:.1f}"]
        + [share(r["mined_right"]), share(r["mined_background"])]
        for r in rows
    ]
    return "\n".join(markdown_table(header, cells, right={header[0], *header[3:]}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("work", type=Path, help="results/<exp>/.checkpoints/train_erasing")
    parser.add_argument("--data-root", type=Path, required=True)
    parser.add_argument("--split", default="train")
    parser.add_argument("--thresholds", type=float, nargs="+", default=DEFAULT_THRESHOLDS)
    parser.add_argument("--limit", type=int, default=None, help="score only the first N images")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    rows = score_steps(args.work, args.data_root, args.split, args.thresholds, args.limit)
    print(f"{rows[0]['images']} images of '{args.split}', thresholds swept per column over {args.thresholds}")
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
