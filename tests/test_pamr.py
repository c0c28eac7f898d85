"""PAMR: its defining properties on hand-made images, and the refiner on a tiny VOC tree."""

import numpy as np
import torch
from conftest import write_voc_tree

from wsss_stages.lib.data.artifacts import load_cams, load_scores, read_manifest, save_cams, save_scores, write_manifest
from wsss_stages.refiners.pamr.pamr import pamr, pamr_affinity


def two_halves(h=24, w=32):
    image = torch.zeros(3, h, w)
    image[:, :, w // 2 :] = 1.0  # black | white: a strong colour edge down the middle
    image += 0.01 * torch.rand(3, h, w, generator=torch.Generator().manual_seed(0))  # some texture on each side
    return image


def test_the_affinities_of_each_pixel_sum_to_one():
    kappa = pamr_affinity(two_halves(), (1, 2))
    assert kappa.shape == (16, 24, 32) and torch.allclose(kappa.sum(0), torch.ones(24, 32), atol=1e-5)


def test_a_constant_mask_stays_constant():
    maps = torch.full((2, 24, 32), 0.37)
    assert torch.allclose(pamr(two_halves(), maps), maps, atol=1e-6)


def test_mass_does_not_cross_a_strong_colour_edge():
    image = two_halves()
    mask = torch.zeros(1, 24, 32)
    mask[:, :, 6:10] = 1.0  # a blob on the black side, near the edge
    refined = pamr(image, mask, iterations=10)
    assert refined[:, :, 16:].max() < 1e-3  # nothing reaches the white side
    assert refined[:, :, :4].min() > 0.05 and refined.max() <= 1.0 + 1e-6  # it spreads over its own side


def test_the_refiner_keeps_cams_as_cams_and_scores_as_scores(tmp_path):
    from wsss_stages.refiners.pamr.refine_pamr import refine_pamr

    root = write_voc_tree(tmp_path / "voc", {"train": ["a", "b"]}, size=(24, 32))
    cams, scores = tmp_path / "cams", tmp_path / "scores"
    cams.mkdir(), scores.mkdir()
    for i in ("a", "b"):
        save_cams(cams / f"{i}.npz", np.full((1, 24, 32), 0.5, np.float32), [1])
        save_scores(scores / f"{i}.npz", np.full((2, 24, 32), 0.5, np.float32), [0, 1])
    write_manifest(cams, "cams", ["a", "b"])
    write_manifest(scores, "scores", ["a", "b"])
    for source, kind, load in ((cams, "cams", load_cams), (scores, "scores", load_scores)):
        out = tmp_path / f"out_{kind}"
        refine_pamr(scores=source, data_root=root, out_dir=out, iterations=3, dilations=[1, 2], stride=2)
        assert read_manifest(out)["kind"] == kind and read_manifest(out)["ids"] == ["a", "b"]
        maps, _ = load(out / "a.npz")
        assert maps.shape[1:] == (24, 32) and np.allclose(maps, 0.5, atol=2e-3)  # constant in, constant out


def test_pamr_chains_with_the_other_refiners():
    from wsss_stages.lib.plan.config import validate_config
    from wsss_stages.lib.plan.pipeline import chain_kind, chain_threshold

    cfg = validate_config({"make_pseudo_masks": {"refinement": "pamr+crf", "compare": ["pamr", "crf+pamr", "rw+pamr"]}})
    assert chain_kind(cfg, "pamr") == "cams" and chain_kind(cfg, "crf+pamr") == "scores"
    assert chain_threshold(cfg, "pamr").key == "refine_pamr.bg_threshold" and chain_threshold(cfg, "crf+pamr") is None
