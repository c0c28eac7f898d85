"""ACR: each defining piece on tiny inputs, its two-network stage end to end, resumed, and in the DAG."""

import os
import signal

import pytest
import torch

from wsss_stages.methods.acr.acr import (
    ACRPair,
    ACRUpdate,
    OptimizerPair,
    Reconstructor,
    UNetGenerator,
    choose_targets,
    clip_to_image_range,
    minmax_cams,
    segments,
    srf_cells,
    srf_probability,
    strongest_is_target,
)


@pytest.fixture
def tiny_tree(tmp_path):
    from conftest import write_voc_tree

    return write_voc_tree(tmp_path / "VOC2012", {"train": [f"i{n}" for n in range(8)]}, size=(32, 48))


SIZES = {"feature_dim": 8, "reduce": [4, 4], "width": 4, "levels": 3, "scale": 1.0}


def _pair(seed=0):
    from wsss_stages.lib.nets.models import CamClassifier, TinyBackbone
    from wsss_stages.lib.nets.training import make_optimizer

    torch.manual_seed(seed)
    c = CamClassifier(TinyBackbone(8), 3)
    r = Reconstructor(TinyBackbone(8), 3, SIZES["feature_dim"], SIZES["reduce"], SIZES["width"], SIZES["levels"])
    optimizers = OptimizerPair(
        make_optimizer(c, c.head_parameters(), 0.05, 10, 1e-4, 0.9),
        make_optimizer(r, r.head_parameters(), 0.05, 10, 1e-4, 0.9),
    )
    return ACRPair(c, r), optimizers


def _update(optimizers, strategy="adversarial", srf=True, total=4):
    weights = {"r_cls": 1, "r_full": 0.2, "r_target": 0.3, "r_other": 0.5, "c_target": 0.8, "c_other": 0.3}
    srf = {"enabled": srf, "grid": 4, "start": 0.2, "end": 0.6}
    return ACRUpdate(optimizers, strategy, weights, srf, (0.5,) * 3, (0.25,) * 3, total, seed=0)


def _batch():
    torch.manual_seed(1)
    x = torch.randn(2, 3, 32, 32)
    labels = torch.tensor([[1.0, 0, 1], [0, 1, 0]])
    return x, {"labels": labels}


