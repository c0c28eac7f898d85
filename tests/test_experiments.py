"""Several experiments in one run: overlays, which artifacts are shared, and the leaderboard."""

import csv
import json
from pathlib import Path

import pytest
import yaml
from test_pipeline import CONFIG, planned_jobs, snakemake

from wsss_stages import WsssError
from wsss_stages.lib.plan.config import validate_config
from wsss_stages.lib.plan.experiments import deep_merge, expand_experiments, preset_folders
from wsss_stages.lib.plan.pipeline import Experiments, method_label


def tiny(**experiments) -> dict:
    base = yaml.safe_load(CONFIG.read_text())
    return validate_config({**base, "experiments": experiments})


def test_deep_merge_merges_mappings_and_replaces_the_rest():
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    assert deep_merge(base, {"a": {"c": [3]}, "e": 2}) == {"a": {"b": 1, "c": [3]}, "d": 1, "e": 2}
    assert base == {"a": {"b": 1, "c": [1, 2]}, "d": 1}


def test_without_experiments_the_run_is_the_config_itself():
    config = validate_config(yaml.safe_load(CONFIG.read_text()))
    assert list(expand_experiments(config)) == ["tiny"]


def test_overlays_name_folders_and_are_validated_naming_the_key():
    runs = expand_experiments(tiny(cam={}, gradcam={"make_cams": {"cam_type": "gradcam"}}))
    assert list(runs) == ["tiny_cam", "tiny_gradcam"]
    assert runs["tiny_gradcam"]["make_cams"]["cam_type"] == "gradcam" and runs["tiny_gradcam"]["make_cams"][
        "scales"
    ] == [1.0, 0.5]
    with pytest.raises(WsssError, match=r"experiments\.bad\.train_classifier\.nope"):
        expand_experiments(tiny(bad={"train_classifier": {"nope": 1}}))
    with pytest.raises(WsssError, match=r"experiments\.bad\.cam_bg_threshold"):
        expand_experiments(tiny(bad={"cam_bg_threshold": 2.0}))
    with pytest.raises(WsssError, match=r"experiments\.bad\.make_demo_data"):
        expand_experiments(tiny(bad={"make_demo_data": {"seed": 1}}))


def test_owners_share_exactly_what_would_be_built_identically():
    run = Experiments(
        expand_experiments(
            tiny(
                cam={},
                gradcam={"make_cams": {"cam_type": "gradcam"}},
                puzzle={"train_classifier": {"method": "puzzle"}},
                erasing={"adversarial_erasing": {"enabled": True}},
                plain={"make_pseudo_masks": {"refinement": "none"}},
            )
        )
    )
    assert run.owner("tiny_gradcam", ("train_classifier", "")) == "tiny_cam"
    assert run.owner("tiny_gradcam", ("make_cams", "")) == "tiny_gradcam"
    assert run.owner("tiny_puzzle", ("train_classifier", "")) == "tiny_puzzle"
    assert run.owner("tiny_erasing", ("train_classifier", "")) == "tiny_cam"
    assert run.owner("tiny_erasing", ("train_erasing", "")) == "tiny_erasing"
    # only the refinement differs: everything up to it, and the DeepLab of a shared refinement, is shared
    assert run.owner("tiny_plain", ("make_cams", "")) == "tiny_cam"
    assert run.owner("tiny_plain", ("make_pseudo_masks", "none")) == "tiny_cam"
    assert ("train_segmentation", "none") in run.used_nodes("tiny_plain")
    assert run.owner("tiny_plain", ("train_segmentation", "none")) == "tiny_plain"


def test_a_changed_threshold_splits_only_what_reads_it():
    run = Experiments(expand_experiments(tiny(a={}, b={"refine_crf": {"bg_threshold": 0.2}})))
    assert run.owner("tiny_b", ("eval_cams", "cams")) == "tiny_a"
    assert run.owner("tiny_b", ("make_pseudo_masks", "none")) == "tiny_a"
    assert run.owner("tiny_b", ("refine_crf", "cams")) == "tiny_b"
    assert run.owner("tiny_b", ("train_segmentation", "crf")) == "tiny_b"


