"""A labels-only run: an image folder and a labels CSV, no mask anywhere, through the whole DAG."""

import json

import pytest
from PIL import Image

from wsss_stages.stages.make_demo_data import CLASSES, render_image


def write_labelled_photos(root, counts=(("train", 32), ("val", 8)), size=64):
    """Demo photos as a user's folder: <id>.jpg, labels.csv (id,labels,split), classes.txt; no masks."""
    photos = root / "photos"
    photos.mkdir(parents=True)
    rows = []
    for split, count in counts:
        for index in range(count):
            image, _, _, names = render_image(index, split, size, 0)
            Image.fromarray(image).save(photos / f"{split}{index:03d}.jpg", quality=95)
            rows.append(f"{split}{index:03d},{' '.join(names)},{split}")
    (root / "labels.csv").write_text("id,labels,split\n" + "\n".join(rows) + "\n")
    (root / "classes.txt").write_text("\n".join(CLASSES[1:]) + "\n")
    return {"images": str(photos), "labels": str(root / "labels.csv"), "classes": str(root / "classes.txt")}


@pytest.mark.integration
def test_a_run_without_any_mask_completes_and_invents_no_miou(tmp_path):
    from test_pipeline import planned_jobs, snakemake

    source = write_labelled_photos(tmp_path / "data")
    work = tmp_path / "w"
    settings = (
        "dataset=folder",
        f"folder={json.dumps(source)}",
        "splits={classifier: train, seeds: train, segmentation: train, val: val}",
    )
    snakemake(work, "--config", *settings, "--", "all", "threshold_explorer")
    results = work / "results" / "tiny"
    metrics = json.loads((results / "metrics.json").read_text())
    assert metrics["labels_only"] and metrics["threshold_rule"] == "otsu"
    assert metrics["cam_miou"] is None and metrics["cam_miou_val"] is None and metrics["segmentation_miou"] is None
    assert set(metrics["pseudo_mask_miou_by_refinement"].values()) == {None}
    assert 0 < metrics["pseudo_mask"]["foreground_share"] < 100 and metrics["pseudo_mask"]["extra_labels"] == 0.0
    assert set(metrics["segmentation"]) == {"foreground_share", "missed_labels", "extra_labels"}
    assert set(metrics["classifier_map"]) == {"train", "val"}  # val: the held-out labelled split
    assert json.loads((results / "eval_cams" / "cams" / "best.json").read_text())["rule"] == "otsu"
    assert json.loads((results / "tune_crf" / "cams" / "best.json").read_text())["rule"] == "otsu"
    assert len(list((results / "predict_segmentation" / "crf" / "masks").glob("*.png"))) == 8
    table = (results / "metrics.md").read_text()
    assert "n/a (no masks)" in table and "otsu rule" in table
    figure = results / "explore_thresholds" / "cams.png"
    assert figure.stat().st_size > 0  # the seeds; the report stage is tested in tests/test_label_free.py
    # a threshold picked by eye from the explorer reruns only what follows it
    picked = snakemake(work, "-n", "--config", *settings, "cam_bg_threshold=0.3", "--", "all", "threshold_explorer")
    assert planned_jobs(picked.stdout) == {
        "make_pseudo_masks",
        "eval_pseudo_masks",
        "score_cams",
        "explore_thresholds",
        "summarize_metrics",
        "all",
        "threshold_explorer",
    }
