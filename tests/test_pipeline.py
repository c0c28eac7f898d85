"""The whole DAG on a tiny demo config, and what Snakemake plans after a config edit."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

pytestmark = pytest.mark.integration
CONFIG = Path(__file__).with_name("tiny_config.yaml")


def snakemake(
    workdir: Path,
    *args: str,
    check: bool = True,
    overlays: tuple[Path, ...] = (),
    env: dict | None = None,
    snakefile: Path = REPO / "Snakefile",
    cwd: Path | None = None,
) -> subprocess.CompletedProcess:
    """Run snakemake on the tiny config (plus overlay config files) in ``workdir``."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", **(env or {}))
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(snakefile),
        "--directory",
        str(workdir),
        "--configfile",
        str(CONFIG),
        *map(str, overlays),
        "--cores",
        "2",
        *args,
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}")
    return result


def planned_jobs(output: str) -> set[str]:
    """Rule names of the 'Job stats' table of a dry run."""
    table = output.split("Job stats:")[1].split("total")[0]
    return {m.group(1) for m in re.finditer(r"^(\w+)\s+\d+\s*$", table, re.M)}


def all_background_miou(root: Path, split: str) -> float:
    """mIoU of predicting background everywhere: the chance level a trained pipeline must beat."""
    import numpy as np

    from wsss_stages.lib.data.voc import VOCDataset
    from wsss_stages.lib.evaluation.metrics import confusion_matrix, scores_from_confusion

    ds = VOCDataset(root)
    conf = sum(confusion_matrix(m, np.zeros_like(m), ds.num_classes) for m in map(ds.load_mask, ds.split_ids(split)))
    return scores_from_confusion(conf, ds.class_names)["miou"]


def test_whole_dag_writes_every_artifact_and_learns(finished_run):
    results = finished_run / "results" / "tiny"
    for path in [
        "train_classifier/model.pt",
        "make_cams/cams/manifest.json",
        "eval_cams/cams/sweep.csv",
        "eval_cams/cams/sweep.png",
        "tune_crf/cams/best.json",
        "refine_crf/cams/scores/manifest.json",
        "make_pseudo_masks/crf/masks/manifest.json",
        "eval_pseudo_masks/crf/metrics.json",
        "train_segmentation/crf/model.pt",
        "predict_segmentation/crf/masks/manifest.json",
        "eval_segmentation/crf/metrics.json",
        "random_walk/cams/maps/manifest.json",
        "eval_pseudo_masks/rw/metrics.json",
        "metrics.json",
        "metrics.md",
        "logs/make_cams.log",
        "benchmarks/make_cams.tsv",
    ]:
        assert (results / path).is_file(), path
    metrics = json.loads((results / "metrics.json").read_text())
    for key in ("cam_miou", "cam_miou_val", "pseudo_mask_miou", "segmentation_miou"):
        assert 0 <= metrics[key] <= 100
    assert set(metrics["classifier_map"]) == {"train", "val"} and all(
        0 < v <= 100 for v in metrics["classifier_map"].values()
    )
    baseline = all_background_miou(finished_run / "results/make_demo_data/VOC2012", "train")
    assert metrics["cam_miou"] > baseline + 3 and metrics["pseudo_mask_miou"] > baseline + 3
    assert 0 <= metrics["cam_bg_threshold_best"] <= 1 and 0 <= metrics["pseudo_mask_bg_threshold"] <= 1
    provenance = metrics["provenance"]  # where the numbers came from
    assert provenance["packages"]["torch"] and provenance["machine"]["cpu"] and provenance["git"]["commit"]
    assert provenance["classifier"]["weights_source"].startswith("none") and provenance["classifier"]["precision_used"]
    assert provenance["cam_precision"] in ("torch.float32", "torch.bfloat16")
    masks = json.loads((results / "make_pseudo_masks/crf/masks/manifest.json").read_text())
    assert masks["count"] == len(list((results / "make_pseudo_masks/crf/masks").glob("*.png")))
    assert not list(results.rglob(".*.tmp-*")), "temporary files left behind"


