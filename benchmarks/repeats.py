"""Add rows to a record of repeats, or print it as the leaderboard's table (wsss_stages/lib/evaluation/records.py).

    python benchmarks/repeats.py add benchmarks/records/voc12_cpu_subset_seeds.csv eps 2 \
        results/voc12_cpu_eps_r2/metrics.json --overlay configs/experiments/seed_methods_repeats.yaml
    python benchmarks/repeats.py add benchmarks/records/voc12_cpu_subset_refinements.csv pamr+crf 2 \
        results/voc12_cpu_r2/metrics.json --refinement pamr+crf --overlay configs/experiments/refiners.yaml
    python benchmarks/repeats.py add benchmarks/records/voc12_cpu_subset_segmentation.csv bf16 1 \
        results/voc12_cpu_bf16_r1/metrics.json --segmentation --overlay configs/experiments/segmentation_recipes.yaml
    python benchmarks/repeats.py table benchmarks/records/voc12_cpu_subset_seeds.csv --baseline cam

``add`` replaces the row of the same method and seed. The row records the committed overlay and the command
that reproduce it (``--command``; by default the CPU preset with that overlay), the machine and commit from
the metrics' provenance, and the date of the metrics file. After adding rows, ``make docs`` rewrites
docs/results.md from the records.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

from wsss_stages.lib.evaluation.records import RecordError, add_row, read_record, row_from_metrics, table

DEFAULT_COMMAND = (
    "snakemake --cores all --configfile configs/voc12_cpu.yaml {overlay} --config data_root=/path/to/VOC2012"
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)
    adding = sub.add_parser("add", help="add (or replace) the row of a method and seed from a metrics.json")
    adding.add_argument("record", type=Path)
    adding.add_argument("method")
    adding.add_argument(
        "seed", type=int, help="the repeat's seed offset (0 for the experiment's own folder, r for _r<r>)"
    )
    adding.add_argument("metrics", type=Path, help="results/<experiment>[_r<r>]/metrics.json")
    adding.add_argument("--overlay", required=True, help="the committed overlay that reproduces the row (configs/…)")
    adding.add_argument("--command", help=f"the command that reproduces it (default: {DEFAULT_COMMAND!r})")
    adding.add_argument(
        "--note", default="", help="what a reader of the row should know (without paths of this machine)"
    )
    kind = adding.add_mutually_exclusive_group()
    kind.add_argument("--refinement", help="record the pseudo-masks of this refinement (pamr, pamr+crf, none, …)")
    kind.add_argument("--segmentation", action="store_true", help="record the final network (val mIoU)")
    tabling = sub.add_parser("table", help="print the record as a markdown table")
    tabling.add_argument("record", type=Path)
    tabling.add_argument("--baseline", default="cam")
    args = parser.parse_args()
    try:
        if args.action == "table":
            print(table(read_record(args.record), args.baseline))
            return 0
        metrics = json.loads(args.metrics.read_text())
        date = datetime.date.fromtimestamp(args.metrics.stat().st_mtime).isoformat()
        command = args.command or DEFAULT_COMMAND.format(overlay=args.overlay)
        row = row_from_metrics(
            args.method,
            args.seed,
            metrics,
            overlay=args.overlay,
            command=command,
            note=args.note,
            date=date,
            refinement=args.refinement,
            segmentation=args.segmentation,
        )
        add_row(args.record, row)
        print(row)
    except (RecordError, OSError, ValueError) as error:
        print(f"repeats.py: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
