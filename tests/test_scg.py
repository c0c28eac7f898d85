"""SCG on hand-made feature maps, and the refiner on a tiny tree."""

import numpy as np
import pytest
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
        variant="authors",
        first_threshold=0.5,
        second_threshold=0.1,
        fg_threshold=0.3,
        bg_threshold_seeds=0.05,
        device="cpu",
    )
    maps, classes = load_cams(tmp_path / "out" / "a.npz")
    assert read_manifest(tmp_path / "out")["kind"] == "cams" and maps.shape == (1, 32, 48) and classes.tolist() == [1]
    assert 0 <= maps.min() and maps.max() <= 1


def authors_scg(levels, cam, first_th=0.5, second_th=0.1, fg=0.3, bg=0.05):
    """The RecurSeed code's SCG written out step by step in numpy, for one image and one class: levels
    [D, h, w] already on one grid, cam [h, w]."""
    h, w = cam.shape
    n = h * w
    hsc = np.zeros((n, n))
    for features in levels:
        flat = features.reshape(features.shape[0], n).T.astype(np.float64)
        flat = flat / (np.linalg.norm(flat, axis=1, keepdims=True) + 1e-10)
        sc = np.maximum(flat @ flat.T, 0)
        sc[sc < first_th] = 0
        sc1 = sc / (sc.sum(0, keepdims=True) + 1e-10)  # columns sum to 1
        hollow = sc.copy()
        np.fill_diagonal(hollow, 0)
        hollow = hollow / (hollow.sum(0, keepdims=True) + 1e-10)
        sc2 = hollow @ hollow
        sc2 = sc2 / (sc2.sum(0, keepdims=True) + 1e-10)
        sc2[sc2 < second_th / n] = 0
        level = np.maximum(sc1, sc2)
        hsc += level / (level.sum(0, keepdims=True) + 1e-10)

    def towards(mask):
        if not mask.any():
            return np.zeros(n)
        columns = hsc[:, mask]
        columns = (columns - columns.min(0)) / (columns.max(0) - columns.min(0) + 1e-10)
        total = columns.sum(1)
        return (total - total.min()) / (total.max() - total.min() + 1e-10)

    flat_cam = cam.reshape(n)
    scm = np.maximum(towards(flat_cam >= fg) - towards(flat_cam <= bg), 0)
    return ((scm - scm.min()) / (scm.max() - scm.min() + 1e-10)).reshape(h, w)


def three_textures(h=5, w=6):
    """A hand-made image of three feature textures: left, middle band and right, correlated in part."""
    g = torch.Generator().manual_seed(3)
    features = torch.zeros(3, h, w)
    features[0, :, :2] = 1.0
    features[0, :, 2:4] = 0.6
    features[1, :, 2:4] = 0.8
    features[2, :, 4:] = 1.0
    features[1, :, 4:] = 0.3
    return features + 0.1 * torch.rand(3, h, w, generator=g)


def test_the_authors_variant_equals_the_authors_steps_on_a_hand_made_input():
    low, high = three_textures(), three_textures().flip(-1) + 0.05
    cam = torch.zeros(5, 6)
    cam[1:4, 0:2] = 0.9  # confident foreground on the left texture
    cam[:, 4:] = 0.02  # confident background on the right one
    hsc = high_order_correlation([low, high], (5, 6), 0.5, 0.1, variant="authors")
    ours = scg_maps(hsc, cam[None], 0.3, 0.05, variant="authors")[0].numpy()
    expected = authors_scg([low.numpy(), high.numpy()], cam.numpy())
    np.testing.assert_allclose(ours, expected, atol=1e-5)
    averaged = scg_maps(high_order_correlation([low, high], (5, 6)), cam[None])[0].numpy()
    assert np.abs(averaged - expected).max() > 0.01  # the two variants are different computations


def test_an_unknown_variant_is_refused():
    with pytest.raises(ValueError, match="not one of"):
        high_order_correlation([two_regions()], (6, 8), variant="mean")
