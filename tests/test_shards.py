"""Shards of per-image stages: slicing, and gathering into the artifact an unsharded run writes."""

import json

import numpy as np
import pytest

from wsss_stages import WsssError
from wsss_stages.lib.data.artifacts import read_manifest, save_cams, write_manifest
from wsss_stages.lib.evaluation.stats import affinity_report, merge_affinity_reports
from wsss_stages.lib.plan.shards import WHOLE, Shard, gather_folder, merged_manifest, shard_from_folder

IDS = [f"im{i:02d}" for i in range(10)]


def test_shard_specs_parse_and_refuse_nonsense():
    assert Shard.parse("2/4") == Shard(2, 4) and Shard.parse("0/1") == WHOLE and WHOLE.whole
    assert shard_from_folder("3of4") == Shard(2, 4) and Shard(2, 4).folder == "3of4" and Shard(2, 4).spec == "2/4"
    for bad in ("4/4", "-1/2", "1", "a/b", "1/0"):
        with pytest.raises(WsssError, match="shard"):
            Shard.parse(bad)


def test_shards_cover_every_item_exactly_once_and_are_balanced():
    parts = [Shard(k, 3).take(IDS) for k in range(3)]
    assert sorted(sum(parts, [])) == IDS and [len(p) for p in parts] == [4, 3, 3]
    assert WHOLE.take(IDS) == IDS


def test_grouped_items_stay_in_one_shard_in_the_original_order():
    groups = [IDS[0:4], IDS[4:8], IDS[8:10]]
    mine, ids = Shard(0, 2).take_groups(groups, IDS)
    assert mine == [IDS[0:4], IDS[8:10]] and ids == IDS[0:4] + IDS[8:10]


def test_the_whole_set_writes_no_shard_fields_but_a_shard_records_the_full_list():
    assert WHOLE.manifest_fields(IDS) == {}
    assert Shard(1, 2).manifest_fields(IDS) == {"shard": {"index": 1, "count": 2}, "all_ids": IDS}


def write_shards(tmp_path, count, extra=None):
    folders = []
    tmp_path.mkdir(exist_ok=True)
    for k in range(count):
        shard = Shard(k, count)
        folder = tmp_path / f"shard{k}"
        folder.mkdir()
        mine = shard.take(IDS)
        for i in mine:
            save_cams(folder / f"{i}.npz", np.full((1, 2, 2), 0.5), [3])
        write_manifest(
            folder, "cams", mine, **{"scales": [1.0], **(extra or {}).get(k, {})}, **shard.manifest_fields(IDS)
        )
        folders.append(folder)
    return folders


def test_gathering_gives_the_unsharded_manifest_and_every_file(tmp_path):
    out = tmp_path / "cams"
    assert gather_folder(write_shards(tmp_path, 3), out) == len(IDS)
    sizes = {
        p.name: p.stat().st_size for p in sorted(out.glob("*.npz"))
    }  # every shard's files, as write_manifest records
    assert read_manifest(out) == {"kind": "cams", "count": len(IDS), "ids": IDS, "scales": [1.0], "sizes": sizes}
    assert sorted(p.stem for p in out.glob("*.npz")) == IDS


def test_per_image_timings_are_averaged_over_images(tmp_path):
    folders = write_shards(tmp_path, 2, {0: {"seconds_per_image": 1.0}, 1: {"seconds_per_image": 2.0}})
    merged = merged_manifest([read_manifest(f) for f in folders], "x")
    assert merged["seconds_per_image"] == pytest.approx(1.5)  # 5 images each