def _state(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def _same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


def _no_autocast():
    return torch.autocast("cpu", enabled=False)


def test_each_update_leaves_the_frozen_network_bit_identical():
    pair, optimizers = _pair()
    update = _update(optimizers)
    x, targets = _batch()
    chosen = torch.tensor([0, 1])
    c_before, r_before = _state(pair.classifier), _state(pair.reconstructor)
    update.reconstructor_step(pair, x, targets["labels"], chosen, 0.5, torch.Generator().manual_seed(0), _no_autocast)
    assert _same(c_before, _state(pair.classifier)) and not _same(r_before, _state(pair.reconstructor))
    c_before, r_before = _state(pair.classifier), _state(pair.reconstructor)
    update.classifier_step(pair, x, targets["labels"], chosen, _no_autocast)
    assert _same(r_before, _state(pair.reconstructor)) and not _same(c_before, _state(pair.classifier))
    assert all(p.requires_grad for p in pair.reconstructor.generator.parameters())  # R trainable again after


def test_the_pretrained_strategy_trains_r_alone_then_c_alone():
    pair, optimizers = _pair()
    update = _update(optimizers, strategy="pretrained", total=4)
    assert [n for n, *_ in update.phases(0)] == ["reconstructor"] and [n for n, *_ in update.phases(3)] == [
        "classifier"
    ]
    assert update.phases(2) == (("classifier", 0, 2),)  # C's schedule starts afresh
    x, targets = _batch()
    c_before = _state(pair.classifier)
    update(pair, x, targets, 1, _no_autocast)
    assert _same(c_before, _state(pair.classifier))
    r_before = _state(pair.reconstructor)
    update(pair, x, targets, 2, _no_autocast)
    assert _same(r_before, _state(pair.reconstructor)) and not _same(c_before, _state(pair.classifier))
    assert set(update.terms[0]) >= {"r_cls", "r_target", "srf_p"} and set(update.terms[1]) == {
        "c_cls",
        "c_target",
        "c_other",
    }


@pytest.mark.parametrize("start,end", [(0.2, 0.6), (0.0, 1.0), (0.9, 1.0), (0.6, 0.2)])
def test_srf_probability_stays_within_0_and_1_over_the_whole_schedule(start, end):
    values = [srf_probability(p / 100, start, end) for p in range(-20, 250)]  # even past the planned end
    assert all(0.0 <= v <= 1.0 for v in values)
    assert values[20] == pytest.approx(start) and values[120] == pytest.approx(end) and values[-1] == values[120]
    cells = srf_cells(3, (32, 32), 4, values[120], torch.Generator().manual_seed(0))
    assert set(cells.unique().tolist()) <= {0.0, 1.0} and cells.shape == (3, 1, 32, 32)
    assert (cells[:, :, :8, :8] == cells[:, :, :1, :1]).all()  # constant within a cell
    assert srf_cells(2, (8, 8), 4, 0.0, torch.Generator()).sum() == 0
    assert srf_cells(2, (8, 8), 4, 1.0, torch.Generator()).min() == 1


def test_target_and_non_target_segments_partition_the_map():
    torch.manual_seed(0)
    labels = torch.tensor([[1.0, 0, 1], [0, 0, 0]])
    cams = minmax_cams(torch.randn(2, 3, 8, 8) * 3, labels)
    assert cams.min() >= 0 and cams.max() <= 1 and (cams[0, 1] == 0).all() and (cams[1] == 0).all()
    assert torch.allclose(cams[0, 0].max(), torch.tensor(1.0), atol=1e-4)
    targets = choose_targets(labels, torch.Generator().manual_seed(0))
    assert targets[0].item() in (0, 2) and targets[1].item() == -1
    target, other = segments(cams, targets)
    assert torch.equal(target + other, torch.ones_like(target))
    assert ((target >= 0) & (target <= 1)).all() and (target[1] == 0).all()
    assert torch.equal(target[0, 0], cams[0, targets[0]])


def test_choosing_targets_picks_only_labelled_classes():
    labels = torch.tensor([[0.0, 1, 0, 1], [1, 0, 0, 0]])
    seen = {choose_targets(labels, torch.Generator().manual_seed(s))[0].item() for s in range(40)}
    assert seen == {1, 3}


def test_the_target_region_counts_only_the_images_classes():
    cams = torch.zeros(1, 3, 1, 2)
    cams[0, 0] = torch.tensor([0.5, 0.2])
    cams[0, 1] = torch.tensor([0.9, 0.9])  # strongest everywhere, but absent from the image
    cams[0, 2] = torch.tensor([0.1, 0.4])
    labels = torch.tensor([[1.0, 0, 1]])
    assert strongest_is_target(cams, labels, torch.tensor([0])).flatten().tolist() == [1.0, 0.0]


def test_c_adversarial_terms_are_bounded_by_the_image_range():
    rebuilt = torch.tensor([-100.0, 0.0, 100.0]).view(1, 1, 1, 3).expand(1, 3, 1, 3)
    clipped = clip_to_image_range(rebuilt, (0.5,) * 3, (0.25,) * 3)
    assert clipped.min() == -2 and clipped.max() == 2 and clipped[0, 0, 0, 1] == 0


def test_the_unet_rebuilds_an_image_of_the_inputs_size():
    from wsss_stages.methods.acr.acr import unet_levels

    net = UNetGenerator(5, 3, width=4, levels=4)
    assert net(torch.randn(2, 5, 32, 48)).shape == (2, 3, 32, 48)
    assert (unet_levels(256, 8), unet_levels(128, 8), unet_levels(96, 8), unet_levels(256, 3)) == (8, 7, 5, 3)
    assert UNetGenerator(5, 3, width=4, levels=unet_levels(96, 8))(torch.randn(2, 5, 96, 96)).shape[-1] == 96


def _acr_args(**acr):
    from conftest import stage_args
    from test_seed_methods import tiny_config

    section = {"enabled": True, "reconstructor": SIZES, **acr}
    return stage_args("train_acr", tiny_config(acr=section, train_classifier={"training": {"epochs": 2}}))


def test_train_acr_writes_a_classifier_whose_cams_are_a_cam_source(tiny_tree, tmp_path):
    import json

    from conftest import stage_args
    from test_seed_methods import tiny_config

    from wsss_stages.lib.data.artifacts import load_cams
    from wsss_stages.lib.nets.models import CamClassifier, load_model
    from wsss_stages.methods.acr.train_acr import train_acr
    from wsss_stages.stages.make_cams import make_cams

    model = tmp_path / "acr" / "model.pt"
    train_acr(data_root=tiny_tree, classifier=None, out_model=model, out_info=model.with_suffix(".json"), **_acr_args())
    net, meta = load_model(model, ("classifier",))
    assert type(net) is CamClassifier and meta["method"] == "acr"
    info = json.loads(model.with_suffix(".json").read_text())
    assert len(info["loss_history"]) == 2 and set(info["loss_terms"]) >= {"c_target", "r_other", "srf_p"}
    assert all(v is not None and v == v for values in info["loss_terms"].values() for v in values)  # finite
    assert info["loss_terms"]["srf_p"][0] < info["loss_terms"]["srf_p"][1] <= 0.6
    args = stage_args("make_cams", tiny_config())
    make_cams(model=model, data_root=tiny_tree, out_dir=tmp_path / "cams", out_val_dir=tmp_path / "v", **args)
    cams, classes = load_cams(tmp_path / "cams" / "i0.npz")
    assert cams.shape == (len(classes), 32, 48)


def test_a_resumed_acr_run_equals_an_uninterrupted_one(tiny_tree, tmp_path, monkeypatch):
    from wsss_stages import WsssError
    from wsss_stages.methods.acr import acr
    from wsss_stages.methods.acr.train_acr import train_acr

    args = _acr_args()
    reference = tmp_path / "ref" / "model.pt"
    train_acr(data_root=tiny_tree, classifier=None, out_model=reference, out_info=tmp_path / "ref.json", **args)
    original, calls = acr.ACRUpdate.__call__, {"n": 0}

    def preempted_at_step_3(self, *a, **k):  # SLURM's signal arrives during the 3rd step (epoch 2, step 1)
        calls["n"] += 1
        if calls["n"] == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self, *a, **k)

    run = tmp_path / "run" / "model.pt"
    monkeypatch.setattr(acr.ACRUpdate, "__call__", preempted_at_step_3)
    with pytest.raises(WsssError, match="stopped by signal"):
        train_acr(data_root=tiny_tree, classifier=None, out_model=run, out_info=tmp_path / "run.json", **args)
    assert not run.exists()
    monkeypatch.setattr(acr.ACRUpdate, "__call__", original)
    train_acr(data_root=tiny_tree, classifier=None, out_model=run, out_info=tmp_path / "run.json", **args)
    a = torch.load(reference, weights_only=True)["state_dict"]
    b = torch.load(run, weights_only=True)["state_dict"]
    assert _same(a, b)


