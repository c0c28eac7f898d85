"""Speed report on this machine: CAM extraction, dense CRF, random walk, and the cost of a threshold tweak.

    python benchmarks/speed.py --configfile configs/voc12_cpu.yaml --data-root ../shared/data/voc2012-subset

It reads the experiment's finished artifacts (classifier, CAMs, AffinityNet, Snakemake benchmark
files), so run the pipeline first (``make benchmark DATA_ROOT=…`` does both). Every ratio is measured
in this run, on the same images, weights and thread count:

1. ``make_cams``'s batched extraction against the reference repositories' loop (one forward per
   image, scale and flip, fp32, NCHW), both multi-scale + flip, in images per second;
2. dense CRF on all cores (``refine_crf``'s process pool) against one process;
3. the random walk's time and peak memory per image (``benchmarks/random_walk_memory.py``);
4. training images/s of the classifier's and DeepLab's loop against their compute limit, and the
   share of time spent waiting for data (``benchmarks/train_speed.py``);
5. the wall time of ``snakemake`` after a CAM-background-threshold change, against the summed
   wall time of every job of the full run.

Writes ``results/<experiment>/speed.md`` and prints it.
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from wsss_stages.lib.evaluation.reports import markdown_table

REPO = Path(__file__).resolve().parents[1]


def load_config(configfile: Path, data_root: str) -> dict:
    import yaml

    from wsss_stages.lib.plan.config import validate_config

    with open(configfile) as handle:
        config = yaml.safe_load(handle)
    config["data_root"] = data_root
    return validate_config(config)


def images_for(dataset, split: str, count: int) -> list[str]:
    import logging

    from wsss_stages.lib.data.voc import split_labelled

    ids = split_labelled(dataset, dataset.split_ids(split), logging.getLogger("speed"))
    return ids[:count]


def cam_speed(model: Path, dataset, ids: list[str], scales, threads: int) -> dict:
    """Images/s of make_cams's path (batched, channels-last, auto precision) and of the reference loop."""
    import numpy as np
    import torch

    from wsss_stages.lib.nets.cams import extract_cams, plain_loop_cams
    from wsss_stages.lib.nets.models import load_model
    from wsss_stages.lib.nets.runtime import for_inference, inference_dtype, pick_device

    torch.set_num_threads(threads)
    device = pick_device("auto")
    images = {i: dataset.load_image(i) for i in ids}

    reference, meta = load_model(model, ("classifier",))
    reference.to(device).eval()
    start = time.perf_counter()
    plain = {
        i: plain_loop_cams(reference, images[i], dataset.labels(i), meta["mean"], meta["std"], scales, True, device)
        for i in ids
    }
    plain_seconds = time.perf_counter() - start

    net = for_inference(load_model(model, ("classifier",))[0], device)
    dtype = inference_dtype("auto", device)
    start = time.perf_counter()
    ours = {
        i: cams for i, cams, _ in extract_cams(net, meta, dataset, ids, scales, True, device, dtype, images.__getitem__)
    }
    ours_seconds = time.perf_counter() - start
    diff = max(float(np.abs(plain[i] - ours[i]).max()) for i in ids)
    agree = np.mean([float(((plain[i] > 0.25) == (ours[i] > 0.25)).mean()) for i in ids])
    return {
        "images": len(ids),
        "plain_ips": len(ids) / plain_seconds,
        "ours_ips": len(ids) / ours_seconds,
        "ratio": plain_seconds / ours_seconds,
        "dtype": str(dtype or torch.float32),
        "max_abs_diff": diff,
        "agreement": 100 * agree,
    }


def crf_speed(cams: Path, data_root: Path, ids: list[str], threshold: float, crf_config: dict, workers: int) -> dict:
    from wsss_stages.lib.data.voc import VOCDataset
    from wsss_stages.lib.nets.parallel import parallel_map
    from wsss_stages.refiners.crf.densecrf import CrfParams
    from wsss_stages.refiners.crf.refine_crf import _refine_one

    params = CrfParams(
        crf_config["iterations"],
        crf_config["gaussian_sxy"],
        crf_config["gaussian_compat"],
        crf_config["bilateral_sxy"],
        crf_config["bilateral_srgb"],
        crf_config["bilateral_compat"],
    )
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = functools.partial(
            _refine_one,
            dataset=VOCDataset(data_root),
            source=cams,
            kind="cams",
            out_dir=Path(tmp),
            threshold=threshold,
            params=params,
        )
        for n in (1, workers):
            start = time.perf_counter()
            parallel_map(work, ids, n, desc=f"crf x{n}")
            out[n] = len(ids) / (time.perf_counter() - start)
    return {"images": len(ids), "one": out[1], "all": out[workers], "workers": workers, "ratio": out[workers] / out[1]}


def random_walk_report(backbone: str) -> str:
    out = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "random_walk_memory.py"), "--backbone", backbone],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def training_report(data_root: str, threads: int, record: Path) -> str:
    """benchmarks/train_speed.py's table, and the experiment's own classifier epochs (TrainLoop.timing)."""
    out = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "train_speed.py"),
            "--data-root",
            data_root,
            "--threads",
            str(threads),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = [out.stdout.strip()]
    from wsss_stages.lib.data.artifacts import read_json

    timing = read_json(record).get("timing") if record.is_file() else None
    if timing:
        rates = [t["images_per_s"] for t in timing]
        shares = [t["data_share"] for t in timing]
        lines += [
            "",
            f"This experiment's `train_classifier` run: {min(rates):.1f}–{max(rates):.1f} images/s over its "
            f"{len(timing)} "
            f"epochs, {min(shares):.0f}–{max(shares):.0f} % of the time waiting for data (its `model.json`, `timing`).",
        ]
    return "\n".join(lines)


