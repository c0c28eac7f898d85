"""Stage write_leaderboard: the table of a run with several experiments (or repeats):
results/<leaderboard>.md, .csv and .png.

One row per experiment, from the metrics.json of each of its repeats: CAM seed mIoU (seed split,
best threshold), pseudo-mask mIoU after its refinement and final val mIoU, as mean ± std over the
repeats; for every experiment but the first (the baseline), its paired difference to the baseline
with a 95 % t-interval (:mod:`wsss_stages.lib.evaluation.stats`); when an experiment scored several
refinements of its CAMs (``make_pseudo_masks.compare``), a second table with each one's mean ± std
and its paired difference to the seeds; and the wall time of the jobs a repeat
needs (shared jobs counted in each experiment that reads them, and apart, the jobs built in its own
folders), and their CPU time, from Snakemake's benchmark files. CPU time does not grow when
other work shares the machine; wall time does.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path

from wsss_stages.lib.data.artifacts import atomic_path, named_items, read_json, write_csv
from wsss_stages.lib.evaluation.reports import classifier_map, fmt, markdown_table, read_job_time
from wsss_stages.lib.evaluation.stats import NOISE, describe_difference, mean_std, paired_t_interval

log = logging.getLogger(__name__)

SCORES = (
    ("cam_miou", "CAM seeds"),
    ("cam_miou_val", "CAM seeds (val)"),
    ("pseudo_mask_miou", "pseudo-masks"),
    ("val_miou", "final val"),
    ("decoder_val_miou", "decoder (val)"),
)
SUMMARY_KEYS = {
    "cam_miou": "cam_miou",
    "cam_miou_val": "cam_miou_val",
    "pseudo_mask_miou": "pseudo_mask_miou",
    "val_miou": "segmentation_miou",
    "decoder_val_miou": "decoder_net_miou",  # a classifier's own segmentation decoder (RecurSeed), no 2nd training
}


def _scored(rows: list[dict]) -> list[tuple[str, str]]:
    """The scores some row has (the decoder's only where a method has one)."""
    return [(key, label) for key, label in SCORES if key != "decoder_val_miou" or any(r[key] is not None for r in rows)]


def job_times(jobs: list[tuple[str, str]], groups: dict[str, str]) -> dict[str, dict[str, float]]:
    """experiment → wall seconds of the jobs its repeats need, of those built in its own folders, and
    their CPU seconds, each summed over the repeats; plus the count of jobs never measured."""
    totals: dict[str, dict[str, float]] = defaultdict(
        lambda: {"seconds": 0.0, "own_seconds": 0.0, "cpu_seconds": 0.0, "missing": 0}
    )
    for folder, tsv in jobs:
        name = groups.get(folder, folder)
        row, entry = read_job_time(Path(tsv)), totals[name]
        if row is None or row["seconds"] is None:
            entry["missing"] += 1
            continue
        entry["seconds"] += row["seconds"]
        entry["cpu_seconds"] += row["cpu_seconds"] or 0.0
        if groups.get(Path(tsv).parent.parent.name) == name:
            entry["own_seconds"] += row["seconds"]
    return totals


def leaderboard_rows(
    summaries: list[tuple[str, dict]], groups: dict[str, str], labels: dict[str, str], times: dict
) -> list[dict]:
    """One row per experiment (in order of first appearance); repeats in the order given."""
    repeats: dict[str, list[dict]] = defaultdict(list)
    for folder, summary in summaries:
        repeats[groups.get(folder, folder)].append(summary)
    baseline = next(iter(repeats))
    rows = []
    for name, runs in repeats.items():
        first, n = runs[0], len(runs)
        cost = times.get(name, {"seconds": None, "own_seconds": None, "cpu_seconds": None, "missing": 0})
        row = {
            "experiment": name,
            "method": labels.get(name, ""),
            "refinement": first["refinement"],
            "repeats": n,
            "cam_bg_threshold": first["cam_bg_threshold_best"],
            "seed_split": first["seed_split"],
            "val_split": first["val_split"],
        }
        for key, summary_key in SUMMARY_KEYS.items():
            values = [run.get(summary_key) for run in runs]
            row[key], row[f"{key}_std"] = mean_std(values)
            base = [run.get(summary_key) for run in repeats[baseline]]
            delta = paired_to(values, base) if name != baseline else (None, None, None)
            row[f"delta_{key}"], row[f"delta_{key}_lo"], row[f"delta_{key}_hi"] = delta
        for key, on_seed_split in (("classifier_map", True), ("classifier_map_val", False)):
            row[key], row[f"{key}_std"] = mean_std([classifier_map(run, on_seed_split) for run in runs])
        per_repeat = lambda v, n=n: None if v is None else v / n
        row.update(
            {
                "wall_seconds": per_repeat(cost["seconds"]),
                "own_wall_seconds": per_repeat(cost["own_seconds"]),
                "cpu_seconds": per_repeat(cost["cpu_seconds"]),
                "jobs_unmeasured": cost["missing"],
            }
        )
        rows.append(row)
    return rows


def refinement_rows(summaries: list[tuple[str, dict]], groups: dict[str, str]) -> list[dict]:
    """One row per experiment and refinement it scored (its ``refinement`` and ``compare``), when some
    experiment scored more than one: pseudo-mask mean ± std over the repeats, the paired difference
    to the same repeats' seeds (``none``, the CAMs thresholded; no retraining between the two) and, for
    a chain, to the chain without its last link (``pamr+crf`` against ``pamr``: what the CRF adds)."""
    scored: dict[str, list[dict]] = defaultdict(list)
    for folder, summary in summaries:
        scored[groups.get(folder, folder)].append(summary.get("pseudo_mask_miou_by_refinement") or {})
    if all(len(run) <= 1 for runs in scored.values() for run in runs):
        return []
    rows = []
    for name, runs in scored.items():
        for refinement in dict.fromkeys(r for run in runs for r in run):
            values = [run.get(refinement) for run in runs]
            mean, std = mean_std(values)
            prefix = refinement.rpartition("+")[0]
            delta = paired_to(values, [run.get("none") for run in runs]) if refinement != "none" else (None, None, None)
            link = paired_to(values, [run.get(prefix) for run in runs]) if prefix else (None, None, None)
            rows.append(
                {
                    "experiment": name,
                    "refinement": refinement,
                    "repeats": sum(v is not None for v in values),
                    "pseudo_mask_miou": mean,
                    "pseudo_mask_miou_std": std,
                    "delta": delta[0],
                    "delta_lo": delta[1],
                    "delta_hi": delta[2],
                    "prefix": prefix or None,
                    "delta_prefix": link[0],
                    "delta_prefix_lo": link[1],
                    "delta_prefix_hi": link[2],
                }
            )
    return rows


def paired_to(values: list, reference: list) -> tuple:
    """Paired t-interval of ``values`` − ``reference`` over the repeats that have both (Nones without any)."""
    pairs = [(v, b) for v, b in zip(values, reference) if v is not None and b is not None]
    return paired_t_interval(*zip(*pairs)) if pairs else (None, None, None)


def render_refinements(rows: list[dict]) -> str:
    lines = [
        "## Refinements of the same CAMs",
        "",
        "Every refinement an experiment scored on the seed split (`make_pseudo_masks.refinement` and `compare`): mIoU "
        "in %, "
        "mean ± sample std over the repeats; Δ: the paired difference to the same repeats' seeds (`none`), and for a "
        "chain to the chain without its last link, with its 95 % t-interval, marked as above.",
        "",
    ]
    cells = []
    for row in rows:
        text = fmt(row["pseudo_mask_miou"]) + (
            f" ± {row['pseudo_mask_miou_std']:.2f}" if row["pseudo_mask_miou_std"] is not None else ""
        )
        delta = (
            "seeds"
            if row["refinement"] == "none"
            else describe_difference(row["delta"], row["delta_lo"], row["delta_hi"])
        )
        link = ""
        if row["prefix"]:
            link = f"vs {row['prefix']}: " + describe_difference(
                row["delta_prefix"], row["delta_prefix_lo"], row["delta_prefix_hi"]
            )
        cells.append([row["experiment"], row["refinement"], row["repeats"], text, delta, link])
    columns = ["experiment", "refinement", "n", "pseudo-masks", "Δ vs seeds", "Δ of the last link"]
    lines += markdown_table(columns, cells, right={"n", "pseudo-masks"})
    return "\n".join(lines) + "\n"


def render_markdown(rows: list[dict]) -> str:
    best = {key: max((r[key] for r in rows if r[key] is not None), default=None) for key, _ in SCORES}

    def score(row, key):
        text = fmt(row[key]) + (f" ± {row[f'{key}_std']:.2f}" if row[f"{key}_std"] is not None else "")
        return f"**{text}**" if row[key] is not None and row[key] == best[key] and len(rows) > 1 else text

    def delta(row, key):
        if row is rows[0]:
            return "baseline"
        return describe_difference(row[f"delta_{key}"], row[f"delta_{key}_lo"], row[f"delta_{key}_hi"])

    seed_split = rows[0]["seed_split"]
    val_split = next((r["val_split"] for r in rows if r["val_split"]), "val")
    lines = [
        "# Leaderboard",
        "",
        f"mIoU in %, mean ± sample std over the repeats (training seeds; n = repeats): CAM seeds at their best "
        f"background threshold and pseudo-masks on `{seed_split}` (thresholds swept there), the seeds on `{val_split}` "
        f"at that threshold (never tuned there), the DeepLab trained on "
        f"the pseudo-masks on `{val_split}` (and, for a method with a segmentation decoder of its own, that decoder "
        f"on `{val_split}`, with no second training). Δ: the paired difference to the first experiment "
        f"({rows[0]['experiment']}), "
        "repeat by repeat (same seed), with its 95 % t-interval; differences below "
        f"{NOISE:g} points are marked *within noise*, intervals that hold 0 *spans 0*. Wall time: every job one "
        "repeat needs, shared ones included; *own*: the jobs built in the experiment's own folders; CPU: their "
        "CPU time. Classifier mAP: multi-label, background excluded, one forward per image (score_classifier). "
        "Best mean per column in bold.",
        "",
    ]
    mean_ap = f"classifier mAP ({seed_split} / val)"
    columns = ["experiment", "method", "refinement", "n", "CAM seeds", "Δ seeds", "bg thr", "seeds (val)"]
    columns += ["Δ seeds (val)", "pseudo-masks", "Δ pseudo-masks", "final val", "Δ final val"]
    decoder = len(_scored(rows)) > 4
    columns += ["decoder (val)", "Δ decoder (val)"] if decoder else []
    columns += [mean_ap, "wall time (s)", "own (s)", "CPU (s)"]
    cells = []
    for row in rows:
        wall = fmt(row["wall_seconds"], 0) + (
            f" ({row['jobs_unmeasured']} jobs unmeasured)" if row["jobs_unmeasured"] else ""
        )
        cells.append(
            [row["experiment"], row["method"], row["refinement"], row["repeats"]]
            + [score(row, "cam_miou"), delta(row, "cam_miou"), fmt(row["cam_bg_threshold"])]
            + [score(row, "cam_miou_val"), delta(row, "cam_miou_val"), score(row, "pseudo_mask_miou")]
            + [delta(row, "pseudo_mask_miou"), score(row, "val_miou"), delta(row, "val_miou")]
            + ([score(row, "decoder_val_miou"), delta(row, "decoder_val_miou")] if decoder else [])
            + [f"{fmt(row['classifier_map'], 1)} / {fmt(row['classifier_map_val'], 1)}", wall]
            + [fmt(row["own_wall_seconds"], 0), fmt(row["cpu_seconds"], 0)]
        )
    numbers = {"n", "CAM seeds", "bg thr", "seeds (val)", "pseudo-masks", "final val", "decoder (val)", mean_ap}
    lines += markdown_table(columns, cells, right=numbers | {"wall time (s)", "own (s)", "CPU (s)"})
    return "\n".join(lines) + "\n"


def plot_leaderboard(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    scores = _scored(rows)
    x, width = np.arange(len(rows)), 0.8 / len(scores)
    offset = (len(scores) - 1) / 2
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(rows)), 3.8), constrained_layout=True)
    for k, (key, label) in enumerate(scores):
        values = [row[key] if row[key] is not None else np.nan for row in rows]
        errors = [row[f"{key}_std"] or 0.0 for row in rows]
        ax.bar(x + (k - offset) * width, values, width, yerr=errors, capsize=3, label=label)
    ax.set_xticks(x, [row["experiment"] for row in rows], rotation=20, ha="right")
    ax.set_ylabel("mIoU (%), mean ± std over repeats")
    ax.legend(frameon=False, ncols=len(scores), loc="upper left")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def write_leaderboard(
    *,
    out_md: Path,
    out_csv: Path,
    out_plot: Path | None,
    summaries: list[str],
    groups: list[str],
    jobs: list[str],
    labels: list[str],
    threads: int = 1,
) -> None:
    """Write the leaderboard of several experiments and their repeats.

    Args:
        out_md: leaderboard markdown
        out_csv: leaderboard CSV (one row per experiment)
        out_plot: bar chart of the three mIoU columns with their spread (PNG)
        summaries: folder=metrics.json items, experiments in leaderboard order, repeats in order
        groups: folder=experiment items: which experiment each repeat folder belongs to
        jobs: folder=benchmark.tsv items, one per job each repeat needs (wall time)
        labels: experiment=method-name items
        threads: unused
    """
    groups_map = dict(named_items(groups, "groups"))
    times = job_times(named_items(jobs, "jobs"), groups_map)
    loaded = [(folder, read_json(Path(path))) for folder, path in named_items(summaries, "summaries")]
    rows = leaderboard_rows(loaded, groups_map, dict(named_items(labels, "labels")), times)
    write_csv(out_csv, rows)
    table = render_markdown(rows)
    refinements = refinement_rows(loaded, groups_map)
    if refinements:
        table += "\n" + render_refinements(refinements)
    with atomic_path(out_md) as tmp:
        tmp.write_text(table)
    if out_plot:
        plot_leaderboard(rows, Path(out_plot))
    print(table, flush=True)
    log.info("wrote %s and %s", out_md, out_csv)
