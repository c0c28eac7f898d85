"""Spread and intervals on synthetic numbers."""

import numpy as np
import pytest

from wsss_stages.lib.evaluation.stats import describe_difference, mean_std, miou_of, paired_bootstrap, paired_t_interval


def test_mean_std_and_the_paired_t_interval():
    assert mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0) and mean_std([5.0]) == (5.0, None) and mean_std([]) == (None, None)
    mean, lo, hi = paired_t_interval([3.0, 5.0, 4.0], [1.0, 2.0, 3.0])  # differences 2, 3, 1
    assert mean == 2.0 and (lo, hi) == pytest.approx((2.0 - 4.3027 / 3**0.5, 2.0 + 4.3027 / 3**0.5), abs=1e-3)
    assert paired_t_interval([3.0], [1.0]) == (2.0, None, None)


def test_differences_are_described_with_their_noise():
    assert describe_difference(1.2, -0.5, 2.9) == "+1.20 [-0.50, +2.90] within noise"
    assert describe_difference(3.0, -1.0, 7.0) == "+3.00 [-1.00, +7.00] spans 0"
    assert describe_difference(-4.0, -6.0, -2.0) == "-4.00 [-6.00, -2.00]"
    assert describe_difference(None, None, None) == "—"


def test_paired_bootstrap_finds_a_real_gain_and_no_gain_between_equals():
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 3, (40, 200))

    def confusions(error_rate):
        pred = np.where(rng.random(gt.shape) < error_rate, rng.integers(0, 3, gt.shape), gt)
        return np.stack([np.bincount(g * 3 + p, minlength=9).reshape(3, 3) for g, p in zip(gt, pred)])

    good, bad = confusions(0.1), confusions(0.4)
    diff, lo, hi = paired_bootstrap(good, bad, iterations=300)
    assert diff == pytest.approx(miou_of(good.sum(0)) - miou_of(bad.sum(0))) and 0 < lo < diff < hi
    same, lo, hi = paired_bootstrap(good, good, iterations=50)
    assert same == lo == hi == 0.0


def test_auc_from_histograms():
    from wsss_stages.lib.evaluation.stats import auc_from_histograms

    assert auc_from_histograms([0, 0, 5], [3, 0, 0]) == 1.0  # every positive above every negative
    assert auc_from_histograms([3, 0, 0], [0, 0, 5]) == 0.0
    assert auc_from_histograms([1, 1], [1, 1]) == 0.5 and auc_from_histograms([0, 4], [0, 4]) == 0.5  # ties count half
    assert auc_from_histograms([0, 0], [1, 1]) is None
    rng = np.random.default_rng(0)
    pos, neg = rng.normal(1, 1, 4000), rng.normal(0, 1, 4000)
    edges = np.linspace(-5, 6, 2001)
    exact = (pos[:, None] > neg[None, :1000]).mean()
    assert auc_from_histograms(np.histogram(pos, edges)[0], np.histogram(neg[:1000], edges)[0]) == pytest.approx(
        exact, abs=0.01
    )


def load_benchmark_script(name: str):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        name, Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_training_speed_table_takes_each_ratio_within_its_round():
    speed = load_benchmark_script("train_speed")

    def timing(images_per_s):
        return {"images_per_s": images_per_s, "data_share": 5.0}

    # The machine runs twice as fast in the second round: cells spread; bf16 / fp32 is 1.5, 1.0, 1.1 in the
    # three rounds, so its median is 1.1, where the ratio of the medians would say 1.25.
    rounds = [
        {
            "limit": lim,
            "limit_bf16": lim,
            "loops": [timing(lim * 0.9), timing(lim * 0.8)],
            "loop_bf16": timing(lim * 0.9 * gain),
        }
        for lim, gain in ((10.0, 1.5), (20.0, 1.0), (12.0, 1.1))
    ]
    cells = speed.table_row("net", rounds, bf16=True)
    assert cells[1] == "12.0 (10.0–20.0)"  # median and range of the fp32 limit
    assert cells[3] == "10.8 (9.0–18.0) (5 %)"
    assert cells[5] == "0.90 (0.90–0.90)"  # loop / limit within each round
    assert cells[7] == "1.10 (1.00–1.50)"  # the bf16 speed-up within each round, not median over median
    one = speed.table_row("net", rounds[:1], bf16=False)
    assert one[1:3] == ["10.0", "not native"] and one[6] == "not native"


def add_row_from(record, method, seed, metrics_path, note="", **kind):
    """A record row from a metrics.json, as benchmarks/repeats.py adds it."""
    import json

    from wsss_stages.lib.evaluation.records import add_row, row_from_metrics

    metrics = json.loads(metrics_path.read_text())
    overlay = "configs/experiments/x.yaml"
    add_row(record, row_from_metrics(method, seed, metrics, overlay=overlay, command="snakemake", note=note, **kind))


def test_a_record_row_names_a_committed_overlay(tmp_path):
    from wsss_stages.lib.evaluation.records import RecordError, add_row

    with pytest.raises(RecordError, match="committed overlay"):
        add_row(tmp_path / "r.csv", {"method": "cam", "seed": 0, "overlay": "my_overlay.yaml"})