def test_pretrained_acr_starts_from_train_classifiers_model(tiny_tree, tmp_path):
    from test_seed_methods import train_tiny_classifier

    from wsss_stages import WsssError
    from wsss_stages.methods.acr.train_acr import train_acr

    puzzle = tmp_path / "puzzle" / "model.pt"
    train_tiny_classifier(tiny_tree, puzzle, method="puzzle")  # still a plain CamClassifier: accepted
    out = tmp_path / "acr" / "model.pt"
    args = _acr_args(strategy="pretrained", epochs=1)
    train_acr(data_root=tiny_tree, classifier=puzzle, out_model=out, out_info=out.with_suffix(".json"), **args)
    assert out.is_file()
    with pytest.raises(WsssError, match="needed by 'pretrained' only"):
        train_acr(data_root=tiny_tree, classifier=None, out_model=out, out_info=out.with_suffix(".json"), **args)


def test_acr_config_errors_name_their_keys():
    from wsss_stages import WsssError
    from wsss_stages.lib.plan.config import validate_config

    with pytest.raises(WsssError, match="train_classifier.method"):
        validate_config({"acr": {"enabled": True}, "train_classifier": {"method": "puzzle"}})
    with pytest.raises(WsssError, match="acr.reconstructor.scale"):
        validate_config({"acr": {"enabled": True, "reconstructor": {"scale": 0.3}}})
    with pytest.raises(WsssError, match="acr.enabled"):
        validate_config({"acr": {"enabled": True}, "adversarial_erasing": {"enabled": True}})
    with pytest.raises(WsssError, match="acr"):
        validate_config({"acr": {"enabled": True, "srf": {"end": 1.5}}})


def test_acrs_classifier_replaces_train_classifiers_for_every_later_stage(tmp_path):
    from test_pipeline import planned_jobs, snakemake

    acr = "acr={enabled: true, epochs: 1, reconstructor: {feature_dim: 8, reduce: [4, 4], width: 4, levels: 3}}"
    out = snakemake(tmp_path / "a", "-n", "--config", acr).stdout
    assert "train_acr" in planned_jobs(out) and "train_classifier" not in planned_jobs(out)
    assert (
        "--model results/tiny/train_acr/model.pt" in out
        and "--classifier-info results/tiny/train_acr/model.json" in out
    )
    pretrained = acr.replace("epochs: 1", "epochs: 1, strategy: pretrained")
    out = snakemake(tmp_path / "p", "-n", "--config", pretrained).stdout
    assert {"train_acr", "train_classifier"} <= planned_jobs(out)
    assert "--classifier results/tiny/train_classifier/model.pt" in out


@pytest.mark.integration
def test_the_dag_runs_on_acrs_classifier_to_the_end(tmp_path):
    import json

    from test_pipeline import snakemake

    work = tmp_path / "w"
    snakemake(
        work,
        "--config",
        "acr={enabled: true, epochs: 2, reconstructor: {feature_dim: 8, reduce: [4, 4], width: 4, levels: 3}}",
        "make_pseudo_masks={refinement: pamr, compare: [none]}",
        "train_segmentation={training: {epochs: 1}}",
    )
    results = work / "results" / "tiny"
    metrics = json.loads((results / "metrics.json").read_text())
    assert 0 < metrics["cam_miou"] <= 100 and 0 < metrics["segmentation_miou"] <= 100
    info = json.loads((results / "train_acr" / "model.json").read_text())
    assert info["strategy"] == "adversarial" and len(info["loss_terms"]["c_target"]) == 2
    assert not (results / "train_classifier").exists()
