"""What sharding costs: make_cams and refine_crf on N images in 1, 2 and 4 shards on this machine.

Each shard is its own process (as each is its own Snakemake job): it starts Python, imports torch,
loads the classifier and writes its slice; then gather_shards links the slices into one artifact.
On one machine with C cores the shards of a stage run one after another with C threads each (what
`snakemake --cores C` does with jobs that ask for all cores), so the difference to one shard is the
overhead a cluster pays per job, before it gains by running shards side by side. Prints a table and
writes it as JSON; the per-image costs feed its projection to full VOC and COCO.

    python benchmarks/sharding.py --model results/voc12_cpu/train_classifier/model.pt \\
        --data-root ../shared/data/voc2012-subset --images 48 --shards 1 2 4
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from wsss_stages.lib.data.artifacts import read_manifest
from wsss_stages.lib.data.voc import VOCDataset

CRF = {
    "iterations": 10,
    "gaussian_sxy": 3,
    "gaussian_compat": 3,
    "bilateral_sxy": 80,
    "bilateral_srgb": 13,
    "bilateral_compat": 10,
}


def subset_tree(root: Path, split: str, images: int, work: Path) -> Path:
    """A VOC tree of the first ``images`` of ``split``: everything linked but the split files, one of its own."""
    tree = work / "VOC2012"
    (tree / "ImageSets" / "Segmentation").mkdir(parents=True)
    for entry in root.iterdir():
        if entry.name != "ImageSets":
            os.symlink(entry.resolve(), tree / entry.name)
    ids = VOCDataset(root).split_ids(split)[:images]
    (tree / "ImageSets" / "Segmentation" / "bench.txt").write_text("\n".join(ids) + "\n")
    return tree


def run(args: list[str]) -> float:
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "wsss_stages", *args], capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"wsss {args[0]} failed:\n{result.stderr[-3000:]}")
    return time.perf_counter() - start


def sharded(stage: str, flags: list[str], outputs: dict[str, Path], shards: int, threads: int, work: Path) -> float:
    """Wall seconds of the stage in ``shards`` processes one after another, plus the gather."""
    if shards == 1:
        return run(
            [
                stage,
                *flags,
                *[f for n, p in outputs.items() for f in (f"--{n.replace('_', '-')}", str(p))],
                "--shard",
                "0/1",
                "--threads",
                str(threads),
            ]
        )
    seconds, parts = 0.0, []
    for k in range(shards):
        mine = {n: work / f"{stage}-{k + 1}of{shards}" / p.name for n, p in outputs.items()}
        seconds += run(
            [
                stage,
                *flags,
                *[f for n, p in mine.items() for f in (f"--{n.replace('_', '-')}", str(p))],
                "--shard",
                f"{k}/{shards}",
                "--threads",
                str(threads),
            ]
        )
        parts += [f"{n}={p}" for n, p in mine.items()]
    return seconds + run(
        ["gather_shards", "--stage", stage, "--parts", *parts, "--outputs", *[f"{n}={p}" for n, p in outputs.items()]]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="a trained classifier (train_classifier/model.pt)")
    parser.add_argument("--data-root", type=Path, required=True)
    parser.add_argument("--split", default="train")
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--shards", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--out", type=Path, default=Path("results/sharding.json"))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        tree = subset_tree(args.data_root, args.split, args.images, work)
        cam_flags = [
            "--model",
            str(args.model),
            "--data-root",
            str(tree),
            "--splits",
            "bench",
            "--val-split",
            "None",
            "--scales",
            "1.0",
            "0.5",
            "1.5",
            "2.0",
            "--flip",
            "true",
            "--precision",
            args.precision,
            "--cam-type",
            "cam",
            "--cam-options",
            "{}",
            "--device",
            "auto",
        ]
        for shards in args.shards:
            cams = work / f"cams-{shards}"
            cam_seconds = sharded(
                "make_cams",
                cam_flags,
                {"out_dir": cams / "cams", "out_val_dir": cams / "val_cams"},
                shards,
                args.threads,
                work,
            )
            crf_flags = [
                "--scores",
                str(cams / "cams"),
                "--data-root",
                str(tree),
                "--crf",
                json.dumps(CRF),
                "--bg-threshold",
                "0.2",
            ]
            crf_seconds = sharded(
                "refine_crf", crf_flags, {"out_dir": work / f"crf-{shards}" / "scores"}, shards, args.threads, work
            )
            images = read_manifest(cams / "cams")["count"]
            rows.append({"shards": shards, "images": images, "make_cams_s": cam_seconds, "refine_crf_s": crf_seconds})
    base = rows[0]
    print(
        f"{'shards':>6} {'make_cams s':>12} {'overhead':>9} {'refine_crf s':>13} {'overhead':>9}   ({base['images']} "
        f"images, {args.threads} threads)"
    )
    for row in rows:
        row["make_cams_overhead"] = row["make_cams_s"] / base["make_cams_s"] - 1
        row["refine_crf_overhead"] = row["refine_crf_s"] / base["refine_crf_s"] - 1
        print(
            f"{row['shards']:>6} {row['make_cams_s']:>12.1f} {row['make_cams_overhead']:>+9.1%} "
            f"{row['refine_crf_s']:>13.1f} "
            f"{row['refine_crf_overhead']:>+9.1%}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"threads": args.threads, "cpu": os.uname().machine, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
