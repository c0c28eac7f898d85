import numpy as np
import pytest

from wsss_stages.lib.evaluation.metrics import confusion_matrix, scores_from_confusion


def test_confusion_matrix_ignores_void_and_counts_by_hand():
    gt = np.array([[0, 0, 1], [1, 255, 2]])
    pred = np.array([[0, 1, 1], [2, 2, 2]])
    conf = confusion_matrix(gt, pred, 3)
    expected = np.array([[1, 1, 0], [0, 1, 1], [0, 0, 1]])
    np.testing.assert_array_equal(conf, expected)


def test_miou_matches_hand_computation():
    conf = np.array([[1, 1, 0], [0, 1, 1], [0, 0, 1]])
    scores = scores_from_confusion(conf, ["bg", "a", "b"])
    # IoU: bg 1/(1+1) ; a 1/(1+1+1) ; b 1/(1+1)
    assert scores["miou"] == pytest.approx((0.5 + 1 / 3 + 0.5) / 3 * 100)
    assert scores["per_class_iou"]["a"] == pytest.approx(33.333, abs=1e-3)
    assert scores["precision"] == pytest.approx((1 + 0.5 + 0.5) / 3 * 100)
    assert scores["recall"] == pytest.approx((0.5 + 0.5 + 1) / 3 * 100)
    assert scores["pixel_accuracy"] == pytest.approx(3 / 5 * 100)


def test_absent_class_is_left_out_of_the_mean():
    gt = np.array([[0, 1]])
    conf = confusion_matrix(gt, gt, 3)
    scores = scores_from_confusion(conf, ["bg", "a", "b"])
    assert scores["miou"] == pytest.approx(100.0)
    assert scores["per_class_iou"]["b"] is None


def test_ignore_prediction_counts_as_background():
    gt = np.array([[1, 0]])
    pred = np.array([[255, 255]])
    conf = confusion_matrix(gt, pred, 2)
    np.testing.assert_array_equal(conf, [[1, 0], [1, 0]])


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError):
        confusion_matrix(np.zeros((2, 2)), np.zeros((2, 3)), 2)


def test_a_sweep_whose_best_lies_at_its_edge_says_so(tmp_path, caplog):
    from wsss_stages.lib.evaluation.sweeps import write_sweep

    perfect, poor = np.array([[50, 0], [0, 50]]), np.array([[50, 0], [40, 10]])
    paths = {k: tmp_path / f"{k}.x" for k in ("out_csv", "out_best", "out_per_class", "out_plot")}
    inside = write_sweep(
        np.stack([poor, perfect, poor]), [0.1, 0.2, 0.3], ["background", "cat"], "train", 1, title="t", **paths
    )
    assert inside["best_threshold"] == 0.2 and not inside["at_edge_of_sweep"] and "edge" not in caplog.text
    edge = write_sweep(
        np.stack([poor, poor, perfect]), [0.1, 0.2, 0.3], ["background", "cat"], "train", 1, title="t", **paths
    )
    assert edge["best_threshold"] == 0.3 and edge["at_edge_of_sweep"] and "at the edge of the sweep" in caplog.text