def test_benchmark_report_has_every_stage_the_upper_bound_and_costs(finished_run):
    import csv

    results = finished_run / "results" / "tiny"
    rows = list(csv.DictReader((results / "benchmark.csv").open()))
    quality = {r["stage"]: r for r in rows if r["section"] == "quality"}
    assert {
        "CAM seeds",
        "pseudo-masks: CAM + dense CRF",
        "pseudo-masks: CAM + random walk",
        "pseudo-masks: random walk + dense CRF",
        "DeepLab on ground truth (upper bound)",
    } <= set(quality)
    crf = quality["pseudo-masks: CAM + dense CRF"]
    assert float(crf["delta_seeds_lo"]) <= float(crf["delta_seeds"]) <= float(crf["delta_seeds_hi"])
    assert "95 % bootstrap" in (results / "benchmark.md").read_text()
    full = json.loads((results / "eval_segmentation/gt/metrics.json").read_text())
    assert float(quality["DeepLab on ground truth (upper bound)"]["miou"]) == pytest.approx(full["miou"])
    costs = {r["stage"]: r for r in rows if r["section"] == "cost"}
    assert {"train_classifier", "make_cams", "random_walk_cams", "train_segmentation_gt"} <= set(costs)
    assert all(float(r["seconds"]) >= 0 for r in costs.values())
    assert "Weakly / fully supervised" in (results / "benchmark.md").read_text()


def test_report_holds_the_gallery_curves_and_sweeps(finished_run):
    snakemake(finished_run, "report_figures")
    results = finished_run / "results" / "tiny" / "write_gallery"
    panels = sorted((results / "gallery").glob("*.png"))
    assert (
        len(panels) == 8
        and (results / "curves.png").stat().st_size > 0
        and (results / "per_class.png").stat().st_size > 0
    )
    snakemake(finished_run, "--report", "report.html", "report_figures")
    html = (finished_run / "report.html").read_text(errors="replace")
    assert all(category in html for category in ("Gallery", "Threshold sweeps", "Training", "Per-class IoU"))
    assert panels[0].name in html


def test_nothing_to_do_after_a_finished_run(finished_run):
    assert "Nothing to be done" in snakemake(finished_run, "-n").stdout


def test_crf_parameter_change_plans_only_downstream_rules(finished_run):
    out = snakemake(finished_run, "-n", "--config", "refine_crf={bilateral_srgb: 9}").stdout
    assert planned_jobs(out) == {
        "tune_crf",
        "refine_crf",
        "make_pseudo_masks",
        "eval_pseudo_masks",
        "train_segmentation",
        "predict_segmentation",
        "eval_segmentation",
        "summarize_metrics",
        "all",
    }


def test_cam_threshold_change_with_plain_cams_skips_training_the_classifier(finished_run):
    out = snakemake(
        finished_run, "-n", "--config", "cam_bg_threshold=0.25", "make_pseudo_masks={refinement: none}"
    ).stdout
    jobs = planned_jobs(out)
    assert {"make_pseudo_masks", "train_segmentation", "summarize_metrics"} <= jobs
    assert not jobs & {"train_classifier", "make_cams", "eval_cams", "make_demo_data", "refine_crf"}


def test_random_walk_threshold_change_never_walks_again(finished_run):
    out = snakemake(finished_run, "-n", "--config", "random_walk={bg_threshold: 0.3}").stdout
    assert planned_jobs(out) == {"make_pseudo_masks", "eval_pseudo_masks", "summarize_metrics", "all"}


def test_seed_methods_change_only_the_stages_they_must(finished_run):
    gradcam = planned_jobs(snakemake(finished_run, "-n", "--config", "make_cams={cam_type: gradcam}").stdout)
    assert "make_cams" in gradcam and "train_classifier" not in gradcam
    erasing = planned_jobs(snakemake(finished_run, "-n", "--config", "adversarial_erasing={enabled: true}").stdout)
    assert "train_erasing" in erasing and not erasing & {"train_classifier", "make_cams"}
    puzzle = planned_jobs(snakemake(finished_run, "-n", "--config", "train_classifier={method: puzzle}").stdout)
    assert {"train_classifier", "make_cams"} <= puzzle and "make_demo_data" not in puzzle


def test_repeats_retrain_only_what_depends_on_the_seed(finished_run):
    out = snakemake(finished_run, "-n", "--config", "repeats=2").stdout
    counts = dict(re.findall(r"^(\w+)\s+(\d+)\s*$", out.split("Job stats:")[1].split("total")[0], re.M))
    assert counts["train_classifier"] == "1" and counts["make_cams"] == "1" and counts["write_leaderboard"] == "1"
    assert "make_demo_data" not in counts  # shared: it does not depend on the training seed
    outputs = re.findall(r"^\s+output: (.*)$", out, re.M)
    assert outputs and not any("results/tiny/" in line for line in outputs), "repeat 0 must be reused as it is"
    assert any("results/tiny_r1/train_classifier/model.pt" in line for line in outputs)


