"""The generated documentation equals what its sources give, and tracked files speak to users, not of their history."""

import re
import subprocess

from conftest import REPO


def test_the_generated_pages_are_up_to_date():
    # docs/configuration.md (the schema), docs/results.md and the README's headline (the records)
    from wsss_stages.docs import pages

    stale = [
        str(path.relative_to(REPO)) for path, text in pages().items() if not path.is_file() or path.read_text() != text
    ]
    assert not stale, f"regenerate with `make docs`: {stale}"


def test_every_record_row_names_a_committed_overlay_and_its_command():
    from wsss_stages.lib.evaluation.records import read_record

    for record in sorted((REPO / "benchmarks" / "records").glob("*.csv")):
        for row in read_record(record):
            where = f"{record.name}: {row['method']} seed {row['seed']}"
            assert (REPO / row["overlay"]).is_file() and row["overlay"].startswith("configs/experiments/"), where
            assert row["command"].startswith("snakemake ") and row["overlay"] in row["command"], where
            assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", row["date"]) and row["cpu"], where


HISTORY = re.compile(
    r"\b(session \d+|sessions? \d+[-–]\d+|round \d+ of|the issue (asked|says|wanted)|issue #?\d+ asked"
    r"|this project's first|the first (default|recipe|version)|since removed|is gone\b)",
    re.I,
)


def test_no_tracked_file_tells_the_history_of_its_making():
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    found = []
    for name in files:
        path = REPO / name
        if (
            name == "CHANGELOG.md"
            or name == "tests/test_docs.py"
            or path.suffix in (".png", ".csv")
            or not path.is_file()
        ):
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if HISTORY.search(line) or "/work/" in line:
                found.append(f"{name}:{number}: {line.strip()[:100]}")
    assert not found, "\n".join(found)