def test_method_labels():
    runs = expand_experiments(
        tiny(
            cam={},
            puzzle={"train_classifier": {"method": "puzzle", "puzzle": {"terms": ["cls", "re"]}}},
            pcls={"train_classifier": {"method": "puzzle", "puzzle": {"terms": ["cls", "pcls"]}}},
            has={"train_classifier": {"method": "hide_and_seek", "hide_and_seek": {"patch_sizes": [16, 32]}}},
            ae={"adversarial_erasing": {"enabled": True}},
            grad={"make_cams": {"cam_type": "gradcam"}},
        )
    )
    labels = {name: method_label(cfg) for name, cfg in runs.items()}
    assert labels == {
        "tiny_cam": "CAM",
        "tiny_puzzle": "Puzzle-CAM (cls+re, α 4)",
        "tiny_pcls": "Puzzle-CAM (cls+pcls)",
        "tiny_has": "Hide-and-Seek (16/32 px, p 0.5)",
        "tiny_ae": "AE-PSL (T 3, δ 0.5)",
        "tiny_grad": "Grad-CAM",
    }


OVERLAY = {
    "leaderboard": "board",
    "train_classifier": {"training": {"epochs": 4}},  # what is tested is the sharing and the board, not the learning
    "make_pseudo_masks": {"refinement": "none", "compare": []},
    "train_segmentation": {"enabled": False},
    "experiments": {
        "cam": {},
        "gradcam": {"make_cams": {"cam_type": "gradcam"}},
        "crf": {"make_pseudo_masks": {"refinement": "crf"}, "train_segmentation": {"enabled": True}},
        "eps": {"train_classifier": {"method": "eps"}, "make_cams": {"cam_type": "eps"}},
    },
}


@pytest.fixture(scope="module")
def multi_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("multi")
    overlay = workdir / "overlay.yaml"
    overlay.write_text(yaml.safe_dump(OVERLAY, sort_keys=False))
    snakemake(workdir, "all", overlays=(overlay,))
    return workdir, overlay


@pytest.mark.integration
def test_one_run_builds_every_experiment_sharing_artifacts_and_a_leaderboard(multi_run):
    workdir, _ = multi_run
    results = workdir / "results"
    # one classifier for all three, in the base config's own folder; Grad-CAM has its own CAMs, the others read the
    # base's
    assert (results / "tiny/train_classifier/model.pt").is_file() and (
        results / "tiny/make_cams/cams/manifest.json"
    ).is_file()
    assert not any((results / f"tiny_{name}/train_classifier").exists() for name in ("cam", "gradcam", "crf"))
    assert (results / "tiny_gradcam/make_cams/cams/manifest.json").is_file() and not (
        results / "tiny_crf/make_cams"
    ).exists()
    assert (results / "tiny_crf/eval_segmentation/crf/metrics.json").is_file() and not (
        results / "tiny_cam/train_segmentation"
    ).exists()
    rows = {r["experiment"]: r for r in csv.DictReader((results / "board.csv").open())}
    assert list(rows) == ["tiny_cam", "tiny_gradcam", "tiny_crf", "tiny_eps"]
    assert (
        rows["tiny_eps"]["method"] == "EPS (τ 0.4, λ 0.5)"
        and (results / "tiny_eps/train_classifier/model.pt").is_file()
    )
    assert rows["tiny_gradcam"]["method"] == "Grad-CAM" and rows["tiny_crf"]["refinement"] == "crf"
    for name, row in rows.items():
        summary = json.loads((results / name / "metrics.json").read_text())
        assert (
            float(row["cam_miou"]) == pytest.approx(summary["cam_miou"]) and 0 < float(row["pseudo_mask_miou"]) <= 100
        )
        assert int(row["jobs_unmeasured"]) == 0 and float(row["wall_seconds"]) > 0 and row["repeats"] == "1"
    assert rows["tiny_cam"]["val_miou"] == "" and 0 < float(rows["tiny_crf"]["val_miou"]) <= 100
    # the CRF experiment reuses the classifier and CAMs: its own jobs are only part of its wall time
    assert float(rows["tiny_crf"]["own_wall_seconds"]) < float(rows["tiny_crf"]["wall_seconds"])
    assert rows["tiny_cam"]["cam_miou"] == rows["tiny_crf"]["cam_miou"]
    assert (
        "| tiny_crf | CAM | crf | 1 |" in (results / "board.md").read_text()
        and (results / "board.png").stat().st_size > 0
    )


