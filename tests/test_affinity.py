import numpy as np
import pytest
import torch

from wsss_stages.lib.data.artifacts import cams_to_scores
from wsss_stages.lib.nets.models import TinyBackbone
from wsss_stages.refiners.random_walk.affinity import AffinityNet, affinity_loss, random_walk, transition_matrix
from wsss_stages.refiners.random_walk.affinity_labels import irn_labels
from wsss_stages.refiners.random_walk.pairs import pair_offsets, shifted_pair


def test_offsets_cover_each_neighbour_once():
    half = pair_offsets(5)
    full = pair_offsets(5, half=False)
    assert len(full) == 2 * len(half)
    assert set(full) == set(half) | {(-dy, -dx) for dy, dx in half}
    assert all(0 < dy * dy + dx * dx < 25 for dy, dx in full)


def test_shifted_pair_aligns_partners():
    t = torch.arange(20).view(4, 5)
    a, b = shifted_pair(t, 1, -2)
    assert torch.equal(b, t[1:, :3]) and torch.equal(a, t[:3, 2:])


def _two_region_embedding(h=12, w=16, cut=8):
    """Embedding constant within the left and right halves and far apart across them: zero affinity at the cut."""
    emb = torch.zeros(4, h, w)
    emb[:, :, cut:] = 50.0
    return emb


def test_transition_rows_sum_to_one():
    emb = torch.randn(8, 10, 13)
    trans = transition_matrix(emb, radius=3, beta=2.0)
    rows = torch.sparse.mm(trans, torch.ones(10 * 13, 1))
    torch.testing.assert_close(rows, torch.ones_like(rows))


def test_walk_spreads_a_seed_through_its_region_but_not_across_a_cut():
    emb = _two_region_embedding()
    seed = torch.zeros(1, 12, 16)
    seed[0, 5, 2] = 1.0
    walked = random_walk(seed, transition_matrix(emb, radius=3, beta=10), steps=256)[0]
    assert walked[:, 8:].abs().max() < 1e-6  # nothing leaks across the zero-affinity cut
    left = walked[:, :8]
    assert left.min() > 0.5 * left.mean()  # spread across the whole left region


def test_transition_memory_grows_linearly_with_pixels():
    nnz = {}
    for side in (32, 64, 128):
        trans = transition_matrix(torch.randn(4, side, side), radius=5)
        nnz[side] = trans.values().numel() / side**2
    # entries per pixel are bounded by the neighbourhood size, whatever the image size
    assert max(nnz.values()) <= 1 + len(pair_offsets(5, half=False))
    assert nnz[128] / nnz[32] < 1.15  # only border effects differ


def test_affinity_labels_put_255_where_fg_and_bg_thresholds_disagree():
    cams = np.array([[[0.9, 0.2, 0.01]]], np.float32)
    labels = irn_labels(cams, np.array([7]), conf_fg=0.3, conf_bg=0.05, image=None)
    assert labels.tolist() == [[7, 255, 0]]


def test_affinity_loss_rewards_matching_embeddings():
    labels = torch.zeros(1, 8, 8, dtype=torch.long)
    labels[:, :, 4:] = 1
    good = torch.zeros(1, 3, 8, 8)
    good[:, :, :, 4:] = 10.0
    bad = torch.zeros(1, 3, 8, 8)
    loss_good, counts = affinity_loss(good, labels, radius=3)
    loss_bad, _ = affinity_loss(bad, labels, radius=3)
    assert counts["bg"] > 0 and counts["fg"] > 0 and counts["neg"] > 0
    assert loss_good < 0.01 < loss_bad


def test_affinity_loss_ignores_unsure_pixels():
    labels = torch.full((1, 6, 6), 255, dtype=torch.long)
    loss, counts = affinity_loss(torch.randn(1, 3, 6, 6), labels, radius=3)
    assert counts == {"bg": 0, "fg": 0, "neg": 0} and float(loss) == 0.0


def test_frozen_affinitynet_trains_only_its_head():
    net = AffinityNet(TinyBackbone(8), stride=8, dim=16, freeze_backbone=True)
    out = net(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 16, 8, 8)
    trainable = {id(p) for p in net.parameters() if p.requires_grad}
    assert trainable == {id(p) for p in net.head_parameters()}


