"""SCG on hand-made feature maps, and the refiner on a tiny tree."""

import numpy as np
import torch

from wsss_stages.refiners.scg.scg import correlation_of_level, high_order_correlation, scg_maps


def two_regions(h=6, w=8):
    """Features: the left half points one way, the right half another (orthogonal), with a little noise."""
    g = torch.Generator().manual_seed(0)
    features = torch.zeros(4, h, w)
    features[0, :, : w // 2] = 1.0
    features[1, :, w // 2 :] = 1.0
    return features + 0.05 * torch.rand(4, h, w, generator=g)


def test_correlations_are_column_stochastic_and_stay_within_a_region():
    sc = correlation_of_level(two_regions(), 0.5, 0.1)
    left = torch.zeros(6, 8, dtype=torch.bool)
    left[:, :4] = True
    left = left.flatten()
    assert sc[left][:, ~left].max() == 0 and sc[~left][:, left].max() == 0  # orthogonal regions never correlate
    assert (sc >= 0).all()


def test_scg_fills_the_region_of_the_confident_pixels_and_nothing_else():
    features = two_regions()
    hsc = high_order_correlation([features, features], (6, 8))
    cam = torch.zeros(1, 6, 8)
    cam[0, 2:4, 1:3] = 1.0  # a confident blob inside the left region; the right region is confident background
    out = scg_maps(hsc, cam)
    assert out.shape == (1, 6, 8) and out.max() == 1.0
    assert out[0, :, :4].min() > 0.5 and out[0, :, 4:].max() == 0.0


def test_a_class_without_confident_pixels_gets_an_empty_map():
    hsc = high_order_correlation([two_regions()], (6, 8))
    assert scg_maps(hsc, torch.full((1, 6, 8), 0.2)).abs().max() == 0


def test_the_refiner_writes_cam_format_maps(tmp_path):
    from conftest import write_voc_tree

    from wsss_stages.lib.data.artifacts import load_cams, read_manifest, save_cams, write_manifest
    from wsss_stages.lib.nets.models import CamClassifier, TinyBackbone, model_meta
    from wsss_stages.lib.nets.training import save_model
    from wsss_stages.refiners.scg.refine_scg import refine_scg

    root = write_voc_tree(tmp_path / "voc", {"train": ["a"]}, size=(32, 48))
    torch.manual_seed(0)
    net = CamClassifier(TinyBackbone(8), 20)
    save_model(
        tmp_path / "model.pt",
        net,
        model_meta(
            "classifier",
            "tiny",
            8,
            20,
            ["background"] + [f"c{i}" for i in range(20)],
            mean=list(net.backbone.mean),
            std=list(net.backbone.std),
        ),
    )
    cams = tmp_path / "cams"
    cams.mkdir()
    cam = np.zeros((1, 32, 48), np.float32)
    cam[0, 8:20, 8:24] = 1.0
    save_cams(cams / "a.npz", cam, [1])
    write_manifest(cams, "cams", ["a"])
    refine_scg(
        model=tmp_path / "model.pt",
        cams=cams,
        data_root=root,
        out_dir=tmp_path / "out",
        first_threshold=0.5,
        second_threshold=0.1,
        fg_threshold=0.3,
        bg_threshold_seeds=0.05,
        device="cpu",
    )
    maps, classes = load_cams(tmp_path / "out" / "a.npz")
    assert read_manifest(tmp_path / "out")["kind"] == "cams" and maps.shape == (1, 32, 48) and classes.tolist() == [1]
    assert 0 <= maps.min() and maps.max() <= 1