@pytest.mark.integration
def test_changing_one_experiment_reruns_only_its_own_stages(multi_run):
    workdir, overlay = multi_run
    assert "Nothing to be done" in snakemake(workdir, "-n", overlays=(overlay,)).stdout
    changed = dict(
        OVERLAY,
        experiments={
            **OVERLAY["experiments"],
            "gradcam": {"make_cams": {"cam_type": "gradcam", "gradcam": {"layer": "low"}}},
        },
    )
    edited = Path(workdir / "edited.yaml")
    edited.write_text(yaml.safe_dump(changed, sort_keys=False))
    out = snakemake(workdir, "-n", overlays=(edited,)).stdout
    assert planned_jobs(out) == {
        "make_cams",
        "eval_cams",
        "score_cams",
        "make_pseudo_masks",
        "eval_pseudo_masks",
        "summarize_metrics",
        "write_leaderboard",
        "all",
    }
    assert "results/tiny_gradcam/make_cams/cams" in out and "results/tiny/make_cams" not in out


@pytest.mark.integration
def test_a_plain_run_of_the_base_config_reuses_what_the_overlay_run_built(multi_run):
    workdir, _ = multi_run
    base = Path(workdir / "base.yaml")
    base.write_text(yaml.safe_dump({k: v for k, v in OVERLAY.items() if k not in ("experiments", "leaderboard")}))
    out = snakemake(workdir, "-n", overlays=(base,)).stdout
    assert "Nothing to be done" in out or not planned_jobs(out) & {
        "check_data",
        "train_classifier",
        "make_cams",
        "eval_cams",
    }


def test_the_base_config_owns_what_it_would_build_identically():
    config = tiny(
        cam={"repeats": 2},
        gradcam={"make_cams": {"cam_type": "gradcam"}},
        crf={"make_pseudo_masks": {"refinement": "crf"}},
    )
    homes = preset_folders(config)
    assert list(homes) == ["tiny", "tiny_r1"] and [c["seed"] for c in homes.values()] == [0, 1]
    run = Experiments(expand_experiments(config), homes)
    assert run.names == ["tiny_cam", "tiny_cam_r1", "tiny_gradcam", "tiny_crf"] and run.folders[:2] == [
        "tiny",
        "tiny_r1",
    ]
    assert (
        run.owner("tiny_cam", ("train_classifier", "")) == "tiny"
        and run.owner("tiny_gradcam", ("train_classifier", "")) == "tiny"
    )
    assert run.owner("tiny_cam_r1", ("make_cams", "")) == "tiny_r1"
    assert run.owner("tiny_gradcam", ("make_cams", "")) == "tiny_gradcam"
    # the base's refinement is the config file's (crf): the crf experiment's pseudo-masks are the base's too
    assert run.owner("tiny_crf", ("make_pseudo_masks", "crf")) == "tiny"
    # each experiment keeps its own summary
    assert run.owner("tiny_cam", ("summarize_metrics", "")) == "tiny_cam"
    assert preset_folders(validate_config(yaml.safe_load(CONFIG.read_text()))) == {}
    with pytest.raises(WsssError, match=r"results/tiny_r1"):
        Experiments(expand_experiments(tiny(r1={"seed": 5})), preset_folders(tiny(r1={"seed": 5}, x={"repeats": 2})))


