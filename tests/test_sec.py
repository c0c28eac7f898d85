"""SEC: rank pooling's limits, the cues' rules, the three losses on hand-made inputs, and the refiner's
stages on a tiny VOC tree."""

import numpy as np
import pytest
import torch
from conftest import stage_args, write_voc_tree
from PIL import Image

from wsss_stages import WsssError
from wsss_stages.lib.data.artifacts import (
    IGNORE,
    load_mask,
    load_scores,
    read_json,
    read_manifest,
    save_cams,
    write_manifest,
)
from wsss_stages.refiners.sec.sec import (
    constrain_loss,
    expansion_loss,
    gwrp,
    localization_cues,
    rank_weights,
    sec_losses,
    sec_probabilities,
    seeding_loss,
)


def test_rank_pooling_goes_from_max_pooling_to_average_pooling():
    values = torch.rand(2, 3, 50, generator=torch.Generator().manual_seed(0))
    valid = torch.ones(2, 50)
    assert torch.allclose(gwrp(values, valid, 1e-9), values.max(-1).values, atol=1e-6)
    assert torch.allclose(gwrp(values, valid, 1.0), values.mean(-1), atol=1e-6)
    between = gwrp(values, valid, 0.996)
    assert ((between < values.max(-1).values) & (between > values.mean(-1))).all()


def test_rank_pooling_ignores_cells_outside_the_image():
    values = torch.tensor([[[0.2, 0.4, 0.9, 0.9]]])
    inside = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    assert torch.allclose(gwrp(values, inside, 1.0), torch.tensor([[0.3]]))


def test_rank_weights_fall_with_the_fraction_of_the_image_ranked():
    """On the reference's 41 × 41 grid the weights are d^r; on a coarser grid the same fraction of the
    image gets the same weight."""
    reference = rank_weights(41 * 41, 0.996)
    assert torch.allclose(reference[:3], torch.tensor([1.0, 0.996, 0.996**2]))
    fine, coarse = rank_weights(400, 0.996, reference_cells=400), rank_weights(100, 0.996, reference_cells=400)
    assert torch.isclose(coarse[25], fine[100], rtol=1e-5) and torch.isclose(
        fine[100], torch.tensor(0.996**100), rtol=1e-5
    )


def test_cues_follow_the_rules_for_fractions_and_overlaps():
    h, w = 10, 10
    big, small = np.zeros((h, w), np.float32), np.zeros((h, w), np.float32)
    big[2:8, 2:8] = 1.0
    small[4:6, 4:6] = 1.0
    small[0, 0] = 0.1  # below 0.2 of its maximum: no cue
    saliency = np.ones((h, w), np.float32)
    saliency[9, :] = 0.0  # the 10 least salient pixels: the bottom row
    cues = localization_cues(np.stack([big, small]), np.array([3, 7]), saliency)
    assert (cues[4:6, 4:6] == 7).all()  # the smaller region wins where both claim
    assert cues[2, 2] == 3 and cues[0, 0] == IGNORE
    assert (cues[9] == 0).all() and (cues == 0).sum() == 10


def test_a_pixel_that_is_foreground_and_background_cue_gets_none():
    cam = np.zeros((1, 4, 5), np.float32)
    cam[0, 3, :] = 1.0
    saliency = np.ones((4, 5), np.float32)
    saliency[3, :2] = 0.0  # the least salient 10 % (2 pixels) lie inside the class's cue
    cues = localization_cues(cam, np.array([1]), saliency)
    assert (cues[3, :2] == IGNORE).all() and (cues[3, 2:] == 1).all() and not (cues == 0).any()


def test_background_ties_are_broken_by_the_weaker_cam():
    cam = np.linspace(0.1, 0, 20, dtype=np.float32).reshape(1, 4, 5)  # weakest at the end
    cues = localization_cues(cam, np.array([1]), np.zeros((4, 5), np.float32), fg_fraction=2.0)  # no foreground cue
    assert (cues == 0).sum() == 2 and (cues.ravel()[-2:] == 0).all()


