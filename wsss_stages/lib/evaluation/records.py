"""Records of measurements that did not share one results tree, and their tables.

A leaderboard pairs the repeats of one run. A repeat measured later (a third seed on another day, on
another machine, after the first two's artifacts are gone) is kept instead as a row of a CSV record in
``benchmarks/records/``: one row per method and training seed, taken from the experiment's
``metrics.json``, with the machine, the date and commit it came from, the committed overlay and the
command that reproduce it. :func:`table` prints the leaderboard's statistics from a record: per method
its mIoU on train (and on val at the train threshold) as mean ± sample std, and its difference to a
baseline paired by seed with the 95 % t-interval and the *within noise* / *spans 0* marks of
:func:`wsss_stages.lib.evaluation.stats.describe_difference`.

A row is a seed method's CAM seeds, the pseudo-masks of one refinement of those CAMs (``refinement``),
or the experiment's final network (``segmentation``: ``miou_train`` its pseudo-masks on train,
``miou_val`` the network on val, precision and recall the network's on val). Empty cells are numbers
not kept. CPU training is not bit-reproducible across machines, so a difference paired across two
machines carries that spread too; the ``machines`` column counts them.
"""

from __future__ import annotations

import csv
import datetime
from pathlib import Path

from wsss_stages.lib.evaluation.reports import classifier_map, markdown_table
from wsss_stages.lib.evaluation.stats import describe_difference, mean_std, paired_t_interval

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
    "date",
    "commit",
    "overlay",
    "command",
    "note",
)


class RecordError(ValueError):
    """A record or a metrics file that cannot make a row; the message names it."""


def mean_ap(metrics: dict, on_seed_split: bool) -> float | None:
    """The classifier's mAP in percent, to one decimal."""
    value = classifier_map(metrics, on_seed_split)
    return None if value is None else round(value, 1)


def row_from_metrics(
    method: str,
    seed: int,
    metrics: dict,
    *,
    overlay: str,
    command: str,
    note: str = "",
    date: str | None = None,
    refinement: str | None = None,
    segmentation: bool = False,
) -> dict:
    """One record row from an experiment's metrics.json (summarize_metrics): its CAM seeds, the pseudo-masks
    of ``refinement`` (``decoder``: with the decoder itself on val), or (``segmentation``) its final network.
    Precision, recall and threshold are kept for the seeds, the experiment's own refinement and a final
    network; metrics.json holds only the mIoU of the refinements it merely compares."""
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
        "date": date or datetime.date.today().isoformat(),
        "commit": (git.get("commit") or "")[:10],
        "overlay": overlay,
        "command": command,
        "note": note,
    }
    if segmentation:
        if metrics.get("segmentation_miou") is None:
            raise RecordError(
                "this metrics.json has no final network (segmentation_miou): train_segmentation.enabled false?"
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
        raise RecordError(
            f"refinement '{refinement}' is not in this metrics.json (it scored: {', '.join(scored) or 'none'})"
        )
    own = refinement == metrics.get("refinement")
    return {
        **common,
        "miou_train": scored[refinement],
        # the decoder's pseudo-masks come with the decoder itself scored on val (no second training)
        "miou_val": metrics.get("decoder_net_miou") if refinement == "decoder" else None,
        "threshold": metrics.get("pseudo_mask_bg_threshold") if own else None,
        "precision": metrics["pseudo_mask"]["precision"] if own else None,
        "recall": metrics["pseudo_mask"]["recall"] if own else None,
    }


def read_record(path: Path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    unknown = set(rows[0]) - set(FIELDS) if rows else set()
    if unknown:
        raise RecordError(f"{path}: unknown columns {sorted(unknown)} (expected {', '.join(FIELDS)})")
    return rows


def write_record(path: Path, rows: list[dict]) -> None:
    from wsss_stages.lib.data.artifacts import atomic_path

    rows = sorted(rows, key=lambda r: (r["method"], int(r["seed"])))
    with atomic_path(path) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: ("" if row.get(k) is None else row[k]) for k in FIELDS} for row in rows)


