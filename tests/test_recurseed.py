"""RecurSeed with EdgePredictMix: each defining piece on tiny hand-made inputs, and the method end to end."""

import numpy as np
import pytest
import torch

from wsss_stages.methods.recurseed.recurseed import (
    classmix_masks,
    confidence_split,
    cutmix_masks,
    edge_predict,
    mix_batch,
    partners,
)


def test_cf_splits_into_class_background_and_ignore():
    scores = torch.tensor(
        [[[0.9, 0.1, 0.3]], [[0.2, 0.05, 0.35]]]  # classes 1 and 2 over three pixels
    )[None]
    assert confidence_split(scores, delta_fg=0.4, delta_bg=0.2).tolist() == [[[1, 0, 255]]]
    # at exactly δ_fg a pixel is not yet foreground, at exactly δ_bg not yet background
    assert confidence_split(torch.tensor([[[[0.4, 0.2]]]]), 0.4, 0.2).tolist() == [[[255, 255]]]


def test_ep_of_a_map_with_one_edge_gives_two_superpixels_and_their_dominant_classes():
    probs = np.zeros((3, 20, 20), np.float32)  # background, cat, dog
    probs[:, :, :10] = np.array([0.2, 0.7, 0.1])[:, None, None]  # left: cat
    probs[:, :, 10:] = np.array([0.6, 0.1, 0.3])[:, None, None]  # right: background
    probs[1, 5, 3] = 0.75  # texture too faint for an edge
    refined, pieces = edge_predict(probs)
    off_edge = pieces > 0
    assert len(np.unique(pieces[off_edge])) == 2 and (~off_edge).any()  # the edge runs between them
    left, right = np.unique(pieces[:, :5]), np.unique(pieces[:, 15:])
    assert len(left) == 1 and len(right) == 1 and left[0] != right[0]
    assert (refined.argmax(0)[:, :5] == 1).all() and (refined.argmax(0)[:, 15:] == 0).all()
    inside = pieces == left[0]
    assert np.allclose(refined[1][inside], probs[1][inside].mean()) and (refined[[0, 2]][:, inside] == 0).all()


def test_ep_targets_never_show_a_class_the_image_is_not_labelled_with():
    from wsss_stages.methods.recurseed.recurseed import ep_targets, labelled_probs

    probs = torch.zeros(1, 4, 16, 16)
    probs[:, 0], probs[:, 3] = 0.1, 0.9  # the decoder is sure of class 3 everywhere; the image is labelled 1
    probs[:, 1, :, :8] = 0.8
    kept = labelled_probs(probs, torch.tensor([[1.0, 0, 0]]))
    assert torch.allclose(kept.sum(1), torch.ones(1, 16, 16)) and (kept[:, 2:] == 0).all()
    masks, labels = ep_targets(kept, torch.full((1, 3, 16, 16), 0.5), {"stride": 1, "iterations": 2}, 0.4, (50, 100))
    assert set(labels.unique().tolist()) <= {0, 1, 255} and masks[0, :, :6].all() and not masks[0, :, 10:].any()


def test_the_mix_keeps_image_mseg_and_mrs_aligned_pixel_for_pixel():
    rng = np.random.default_rng(0)
    b, h, w = 4, 8, 10
    source = torch.arange(b, dtype=torch.float32)
    x = source[:, None, None, None] + 0.01 * torch.rand(b, 3, h, w)  # each image's pixels carry its index
    seg = torch.arange(b)[:, None, None].expand(b, h, w).clone()
    rs = 10 + source[:, None, None, None].expand(b, 5, h, w).clone()
    masks = torch.from_numpy(rng.random((b, h, w)) < 0.5)
    partner = partners(b, rng)
    assert (partner != torch.arange(b)).all()
    x_mix, seg_mix, rs_mix = mix_batch(x, seg, rs, masks, partner)
    from_image = x_mix.floor()
    assert (from_image == seg_mix[:, None].float()).all() and (rs_mix - 10 == seg_mix[:, None].float()).all()
    expected = torch.where(masks, torch.arange(b)[:, None, None], partner[:, None, None])
    assert (seg_mix == expected).all()


def test_cutmix_and_classmix_masks():
    rng = np.random.default_rng(1)
    boxes = cutmix_masks(16, (20, 30), rng)
    assert boxes.shape == (16, 20, 30) and 0 < boxes.float().mean() < 1
    for box in boxes:  # each a rectangle
        rows, cols = box.any(1).nonzero().flatten(), box.any(0).nonzero().flatten()
        if len(rows):
            assert box[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].all()
    seg = torch.tensor([[[0, 1, 1, 255, 3, 3]]]).expand(2, 1, 6).clone()
    chosen = classmix_masks(seg, rng)
    for mask in chosen:  # one of the two classes, whole, never background or ignore
        picked = set(seg[0][mask].tolist())
        assert picked in ({1}, {3}) and mask.sum() == 2


def recurseed_options(**changes):
    from wsss_stages.lib.plan.config import validate_config

    options = validate_config({"train_classifier": {"method": "recurseed"}})["train_classifier"]["recurseed"]
    return {**options, **changes}


class Context:
    mean, std, seed = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), 0


