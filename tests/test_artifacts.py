import numpy as np
import pytest
from PIL import Image

from wsss_stages import WsssError
from wsss_stages.lib.data.artifacts import (atomic_dir, atomic_path, cams_to_scores, load_cams, load_mask, load_scores, read_manifest,
                                   save_cams, save_mask, save_scores, write_manifest)  # fmt: skip


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