def add_row(record: Path, row: dict) -> None:
    """Add ``row`` to the record, replacing the row of the same method and seed."""
    if not str(row.get("overlay", "")).startswith("configs/"):
        raise RecordError("a record row names the committed overlay that reproduces it (configs/experiments/…)")
    rows = [r for r in read_record(record) if not (r["method"] == row["method"] and int(r["seed"]) == int(row["seed"]))]
    write_record(record, [*rows, row])


def by_method(rows: list[dict], column: str) -> dict[str, dict[int, float]]:
    """{method: {seed: value}} for the rows whose ``column`` is filled in, in the record's order of methods."""
    table: dict[str, dict[int, float]] = {}
    for row in rows:
        table.setdefault(row["method"], {})
        if row.get(column) not in (None, ""):
            table[row["method"]][int(row["seed"])] = float(row[column])
    return table


def spread(values: dict[int, float]) -> str:
    """ "mean ± std (per seed)", or the one value and its seed."""
    if not values:
        return ""
    mean, std = mean_std([values[s] for s in sorted(values)])
    per_seed = " / ".join(f"{values[s]:.2f}" for s in sorted(values))
    return f"{mean:.2f}" + (f" ± {std:.2f} ({per_seed})" if std is not None else f" (seed {next(iter(values))})")


def paired(values: dict[int, float], baseline: dict[int, float]) -> str:
    """The difference to ``baseline`` over the seeds both have, with its t-interval and the per-seed differences."""
    seeds = sorted(set(values) & set(baseline))
    if not seeds:
        return ""
    by_seed = " / ".join(f"{values[s] - baseline[s]:+.2f}" for s in seeds)
    interval = paired_t_interval([values[s] for s in seeds], [baseline[s] for s in seeds])
    return f"{describe_difference(*interval)} (n = {len(seeds)}: {by_seed})"


def table(rows: list[dict], baseline: str) -> str:
    """The record as a markdown table, each method paired by seed to ``baseline``."""
    train, val = by_method(rows, "miou_train"), by_method(rows, "miou_val")
    if baseline not in train:
        raise RecordError(f"baseline '{baseline}' has no rows (methods: {', '.join(train)})")
    machines: dict[str, set] = {}
    for row in rows:
        machines.setdefault(row["method"], set()).add(row["cpu"] or "?")
    columns = ["method", "mIoU on train, mean ± std (per seed)", f"Δ vs {baseline}, paired by seed, 95 % t-interval"]
    columns += ["mIoU on val", "Δ on val", "machines"]
    cells = []
    for method in train:
        is_base = method == baseline
        cells.append(
            [method, spread(train[method]), "baseline" if is_base else paired(train[method], train[baseline])]
            + [spread(val[method]), "" if is_base else paired(val[method], val[baseline]), len(machines[method])]
        )
    return "\n".join(markdown_table(columns, cells, right={columns[1], "mIoU on val", "machines"}))


def provenance_table(rows: list[dict]) -> str:
    """Where the rows came from: per method, its seeds, machines, dates, commits and notes."""
    cells = []
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        seeds = ", ".join(r["seed"] for r in mine)
        cpus = "; ".join(dict.fromkeys(r["cpu"] for r in mine if r["cpu"]))
        dates = ", ".join(dict.fromkeys(r["date"] for r in mine if r["date"]))
        commits = ", ".join(f"`{c}`" for c in dict.fromkeys(r["commit"] for r in mine if r["commit"]))
        notes = "; ".join(f"seed {r['seed']}: {r['note']}" for r in mine if r["note"])
        cells.append([method, seeds, cpus, dates, commits, notes])
    return "\n".join(markdown_table(["method", "seeds", "CPU", "dates", "commits", "notes"], cells))


def commands(rows: list[dict]) -> list[tuple[str, list[str]]]:
    """Each command that reproduces rows of the record, with the methods it reproduces."""
    found: dict[str, list[str]] = {}
    for row in rows:
        methods = found.setdefault(row["command"], [])
        if row["method"] not in methods:
            methods.append(row["method"])
    return list(found.items())