def pipeline_job_seconds(bench_dir: Path, config: dict) -> float:
    """Summed wall time of the jobs of `snakemake all` (not those only the benchmark target adds)."""
    from wsss_stages.lib.evaluation.reports import read_job_time
    from wsss_stages.lib.plan.pipeline import Experiments, job_files

    name = config["experiment"]
    jobs = [
        job for node in Experiments({name: config}).used_nodes(name) for job in job_files(config, node)
    ]  # shards: each shard and the gather
    times = [read_job_time(bench_dir / f"{job}.tsv") for job in jobs]
    return sum(t["seconds"] or 0 for t in times if t)


def threshold_tweak(configfile: Path, data_root: str, cores: int) -> dict:
    """Change cam_bg_threshold, rerun, time it, and restore the original outputs' threshold."""
    base = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(REPO),
        "--configfile",
        str(configfile),
        "--cores",
        str(cores),
        "--config",
        f"data_root={data_root}",
    ]
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    original = load_config(configfile, data_root)["cam_bg_threshold"]
    timings, jobs = {}, {}
    for value in ("0.33", original):  # the tweak, then back to the preset's value
        start = time.perf_counter()
        run = subprocess.run(base + [f"cam_bg_threshold={value}"], check=True, capture_output=True, text=True, env=env)
        timings[value] = time.perf_counter() - start
        jobs[value] = sorted(set(re.findall(r"^(?:local)?rule (\w+):", run.stdout + run.stderr, re.M)))
    return {"seconds": timings["0.33"], "jobs": jobs["0.33"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configfile", type=Path, default=REPO / "configs" / "voc12_cpu.yaml")
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--images", type=int, default=24, help="images for the CAM and CRF measurements")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--skip-tweak", action="store_true", help="do not rerun Snakemake for the threshold tweak")
    args = parser.parse_args()

    from wsss_stages.lib.data.artifacts import read_json
    from wsss_stages.lib.data.voc import VOCDataset

    config = load_config(args.configfile, args.data_root)
    results = REPO / "results" / config["experiment"]
    dataset = VOCDataset(args.data_root)
    ids = images_for(dataset, config["splits"]["seeds"], args.images)
    lines = [
        f"# Speed: {config['experiment']}",
        "",
        f"Machine: {os.cpu_count()} CPU threads; measured by `benchmarks/speed.py`.",
        "",
    ]

    cams = cam_speed(
        results / "train_classifier" / "model.pt", dataset, ids, config["make_cams"]["scales"], args.threads
    )
    lines += [
        "## CAM extraction (multi-scale + flip)",
        "",
        *markdown_table(
            ["path", "images/s"],
            [
                ["reference loop (per image, scale and flip; fp32, NCHW)", f"{cams['plain_ips']:.2f}"],
                [f"make_cams (batched, channels-last, {cams['dtype']})", f"{cams['ours_ips']:.2f}"],
            ],
            right={"images/s"},
        ),
        "",
        f"Speed-up **{cams['ratio']:.2f}×** on {cams['images']} images; largest CAM difference "
        f"{cams['max_abs_diff']:.4f}, "
        f"{cams['agreement']:.2f} % of pixels on the same side of 0.25.",
        "",
    ]

    threshold = read_json(results / "tune_crf" / "cams" / "best.json")["best_threshold"]
    crf = crf_speed(
        results / "make_cams" / "cams", Path(args.data_root), ids, threshold, config["refine_crf"], args.threads
    )
    lines += [
        "## Dense CRF (refine_crf's parameters from the config)",
        "",
        *markdown_table(
            ["processes", "images/s"],
            [[1, f"{crf['one']:.2f}"], [crf["workers"], f"{crf['all']:.2f}"]],
            right={"processes", "images/s"},
        ),
        "",
        f"All cores: **{crf['ratio']:.2f}×** one process.",
        "",
    ]

    backbone = config["train_classifier"]["backbone"]["name"]
    lines += ["## Random walk (500×375, radius 5, beta 10, 2^8 steps)", "", random_walk_report(backbone), ""]

    lines += [
        "## Training throughput (the stage loop against forward + backward on random tensors)",
        "",
        training_report(args.data_root, args.threads, results / "train_classifier" / "model.json"),
        "",
    ]

    if not args.skip_tweak:
        full = pipeline_job_seconds(results / "benchmarks", config)
        tweak = threshold_tweak(args.configfile, args.data_root, args.threads)
        lines += [
            "## Cost of a threshold tweak",
            "",
            f"`--config cam_bg_threshold=0.33` after a finished run: **{tweak['seconds']:.1f} s**, "
            f"{100 * tweak['seconds'] / full:.1f} % of the pipeline's summed job time ({full:.0f} s, the jobs of "
            f"`all`), "
            f"Snakemake's start-up included. Jobs rerun: {', '.join(tweak['jobs']) or 'none'}; the classifier, "
            "the CAMs and everything refined were reused.",
            "",
        ]
    text = "\n".join(lines)
    (results / "speed.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
