"""The quality-and-cost report of one experiment: benchmark.md and benchmark.csv.

Every number comes from an artifact of the run (metrics JSON files, Snakemake benchmark TSVs);
the published numbers beside them are constants from the papers, labelled as full-VOC GPU
results so the gap is visible rather than hidden.
"""

from __future__ import annotations

import logging
from pathlib import Path

from wsss_stages.lib.data.artifacts import atomic_path, load_confusions, read_json, write_csv
from wsss_stages.lib.evaluation.reports import fmt, markdown_table, read_job_times
from wsss_stages.lib.evaluation.stats import describe_difference, paired_difference

log = logging.getLogger(__name__)

# Published results on the full VOC 2012 (train 1464 / val 1449), GPU, from the papers and their repositories.
REFERENCES = {
    "cams": "CAM R50 48.3 (IRN); Puzzle-CAM R50 51.5",
    "crf": "—",
    "rw": "IRN RW R50 66.5; AffinityNet RW R38 58.1",
    "rw+crf": "Puzzle-CAM R50 RW+dCRF 64.7",
    "segmentation": "IRN R50 63.5; Puzzle-CAM ResNeSt-101 66.9 / -269 71.9",
    "upper_bound": "DeepLab v3+ R101 fully supervised ~78–80 (VOC val, SBD-augmented)",
}
REFINEMENT_NAMES = {
    "none": "CAM seeds",
    "crf": "CAM + dense CRF",
    "rw": "CAM + random walk",
    "rw+crf": "random walk + dense CRF",
}


def quality_row(stage: str, split: str, metrics: dict, reference: str, note: str = "") -> dict:
    return {
        "stage": stage,
        "split": split,
        "images": metrics.get("images"),
        "miou": metrics["miou"],
        "precision": metrics.get("precision"),
        "recall": metrics.get("recall"),
        "reference_full_voc_gpu": reference,
        "note": note,
    }


def render_markdown(experiment: str, quality: list[dict], ratio: float | None, times: list[dict]) -> str:
    lines = [
        f"# Benchmark: {experiment}",
        "",
        "Quality (mIoU, precision and recall in %; seeds and pseudo-masks on the seed split, the networks on val). "
        "Reference numbers are published **full-VOC GPU** results with larger backbones: context, not targets for "
        "this data.",
        "Δ seeds: a pseudo-mask's mIoU minus that of the thresholded seeds on the same images, with the 95 % interval "
        "of a paired per-image bootstrap (1000 resamples; no retraining is involved, so no repeats are needed).",
        "",
    ]
    columns = ["stage", "split", "images", "mIoU", "Δ seeds (95 % bootstrap)", "precision", "recall"]
    columns += ["published (full VOC, GPU)", "note"]
    cells = [
        [r["stage"], r["split"], fmt(r["images"]), fmt(r["miou"])]
        + [describe_difference(r.get("delta_seeds"), r.get("delta_seeds_lo"), r.get("delta_seeds_hi"))]
        + [fmt(r["precision"]), fmt(r["recall"]), r["reference_full_voc_gpu"], r["note"]]
        for r in quality
    ]
    lines += markdown_table(columns, cells, right={"images", "mIoU", "precision", "recall"})
    if ratio is not None:
        lines += ["", f"Weakly / fully supervised (same network and schedule): **{ratio:.1f} %**."]
    total = sum(t["seconds"] or 0 for t in times)
    lines += [
        "",
        "Cost per job (Snakemake benchmark files; the last run of each job):",
        "",
    ]
    cost = [[t["job"], fmt(t["seconds"], 1), fmt(t["cpu_seconds"], 1), fmt(t["peak_rss_mib"], 0)] for t in times]
    cost.append(["**total**", f"{total:.1f}", "", ""])
    lines += markdown_table(
        ["job", "wall time (s)", "CPU time (s)", "peak RSS (MiB)"],
        cost,
        right={"wall time (s)", "CPU time (s)", "peak RSS (MiB)"},
    )
    lines.append("")
    return "\n".join(lines)


def write_benchmark(
    *,
    cam_best: Path,
    pseudo_masks: list[str],
    segmentation: Path,
    upper_bound: Path,
    summary: Path,
    out_md: Path,
    out_csv: Path,
    experiment: str,
    refinement: str,
    jobs: list[str],
    threads: int = 1,
) -> None:
    """Write benchmark.md and benchmark.csv (quality per stage, the upper bound, per-job cost).

    Args:
        experiment: experiment name
        cam_best: best.json of eval_cams on the CAMs (seeds at their best threshold)
        pseudo_masks: pseudo-mask metrics as refinement=metrics.json, one per refinement
        segmentation: eval_segmentation metrics of the network trained on pseudo-masks
        refinement: the refinement whose pseudo-masks trained that network
        upper_bound: eval_segmentation metrics of the network trained on ground-truth masks
        summary: the experiment's metrics.json (the report follows it)
        jobs: Snakemake benchmark TSV files of the jobs the report covers
        out_md: benchmark.md
        out_csv: benchmark.csv
        threads: unused
    """
    cam = read_json(cam_best)
    quality = [
        quality_row(
            "CAM seeds", cam["split"], cam, REFERENCES["cams"], f"best background threshold {cam['best_threshold']:.2f}"
        )
    ]
    per_image = {}
    for item in pseudo_masks:
        name, path = item.split("=", 1)
        metrics = read_json(Path(path))
        per_image[name] = load_confusions(Path(path).with_name("per_image.npz"))
        quality.append(
            quality_row(
                f"pseudo-masks: {REFINEMENT_NAMES.get(name, name)}",
                metrics["split"],
                metrics,
                REFERENCES.get(name, "—"),
                "trains DeepLab" if name == refinement else "",
            )
        )
        if "none" in per_image and name != "none":
            delta = paired_difference(per_image[name], per_image["none"])
            quality[-1].update(zip(("delta_seeds", "delta_seeds_lo", "delta_seeds_hi"), delta))
    weak, full = read_json(segmentation), read_json(upper_bound)
    quality.append(
        quality_row(f"DeepLab on pseudo-masks ({refinement})", weak["split"], weak, REFERENCES["segmentation"])
    )
    quality.append(
        quality_row(
            "DeepLab on ground truth (upper bound)",
            full["split"],
            full,
            REFERENCES["upper_bound"],
            "same network and schedule, masks of the training split",
        )
    )
    ratio = 100.0 * weak["miou"] / full["miou"] if full["miou"] > 0 else None
    times = read_job_times(jobs, experiment)
    rows = [{"section": "quality", **r, "weak_over_full_percent": None} for r in quality]
    rows[-2]["weak_over_full_percent"] = None if ratio is None else round(ratio, 2)
    rows += [
        {
            "section": "cost",
            "stage": t["job"],
            "seconds": t["seconds"],
            "cpu_seconds": t["cpu_seconds"],
            "peak_rss_mib": t["peak_rss_mib"],
        }
        for t in times
    ]
    columns = [
        "section",
        "stage",
        "split",
        "images",
        "miou",
        "delta_seeds",
        "delta_seeds_lo",
        "delta_seeds_hi",
        "precision",
        "recall",
        "reference_full_voc_gpu",
        "note",
        "weak_over_full_percent",
        "seconds",
        "cpu_seconds",
        "peak_rss_mib",
    ]
    write_csv(out_csv, [{c: row.get(c) for c in columns} for row in rows])
    text = render_markdown(experiment, quality, ratio, times)
    with atomic_path(out_md) as tmp:
        tmp.write_text(text)
    print(text, flush=True)
    log.info("wrote %s and %s", out_md, out_csv)
