"""Cost and formatting helpers of the reports: Snakemake benchmark files, table cells, summary look-ups."""

from __future__ import annotations

import csv
from pathlib import Path


def read_job_time(path: Path) -> dict | None:
    """Wall time, CPU time and peak memory of a job's last run, from its Snakemake ``benchmark:`` TSV."""
    path = Path(path)
    if not path.is_file():
        return None
    with path.open() as handle:
        records = list(csv.DictReader(handle, delimiter="\t"))
    if not records:
        return None
    last = records[-1]

    def number(key: str) -> float | None:
        value = last.get(key, "NA")
        return None if value in ("NA", "", "-") else float(value)

    return {
        "job": path.stem,
        "seconds": number("s"),
        "peak_rss_mib": number("max_rss"),
        "cpu_seconds": number("cpu_time"),
    }


def read_job_times(paths: list[str], experiment: str) -> list[dict]:
    """Cost rows of the jobs whose benchmark files are given; a job built in another experiment's
    folder (shared) is named with that experiment. Jobs that never ran are left out."""
    rows = []
    for path in map(Path, paths):
        row = read_job_time(path)
        if row:
            owner = path.parent.parent.name
            rows.append({**row, "job": row["job"] if owner == experiment else f"{row['job']} (from {owner})"})
    return rows


def markdown_table(columns: list[str], rows: list[list], right: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """The one way a markdown table is written: a header, a rule (the ``right`` columns right-aligned) and a
    line per row, cells as given (format numbers with :func:`fmt` first). Plain lists rather than pandas:
    the reports tabulate a few dozen rows, and the package stays free of a dataframe dependency."""
    rule = ["---:" if name in right else "---" for name in columns]
    lines = ["| " + " | ".join(columns) + " |", "| " + " | ".join(rule) + " |"]
    return lines + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]


def fmt(value, digits: int = 2) -> str:
    """A table cell: "—" for a missing value, floats with ``digits`` decimals."""
    return "—" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def classifier_map(summary: dict, on_seed_split: bool) -> float | None:
    """The classifier's mAP, from an experiment's summary (metrics.json), on the seed split or on the
    other split score_classifier scored (val). That split is scored whether or not the CAMs are also
    scored on val (``eval_cams.score_val``). None before score_classifier."""
    scores = summary.get("classifier_map") or {}
    seed_split = summary.get("seed_split")
    split = seed_split if on_seed_split else next((k for k in scores if k != seed_split), None)
    return scores.get(split)
