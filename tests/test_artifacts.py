import numpy as np
import pytest
from PIL import Image

from wsss_stages import WsssError
from wsss_stages.lib.data.artifacts import (
    atomic_dir,
    atomic_path,
    cams_to_scores,
    load_cams,
    load_mask,
    load_scores,
    read_manifest,
    save_cams,
    save_mask,
    save_scores,
    write_manifest,
)


def test_cam_roundtrip_is_float16_and_keeps_classes(tmp_path):
    cams = np.random.default_rng(0).random((2, 5, 7)).astype(np.float32)
    save_cams(tmp_path / "x.npz", cams, [3, 7])
    loaded, classes = load_cams(tmp_path / "x.npz")
    assert classes.tolist() == [3, 7]
    np.testing.assert_allclose(loaded, cams, atol=1e-3)
    with np.load(tmp_path / "x.npz") as data:
        assert data["cams"].dtype == np.float16


def test_scores_need_background_first(tmp_path):
    with pytest.raises(ValueError):
        save_scores(tmp_path / "s.npz", np.zeros((2, 3, 3)), [1, 2])
    save_scores(tmp_path / "s.npz", np.ones((2, 3, 3)) / 2, [0, 4])
    scores, classes = load_scores(tmp_path / "s.npz")
    assert classes.tolist() == [0, 4] and scores.shape == (2, 3, 3)


def test_cams_to_scores_argmax_is_threshold_rule():
    cams = np.array([[[0.1, 0.5, 0.9]]])
    scores = cams_to_scores(cams, 0.3)
    assert scores.argmax(0).tolist() == [[0, 1, 1]]


def test_mask_is_palette_png_with_void(tmp_path):
    mask = np.array([[0, 1], [255, 20]], np.uint8)
    save_mask(tmp_path / "m.png", mask)
    with Image.open(tmp_path / "m.png") as image:
        assert image.mode == "P"
        assert image.getpalette()[3:6] == [128, 0, 0]  # VOC colour of class 1
    np.testing.assert_array_equal(load_mask(tmp_path / "m.png"), mask)


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash")
    assert list(tmp_path.iterdir()) == []


