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


# Phrasings of a work log, each with N for a number. Kept as word lists, so that this file does not
# read as one itself.
HISTORY_PHRASES = [
    ("session", "N"),
    ("sessions", "N-N"),
    ("round", "N", "of"),
    ("the", "issue", "asked"),
    ("the", "issue", "says"),
    ("the", "issue", "wanted"),
    ("issue", "N", "asked"),
    ("this", "project's", "first"),
    ("the", "first", "default"),
    ("the", "first", "recipe"),
    ("the", "first", "version"),
    ("since", "removed"),
    ("is", "gone"),
]
HISTORY = re.compile(
    "|".join(
        r"\b" + r"\s+".join(re.escape(w).replace("N", r"#?\d+") for w in words) + r"\b" for words in HISTORY_PHRASES
    ),
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