def test_a_repeats_record_pairs_methods_by_seed_and_replaces_a_seed_added_again(tmp_path):
    import json

    from wsss_stages.lib.evaluation import records as repeats

    record = tmp_path / "record.csv"

    def metrics(miou, val):
        path = tmp_path / f"m{miou}.json"
        path.write_text(
            json.dumps(
                {
                    "cam_miou": miou,
                    "cam_miou_val": val,
                    "cam_bg_threshold_best": 0.3,
                    "seed_split": "train",
                    "cam_val_split": None if val is None else "val",
                    "cam": {"precision": 50.0, "recall": 60.0},
                    "classifier_map": {"train": 99.04, "val": 75.04},
                    "provenance": {"machine": {"cpu": "CPU X", "cpu_flags": ["avx2"]}, "git": {"commit": "abc"}},
                }
            )
        )
        return path

    for seed, (cam, method) in enumerate([(38.0, 40.0), (39.0, 42.0), (38.5, 41.0)]):
        add_row_from(record, "cam", seed, metrics(cam, cam - 3))
        add_row_from(record, "puzzle", seed, metrics(method, None))
    add_row_from(record, "puzzle", 2, metrics(41.5, None), note="again")  # replaces seed 2, does not add a fourth
    rows = repeats.read_record(record)
    assert len(rows) == 6 and rows[-1]["note"] == "again" and rows[0]["cpu"] == "CPU X (avx2)"
    # the classifier's val mAP is kept when the CAMs were not scored on val (eval_cams.score_val false)
    assert all((row["map_train"], row["map_val"]) == ("99.0", "75.0") for row in rows)
    text = repeats.table(rows, "cam")
    puzzle = next(line for line in text.splitlines() if line.startswith("| puzzle"))
    # differences 2, 3, 3: mean 2.67, t-interval ± 4.303 · 0.577 / √3
    assert (
        "41.17 ± 1.04 (40.00 / 42.00 / 41.50)" in puzzle
        and "+2.67 [+1.23, +4.10] (n = 3: +2.00 / +3.00 / +3.00)" in puzzle
    )
    cam = next(line for line in text.splitlines() if line.startswith("| cam"))
    assert "baseline" in cam and "35.50 ± 0.50 (35.00 / 36.00 / 35.50)" in cam
    with pytest.raises(repeats.RecordError, match="baseline 'gradcam' has no rows"):
        repeats.table(rows, "gradcam")


def test_a_repeats_record_of_refinements_takes_each_chain_from_the_compare_scores(tmp_path):
    import json

    from wsss_stages.lib.evaluation import records as repeats

    record = tmp_path / "refinements.csv"
    for seed, (none, pamr, chain) in enumerate([(38.0, 42.0, 43.0), (39.0, 43.0, 44.5), (38.5, 42.0, 43.5)]):
        path = tmp_path / f"m{seed}.json"
        path.write_text(
            json.dumps(
                {
                    "cam_miou": none,
                    "refinement": "pamr",
                    "pseudo_mask_bg_threshold": 0.3,
                    "pseudo_mask": {"precision": 55.0, "recall": 62.0},
                    "pseudo_mask_miou_by_refinement": {"pamr": pamr, "none": none, "pamr+crf": chain},
                }
            )
        )
        for name in ("none", "pamr", "pamr+crf"):
            add_row_from(record, name, seed, path, refinement=name)
    rows = repeats.read_record(record)
    own = next(r for r in rows if r["method"] == "pamr" and r["seed"] == "0")
    other = next(r for r in rows if r["method"] == "pamr+crf" and r["seed"] == "0")
    # precision and threshold belong to the experiment's own refinement only; a compared chain has its mIoU
    assert (own["miou_train"], own["threshold"], own["precision"]) == ("42.0", "0.3", "55.0")
    assert (other["miou_train"], other["threshold"], other["precision"]) == ("43.0", "", "")
    chain = next(line for line in repeats.table(rows, "pamr").splitlines() if line.startswith("| pamr+crf"))
    # differences 1.0, 1.5, 1.5 to the chain without its last link
    assert "+1.33 [+0.62, +2.05] within noise (n = 3: +1.00 / +1.50 / +1.50)" in chain
    with pytest.raises(
        repeats.RecordError, match=r"refinement 'scg' is not in this metrics.json \(it scored: pamr, none, pamr\+crf\)"
    ):
        add_row_from(record, "scg", 0, tmp_path / "m0.json", refinement="scg")