def test_walked_cams_are_cam_format_and_stay_in_their_region():
    from wsss_stages.refiners.random_walk.random_walk import walk_with_boundary

    boundary = torch.zeros(12, 16)
    boundary[:, 8] = 1.0  # a wall between the two halves (irn's walk at stride 4 of a 48x64 image)
    cams = torch.zeros(1, 48, 64)
    cams[0, 10:30, 5:20] = 1.0
    walked = walk_with_boundary(boundary, cams, (48, 64), beta=10, exp_times=4, radius=3)
    assert walked.shape == (1, 48, 64)
    assert float(walked.max()) == pytest.approx(1.0) and float(walked.min()) >= 0.0
    scores = cams_to_scores(walked.numpy(), 0.25)  # irn: background 0.25 prepended, then argmax
    assert scores[:, 20, 10].argmax() == 1 and scores[:, 20, 60].argmax() == 0


def test_radius_larger_than_the_map_uses_only_pairs_that_fit():
    emb = torch.randn(1, 4, 3, 5, requires_grad=True)
    labels = torch.zeros(1, 3, 5, dtype=torch.long)
    loss, counts = affinity_loss(emb, labels, radius=10)
    assert torch.isfinite(loss) and counts["bg"] > 0
    trans = transition_matrix(emb[0].detach(), radius=10, beta=10)
    rows = torch.sparse.mm(trans, torch.ones(15, 1))
    torch.testing.assert_close(rows, torch.ones_like(rows))


# ---------------------------------------------------------------------------- affinity labels
def _stripes():
    """Three 40-px stripes of distinct colours; one class whose CAM is strong (0.9), middling (0.2), faint (0.01)."""
    image = np.zeros((40, 120, 3), np.uint8)
    cams = np.zeros((1, 40, 120), np.float32)
    for k, (colour, value) in enumerate([((200, 30, 30), 0.9), ((30, 200, 30), 0.2), ((30, 30, 200), 0.01)]):
        image[:, 40 * k : 40 * k + 40] = colour
        cams[0, :, 40 * k : 40 * k + 40] = value
    return image, cams, np.array([7])


def test_psa_labels_take_foreground_from_the_low_power_and_background_from_the_high_one():
    from wsss_stages.refiners.crf.densecrf import CrfParams
    from wsss_stages.refiners.random_walk.affinity_labels import psa_labels

    image, cams, classes = _stripes()
    labels = psa_labels(cams, classes, 4, 32, image, CrfParams())
    # 0.9: foreground at both powers; 0.2: background at α 4 ((0.8)^4 = 0.41) but not at α 32 → unsure;
    # 0.01: background even at α 32 ((0.99)^32 = 0.72) → confident background
    assert (labels[:, 5:35] == 7).all() and (labels[:, 45:75] == 255).all() and (labels[:, 85:115] == 0).all()


def test_irn_labels_at_absolute_relative_and_quantile_thresholds():
    from wsss_stages.refiners.random_walk.make_affinity_labels import labels_for

    image, cams, classes = _stripes()
    base = {
        "crf": False,
        "conf_fg": 0.3,
        "conf_bg": 0.05,
        "relative_fg": 2.0,
        "relative_bg": 0.33,
        "quantile_fg": 0.8,
        "quantile_bg": 0.3,
    }
    absolute, used = labels_for(cams, classes, image, "irn", {**base, "thresholds": "absolute"}, None)
    assert (
        used == (0.3, 0.05)
        and (absolute[:, :40] == 7).all()
        and (absolute[:, 40:80] == 255).all()
        and (absolute[:, 80:] == 0).all()
    )
    relative, used = labels_for(cams, classes, image, "irn", {**base, "thresholds": "relative"}, 0.09)
    assert used == pytest.approx((0.18, 0.0297)) and (relative[:, 40:80] == 7).all()  # 0.2 > 2 x 0.09
    quantile, used = labels_for(cams, classes, image, "irn", {**base, "thresholds": "quantile"}, None)
    assert (
        used == pytest.approx((0.9, 0.01)) and (quantile[:, :40] == 255).all()
    )  # nothing exceeds its own top quantile