def test_repeats_expand_into_seeded_folders():
    runs = expand_experiments(tiny(cam={"repeats": 3}, gradcam={"make_cams": {"cam_type": "gradcam"}}))
    assert list(runs) == ["tiny_cam", "tiny_cam_r1", "tiny_cam_r2", "tiny_gradcam"]
    assert [runs[n]["seed"] for n in runs] == [0, 1, 2, 0]
    assert runs["tiny_cam_r2"]["repeat"] == {"of": "tiny_cam", "index": 2}
    run = Experiments(runs)
    # the repeats share what does not depend on the seed, and nothing that does
    assert run.owner("tiny_cam_r1", ("train_classifier", "")) == "tiny_cam_r1"
    assert run.owner("tiny_gradcam", ("train_classifier", "")) == "tiny_cam"
    single = expand_experiments(validate_config({**yaml.safe_load(CONFIG.read_text()), "repeats": 2}))
    assert list(single) == ["tiny", "tiny_r1"]


def _summary(tmp_path, folder, cam, val, refinement="crf"):
    path = tmp_path / "results" / folder / "metrics.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {
                "refinement": refinement,
                "cam_miou": cam,
                "cam_bg_threshold_best": 0.25,
                "pseudo_mask_miou": cam + 1,
                "segmentation_miou": val,
                "seed_split": "train",
                "val_split": "val" if val else None,
            }
        )
    )
    return f"{folder}={path}"


def _job(tmp_path, owner, stage, seconds):
    path = tmp_path / "results" / owner / "benchmarks" / f"{stage}.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"s\th:m:s\tmax_rss\tcpu_time\n{seconds}\t0\t100\t{seconds * 2}\n")
    return path


def test_leaderboard_rows_costs_and_missing_values(tmp_path):
    from wsss_stages.reports.write_leaderboard import write_leaderboard

    classifier = _job(tmp_path, "a", "train_classifier", 10.0)
    jobs = [
        f"a={classifier}",
        f"a={_job(tmp_path, 'a', 'make_cams', 5.0)}",
        f"b={classifier}",
        f"b={_job(tmp_path, 'b', 'make_cams', 7.0)}",
        f"b={tmp_path / 'results/b/benchmarks/never_ran.tsv'}",
    ]
    out = tmp_path / "board"
    write_leaderboard(
        summaries=[_summary(tmp_path, "a", 30.0, 28.0), _summary(tmp_path, "b", 35.0, None)],
        groups=["a=a", "b=b"],
        jobs=jobs,
        labels=["b=Grad-CAM"],
        out_md=out.with_suffix(".md"),
        out_csv=out.with_suffix(".csv"),
        out_plot=out.with_suffix(".png"),
    )
    rows = {r["experiment"]: r for r in csv.DictReader(out.with_suffix(".csv").open())}
    assert (
        float(rows["a"]["wall_seconds"]) == 15
        and float(rows["a"]["own_wall_seconds"]) == 15
        and float(rows["a"]["cpu_seconds"]) == 30
    )
    assert (
        float(rows["b"]["wall_seconds"]) == 17
        and float(rows["b"]["own_wall_seconds"]) == 7
        and rows["b"]["jobs_unmeasured"] == "1"
    )
    md = out.with_suffix(".md").read_text()
    assert (
        "| b | Grad-CAM | crf | 1 | **35.00** | +5.00 (one repeat) | 0.25 | — | — | **36.00** | +5.00 (one repeat) | "
        "— | — |" in md
    )
    assert "| a |  | crf | 1 | 30.00 | baseline | 0.25 | — | baseline | 31.00 | baseline | **28.00** | baseline |" in md