def test_seeding_loss_is_the_mean_negative_log_probability_on_the_cues():
    probs = torch.full((1, 3, 2, 2), 1 / 3)
    probs[0, :, 0, 0] = torch.tensor([0.8, 0.1, 0.1])
    cues = torch.tensor([[[0, IGNORE], [IGNORE, 2]]])
    loss = seeding_loss(probs.log(), cues, torch.ones(1, 2, 2, dtype=torch.bool))
    assert torch.isclose(loss, -(np.log(0.8) + np.log(1 / 3)) / 2 * torch.ones(()), atol=1e-6)


def test_expansion_loss_rewards_present_classes_and_punishes_absent_ones():
    labels = torch.tensor([[1.0, 0.0]])
    valid = torch.ones(1, 4, 4, dtype=torch.bool)
    good = torch.zeros(1, 3, 4, 4)
    good[0, 0, :2], good[0, 1, 2:] = (
        1.0,
        1.0,
    )  # background and the present class split the image; the absent class nowhere
    bad = torch.zeros(1, 3, 4, 4)
    bad[0, 0, :2], bad[0, 2, 2:] = 1.0, 1.0  # the absent class instead of the present one
    soft = lambda p: sec_probabilities((p * 10).log_softmax(1) * 1.0)  # noqa: E731
    assert expansion_loss(soft(good), labels, valid, 0.996, 0.999) < expansion_loss(
        soft(bad), labels, valid, 0.996, 0.999
    )


def test_constrain_loss_is_zero_when_the_prediction_equals_its_crf():
    probs = sec_probabilities(torch.randn(1, 3, 4, 4, generator=torch.Generator().manual_seed(0)))
    assert constrain_loss(probs, probs, torch.ones(1, 4, 4)) < 1e-6
    assert constrain_loss(probs, probs.flip(1), torch.ones(1, 4, 4)) > 0.01


def test_the_losses_train_a_network_towards_the_cues():
    """A 1×1 convolution on a two-colour image learns, from cues on a few pixels only, to label each
    half as its cue says; the CRF's target carries no gradient."""
    torch.manual_seed(0)
    x = torch.zeros(1, 3, 32, 32)
    x[:, :, :, 16:] = 1.0
    cues = torch.full((1, 32, 32), IGNORE, dtype=torch.long)
    cues[0, 4:12, 4:12], cues[0, 4:12, 20:28] = 0, 1
    net = torch.nn.Conv2d(3, 3, 1)
    optimiser = torch.optim.SGD(net.parameters(), lr=0.5)
    labels, inside = torch.tensor([[1.0, 0.0]]), torch.ones(1, 32, 32, dtype=torch.bool)
    for _ in range(60):
        terms = sec_losses(net(x), x, cues, inside, labels, mean=[0.0] * 3, std=[1.0] * 3)
        optimiser.zero_grad()
        sum(terms.values()).backward()
        optimiser.step()
    predicted = net(x).argmax(1)[0]
    assert (predicted[:, :16] == 0).float().mean() > 0.95 and (predicted[:, 16:] == 1).float().mean() > 0.95


def write_saliency(root, ids, size):
    (root / "SaliencyMaps").mkdir()
    for i in ids:
        saliency = np.full(size, 255, np.uint8)
        saliency[-1] = 0
        Image.fromarray(saliency).save(root / "SaliencyMaps" / f"{i}.png")


