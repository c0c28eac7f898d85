"""Thresholds without ground truth, on synthetic maps whose right threshold is known."""

import numpy as np
import pytest

from wsss_stages.lib.evaluation.label_free import choose_threshold, otsu


def synthetic_maps(n=12, seed=0):
    """Per image one class: its object at 0.6–1.0, the rest at 0–0.25. Any threshold in [0.25, 0.6) is right."""
    rng = np.random.default_rng(seed)
    maps = []
    for _ in range(n):
        cam = rng.uniform(0.0, 0.25, (1, 24, 32))
        top, left = rng.integers(0, 12), rng.integers(0, 16)
        cam[0, top : top + 10, left : left + 14] = rng.uniform(0.6, 1.0, (10, 14))
        maps.append((cam / cam.max(), np.array([rng.integers(1, 21)])))
    return maps


GRID = [0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]


@pytest.mark.parametrize("rule", ["otsu", "stability"])
def test_each_rule_finds_the_gap_between_object_and_background(rule):
    threshold = choose_threshold(rule, synthetic_maps(), GRID)
    assert 0.25 <= threshold < 0.6, threshold
    label_free = [(cam > threshold).sum() for cam, _ in synthetic_maps()]
    assert label_free == [140] * 12  # exactly the object's pixels, in every image


def test_otsu_of_two_groups_lies_between_them_and_of_one_value_is_undefined():
    values = np.concatenate([np.full(50, 0.1), np.full(30, 0.8)])
    assert 0.1 <= otsu(values) < 0.8
    assert otsu(np.full(10, 0.5)) is None
    with pytest.raises(ValueError, match="unknown threshold rule"):
        choose_threshold("magic", synthetic_maps(2), GRID)


def test_the_benchmark_scores_each_rule_against_the_sweep_on_the_same_images(tmp_path):
    """CAMs that are the masks' objects with a gap below them: every threshold in the gap is right, so the
    otsu rule loses nothing against the sweep on masks."""
    from conftest import write_voc_tree
    from test_stats import load_benchmark_script

    from wsss_stages.lib.data.voc import VOCDataset

    ids = ["a", "b", "c", "d"]
    dataset = VOCDataset(write_voc_tree(tmp_path / "VOC2012", {"train": ids}))
    cams = cams_of_masks(tmp_path, dataset, ids)
    row = load_benchmark_script("label_free_thresholds").score_folder(dataset, cams, "train", GRID)
    assert row["images"] == 4 and row["swept_miou"] == 100.0
    assert 0.2 <= row["otsu"] < 0.7 and row["otsu_miou"] == 100.0 and row["otsu_loss"] == 0.0


def test_label_agreement_counts_shares_missed_and_extra_labels():
    from wsss_stages.lib.evaluation.label_free import LabelAgreement

    agreement = LabelAgreement(4)
    cat_only = np.zeros((4, 5), np.uint8)
    cat_only[:2, :] = 1  # labelled cat and dog: the dog is missed
    dog_and_bird = np.full((4, 5), 2, np.uint8)
    dog_and_bird[0, 0], dog_and_bird[3, 4] = 3, 255  # labelled dog only: the bird is extra; void not counted
    agreement.add(cat_only, np.array([1, 2]))
    agreement.add(dog_and_bird, np.array([2]))
    result = agreement.summary(["background", "cat", "dog", "bird"])
    assert result["images"] == 2
    assert result["foreground_share"] == round(100 * (10 + 18 + 1) / 39, 3)
    assert result["missed_labels"] == round(100 * 1 / 3, 3)  # of 3 labelled image-class pairs
    assert result["extra_labels"] == round(100 * 1 / 3, 3)  # of 3 shown pairs (cat, dog, bird)
    assert result["per_class"]["dog"] == {
        "pixel_share": round(100 * 18 / 39, 3),
        "images_labelled": 2,
        "images_missed": 1,
        "images_extra": 0,
    }


def test_auto_is_the_sweep_with_masks_and_otsu_without_and_the_sweep_needs_masks():
    from wsss_stages.lib.evaluation.label_free import rule_for

    assert rule_for("auto", has_masks=True) == "sweep" and rule_for("auto", has_masks=False) == "otsu"
    assert rule_for("stability", has_masks=True) == "stability"
    with pytest.raises(ValueError, match="has none"):
        rule_for("sweep", has_masks=False)


def cams_of_masks(tmp_path, dataset, ids):
    """CAMs that are the masks' objects (0.7–1) over a background of 0–0.2."""
    from wsss_stages.lib.data.artifacts import save_cams, write_manifest

    cams = tmp_path / "cams"
    cams.mkdir()
    rng = np.random.default_rng(1)
    for image_id in ids:
        mask = dataset.load_mask(image_id)
        cam = np.where(mask > 0, rng.uniform(0.7, 1.0, mask.shape), rng.uniform(0.0, 0.2, mask.shape))
        save_cams(cams / f"{image_id}.npz", (cam / cam.max())[None], dataset.labels(image_id).tolist())
    write_manifest(cams, "cams", ids)
    return cams