def test_leaderboard_over_repeats_gives_spread_and_paired_intervals(tmp_path):
    from wsss_stages.reports.write_leaderboard import write_leaderboard

    base, method = [30.0, 33.0, 31.0], [33.0, 35.0, 34.5]  # the method is ahead in every repeat
    summaries = [_summary(tmp_path, f"cam_r{i}", v, 25.0) for i, v in enumerate(base)]
    summaries += [_summary(tmp_path, f"new_r{i}", v, 26.0) for i, v in enumerate(method)]
    groups = [f"cam_r{i}=cam" for i in range(3)] + [f"new_r{i}=new" for i in range(3)]
    out = tmp_path / "board"
    write_leaderboard(
        summaries=summaries,
        groups=groups,
        jobs=[],
        labels=[],
        out_md=out.with_suffix(".md"),
        out_csv=out.with_suffix(".csv"),
        out_plot=None,
    )
    rows = {r["experiment"]: r for r in csv.DictReader(out.with_suffix(".csv").open())}
    assert rows["cam"]["repeats"] == "3" and float(rows["cam"]["cam_miou"]) == pytest.approx(31.333, abs=1e-3)
    assert float(rows["cam"]["cam_miou_std"]) == pytest.approx(1.5275, abs=1e-3)
    assert float(rows["new"]["delta_cam_miou"]) == pytest.approx(2.8333, abs=1e-3)
    lo, hi = float(rows["new"]["delta_cam_miou_lo"]), float(rows["new"]["delta_cam_miou_hi"])
    assert lo == pytest.approx(2.8333 - 4.3027 * 0.7638 / 3**0.5, abs=1e-2) and hi > 2.83 > lo > 0
    md = out.with_suffix(".md").read_text()
    assert "31.33 ± 1.53" in md and "+2.83 [+0.94, +4.73] |" in md and "+1.00 [+1.00, +1.00] within noise" in md
    assert "decoder (val)" not in md  # no method here has a decoder of its own


def test_leaderboard_shows_a_methods_own_decoder_on_val(tmp_path):
    from wsss_stages.reports.write_leaderboard import write_leaderboard

    summaries = [_summary(tmp_path, "cam", 30.0, 25.0), _summary(tmp_path, "rs", 33.0, 26.0)]
    path = tmp_path / "results" / "rs" / "metrics.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "decoder_net_miou": 29.5}))
    out = tmp_path / "board"
    write_leaderboard(
        summaries=summaries,
        groups=["cam=cam", "rs=rs"],
        jobs=[],
        labels=[],
        out_md=out.with_suffix(".md"),
        out_csv=out.with_suffix(".csv"),
        out_plot=out.with_suffix(".png"),
    )
    rows = {r["experiment"]: r for r in csv.DictReader(out.with_suffix(".csv").open())}
    assert float(rows["rs"]["decoder_val_miou"]) == 29.5 and rows["cam"]["decoder_val_miou"] == ""
    md = out.with_suffix(".md").read_text()
    assert "| final val | Δ final val | decoder (val) | Δ decoder (val) |" in md
    assert "| **26.00** | +1.00 (one repeat) within noise | **29.50** | — |" in md


def test_leaderboard_compares_refinements_of_the_same_cams_with_the_seeds_repeat_by_repeat(tmp_path):
    from wsss_stages.reports.write_leaderboard import write_leaderboard

    by_refinement = [
        {"crf": 34.0, "none": 30.0, "pamr": 33.0},
        {"crf": 37.0, "none": 35.0, "pamr": 38.5},
        {"crf": 36.0, "none": 32.0},
    ]
    summaries = []
    for index, scores in enumerate(by_refinement):
        path = tmp_path / "results" / f"e_r{index}" / "metrics.json"
        path.parent.mkdir(parents=True)
        path.write_text(
            json.dumps(
                {
                    "refinement": "crf",
                    "cam_miou": scores["none"],
                    "cam_bg_threshold_best": 0.25,
                    "pseudo_mask_miou": scores["crf"],
                    "pseudo_mask_miou_by_refinement": scores,
                    "seed_split": "train",
                    "val_split": None,
                }
            )
        )
        summaries.append(f"e_r{index}={path}")
    out = tmp_path / "board"
    write_leaderboard(
        summaries=summaries,
        groups=[f"e_r{i}=e" for i in range(3)],
        jobs=[],
        labels=[],
        out_md=out.with_suffix(".md"),
        out_csv=out.with_suffix(".csv"),
        out_plot=None,
    )
    md = out.with_suffix(".md").read_text()
    table = md[md.index("## Refinements of the same CAMs") :]
    # crf − none per repeat: 4, 2, 4 → mean 3.33, sd 1.155, t(0.975, 2) = 4.303: ±2.87
    assert "| e | crf | 3 | 35.67 ± 1.53 | +3.33 [+0.46, +6.20] |" in table
    assert "| e | none | 3 | 32.33 ± 2.52 | seeds |" in table
    assert "| e | pamr | 2 | 35.75 ± 3.89 | +3.25 [" in table  # the third repeat has no pamr: paired over two