def test_atomic_dir_keeps_old_content_until_complete(tmp_path):
    target = tmp_path / "folder"
    target.mkdir()
    (target / "old").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            (tmp / "new").write_text("new")
            raise RuntimeError("crash")
    assert [p.name for p in target.iterdir()] == ["old"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder"]
    with atomic_dir(target) as tmp:
        (tmp / "new").write_text("new")
    assert [p.name for p in target.iterdir()] == ["new"]


def test_folder_without_manifest_is_incomplete(tmp_path):
    with pytest.raises(WsssError, match="manifest"):
        read_manifest(tmp_path)
    write_manifest(tmp_path, "cams", ["a"])
    assert read_manifest(tmp_path, "cams")["ids"] == ["a"]
    with pytest.raises(WsssError, match="expected 'masks'"):
        read_manifest(tmp_path, "masks")


def test_corrupt_artifact_is_named(tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(WsssError, match="bad.npz"):
        load_cams(tmp_path / "bad.npz")


# ----------------------------------------------------------------------------- damaged artifacts
def _damage(path, keep: int = 100) -> None:
    path.write_bytes(path.read_bytes()[:keep])


def _cam_folder(root):
    folder = root / "results/exp/make_cams/cams"
    folder.mkdir(parents=True)
    for image_id in ("a", "b"):
        save_cams(folder / f"{image_id}.npz", np.random.default_rng(0).random((1, 40, 40)), [3])
    write_manifest(folder, "cams", ["a", "b"])
    return folder


def _assert_named(exc_info, path, stage):
    message = str(exc_info.value)
    assert str(path) in message and f"stage {stage} wrote it" in message and f"--forcerun {stage}" in message, message


@pytest.mark.parametrize("fmt", ["cams", "scores", "mask", "confusions", "json", "manifest"])
def test_a_damaged_artifact_of_each_format_is_named_with_its_stage_and_rebuild_command(tmp_path, fmt):
    from wsss_stages.lib.data.artifacts import load_confusions, read_json, save_confusions, write_json

    results = tmp_path / "results/exp"
    if fmt == "cams":
        path, stage, load = _cam_folder(tmp_path) / "a.npz", "make_cams", load_cams
        path.with_name("manifest.json").unlink()  # no size record: the decoding fails
    elif fmt == "scores":
        path, stage, load = results / "refine_crf/cams/scores/a.npz", "refine_crf", load_scores
        save_scores(path, np.full((2, 30, 30), 0.5), [0, 4])
    elif fmt == "mask":
        path, stage, load = results / "make_pseudo_masks/crf/masks/a.png", "make_pseudo_masks", load_mask
        path.parent.mkdir(parents=True)
        save_mask(path, np.random.default_rng(0).integers(0, 21, (60, 60)))
    elif fmt == "confusions":
        path, stage, load = results / "eval_cams/per_image.npz", "eval_cams", load_confusions
        save_confusions(path, ["a", "b"], np.ones((2, 21, 21)))
    else:
        folder = results / "eval_cams"
        path, stage = (
            (folder / "best.json", "eval_cams")
            if fmt == "json"
            else (_cam_folder(tmp_path) / "manifest.json", "make_cams")
        )
        if fmt == "json":
            write_json(path, {"threshold": 0.3, "miou": 40.0, "note": "x" * 200})
        load = read_json if fmt == "json" else (lambda p: read_manifest(p.parent))
    _damage(path, keep=60)
    with pytest.raises(WsssError) as exc_info:
        load(path)
    _assert_named(exc_info, path, stage)


def test_a_model_file_that_does_not_load_is_named(tmp_path):
    from wsss_stages.lib.nets.models import load_model

    path = tmp_path / "results/exp/train_classifier/model.pt"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(WsssError) as exc_info:
        load_model(path, ("classifier",))
    _assert_named(exc_info, path, "train_classifier")


def test_a_file_whose_size_differs_from_its_manifest_is_named_even_if_it_decodes(tmp_path):
    folder = _cam_folder(tmp_path)
    manifest = read_manifest(folder)
    assert manifest["sizes"] == {"a.npz": (folder / "a.npz").stat().st_size, "b.npz": (folder / "b.npz").stat().st_size}
    save_cams(folder / "a.npz", np.zeros((1, 8, 8)), [3])  # replaced behind the manifest's back
    with pytest.raises(WsssError) as exc_info:
        load_cams(folder / "a.npz")
    assert "its manifest recorded" in str(exc_info.value)
    _assert_named(exc_info, folder / "a.npz", "make_cams")
    _damage(folder / "b.npz")
    with pytest.raises(WsssError, match="100 bytes, its manifest recorded"):
        load_cams(folder / "b.npz")


def test_a_damaged_file_of_the_users_data_tree_says_so(tmp_path):
    path = tmp_path / "VOC2012/SegmentationClass/a.png"
    path.parent.mkdir(parents=True)
    save_mask(path, np.zeros((20, 20)))
    _damage(path, keep=30)
    with pytest.raises(WsssError, match="not an artifact of the pipeline: replace it in the data tree"):
        load_mask(path)


def test_a_damaged_artifact_read_in_a_worker_pool_stops_the_stage_with_its_name(tmp_path, capsys):
    from wsss_stages.cli import main
    from wsss_stages.stages.make_demo_data import make_demo_data

    folder = _cam_folder(tmp_path)
    make_demo_data(out_dir=tmp_path / "VOC2012", num_train=4, num_seed_eval=2, num_val=2, image_size=40, seed=0)
    ids = sorted((tmp_path / "VOC2012/ImageSets/Segmentation/train.txt").read_text().split())[:2]
    for old, new in zip(("a", "b"), ids):  # name the CAMs after two demo images
        (folder / f"{old}.npz").rename(folder / f"{new}.npz")
    write_manifest(folder, "cams", ids)
    _damage(folder / f"{ids[1]}.npz")
    code = main(
        [
            "refine_pamr",
            "--scores",
            str(folder),
            "--data-root",
            str(tmp_path / "VOC2012"),
            "--out-dir",
            str(tmp_path / "out"),
            "--iterations",
            "2",
            "--dilations",
            "1",
            "--stride",
            "4",
            "--threads",
            "2",
        ]
    )
    last = capsys.readouterr().err.strip().splitlines()[-1]  # the CLI's one-line error, no worker traceback
    assert (
        code == 1
        and last.startswith(f"wsss refine_pamr: error: {folder / ids[1]}.npz is damaged")
        and "--forcerun make_cams" in last
    )
    assert not (tmp_path / "out").exists()  # nothing half-written under the final name