def sweep_outputs(tmp_path, name):
    return {
        f"out_{k}": tmp_path / name / f
        for k, f in (("csv", "sweep.csv"), ("best", "best.json"), ("per_class", "per_class.csv"), ("plot", "sweep.png"))
    }


@pytest.mark.parametrize("masks", [True, False])
def test_eval_cams_chooses_by_the_rule_and_scores_the_choice_only_where_masks_exist(tmp_path, masks):
    import json
    import shutil

    from conftest import write_voc_tree

    from wsss_stages.lib.data.voc import VOCDataset
    from wsss_stages.stages.eval_cams import eval_cams

    ids = ["a", "b", "c", "d"]
    root = write_voc_tree(tmp_path / "VOC2012", {"train": ids})
    cams = cams_of_masks(tmp_path, VOCDataset(root), ids)
    if not masks:
        shutil.rmtree(root / "SegmentationClass")
    out = sweep_outputs(tmp_path, "eval")
    eval_cams(cams=cams, data_root=root, split="train", thresholds=GRID, rule="auto", mask_folder=None, **out)
    best = json.loads(out["out_best"].read_text())
    assert best["rule"] == ("sweep" if masks else "otsu")
    if masks:
        assert best["miou"] == 100.0 and best["sweep_best_miou"] == 100.0 and best["best_threshold"] in GRID
    else:
        assert best["labels_only"] and best["miou"] is None and 0.2 <= best["best_threshold"] < 0.7
        assert best["missed_labels"] == 0.0 and best["extra_labels"] == 0.0
        assert 0 < best["foreground_share"] < 50 and "foreground_share" in out["out_csv"].read_text()
    eval_cams(cams=cams, data_root=root, split="train", thresholds=GRID, rule="otsu", mask_folder=None, **out)
    chosen = json.loads(out["out_best"].read_text())
    assert chosen["rule"] == "otsu" and 0.2 <= chosen["best_threshold"] < 0.7
    if masks:  # the otsu choice scored against the masks, the sweep's best kept beside it
        assert chosen["miou"] == 100.0 and chosen["sweep_best_threshold"] in GRID


def test_tune_crf_without_masks_keeps_the_score_that_agrees_with_the_seeds(tmp_path):
    import json
    import shutil

    from conftest import write_voc_tree

    from wsss_stages.lib.data.voc import VOCDataset
    from wsss_stages.refiners.crf.tune_crf import tune_crf

    ids = ["a", "b", "c"]
    root = write_voc_tree(tmp_path / "VOC2012", {"train": ids})
    cams = cams_of_masks(tmp_path, VOCDataset(root), ids)
    shutil.rmtree(root / "SegmentationClass")
    out = sweep_outputs(tmp_path, "crf")
    crf = {
        "iterations": 5,
        "gaussian_sxy": 3,
        "gaussian_compat": 3,
        "bilateral_sxy": 10,
        "bilateral_srgb": 13,
        "bilateral_compat": 10,
    }
    scores = [0.05, 0.5, 0.95]
    tune_crf(
        cams=cams,
        data_root=root,
        split="train",
        thresholds=scores,
        crf=crf,
        rule="auto",
        cam_thresholds=GRID,
        mask_folder=None,
        **out,
    )
    best = json.loads(out["out_best"].read_text())
    # 0.05 makes every pixel an object, 0.95 every pixel background: only 0.5 agrees with the seeds
    assert best["rule"] == "otsu" and best["labels_only"] and best["best_threshold"] == 0.5 and best["miou"] is None


def test_the_explorer_centres_its_columns_on_the_threshold_in_use_and_draws_every_image(tmp_path):
    from conftest import write_voc_tree

    from wsss_stages.lib.data.voc import VOCDataset
    from wsss_stages.reports.explore_thresholds import candidate_window, explore_thresholds

    assert candidate_window(GRID, 0.3, 3) == [0.2, 0.3, 0.4]
    assert candidate_window(GRID, 0.33, 4) == [0.2, 0.3, 0.33, 0.4]  # a rule's value joins the candidates
    assert candidate_window(GRID, 0.05, 3) == [0.05, 0.1, 0.15]  # at the edge: shifted, still `columns` wide
    ids = ["a", "b", "c"]
    root = write_voc_tree(tmp_path / "VOC2012", {"train": ids})
    cams = cams_of_masks(tmp_path, VOCDataset(root), ids)
    out = tmp_path / "explore" / "cams.png"
    explore_thresholds(
        cams=cams,
        data_root=root,
        out_png=out,
        split="train",
        mask_folder=None,
        candidates=GRID,
        images=2,
        columns=3,
        bg_threshold=0.3,
        bg_threshold_sweep=None,
    )
    from PIL import Image

    with Image.open(out) as figure:  # 2 rows of image, ground truth and 3 thresholds
        assert figure.width > 1.5 * figure.height
