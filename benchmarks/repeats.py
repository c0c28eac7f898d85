"""Repeats that did not share one results tree, kept as a record and tabulated like the leaderboard.

The leaderboard pairs the repeats of one run. A repeat added later — a third seed on another day, on
another machine, after the first two's artifacts are gone — is kept instead as a row of a small CSV
record (one row per method and training seed, taken from the experiment's ``metrics.json``), and this
script prints the leaderboard's statistics from the record: per method its mIoU on train (and on val at
the train threshold) as mean ± sample std, and its difference to the baseline paired by seed, with the
95 % t-interval and the *within noise* / *spans 0* marks of ``stats.describe_difference``.

A row is a seed method's CAM seeds (the default), or with ``--refinement`` the pseudo-masks of one
refinement of that experiment's CAMs (its ``make_pseudo_masks.refinement`` or one of ``compare``), so
that refiners of the same CAMs are paired by seed in a record of their own, against ``none`` (the
seeds) or against a chain without its last link. With ``--segmentation`` a row is the experiment's final
network instead: ``miou_train`` its pseudo-masks on train (what it trained on), ``miou_val`` the network
on val, precision and recall the network's on val, so that two DeepLab recipes on the same pseudo-masks
(fp32 against bf16) are paired by seed on val:

    python benchmarks/repeats.py add benchmarks/records/voc12_cpu_subset_seeds.csv eps 2
    results/voc12_cpu_eps_r2/metrics.json
    python benchmarks/repeats.py table benchmarks/records/voc12_cpu_subset_seeds.csv --baseline cam
    python benchmarks/repeats.py add benchmarks/records/voc12_cpu_subset_refinements.csv pamr+crf 2
    results/voc12_cpu_cam_r2/metrics.json --refinement pamr+crf
    python benchmarks/repeats.py table benchmarks/records/voc12_cpu_subset_refinements.csv --baseline pamr
    python benchmarks/repeats.py add benchmarks/records/voc12_cpu_subset_segmentation.csv bf16 1
    results/voc12_cpu_bf16_r1/metrics.json --segmentation
    python benchmarks/repeats.py table benchmarks/records/voc12_cpu_subset_segmentation.csv --baseline fp32

``add`` replaces the row of the same method and seed. Rows may also be written by hand for numbers
measured before the record existed (say where from in ``source``); empty cells are numbers not kept.
Which machine measured a row is in ``cpu``: CPU training is not bit-reproducible across machines, so a
difference paired across two machines carries that spread too.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

FIELDS = (
    "method",
    "seed",
    "miou_train",
    "miou_val",
    "threshold",
    "precision",
    "recall",
    "map_train",
    "map_val",
    "cpu",
    "commit",
    "source",
)


def row_from_metrics(
    method: str, seed: int, metrics: dict, source: str, refinement: str | None = None, segmentation: bool = False
) -> dict:
    """One record row from an experiment's metrics.json (summarize_metrics): its CAM seeds, the
    pseudo-masks of ``refinement``, or (``segmentation``) its final network. Precision, recall and
    threshold are kept for the seeds, for the experiment's own refinement and for a final network (its
    precision and recall on val, the threshold of its pseudo-masks); metrics.json holds only the mIoU of
    the refinements it compares."""
    prov = metrics.get("provenance") or {}
    machine, git = prov.get("machine") or {}, prov.get("git") or {}
    flags = machine.get("cpu_flags") or []
    cpu = f"{machine.get('cpu', '')} ({', '.join(flags)})" if flags else machine.get("cpu", "")
    common = {
        "method": method,
        "seed": seed,
        "map_train": mean_ap(metrics, True),
        "map_val": mean_ap(metrics, False),
        "cpu": cpu,
        "commit": (git.get("commit") or "")[:10],
        "source": source,
    }
    if segmentation:
        if metrics.get("segmentation_miou") is None:
            raise SystemExit(
                "this metrics.json has no final network (segmentation_miou); was train_segmentation.enabled false?"
            )
        return {
            **common,
            "miou_train": metrics["pseudo_mask_miou"],
            "miou_val": metrics["segmentation_miou"],
            "threshold": metrics.get("pseudo_mask_bg_threshold"),
            "precision": metrics["segmentation"]["precision"],
            "recall": metrics["segmentation"]["recall"],
        }
    if refinement is None:
        return {
            **common,
            "miou_train": metrics["cam_miou"],
            "miou_val": metrics.get("cam_miou_val"),
            "threshold": metrics.get("cam_bg_threshold_best"),
            "precision": metrics["cam"]["precision"],
            "recall": metrics["cam"]["recall"],
        }
    scored = metrics.get("pseudo_mask_miou_by_refinement") or {}
    if refinement not in scored:
        raise SystemExit(
            f"refinement '{refinement}' is not in this metrics.json (it scored: {', '.join(scored) or 'none'})"
        )
    own = refinement == metrics.get("refinement")
    return {
        **common,
        "miou_train": scored[refinement],
        "miou_val": None,
        "threshold": metrics.get("pseudo_mask_bg_threshold") if own else None,
        "precision": metrics["pseudo_mask"]["precision"] if own else None,
        "recall": metrics["pseudo_mask"]["recall"] if own else None,
    }


def mean_ap(metrics: dict, on_seed_split: bool) -> float | None:
    """The classifier's mAP in percent to one decimal, as the record's hand-written rows keep it."""
    from wsss_stages.lib.evaluation.reports import classifier_map

    value = classifier_map(metrics, on_seed_split)
    return None if value is None else round(value, 1)


def read_record(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    unknown = set(rows[0]) - set(FIELDS) if rows else set()
    if unknown:
        raise SystemExit(f"{path}: unknown columns {sorted(unknown)} (expected {', '.join(FIELDS)})")
    return rows


def write_record(path: Path, rows: list[dict]) -> None:
    from wsss_stages.lib.data.artifacts import atomic_path

    rows = sorted(rows, key=lambda r: (r["method"], int(r["seed"])))
    with atomic_path(path) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, FIELDS)
        writer.writeheader()
        writer.writerows({k: ("" if row.get(k) is None else row[k]) for k in FIELDS} for row in rows)


def add(
    record: Path,
    method: str,
    seed: int,
    metrics_path: Path,
    source: str,
    refinement: str | None = None,
    segmentation: bool = False,
) -> dict:
    metrics = json.loads(metrics_path.read_text())
    row = row_from_metrics(method, seed, metrics, source or str(metrics_path), refinement, segmentation)
    rows = [r for r in read_record(record) if not (r["method"] == method and int(r["seed"]) == seed)]
    write_record(record, [*rows, row])
    return row


def by_method(rows: list[dict], column: str) -> dict[str, dict[int, float]]:
    """{method: {seed: value}} for the rows whose ``column`` is filled in, in the record's order of methods."""
    table: dict[str, dict[int, float]] = {}
    for row in rows:
        table.setdefault(row["method"], {})
        if row.get(column) not in (None, ""):
            table[row["method"]][int(row["seed"])] = float(row[column])
    return table