def test_the_sec_stages_on_a_tiny_tree(tmp_path):
    from wsss_stages.refiners.sec.make_sec_cues import make_sec_cues
    from wsss_stages.refiners.sec.predict_sec import predict_sec
    from wsss_stages.refiners.sec.train_sec import train_sec

    ids = ["a", "b", "c", "d"]
    root = write_voc_tree(tmp_path / "voc", {"train": ids[:3], "train_aug": ids[:3], "val": ["d"]}, size=(24, 32))
    write_saliency(root, ids, (24, 32))
    cams = tmp_path / "cams"
    cams.mkdir()
    for n, i in enumerate(ids):
        cam = np.zeros((1, 24, 32), np.float32)
        cam[0, 4:12, 4:12] = 1.0
        save_cams(cams / f"{i}.npz", cam, [8 if n % 2 == 0 else 12])  # cat, dog as write_voc_tree labels them
    write_manifest(cams, "cams", ids)
    cues = tmp_path / "cues"
    make_sec_cues(
        cams=cams, data_root=root, out_dir=cues, out_diagnostics=tmp_path / "cues.json", **stage_args("make_sec_cues")
    )
    cue = load_mask(cues / "a.png")
    assert (cue[4:12, 4:12] == 8).all() and (cue[-1] == 0).all() and read_manifest(cues)["kind"] == "cues"
    report = read_json(tmp_path / "cues.json")
    assert (
        report["foreground_precision"] == 100.0
        and report["background_precision"] == 100.0
        and report["images_scored"] == 3
    )

    training = {"epochs": 1, "batch_size": 2, "crop_size": 32, "scale_range": [1.0, 1.0], "lr": 0.01}
    args = stage_args("train_sec", {"train_sec": {"training": training}, "splits": {"segmentation": "train_aug"}})
    assert args["training"]["weight_decay"] == 0.0005  # SEC's defaults stay for the keys left out
    model = tmp_path / "sec.pt"
    train_sec(cues=cues, data_root=root, out_model=model, **args)
    out = tmp_path / "scores"
    predict_sec(
        model=model,
        cams=cams,
        data_root=root,
        out_dir=out,
        out_val_json=tmp_path / "val.json",
        out_val_csv=tmp_path / "val.csv",
        out_val_per_image=tmp_path / "val.npz",
        **stage_args("predict_sec"),
    )
    scores, classes = load_scores(out / "b.npz")
    assert (
        classes.tolist() == [0, 12]
        and scores.shape == (2, 24, 32)
        and np.allclose(scores.astype(np.float32).sum(0), 1, atol=1e-2)
    )
    assert read_manifest(out)["kind"] == "scores" and read_json(tmp_path / "val.json")["images"] == 1


def test_a_missing_saliency_map_is_named(tmp_path):
    from wsss_stages.refiners.sec.make_sec_cues import make_sec_cues

    root = write_voc_tree(tmp_path / "voc", {"train": ["a"]})
    (root / "SaliencyMaps").mkdir()
    cams = tmp_path / "cams"
    cams.mkdir()
    save_cams(cams / "a.npz", np.ones((1, 24, 32), np.float32), [8])
    write_manifest(cams, "cams", ["a"])
    with pytest.raises(WsssError, match="SaliencyMaps/a.png is missing"):
        make_sec_cues(
            cams=cams,
            data_root=root,
            out_dir=tmp_path / "cues",
            out_diagnostics=tmp_path / "c.json",
            **stage_args("make_sec_cues"),
        )
    assert not (tmp_path / "cues").exists()


def test_sec_chains_as_a_score_refiner():
    from wsss_stages.lib.plan.config import validate_config
    from wsss_stages.lib.plan.pipeline import chain_kind, closure

    cfg = validate_config({"make_pseudo_masks": {"refinement": "sec+crf", "compare": ["sec", "scg+sec"]}})
    assert chain_kind(cfg, "sec") == "scores" and chain_kind(cfg, "sec+crf") == "scores"
    nodes = set(closure(cfg, [("summarize_metrics", "")]))
    assert {("make_sec_cues", "cams"), ("train_sec", "cams"), ("predict_sec", "cams"), ("train_sec", "scg")} <= nodes
    assert ("tune_crf", "sec") not in nodes  # score maps carry their background
    with pytest.raises(WsssError, match="cannot refine scores"):
        validate_config({"make_pseudo_masks": {"refinement": "crf+sec"}})