def test_psa_walk_replans_labels_network_and_walk_and_needs_no_threshold(finished_run):
    out = snakemake(
        finished_run, "-n", "-p", "--config", "random_walk={method: psa}", "make_affinity_labels={method: psa}"
    ).stdout
    jobs = planned_jobs(out)
    assert {"make_affinity_labels", "train_affinitynet", "random_walk", "make_pseudo_masks"} <= jobs
    assert not jobs & {"train_classifier", "make_cams", "tune_crf", "refine_crf"}
    walk = next(
        line for line in out.splitlines() if "wsss_stages make_pseudo_masks" in line and "random_walk/cams/maps" in line
    )
    assert "--bg-threshold None" in walk  # psa's walked scores carry their own background


@pytest.mark.parametrize("method", ["irn", "psa"])
def test_faithful_walks_run_to_their_pseudo_masks_with_diagnostics(finished_run, tmp_path, method):
    import shutil

    workdir = tmp_path / "dag"
    shutil.copytree(finished_run, workdir, symlinks=True)  # reuses the classifier and the CAMs
    settings = ("--config", f"random_walk={{method: {method}}}", f"make_affinity_labels={{method: {method}}}")
    snakemake(workdir, "results/tiny/eval_pseudo_masks/rw/metrics.json", *settings)
    results = workdir / "results" / "tiny"
    assert 0 < json.loads((results / "eval_pseudo_masks/rw/metrics.json").read_text())["miou"] <= 100
    labels = json.loads((results / "make_affinity_labels/diagnostics.json").read_text())
    assert labels["method"] == method and 0 < labels["coverage"] <= 100 and labels["images"] > 0
    walk = json.loads((results / "random_walk/cams/diagnostics.json").read_text())
    assert 0 <= walk["roc_auc"] <= 1 and walk["pairs_same"] > 0
    assert len(list((results / "random_walk/cams/figures").glob("*.png"))) == 6
    kind = json.loads((results / "random_walk/cams/maps/manifest.json").read_text())["kind"]
    assert kind == ("scores" if method == "psa" else "cams")


def test_forcerun_of_one_stage(finished_run):
    jobs = planned_jobs(snakemake(finished_run, "-n", "--forcerun", "eval_cams").stdout)
    assert "eval_cams" in jobs and "train_classifier" not in jobs and "make_cams" not in jobs


def copy_checkout(target: Path) -> Path:
    """A copy of the code Snakemake runs (first on PYTHONPATH, and run from elsewhere, so the copy is the code
    it imports and fingerprints): editing this checkout would change the code under other workers' DAGs."""
    import shutil

    target.mkdir()
    for name in ("Snakefile", "config.yaml", "rules", "envs", "profiles", "wsss_stages"):
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target / name)
    return target


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} is not in {path}"
    path.write_text(text.replace(old, new, 1))


def test_reruns_follow_what_the_code_does_not_its_text(finished_run, tmp_path):
    # A stage's code is a fingerprint of the syntax trees of its modules (lib/plan/codedeps.py): comments,
    # docstrings and touches rerun nothing; a changed expression reruns the stage and what depends on it.
    import shutil

    checkout = copy_checkout(tmp_path / "checkout")
    workdir = tmp_path / "run"
    shutil.copytree(finished_run, workdir, symlinks=True)
    pamr_target = (
        "results/tiny/eval_pseudo_masks/pamr/metrics.json",
        "--config",
        "make_pseudo_masks={compare: [none, rw, pamr]}",
    )

    def plan(*args: str) -> set[str]:
        out = snakemake(
            workdir, "-n", *args, env={"PYTHONPATH": str(checkout)}, snakefile=checkout / "Snakefile", cwd=tmp_path
        ).stdout
        return set() if "Nothing to be done" in out else planned_jobs(out)

    assert plan() == set()  # the same code at another path has the same fingerprint
    snakemake(workdir, *pamr_target, env={"PYTHONPATH": str(checkout)}, snakefile=checkout / "Snakefile", cwd=tmp_path)

    artifacts = checkout / "wsss_stages/lib/data/artifacts.py"
    edit(artifacts, '"""', '"""Reworded. ')  # the module docstring
    artifacts.write_text(artifacts.read_text() + "\n# a comment at the end\n")
    assert plan() == set() and plan(*pamr_target) == set()

    for path in checkout.rglob("*.py"):
        path.touch()
    assert plan() == set() and plan(*pamr_target) == set()

    edit(checkout / "wsss_stages/refiners/pamr/pamr.py", "1e-", "2e-")
    # PAMR, its threshold sweep and its pseudo-masks; not the classifier, not the CAMs
    assert plan(*pamr_target) == {"refine_pamr", "eval_cams", "make_pseudo_masks", "eval_pseudo_masks"}
    assert plan() == set()  # nothing of the default DAG runs PAMR

    edit(checkout / "wsss_stages/stages/check_data.py", "def check_data(", "def check_data_renamed(")
    edit(checkout / "wsss_stages/stages/check_data.py", "def check_data_renamed(", "def check_data(")
    assert plan() == set()  # an edit undone is no change