def spread(values: dict[int, float]) -> str:
    from wsss_stages.lib.evaluation.stats import mean_std

    if not values:
        return ""
    mean, std = mean_std([values[s] for s in sorted(values)])
    per_seed = " / ".join(f"{values[s]:.2f}" for s in sorted(values))
    return f"{mean:.2f}" + (f" ± {std:.2f} ({per_seed})" if std is not None else f" (seed {next(iter(values))})")


def paired(values: dict[int, float], baseline: dict[int, float]) -> str:
    from wsss_stages.lib.evaluation.stats import describe_difference, paired_t_interval

    seeds = sorted(set(values) & set(baseline))
    if not seeds:
        return ""
    by_seed = " / ".join(f"{values[s] - baseline[s]:+.2f}" for s in seeds)
    interval = paired_t_interval([values[s] for s in seeds], [baseline[s] for s in seeds])
    return f"{describe_difference(*interval)} (n = {len(seeds)}: {by_seed})"


def table(rows: list[dict], baseline: str) -> str:
    train, val = by_method(rows, "miou_train"), by_method(rows, "miou_val")
    if baseline not in train:
        raise SystemExit(f"baseline '{baseline}' has no rows (methods: {', '.join(train)})")
    machines = {}
    for row in rows:
        machines.setdefault(row["method"], set()).add(row["cpu"] or "?")
    lines = [
        "| method | mIoU on train, mean ± std (per seed) | Δ vs " + baseline + ", paired by seed, 95 % t-interval | "
        "mIoU on val | Δ on val | machines |",
        "| --- | ---: | --- | ---: | --- | ---: |",
    ]
    for method in train:
        is_base = method == baseline
        lines.append(
            f"| {method} | {spread(train[method])} | "
            f"{'baseline' if is_base else paired(train[method], train[baseline])} | "
            f"{spread(val[method])} | {'' if is_base else paired(val[method], val[baseline])} | "
            f"{len(machines[method])} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    adding = sub.add_parser("add", help="add (or replace) the row of a method and seed from a metrics.json")
    adding.add_argument("record", type=Path)
    adding.add_argument("method")
    adding.add_argument(
        "seed", type=int, help="the repeat's training seed offset (0 for the experiment's own folder, r for _r<r>)"
    )
    adding.add_argument("metrics", type=Path, help="results/<experiment>[_r<r>]/metrics.json")
    adding.add_argument("--source", default="", help="where the row came from (default: the metrics path)")
    kind = adding.add_mutually_exclusive_group()
    kind.add_argument(
        "--refinement",
        help="record the pseudo-masks of this refinement (e.g. pamr, pamr+crf, none) instead of the seeds",
    )
    kind.add_argument(
        "--segmentation",
        action="store_true",
        help="record the final network (val mIoU, and its pseudo-masks on train) instead of the seeds",
    )
    tabling = sub.add_parser("table", help="print the record as a markdown table")
    tabling.add_argument("record", type=Path)
    tabling.add_argument("--baseline", default="cam")
    args = parser.parse_args()
    if args.command == "add":
        print(add(args.record, args.method, args.seed, args.metrics, args.source, args.refinement, args.segmentation))
    else:
        print(table(read_record(args.record), args.baseline))


if __name__ == "__main__":
    main()