def test_shards_that_disagree_or_miss_images_are_refused(tmp_path):
    folders = write_shards(tmp_path / "a", 2, {1: {"scales": [2.0]}})
    with pytest.raises(WsssError, match="disagree on manifest field 'scales'"):
        gather_folder(folders, tmp_path / "out")
    folders = write_shards(tmp_path / "b", 3)
    with pytest.raises(WsssError, match="expected 2 shards"):
        gather_folder(folders[:2], tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing half-gathered under the final name


def test_affinity_reports_of_shards_merge_to_the_report_of_all_images():
    rng = np.random.default_rng(0)
    same, diff = rng.integers(0, 50, (2, 20)), rng.integers(0, 50, (2, 20))
    whole = affinity_report(same.sum(0), diff.sum(0), 10.0, 7, 5)
    merged = merge_affinity_reports([affinity_report(same[k], diff[k], 10.0, n, 5) for k, n in enumerate((3, 4))])
    assert json.dumps(merged) == json.dumps(whole)


# ============================================================================ the DAG: sharded = unsharded
# tests/tiny_config.yaml infers in fp32, so the sharded run must write the finished run's bytes
SHARDED = ["shards=3", "temporary=[make_affinity_labels]"]
PER_IMAGE_FOLDERS = [
    "make_cams/cams",
    "make_cams/val_cams",
    "refine_crf/cams/scores",
    "random_walk/cams/maps",
    "random_walk/cams/figures",
    "make_pseudo_masks/crf/masks",
    "make_pseudo_masks/none/masks",
    "make_pseudo_masks/rw/masks",
    "predict_segmentation/crf/masks",
]


@pytest.fixture(scope="module")
def sharded_and_not(finished_run, tmp_path_factory):
    """The finished tiny DAG (conftest), and a copy of its folder run again with every per-image stage in 3 shards."""
    import shutil

    from test_pipeline import snakemake

    sharded = tmp_path_factory.mktemp("sharded") / "w"
    shutil.copytree(finished_run, sharded, symlinks=True)
    snakemake(sharded, "--config", *SHARDED)
    return finished_run / "results" / "tiny", sharded / "results" / "tiny"


def without_timings(manifest: dict) -> dict:
    return {k: v for k, v in manifest.items() if k != "seconds_per_image"}


@pytest.mark.integration
def test_sharded_runs_write_byte_identical_artifacts(sharded_and_not):
    whole, sharded = sharded_and_not
    for k in (1, 2, 3):
        assert (sharded / "logs" / f"make_cams_shard{k}of3.log").is_file()  # the shards did run, one job each
        assert (sharded / "benchmarks" / f"refine_crf_cams_shard{k}of3.tsv").is_file()
    assert not (sharded / "make_cams" / "shards").exists()  # temporary: removed once gathered
    assert (
        not (sharded / "make_affinity_labels" / "labels").exists()
        and (whole / "make_affinity_labels" / "labels").is_dir()
    )
    for folder in PER_IMAGE_FOLDERS:
        files = sorted(p.name for p in (whole / folder).iterdir() if not p.name.startswith("."))
        assert files == sorted(p.name for p in (sharded / folder).iterdir() if not p.name.startswith(".")), folder
        for name in files:
            if name == "manifest.json":
                assert without_timings(read_manifest(whole / folder)) == without_timings(
                    read_manifest(sharded / folder)
                ), folder
            else:
                assert (whole / folder / name).read_bytes() == (sharded / folder / name).read_bytes(), (
                    f"{folder}/{name}"
                )
    for path in [
        "eval_pseudo_masks/crf/metrics.json",
        "eval_pseudo_masks/rw/metrics.json",
        "eval_segmentation/crf/metrics.json",
        "random_walk/cams/diagnostics.json",
    ]:
        assert json.loads((whole / path).read_text()) == json.loads((sharded / path).read_text()), path


@pytest.mark.integration
def test_a_threshold_change_plans_the_same_stages_with_and_without_shards(sharded_and_not):
    from test_pipeline import planned_jobs, snakemake

    whole, sharded = (p.parent.parent for p in sharded_and_not)
    change = ["--config", "random_walk={bg_threshold: 0.3}"]
    unsharded_plan = planned_jobs(snakemake(whole, "-n", *change).stdout)
    sharded_plan = planned_jobs(snakemake(sharded, "-n", *change, *SHARDED).stdout)
    assert {"make_pseudo_masks", "eval_pseudo_masks"} <= unsharded_plan and "random_walk" not in unsharded_plan
    assert {j.removesuffix("_shard").removesuffix("_gather") for j in sharded_plan} == unsharded_plan
    assert {"make_pseudo_masks_shard", "make_pseudo_masks_gather"} <= sharded_plan


def test_experiments_that_differ_only_in_shards_share_their_artifacts():
    from wsss_stages.lib.plan.config import validate_config
    from wsss_stages.lib.plan.experiments import expand_experiments
    from wsss_stages.lib.plan.pipeline import Experiments

    run = Experiments(expand_experiments(validate_config({"experiments": {"a": {}, "b": {"shards": 4}}})))
    assert run.owner("demo_b", ("make_cams", "")) == "demo_a"


def test_unknown_stages_in_shards_are_config_errors():
    from wsss_stages.lib.plan.config import validate_config

    with pytest.raises(WsssError, match="config key 'shards.train_classifier'"):
        validate_config({"shards": {"train_classifier": 2}})
    assert validate_config({"shards": {"refine_crf": 4}})["shards"] == {"refine_crf": 4}