def test_the_refinement_table_gives_what_the_last_link_of_a_chain_adds(tmp_path):
    from wsss_stages.reports.write_leaderboard import write_leaderboard

    by_refinement = [
        {"none": 30.0, "pamr": 33.0, "pamr+crf": 34.0, "scg": 32.0, "scg+pamr": 35.0},
        {"none": 31.0, "pamr": 34.0, "pamr+crf": 34.5, "scg": 32.0, "scg+pamr": 34.0},
    ]
    summaries = []
    for index, scores in enumerate(by_refinement):
        path = tmp_path / f"e_r{index}" / "metrics.json"
        path.parent.mkdir(parents=True)
        path.write_text(
            json.dumps(
                {
                    "refinement": "pamr",
                    "cam_miou": scores["none"],
                    "cam_bg_threshold_best": 0.25,
                    "pseudo_mask_miou": scores["pamr"],
                    "pseudo_mask_miou_by_refinement": scores,
                    "seed_split": "train",
                    "val_split": None,
                }
            )
        )
        summaries.append(f"e_r{index}={path}")
    out = tmp_path / "board"
    write_leaderboard(
        summaries=summaries,
        groups=["e_r0=e", "e_r1=e"],
        jobs=[],
        labels=[],
        out_md=out.with_suffix(".md"),
        out_csv=out.with_suffix(".csv"),
        out_plot=None,
    )
    table = out.with_suffix(".md").read_text().split("## Refinements of the same CAMs")[1]
    # pamr+crf − pamr: 1.0, 0.5 → +0.75, sd 0.354, t(0.975, 1) = 12.71: ±3.18; scg+pamr − scg: 3, 2 → +2.50 ± 6.35
    assert (
        "| e | pamr+crf | 2 | 34.25 ± 0.35 | +3.75 [" in table
        and "| vs pamr: +0.75 [-2.43, +3.93] within noise |" in table
    )
    assert "| vs scg: +2.50 [-3.85, +8.85] spans 0 |" in table
    assert "| e | pamr | 2 | 33.50 ± 0.71 | +3.00 [+3.00, +3.00] |  |" in table  # one link: nothing to add


def test_leaderboard_has_no_refinement_table_when_each_experiment_scored_one(tmp_path):
    from wsss_stages.reports.write_leaderboard import write_leaderboard

    out = tmp_path / "board"
    write_leaderboard(
        summaries=[_summary(tmp_path, "a", 30.0, 28.0)],
        groups=["a=a"],
        jobs=[],
        labels=[],
        out_md=out.with_suffix(".md"),
        out_csv=out.with_suffix(".csv"),
        out_plot=None,
    )
    assert "Refinements of the same CAMs" not in out.with_suffix(".md").read_text()


def test_benchmark_costs_name_jobs_built_in_another_experiment(tmp_path):
    from wsss_stages.reports.write_benchmark import read_job_times

    paths = []
    for owner, stage in [("a", "train_classifier"), ("b", "make_cams")]:
        path = tmp_path / owner / "benchmarks" / f"{stage}.tsv"
        path.parent.mkdir(parents=True)
        path.write_text("s\th:m:s\tmax_rss\tcpu_time\n2.5\t0\t100\t4\n")
        paths.append(str(path))
    rows = read_job_times([*paths, str(tmp_path / "b/benchmarks/missing.tsv")], "b")
    assert [r["job"] for r in rows] == ["train_classifier (from a)", "make_cams"] and rows[0]["seconds"] == 2.5
