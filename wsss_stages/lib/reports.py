"""Cost and formatting helpers of the reports: Snakemake benchmark files, table cells."""

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

    return {"job": path.stem, "seconds": number("s"), "peak_rss_mib": number("max_rss"), "cpu_seconds": number("cpu_time")}


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


def fmt(value, digits: int = 2) -> str:
    """A table cell: "—" for a missing value, floats with ``digits`` decimals."""
    return "—" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)