def test_bad_data_stops_the_run_in_check_data_before_any_training(tmp_path):
    from conftest import write_voc_tree

    ids = [f"i{n}" for n in range(10)]
    root = write_voc_tree(tmp_path / "VOC2012", {"train_aug": ids, "train": ids[:5], "val": ids[5:]})
    (root / "JPEGImages" / "i3.jpg").write_text("not a photo")
    (root / "SegmentationClass" / "i7.png").write_bytes(b"")
    workdir = tmp_path / "run"
    result = snakemake(
        workdir, "--config", "dataset=voc", f"data_root={root}", "mask_folder=SegmentationClass", check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "2 problem(s)" in output and "i3.jpg" in output and "i7.png" in output
    # the user's own path, not the content-named link the stages read the tree through
    assert f"{root.resolve()}/JPEGImages/i3.jpg" in output and not re.search(r"wsss/data/\w+/JPEGImages", output)
    assert not (workdir / "results" / "tiny" / "train_classifier").exists()


def test_the_same_data_at_another_path_reruns_nothing(tmp_path):
    """A VOC tree copied to a node's scratch disk or mounted elsewhere: the check and the stages are up to date."""
    import shutil

    from conftest import write_voc_tree

    ids = [f"i{n}" for n in range(10)]
    root = write_voc_tree(tmp_path / "home" / "VOC2012", {"train_aug": ids, "train": ids[:5], "val": ids[5:]})
    workdir = tmp_path / "run"

    def run(data_root, *args):
        return snakemake(
            workdir,
            *args,
            "--until",
            "train_classifier",
            "--config",
            "dataset=voc",
            f"data_root={data_root}",
            "mask_folder=SegmentationClass",
            "train_classifier={training: {epochs: 1}}",
        )

    run(root)
    assert (workdir / "results" / "tiny" / "train_classifier" / "model.pt").is_file()
    moved = tmp_path / "scratch" / "VOC2012"
    shutil.move(root, moved)
    plan = run(moved, "-n")
    assert "Job stats:" in plan.stdout and planned_jobs(plan.stdout) == set(), plan.stdout[-2000:]
    (moved / "Annotations" / "i0.xml").write_text(
        (moved / "Annotations" / "i0.xml").read_text().replace("<object>", "<object> ", 1)
    )
    assert "check_data" in planned_jobs(run(moved, "-n").stdout)  # other contents: checked again


def test_a_job_python_without_the_dependencies_stops_the_run_at_once(tmp_path):
    """`.venv/bin/snakemake` without the venv activated: jobs would run a bare `python`."""
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "python").write_text("#!/bin/sh\necho numpy PIL torch\n")  # pretends those are missing
    (bare / "python").chmod(0o755)
    env = dict(os.environ, PATH=f"{bare}{os.pathsep}/usr/bin{os.pathsep}/bin")
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(tmp_path / "w"),
        "-n",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert result.returncode != 0 and "cannot import numpy, PIL, torch" in result.stderr and "activate" in result.stderr


def test_invalid_config_fails_before_the_dag_naming_the_key(tmp_path):
    result = snakemake(tmp_path, "-n", "--config", "refine_crf={sxyz: 3}", check=False)
    assert result.returncode != 0 and "refine_crf.sxyz" in result.stdout + result.stderr
    result = snakemake(tmp_path, "-n", "--config", "cam_bg_threshold=1.5", check=False)
    assert result.returncode != 0 and "cam_bg_threshold" in result.stdout + result.stderr


def test_slurm_profile_plans_the_whole_dag(tmp_path):
    pytest.importorskip("snakemake_executor_plugin_slurm")
    profile = REPO / "profiles" / "slurm"
    out = snakemake(tmp_path, "-n", "--profile", str(profile)).stdout
    assert {
        "make_demo_data",
        "train_classifier",
        "make_cams",
        "refine_crf",
        "train_segmentation",
        "summarize_metrics",
    } <= planned_jobs(out)


def test_lint_is_clean(tmp_path):
    result = snakemake(tmp_path, "--lint", check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", "wsss_stages", "tests", "benchmarks"],
        ["ruff", "format", "--check", "wsss_stages", "tests", "benchmarks"],
        ["snakefmt", "--check", "Snakefile", "rules"],
    ],
)
def test_the_code_is_linted_and_formatted(command):
    tool = Path(sys.executable).with_name(command[0])  # `make install` pins it; pyproject.toml configures it
    if not tool.is_file():
        pytest.skip(f"{command[0]} is not installed in this environment")
    result = subprocess.run([str(tool), *command[1:]], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
