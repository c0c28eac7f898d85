import numpy as np
import pytest
import torch

from wsss_stages.lib.affinity import (AffinityNet, affinity_loss, pair_offsets, random_walk, shifted_pair, transition_matrix)  # fmt: skip
from wsss_stages.lib.artifacts import cams_to_scores
from wsss_stages.make_affinity_labels import affinity_labels
from wsss_stages.lib.models import TinyBackbone
from wsss_stages.random_walk import walk_cams


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
    labels = affinity_labels(cams, np.array([7]), conf_fg=0.3, conf_bg=0.05, image=None)
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
    emb = _two_region_embedding()
    cams = torch.zeros(1, 48, 64)
    cams[0, 10:30, 5:20] = 1.0
    walked = walk_cams(emb, cams, (48, 64), beta=10, exp_times=4, radius=3)
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
