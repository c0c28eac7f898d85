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

    from wsss_stages.lib.data.artifacts import save_cams, write_manifest
    from wsss_stages.lib.data.voc import VOCDataset

    ids = ["a", "b", "c", "d"]
    root = write_voc_tree(tmp_path / "VOC2012", {"train": ids})
    dataset = VOCDataset(root)
    cams = tmp_path / "cams"
    cams.mkdir()
    rng = np.random.default_rng(1)
    for image_id in ids:
        mask = dataset.load_mask(image_id)
        cam = np.where(mask > 0, rng.uniform(0.7, 1.0, mask.shape), rng.uniform(0.0, 0.2, mask.shape))
        save_cams(cams / f"{image_id}.npz", (cam / cam.max())[None], dataset.labels(image_id).tolist())
    write_manifest(cams, "cams", ids)
    row = load_benchmark_script("label_free_thresholds").score_folder(dataset, cams, "train", GRID)
    assert row["images"] == 4 and row["swept_miou"] == 100.0
    assert 0.2 <= row["otsu"] < 0.7 and row["otsu_miou"] == 100.0 and row["otsu_loss"] == 0.0