def test_label_counts_against_hand_made_ground_truth():
    from wsss_stages.refiners.random_walk.affinity_labels import label_counts, label_scores

    gt = np.array([[0, 0, 5, 5], [0, 0, 5, 255]], np.uint8)
    labels = np.array([[0, 5, 5, 255], [255, 0, 5, 5]], np.uint8)
    counts = label_counts(labels, gt, stride=1, radius=2)
    assert (
        counts["valid"] == 7 and counts["fg_labelled"] == 3 and counts["fg_right"] == 2
    )  # (0,1) is background in truth
    assert counts["bg_labelled"] == 2 and counts["bg_right"] == 2
    # pairs at distance 1: the confident ones are (0,0)-(0,1) labelled different (truly same) and (0,1)-(0,2),
    # (0,2)-(1,2), (1,1)-(1,2) ...; every count stays within its ground-truth total
    assert counts["pairs_same_right"] <= min(counts["pairs_same"], counts["pairs_gt_same"])
    assert counts["pairs_diff_right"] <= min(counts["pairs_diff"], counts["pairs_gt_diff"])
    scores = label_scores(counts)
    assert scores["fg_precision"] == pytest.approx(66.67) and scores["bg_precision"] == 100.0
    perfect = label_scores(label_counts(np.where(gt == 255, 0, gt).astype(np.uint8), gt, 1, 2))
    assert perfect["same_pair_precision"] == perfect["diff_pair_precision"] == 100.0
    assert perfect["same_pair_recall"] == perfect["diff_pair_recall"] == 100.0


def test_psa_walk_spreads_the_background_channel_which_competes_in_the_argmax():
    from wsss_stages.refiners.random_walk.random_walk import walk_with_background

    embedding = torch.zeros(4, 12, 24)
    embedding[:, :, 12:] = 3.0  # two regions split by a wall: affinity across it is exp(-3)^β ≈ 0
    cams = torch.zeros(1, 12, 24)
    cams[:, :, :12] = 0.9  # the object
    cams[:, 6, 18] = 0.95  # one spurious hot pixel in the background region
    scores = walk_with_background(embedding, cams, (12, 24), beta=8, exp_times=6, radius=3, bg_power=16)
    assert scores.shape == (2, 12, 24) and torch.allclose(scores.sum(0), torch.ones(12, 24), atol=1e-5)
    labels = scores.argmax(0)
    assert (labels[:, :11] == 1).all() and (labels[:, 13:] == 0).all()  # the hot pixel drowned in walked background
    # without walking the background, the spike would win: its CAM 0.95 beats (1 - 0.95)^16
    assert cams[0, 6, 18] > (1 - cams[0, 6, 18]) ** 16


def test_affinity_histograms_separate_regions_split_by_a_wall():
    from wsss_stages.lib.evaluation.stats import auc_from_histograms
    from wsss_stages.refiners.random_walk.affinity import pair_affinity_histograms

    embedding = torch.zeros(4, 8, 16)
    embedding[:, :, 8:] = 3.0
    truth = torch.zeros(8, 16, dtype=torch.uint8)
    truth[:, 8:] = 5
    truth[0, 0] = 255  # void pixels take part in no pair
    same, diff = pair_affinity_histograms(embedding, truth, radius=3)
    assert (
        same[-1] == same.sum() > 0 and diff.sum() > 0 and diff[-1] == 0
    )  # same-class pairs at affinity 1, across the wall exp(-3)
    assert auc_from_histograms(same.numpy(), diff.numpy()) == 1.0


def test_path_points_follow_irns_rule():
    from wsss_stages.refiners.random_walk.affinity import path_points

    assert path_points(0, 3) == [(0, 0), (0, 1), (0, 2), (0, 3)]
    assert sorted(path_points(1, 1)) == [(0, 0), (0, 1), (1, 0), (1, 1)]  # distance to the diagonal < 1 for all four
    assert (0, 0) in path_points(2, -3) and (2, -3) in path_points(2, -3) and (0, -3) not in path_points(2, -3)