@pytest.mark.parametrize("mix", ["epm", "cutmix", "classmix"])
def test_a_warmup_of_k_steps_mixes_nothing_before_step_k(mix, monkeypatch):
    from wsss_stages.lib.nets.models import build_backbone
    from wsss_stages.methods.recurseed.recurseed import RecurSeed

    total, k = 8, 3
    method = RecurSeed(recurseed_options(mix=mix, warmup=k / total), Context())
    net = method.build(build_backbone("tiny", "none", 8), 3)
    mixed = []
    real = method.mixed_loss

    def recorded(*args):
        mixed.append(step)
        return real(*args)

    monkeypatch.setattr(method, "mixed_loss", recorded)
    x, labels = torch.randn(2, 3, 32, 32), torch.tensor([[1.0, 0, 0], [0, 1, 1]])
    for step in range(total):
        loss = method.loss(net, x, {"labels": labels}, step / total)
        assert torch.isfinite(loss)
    assert mixed == list(range(k, total))


def test_recurseed_trains_its_cam_head_and_decoder_and_its_cams_are_a_cam_source(tmp_path):
    from conftest import stage_args, write_voc_tree
    from test_seed_methods import tiny_config

    from wsss_stages.lib.data.artifacts import load_cams
    from wsss_stages.lib.nets.models import RecurSeedNet, load_model
    from wsss_stages.stages.make_cams import make_cams
    from wsss_stages.stages.train_classifier import train_classifier

    tree = write_voc_tree(tmp_path / "VOC2012", {"train": [f"i{n}" for n in range(8)]}, size=(32, 48))
    model = tmp_path / "cls" / "model.pt"
    section = {"method": "recurseed", "recurseed": {"warmup": 0.0, "decoder_width": 16}}
    args = stage_args("train_classifier", tiny_config(train_classifier=section))
    train_classifier(data_root=tree, out_model=model, out_info=model.with_suffix(".json"), threads=1, **args)
    net, meta = load_model(model, ("classifier",))
    assert isinstance(net, RecurSeedNet) and meta["method"] == "recurseed" and meta["decoder_width"] == 16
    maps, logits, _ = net.eval().maps_and_logits(torch.zeros(1, 3, 32, 48))
    assert maps.shape[1] == meta["num_classes"] and logits.shape == (1, meta["num_classes"] + 1, 32, 48)
    args = stage_args("make_cams", tiny_config())
    make_cams(model=model, data_root=tree, out_dir=tmp_path / "cams", out_val_dir=tmp_path / "v", threads=1, **args)
    cams, classes = load_cams(tmp_path / "cams" / "i0.npz")
    assert cams.shape == (len(classes), 32, 48) and 0 <= cams.min() and cams.max() <= 1


def test_delta_bg_above_delta_fg_is_a_config_error():
    from wsss_stages import WsssError
    from wsss_stages.lib.plan.config import validate_config

    with pytest.raises(WsssError, match="train_classifier.recurseed.delta_bg"):
        validate_config({"train_classifier": {"method": "recurseed", "recurseed": {"delta_fg": 0.2, "delta_bg": 0.3}}})


@pytest.mark.integration
def test_the_dag_reads_recurseeds_cams_its_decoder_masks_and_scores_its_decoder_on_val(tmp_path):
    import json

    from test_pipeline import snakemake

    from wsss_stages.lib.data.artifacts import load_scores

    work = tmp_path / "w"
    snakemake(
        work,
        "--config",
        "train_classifier={method: recurseed, recurseed: {decoder_width: 16}, training: {epochs: 2}}",
        "make_pseudo_masks={refinement: decoder, compare: [none]}",
        "train_segmentation={training: {epochs: 1}}",
    )
    results = work / "results" / "tiny"
    metrics = json.loads((results / "metrics.json").read_text())
    assert metrics["refinement"] == "decoder" and set(metrics["pseudo_mask_miou_by_refinement"]) == {"decoder", "none"}
    assert metrics["decoder_net_split"] == "val" and 0 < metrics["decoder_net_miou"] <= 100
    scores, classes = load_scores(results / "predict_decoder" / "cams" / "scores" / "demo_train_00000.npz")
    assert classes[0] == 0 and scores.shape[0] == len(classes) and abs(scores.sum(0) - 1).max() < 1e-2
    assert "the classifier's decoder" in (results / "metrics.md").read_text()


def test_the_decoder_refinement_needs_a_recurseed_classifier():
    from wsss_stages import WsssError
    from wsss_stages.lib.plan.config import validate_config

    with pytest.raises(WsssError, match="only RecurSeed trains"):
        validate_config({"make_pseudo_masks": {"refinement": "decoder"}})


def test_the_monitor_scores_mseg_against_the_masks_per_epoch(tmp_path):
    import json

    from conftest import stage_args, write_voc_tree
    from test_seed_methods import tiny_config

    from wsss_stages.stages.train_classifier import train_classifier

    tree = write_voc_tree(tmp_path / "VOC2012", {"train": [f"i{n}" for n in range(8)]}, size=(32, 48))
    (tree / "SegmentationClass" / "i3.png").unlink()  # an image without a mask takes part, unscored
    model = tmp_path / "cls" / "model.pt"
    section = {"method": "recurseed", "recurseed": {"decoder_width": 16, "monitor": True}, "training": {"epochs": 2}}
    args = stage_args("train_classifier", tiny_config(train_classifier=section))
    train_classifier(data_root=tree, out_model=model, out_info=model.with_suffix(".json"), threads=1, **args)
    info = json.loads(model.with_suffix(".json").read_text())
    assert len(info["mseg_precision"]) == 2 and len(info["mseg_coverage"]) == 2
    assert all(0 <= v <= 100 for v in info["mseg_precision"] + info["mseg_coverage"])
