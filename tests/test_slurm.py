"""The SLURM profile, run for real through `snakemake --executor slurm` against a fake cluster
(tests/fake_slurm.py: sbatch, squeue, sacct, scancel, sinfo, scontrol, srun, sacctmgr, sshare
stand-ins that run the submitted job scripts on this machine)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO
from fake_slurm import install

pytest.importorskip("snakemake_executor_plugin_slurm")
pytestmark = pytest.mark.integration

CONFIG = Path(__file__).with_name("tiny_config.yaml")
# a micro DAG that stops at the seeds' pseudo-masks, with make_cams in two shards (each its own cluster job); the
# classifier trains 2 epochs: what is tested is the submission, not what it learns. Every job in a chain costs
# the plugin's status polling (~13 s), so the CRF's three (tune, refine, masks) are left out.
SETTINGS = [
    "train_segmentation={enabled: false}",
    "make_pseudo_masks={refinement: none, compare: []}",
    "shards={make_cams: 2}",
    "train_classifier={training: {epochs: 2}}",
]


def profile(tmp_path: Path, account: bool = True, **changes) -> Path:
    """The project's SLURM profile with a partition and (or not) an account filled in, and its waits shortened."""
    config = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    config["default-resources"].update(slurm_partition="cpu", slurm_account="fakeproj")
    if not account:  # the plugin then guesses one (sacct) and validates it (sacctmgr, else sshare)
        del config["default-resources"]["slurm_account"]
    config.update({"latency-wait": 5, "slurm-init-seconds-before-status-checks": 1, **changes})
    folder = tmp_path / "profile"
    folder.mkdir(exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return folder


def run_on_fake_cluster(
    tmp_path: Path, workdir: Path, *args: str, fail: str = "", account: bool = True, **changes
) -> subprocess.CompletedProcess:
    bin_dir, state = tmp_path / "bin", tmp_path / "cluster"
    install(bin_dir)
    env = dict(
        os.environ,
        PATH=f"{bin_dir}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        FAKE_SLURM_DIR=str(state),
        FAKE_SLURM_FAIL=fail,
    )
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(CONFIG),
        "--profile",
        str(profile(tmp_path, account, **changes)),
        "--config",
        *SETTINGS,
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)


def submissions(tmp_path: Path) -> list[dict]:
    path = tmp_path / "cluster" / "submissions.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def rule_of(entry: dict) -> str:
    return entry["options"]["--comment"].removeprefix("rule_").split("_wildcards_")[0]


@pytest.fixture(scope="module")
def cluster_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("slurm")
    workdir = tmp_path / "work"
    result = run_on_fake_cluster(tmp_path, workdir)
    return tmp_path, workdir, result


def test_the_dag_completes_on_the_cluster(cluster_run):
    tmp_path, workdir, result = cluster_run
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    metrics = json.loads((workdir / "results" / "tiny" / "metrics.json").read_text())
    assert metrics["pseudo_mask_miou"] > 0
    rules = [rule_of(entry) for entry in submissions(tmp_path)]
    assert rules.count("make_cams_shard") == 2 and rules.count("make_cams_gather") == 1
    assert {"check_data", "train_classifier", "eval_cams", "make_pseudo_masks", "summarize_metrics"} <= set(rules)


def test_every_job_asks_for_what_its_rule_declares(cluster_run):
    from wsss_stages.lib.plan.declare import load_plugins

    tmp_path, workdir, result = cluster_run
    stages = load_plugins().stages
    for entry in submissions(tmp_path):
        options, rule = entry["options"], rule_of(entry)
        assert options["-p"] == "cpu" and options["-A"] == "fakeproj", entry  # partition and account of the profile
        assert options["--cpus-per-task"].isdigit() and int(options["--cpus-per-task"]) >= 1
        stage = stages.get(rule.removesuffix("_shard").removesuffix("_gather"))
        if stage is None:  # run-level rules (the demo data) use their own declarations
            continue
        if rule.endswith("_gather"):
            assert options["--mem"] == str(stages["gather_shards"].mem_mb) and options["-t"] == str(
                stages["gather_shards"].runtime
            )
            continue
        assert options["--mem"] == str(stage.mem_mb) and options["-t"] == str(stage.runtime), (rule, options)
        assert ("--gpus" in options or "--gres" in options) == stage.gpu, (
            rule,
            options,
        )  # the tiny config leaves device on auto
        if isinstance(stage.threads, int):
            assert options["--cpus-per-task"] == str(stage.threads), (rule, options)


def test_a_failed_job_is_retried_then_fails_the_run_cleanly(tmp_path):
    """Also with no account in the profile: the plugin guesses one from past jobs and validates it."""
    workdir = tmp_path / "work"
    result = run_on_fake_cluster(tmp_path, workdir, fail="rule_check_data", account=False)
    assert result.returncode != 0
    assert all(entry["options"]["-A"] == "fakeproj" for entry in submissions(tmp_path))
    rules = [rule_of(entry) for entry in submissions(tmp_path)]
    assert rules.count("check_data") == 2  # the profile's `retries: 1`
    assert "check_data" in result.stdout + result.stderr
    assert "train_classifier" not in rules and not (workdir / "results" / "tiny" / "train_classifier").exists()