def test_a_wall_in_the_boundary_map_cuts_every_pair_across_it():
    from wsss_stages.refiners.random_walk.affinity import boundary_affinity, transition_from
    from wsss_stages.refiners.random_walk.random_walk import walk_with_boundary

    boundary = torch.zeros(10, 20)
    boundary[:, 9] = 1.0  # a wall between the left and the right region
    affinity = boundary_affinity(boundary)
    aff = affinity(0, 3)  # horizontal pairs three apart: those crossing column 9 have affinity 0
    crossing = torch.tensor([[x < 9 < x + 3 or x == 9 or x + 3 == 9 for x in range(17)]] * 10)
    assert (aff[crossing] == 0).all() and (aff[~crossing] == 1).all()
    # so no mass crosses the wall, whatever the number of steps
    transition = transition_from(affinity, 10, 20, radius=4, beta=10)
    cams = torch.zeros(1, 10, 20)
    cams[:, :, :5] = 1.0
    walked = walk_with_boundary(boundary, cams, (10, 20), beta=10, exp_times=8, radius=4)
    assert walked[:, :, 10:].max() == 0 and walked[:, :, :9].min() > 0.5
    assert transition.to_dense()[: 10 * 20].shape == (200, 200)


@pytest.mark.parametrize("levels", ["all", "two"])
def test_boundary_network_gives_a_map_at_stride_4_and_trains_on_pair_labels(levels):
    from wsss_stages.refiners.random_walk.affinity import BoundaryNet, boundary_affinity, pair_loss

    torch.manual_seed(0)
    net = BoundaryNet(TinyBackbone(output_stride=8), levels)
    assert len(net.head_parameters()) == (
        14 if levels == "all" else 8
    )  # 4 or 2 levels × (conv, GN weight, GN bias) + out (weight, bias)
    assert not any(p.requires_grad for p in net.backbone.parameters())
    x = torch.randn(2, 3, 32, 32)
    logits = net(x)
    assert logits.shape == (2, 1, 8, 8) and net.boundary(x[:1]).shape == (8, 8)
    labels = torch.zeros(2, 8, 8, dtype=torch.long)
    labels[:, :, 4:] = 3
    opt = torch.optim.SGD(net.head_parameters(), lr=0.1)
    losses = []
    for _ in range(15):
        loss, counts = pair_loss(boundary_affinity(torch.sigmoid(net(x)[:, 0])), labels, radius=3)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert counts["neg"] > 0 and counts["bg"] > 0 and losses[-1] < losses[0]


def test_sparse_walk_equals_a_dense_reference_walk():
    torch.manual_seed(0)
    embedding = torch.randn(3, 5, 6)
    h, w, radius, beta = 5, 6, 3, 4.0
    coords = [(y, x) for y in range(h) for x in range(w)]
    dense = torch.zeros(h * w, h * w)
    for i, (y0, x0) in enumerate(coords):
        for j, (y1, x1) in enumerate(coords):
            if i == j:
                dense[i, j] = 1.0
            elif (y1 - y0) ** 2 + (x1 - x0) ** 2 < radius**2:
                dense[i, j] = torch.exp(-(embedding[:, y0, x0] - embedding[:, y1, x1]).abs().mean()) ** beta
    dense = dense / dense.sum(1, keepdim=True)
    scores = torch.rand(2, h, w)
    expected = scores.reshape(2, -1).T
    for _ in range(16):
        expected = dense @ expected
    walked = random_walk(scores, transition_matrix(embedding, radius=radius, beta=beta), 16)
    torch.testing.assert_close(walked, expected.T.reshape(2, h, w), rtol=1e-4, atol=1e-5)


def test_label_counts_on_a_map_smaller_than_the_radius():
    from wsss_stages.refiners.random_walk.affinity_labels import label_counts

    gt = np.zeros((16, 16), np.uint8)
    counts = label_counts(gt, gt, stride=8, radius=10)  # a 2 x 2 grid: only the offsets that fit
    assert counts["pairs_gt_same"] == counts["pairs_same_right"] > 0