def test_a_repeats_record_of_final_networks_pairs_two_recipes_on_val(tmp_path):
    import json

    from wsss_stages.lib.evaluation import records as repeats

    record = tmp_path / "segmentation.csv"
    for seed, (masks, fp32, bf16) in enumerate([(42.3, 37.5, 37.0), (42.9, 38.0, 38.2), (42.2, 36.9, 36.6)]):
        for name, final in (("fp32", fp32), ("bf16", bf16)):
            path = tmp_path / f"{name}{seed}.json"
            path.write_text(
                json.dumps(
                    {
                        "cam_miou": 38.0,
                        "pseudo_mask_miou": masks,
                        "segmentation_miou": final,
                        "pseudo_mask_bg_threshold": 0.3,
                        "segmentation": {"precision": 56.0, "recall": 57.0},
                    }
                )
            )
            add_row_from(record, name, seed, path, segmentation=True)
    rows = repeats.read_record(record)
    first = next(r for r in rows if r["method"] == "bf16" and r["seed"] == "0")
    assert (first["miou_train"], first["miou_val"], first["precision"]) == ("42.3", "37.0", "56.0")
    bf16 = next(line for line in repeats.table(rows, "fp32").splitlines() if line.startswith("| bf16"))
    # same pseudo-masks on train (difference 0 in every seed); on val −0.5, +0.2, −0.3
    assert "+0.00 [+0.00, +0.00]" in bf16 and "(n = 3: -0.50 / +0.20 / -0.30)" in bf16
    (tmp_path / "seeds_only.json").write_text(
        json.dumps({"cam_miou": 38.0, "pseudo_mask_miou": 42.0, "segmentation_miou": None})
    )
    with pytest.raises(repeats.RecordError, match="no final network"):
        add_row_from(record, "fp32", 3, tmp_path / "seeds_only.json", segmentation=True)


def test_the_erasing_steps_diagnostic_scores_fused_and_single_steps_and_what_each_step_mined(tmp_path):
    """Step 1 finds the left half of the cat, step 2 (on the erased image) its right half and a background patch."""
    from conftest import write_voc_tree

    from wsss_stages.lib.data.artifacts import save_cams, save_mask, write_manifest

    steps = load_benchmark_script("erasing_steps")
    tree = write_voc_tree(
        tmp_path / "VOC2012", {"train": ["a"]}, labels={"a": ["cat"]}
    )  # cat at rows 4:12, columns 4:12
    cat = 8
    halves = np.zeros((2, 1, 24, 32), np.float32)
    halves[0, 0, 4:12, 4:8] = 1.0
    halves[1, 0, 4:12, 8:12] = 1.0
    halves[1, 0, 16:20, 20:24] = 1.0  # background, 16 pixels
    work = tmp_path / ".checkpoints" / "train_erasing"

    def write_step(step: int, cams: np.ndarray, mined: np.ndarray) -> None:
        cams_dir, mined_dir = work / f"step{step}" / "cams", work / f"step{step}" / "mined"
        cams_dir.mkdir(parents=True)
        mined_dir.mkdir(parents=True)
        save_cams(cams_dir / "a.npz", cams, [cat])
        save_mask(mined_dir / "a.png", mined)
        write_manifest(cams_dir, "cams", ["a"])
        write_manifest(mined_dir, "masks", ["a"])

    mined_after_step1 = np.where(halves[0, 0] > 0.5, cat, 0).astype(np.uint8)
    mined_after_step2 = np.where(halves[1, 0] > 0.5, cat, mined_after_step1).astype(np.uint8)
    write_step(1, halves[0], mined_after_step1)
    write_step(2, halves[1], mined_after_step2)
    (work / "step3").mkdir()  # a step that stopped below the mAP floor has no CAMs and is not a row
    first, second = steps.score_steps(work, tree, "train", [0.5])
    valid = 24 * 32
    assert first["fused"]["miou"] == pytest.approx(100 * np.mean([(valid - 64) / (valid - 32), 32 / 64]), abs=0.01)
    assert second["fused"]["miou"] == pytest.approx(100 * np.mean([(valid - 80) / (valid - 64), 64 / 80]), abs=0.01)
    assert second["alone"]["miou"] == pytest.approx(100 * np.mean([(valid - 80) / (valid - 32), 32 / 80]), abs=0.01)
    assert first["alone"] == first["fused"]
    assert (first["mined_share"], first["mined_right"], first["mined_background"]) == pytest.approx(
        (100 * 32 / valid, 100, 0)
    )
    step2_mined = (second["mined_share"], second["mined_right"], second["mined_background"])
    assert step2_mined == pytest.approx(
        (100 * 48 / valid, 100 * 32 / 48, 100 * 16 / 48)
    )  # what step 2 added: 32 cat, 16 background
    assert steps.table([first, second]).splitlines()[-1].startswith(f"| 2 | {second['fused']['miou']:.2f} (thr 0.50, ")


def test_a_decoder_row_carries_the_decoder_scored_on_val():
    from wsss_stages.lib.evaluation.records import row_from_metrics

    metrics = {
        "refinement": "pamr",
        "pseudo_mask_miou_by_refinement": {"pamr": 44.0, "decoder": 41.0},
        "decoder_net_miou": 38.5,
        "pseudo_mask": {"precision": 55.0, "recall": 60.0},
        "classifier_map": {"train": 99.0, "val": 75.0},
    }
    decoder = row_from_metrics("rs+decoder", 0, metrics, overlay="configs/x.yaml", command="s", refinement="decoder")
    pamr = row_from_metrics("rs+pamr", 0, metrics, overlay="configs/x.yaml", command="s", refinement="pamr")
    assert (decoder["miou_train"], decoder["miou_val"]) == (41.0, 38.5) and pamr["miou_val"] is None
