import numpy as np

from wsss_stages.refiners.crf.densecrf import CrfParams, crf_on_labels, crf_on_scores
from wsss_stages.stages.make_pseudo_masks import scores_to_mask


def _two_colour_image(h=40, w=40, edge=20):
    image = np.zeros((h, w, 3), np.uint8)
    image[:, :edge] = (200, 30, 30)
    image[:, edge:] = (30, 30, 200)
    return image


def test_crf_sharpens_a_noisy_mask_along_the_colour_edge():
    image = _two_colour_image()
    truth = np.zeros((40, 40), int)
    truth[:, :20] = 1
    rng = np.random.default_rng(0)
    fg = np.where(truth == 1, 0.65, 0.35) + rng.normal(0, 0.2, truth.shape)
    fg[:, 14:26] = 0.5 + rng.normal(0, 0.05, (40, 12))  # blurred band across the edge
    scores = np.stack([1 - np.clip(fg, 0.01, 0.99), np.clip(fg, 0.01, 0.99)])
    before = (scores.argmax(0) == truth).mean()
    probs = crf_on_scores(image, scores, CrfParams(bilateral_sxy=20))
    after = (probs.argmax(0) == truth).mean()
    np.testing.assert_allclose(probs.sum(0), 1.0, atol=1e-4)
    assert before < 0.85 and after > 0.98


def test_crf_on_labels_cleans_salt_noise():
    image = _two_colour_image()
    labels = np.zeros((40, 40), int)
    labels[:, :20] = 1
    noisy = labels.copy()
    noisy[np.random.default_rng(1).random(labels.shape) < 0.1] ^= 1
    assert (crf_on_labels(image, noisy, 2) == labels).mean() > 0.99


def test_scores_to_mask_argmax_without_band():
    scores = np.array([[[0.6, 0.2]], [[0.4, 0.8]]])
    assert scores_to_mask(scores, np.array([0, 9])).tolist() == [[0, 9]]


def test_ignore_band_between_bg_and_fg_thresholds():
    fg = np.array([[0.05, 0.2, 0.5, 0.9]])
    scores = np.stack([1 - fg, fg])
    mask = scores_to_mask(scores, np.array([0, 3]), ignore_band=(0.1, 0.6))
    assert mask.tolist() == [[0, 255, 255, 3]]


def test_ignore_band_picks_strongest_foreground_class():
    scores = np.array([[[0.1]], [[0.7]], [[0.2]]])
    assert scores_to_mask(scores, np.array([0, 2, 5]), ignore_band=(0.3, 0.6)).tolist() == [[2]]
