import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from wsss_stages.lib.nets.cams import normalise_cams
from wsss_stages.lib.nets.models import Backbone, CamClassifier, TinyBackbone
from wsss_stages.lib.nets.seed_methods import (
    average_precision,
    erase,
    gradcam_maps,
    hide_patches,
    merge_tiles,
    normalised_fill,
    puzzle_alpha,
    puzzle_losses,
    tile_image,
)


class PointwiseBackbone(Backbone):
    """A 1×1-convolution 'backbone': its features of a tile are exactly the tile of its features."""

    low_channels = high_channels = 6
    output_stride = 1

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 1)

    def forward(self, x):
        f = torch.relu(self.conv(x))
        return {"low": f, "high": f}


def test_tiling_and_merging_are_exact_inverses():
    feats = torch.randn(3, 5, 8, 12)
    torch.testing.assert_close(merge_tiles(tile_image(feats)), feats, rtol=0, atol=0)
    tiles = tile_image(feats)
    assert tiles.shape == (12, 5, 4, 6)
    torch.testing.assert_close(tiles[0], feats[0, :, :4, :6])  # tile (0, 0) of image 0
    torch.testing.assert_close(tiles[3 + 2], feats[2, :, :4, 6:])  # tile (0, 1) of image 2
    torch.testing.assert_close(merge_tiles(tile_image(feats, 4), 4), feats)
    with pytest.raises(ValueError, match="equal tiles"):
        tile_image(torch.zeros(1, 1, 5, 8))


def test_puzzle_losses_vanish_when_tiling_changes_nothing():
    torch.manual_seed(0)
    net = CamClassifier(PointwiseBackbone(), 4)
    labels = torch.tensor([[1.0, 0, 1, 0], [0, 1, 0, 0]])
    terms = puzzle_losses(net, torch.randn(2, 3, 8, 8), labels)
    assert terms["re"].item() == pytest.approx(0.0, abs=1e-7)
    assert terms["pcls"].item() == pytest.approx(terms["cls"].item(), rel=1e-6)


def test_puzzle_reconstruction_loss_sees_only_the_image_classes():
    torch.manual_seed(0)
    net = CamClassifier(TinyBackbone(output_stride=8), 3)
    x = torch.randn(1, 3, 32, 32)
    none = puzzle_losses(net, x, torch.zeros(1, 3))
    assert none["re"].item() == 0.0
    assert puzzle_losses(net, x, torch.ones(1, 3))["re"].item() > 0.0


def test_alpha_ramps_over_the_first_half_then_stays():
    assert puzzle_alpha(0.0, 4.0) == 0.0
    assert puzzle_alpha(0.25, 4.0) == pytest.approx(2.0)
    assert puzzle_alpha(0.5, 4.0) == pytest.approx(4.0)
    assert puzzle_alpha(0.9, 4.0) == pytest.approx(4.0)
    assert puzzle_alpha(0.1, 4.0, schedule=0.0) == 4.0 and puzzle_alpha(0.1, 4.0, schedule=0.2) == pytest.approx(2.0)


def test_puzzle_cam_level_reconstruction_is_scale_free():
    """At the authors' "cam" level L_re is the same for class maps scaled by any positive factor;
    at the raw "feature" level it grows with them (lite0's maps are ~5x larger than ResNet-50's)."""
    torch.manual_seed(0)
    net = CamClassifier(TinyBackbone(output_stride=8), 3).eval()
    x, labels = torch.randn(2, 3, 32, 32), torch.tensor([[1.0, 0, 1], [0, 1, 0]])
    with torch.no_grad():
        net.classifier.weight.mul_(1e4)  # an untrained net's maps are ~1e-4, where the ε of the normalisation dominates
    for reduction in ("masking", "selection", "none"):
        small = puzzle_losses(net, x, labels, level="cam", reduction=reduction)["re"]
        raw = puzzle_losses(net, x, labels, level="feature", reduction=reduction)["re"]
        with torch.no_grad():
            net.classifier.weight.mul_(7.0)
        assert puzzle_losses(net, x, labels, level="cam", reduction=reduction)["re"].item() == pytest.approx(
            small.item(), rel=1e-3
        )
        assert puzzle_losses(net, x, labels, level="feature", reduction=reduction)["re"].item() == pytest.approx(
            7 * raw.item(), rel=1e-4
        )
        with torch.no_grad():
            net.classifier.weight.div_(7.0)


def test_puzzle_selection_averages_each_image_over_its_own_classes():
    torch.manual_seed(0)
    net = CamClassifier(TinyBackbone(output_stride=8), 3).eval()
    x = torch.randn(1, 3, 32, 32)
    one = puzzle_losses(net, x, torch.tensor([[1.0, 0, 0]]), reduction="selection")["re"]
    masked = puzzle_losses(net, x, torch.tensor([[1.0, 0, 0]]), reduction="masking")["re"]
    assert one.item() == pytest.approx(3 * masked.item(), rel=1e-5)  # masking divides by all 3 classes


def test_hiding_touches_only_chosen_patches_and_uses_the_mean():
    x = torch.randn(3, 50, 70)
    fill = normalised_fill((120.0, 110.0, 100.0), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    hidden, mask = hide_patches(x, 16, 0.5, fill, np.random.default_rng(3))
    assert mask.any() and (~mask).any()
    torch.testing.assert_close(hidden[:, ~mask], x[:, ~mask], rtol=0, atol=0)
    torch.testing.assert_close(hidden[:, mask], fill.view(3, 1).expand(3, int(mask.sum())))
    # hidden regions are whole grid cells
    cells = mask[::16, ::16]
    torch.testing.assert_close(mask, cells.repeat_interleave(16, 0).repeat_interleave(16, 1)[:50, :70])
    # the fill is the mean colour, not zero, in the network's input space
    assert fill.flatten().tolist() == pytest.approx(
        [(120 / 255 - 0.5) / 0.25, (110 / 255 - 0.5) / 0.25, (100 / 255 - 0.5) / 0.25]
    )


def test_grid_size_zero_shows_the_image_whole_as_the_authors_do():
    from wsss_stages.lib.nets.seed_methods import HideAndSeek

    x = torch.randn(3, 64, 64)
    augment = lambda image, maps, epoch, index: (x.clone(), maps)  # noqa: E731
    fill = torch.full((3, 1, 1), 9.0)
    never = HideAndSeek(augment, [0], 1.0, fill)
    torch.testing.assert_close(never(None, {}, 0, 0)[0], x, rtol=0, atol=0)
    mixed = HideAndSeek(augment, [0, 16], 1.0, fill)
    whole = [bool((mixed(None, {}, 0, i)[0] == 9.0).any()) for i in range(40)]
    assert 0 < sum(whole) < 40  # some images hidden (p 1: entirely), the others shown whole


def test_hiding_probability_is_respected():
    _, mask = hide_patches(torch.zeros(3, 320, 320), 8, 0.5, torch.zeros(3, 1, 1), np.random.default_rng(0))
    assert 0.45 < float(mask.float().mean()) < 0.55


def test_erasing_replaces_exactly_the_mined_pixels_with_the_mean():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    mined = rng.random((20, 30)) < 0.3
    out = erase(image, mined, (100.2, 50.7, 0.4))
    assert (out[mined] == [100, 51, 0]).all()
    assert (out[~mined] == image[~mined]).all()
    assert (image != out).any() and out is not image


def test_gradcam_equals_cam_for_a_gap_linear_head():
    torch.manual_seed(0)
    net = CamClassifier(TinyBackbone(output_stride=8), 5).eval()
    net.classifier.weight.data *= 1000  # maps well above normalise_cams's floor after Grad-CAM's 1/(h·w)
    x = torch.randn(2, 3, 48, 64)
    with torch.no_grad():
        cam = torch.relu(net.class_maps(x))
    grad = gradcam_maps(net, x, range(5))
    h, w = cam.shape[-2:]
    torch.testing.assert_close(grad * h * w, cam, rtol=1e-4, atol=1e-5)  # α_k = w_ck / (h·w)
    active = grad.flatten(2).amax(2) > 1e-3
    assert active.sum() >= 3
    torch.testing.assert_close(normalise_cams(grad[active]), normalise_cams(cam[active]), rtol=1e-3, atol=1e-4)


def test_multiscale_gradcam_is_cam_with_scales_weighted_by_their_inverse_feature_size():
    """The premise of benchmarks/gradcam_scales.py: summed over scales, Grad-CAM = Σ_s CAM_s / n_s,
    and dividing each scale by its own maximum first makes the two methods equal."""
    import importlib.util
    from pathlib import Path

    from wsss_stages.lib.nets.cams import gradcam_function

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "gradcam_scales.py"
    spec = importlib.util.spec_from_file_location("gradcam_scales", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    torch.manual_seed(0)
    net = CamClassifier(TinyBackbone(output_stride=8), 4).eval()
    net.classifier.weight.data *= 1000
    x, scales = torch.randn(1, 3, 64, 64), [1.0, 0.5, 2.0]
    with torch.no_grad():
        cams = bench.per_scale_maps(net, x, scales, net.class_maps, None)[:, 0]
        grads = bench.per_scale_maps(net, x, scales, gradcam_function(net, "high"), None)[:, 0]
    sizes = bench.sizes_per_scale(net, x, scales)
    assert sizes == [64, 16, 256]
    active = cams.flatten(2).amax(2).amin(0) > 1e-2  # classes with a map at every scale
    assert active.sum() >= 2
    cams, grads = cams[:, active], grads[:, active]
    inverse = 1.0 / torch.tensor(sizes, dtype=torch.float32)
    torch.testing.assert_close(
        bench.combine(grads, None, False), bench.combine(cams, inverse, False), rtol=1e-3, atol=1e-4
    )
    torch.testing.assert_close(bench.combine(grads, None, True), bench.combine(cams, None, True), rtol=1e-3, atol=1e-4)
    assert not torch.allclose(bench.combine(grads, None, False), bench.combine(cams, None, False), atol=1e-2)


def test_gradcam_at_the_low_layer_has_its_resolution():
    net = CamClassifier(TinyBackbone(output_stride=8), 3).eval()
    maps = gradcam_maps(net, torch.randn(1, 3, 32, 32), [0, 2], layer="low")
    assert maps.shape[:2] == (1, 2) and maps.shape[-1] > 32 // 8 and (maps >= 0).all()


def test_average_precision():
    targets = np.array([[1, 0], [0, 1], [1, 0], [0, 0]])
    assert average_precision(np.array([[0.9, 0.1], [0.1, 0.8], [0.8, 0.2], [0.2, 0.3]]), targets) == pytest.approx(
        100.0
    )
    # class 0 ranked positive, negative, positive: AP = (1 + 2/3) / 2
    scores = np.array([[0.9, 0.0], [0.8, 0.9], [0.7, 0.0], [0.1, 0.0]])
    assert average_precision(scores, targets) == pytest.approx(100 * ((1 + 2 / 3) / 2 + 1.0) / 2)


# ---------------------------------------------------------------------------- the stages, end to end on a tiny tree
TINY = {
    "splits": {"classifier": "train", "seeds": "train", "segmentation": "train"},
    "make_cams": {"scales": [1.0]},
    "eval_cams": {"score_val": False},
    "train_classifier": {
        "backbone": {"name": "tiny", "weights": "none", "output_stride": 8},
        "training": {"epochs": 1, "batch_size": 4, "crop_size": 32, "scale_range": [1.0, 1.0], "lr": 0.01},
    },
}


def tiny_config(**sections) -> dict:
    from wsss_stages.lib.plan.experiments import deep_merge

    return deep_merge(TINY, sections)


@pytest.fixture
def tiny_tree(tmp_path):
    from conftest import write_voc_tree

    ids = [f"i{n}" for n in range(8)]
    return write_voc_tree(tmp_path / "VOC2012", {"train": ids}, size=(32, 48))


def train_tiny_classifier(tree, model, **method):
    from conftest import stage_args

    from wsss_stages.stages.train_classifier import train_classifier

    args = stage_args("train_classifier", tiny_config(train_classifier=method))
    train_classifier(data_root=tree, out_model=model, out_info=model.with_suffix(".json"), threads=1, **args)


def test_puzzle_training_and_gradcam_extraction(tiny_tree, tmp_path):
    from conftest import stage_args

    from wsss_stages.lib.data.artifacts import load_cams, read_json, read_manifest
    from wsss_stages.lib.nets.models import load_model
    from wsss_stages.stages.make_cams import make_cams

    model = tmp_path / "cls" / "model.pt"
    train_tiny_classifier(tiny_tree, model, method="puzzle", puzzle={"terms": ["cls", "re"]})
    record = read_json(model.with_suffix(".json"))
    assert record["method"] == "puzzle" and record["method_options"]["terms"] == ["cls", "re"]
    assert record["method_options"]["alpha"] == 4.0 and record["method_options"]["level"] == "feature"
    assert load_model(model, ("classifier",))[1]["method"] == "puzzle"
    out = tmp_path / "gradcam"
    args = stage_args("make_cams", tiny_config(make_cams={"scales": [1.0, 0.5], "cam_type": "gradcam"}))
    make_cams(model=model, data_root=tiny_tree, out_dir=out, out_val_dir=tmp_path / "val_cams", threads=1, **args)
    assert read_manifest(out, "cams")["cam_type"] == "gradcam"
    cams, classes = load_cams(out / "i0.npz")
    assert cams.shape == (len(classes), 32, 48) and 0 <= cams.min() and cams.max() <= 1


def test_hide_and_seek_trains_on_hidden_images(tiny_tree, tmp_path, caplog):
    from wsss_stages.lib.data.artifacts import read_json

    caplog.set_level("INFO")
    model = tmp_path / "has" / "model.pt"
    train_tiny_classifier(tiny_tree, model, method="hide_and_seek", hide_and_seek={"patch_sizes": [8, 16]})
    assert read_json(model.with_suffix(".json"))["method_options"] == {"patch_sizes": [8, 16], "prob": 0.5}
    assert "Hide-and-Seek: patches [8, 16] px" in caplog.text


def test_hide_and_seek_with_nothing_hidden_trains_exactly_the_cam_classifier(tiny_tree, tmp_path):
    """The wrapper itself changes nothing: a defect in it (labels, order, fill, randomness) would show here."""
    import torch

    cam, has = tmp_path / "cam" / "model.pt", tmp_path / "has" / "model.pt"
    train_tiny_classifier(tiny_tree, cam, method="cam")
    train_tiny_classifier(tiny_tree, has, method="hide_and_seek", hide_and_seek={"prob": 0.0})
    a, b = (torch.load(m, weights_only=True) for m in (cam, has))
    assert a["meta"]["loss_history"] == b["meta"]["loss_history"]
    for key, value in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][key], value, rtol=0, atol=0)


def test_hide_and_seek_default_shows_a_fifth_of_the_images_whole_as_the_authors_do():
    """Hiding every image (grid sizes 16/32/44/56 px, no 0) keeps lite0 at the label prior on VOC."""
    from conftest import stage_args

    from wsss_stages.lib.nets.seed_methods import HideAndSeek

    options = stage_args("train_classifier", tiny_config(train_classifier={"method": "hide_and_seek"}))[
        "method_options"
    ]
    assert options == {"patch_sizes": [0, 16, 32, 44, 56], "prob": 0.5}
    x = torch.randn(3, 64, 64)
    hide = HideAndSeek(
        lambda image, maps, epoch, index: (x.clone(), maps),
        options["patch_sizes"],
        options["prob"],
        torch.zeros(3, 1, 1),
    )
    whole = np.mean([torch.equal(hide(None, {}, 0, i)[0], x) for i in range(500)])
    assert 0.15 < whole < 0.25


def test_puzzle_alpha_enters_the_signature_only_with_the_reconstruction_loss():
    from conftest import stage_args

    def options(**puzzle):
        return stage_args("train_classifier", {"train_classifier": {"method": "puzzle", "puzzle": puzzle}})[
            "method_options"
        ]

    assert (
        options(terms=["cls", "pcls"], alpha=1.0)
        == options(terms=["cls", "pcls"], alpha=4.0, level="cam")
        == {"terms": ["cls", "pcls"]}
    )
    assert options(terms=["cls", "re"], alpha=1.0) != options(terms=["cls", "re"], alpha=4.0)


def test_puzzle_trains_on_the_options_its_stage_receives():
    """The stage gets method_options reduced by relevant(): L_cls + L_p-cls has no alpha to read."""
    from conftest import stage_args

    from wsss_stages.methods.puzzle.puzzle import PuzzleCam

    torch.manual_seed(0)
    net, x = CamClassifier(PointwiseBackbone(), 4), torch.randn(2, 3, 8, 8)
    labels = torch.tensor([[1.0, 0, 1, 0], [0, 1, 0, 0]])
    for terms in (["cls", "pcls"], ["cls", "re"], ["cls", "pcls", "re"]):
        options = stage_args(
            "train_classifier", {"train_classifier": {"method": "puzzle", "puzzle": {"terms": terms}}}
        )["method_options"]
        loss = PuzzleCam(options, None).loss(net, x, {"labels": labels}, progress=1.0)
        parts = puzzle_losses(net, x, labels)
        expected = sum((4.0 if name == "re" else 1.0) * parts[name] for name in terms)
        assert loss.item() == pytest.approx(expected.item(), rel=1e-6), terms


def test_puzzle_rejects_crops_that_do_not_tile():
    from wsss_stages import WsssError
    from wsss_stages.lib.plan.config import validate_config

    with pytest.raises(WsssError, match=r"train_classifier\.training\.crop_size"):
        validate_config(tiny_config(train_classifier={"method": "puzzle", "training": {"crop_size": 36}}))


def run_erasing(tree, tmp_path, floor=None, **erasing):
    from conftest import stage_args

    from wsss_stages.methods.aepsl.train_erasing import train_erasing

    model = tmp_path / "train_classifier" / "model.pt"
    train_tiny_classifier(tree, model)
    args = stage_args("train_erasing", tiny_config(adversarial_erasing={"enabled": True, **erasing}))
    if floor is not None:  # above any mAP (the config allows at most 100)
        args["map_floor"] = floor
    train_erasing(
        classifier=model,
        data_root=tree,
        out_dir=tmp_path / "train_erasing" / "cams",
        out_report=tmp_path / "train_erasing" / "steps.json",
        threads=1,
        **args,
    )
    return tmp_path / "train_erasing"


def test_adversarial_erasing_mines_more_each_step_and_fuses_seeds(tiny_tree, tmp_path):
    from wsss_stages.lib.data.artifacts import load_cams, load_mask, read_json

    folder = run_erasing(tiny_tree, tmp_path, steps=2, delta=0.5)
    report = read_json(folder / "steps.json")
    assert [s["step"] for s in report["steps"]] == [1, 2] and all(s["kept"] for s in report["steps"])
    assert report["steps"][1]["mined_fraction"] >= report["steps"][0]["mined_fraction"] > 0
    work = tmp_path / ".checkpoints" / "train_erasing"
    first, second = load_mask(work / "step1" / "mined" / "i0.png"), load_mask(work / "step2" / "mined" / "i0.png")
    assert ((first > 0) <= (second > 0)).all()  # mined sets only grow
    fused, _ = load_cams(folder / "cams" / "i0.npz")
    step1, _ = load_cams(work / "step1" / "cams" / "i0.npz")
    assert (fused >= step1).all()
    # thresholding the fused seeds at delta gives the union of mined regions
    assert ((fused.max(0) > 0.5) == (second > 0)).all()


def test_adversarial_erasing_stops_below_the_map_floor(tiny_tree, tmp_path):
    from wsss_stages.lib.data.artifacts import read_json

    folder = run_erasing(tiny_tree, tmp_path, floor=100.1, steps=3)
    steps = read_json(folder / "steps.json")["steps"]
    assert [s["kept"] for s in steps] == [True, False]  # step 2 fell below the floor; step 3 never ran


def test_gradcam_function_computes_only_the_requested_classes():
    from wsss_stages.lib.nets.cams import gradcam_function

    torch.manual_seed(0)
    net = CamClassifier(TinyBackbone(output_stride=8), 4).eval()
    x = torch.randn(1, 3, 32, 32)
    every = gradcam_function(net, "high")(x)
    some = gradcam_function(net, "high", [2, 0])(x)
    torch.testing.assert_close(some[:, [0, 2]], every[:, [0, 2]])
    assert not some[:, [1, 3]].any()


# ---------------------------------------------------------------------------- EPS
def test_eps_assigns_classes_by_their_overlap_with_the_saliency():
    from wsss_stages.methods.eps.eps import eps_loss

    maps = torch.zeros(1, 3, 4, 4)  # class 0 on the left, class 1 on the right, background channel last
    maps[0, 0, :, :2], maps[0, 1, :, 2:] = 12.0, 12.0
    saliency = torch.zeros(1, 4, 4, dtype=torch.uint8)
    saliency[0, :, :2] = 254  # only the left object is salient
    labels = torch.tensor([[1.0, 1.0]])
    total, terms = eps_loss(maps, labels, saliency, tau=0.4, lam=0.5)
    assert terms["foreground"].tolist() == [[True, False]]  # class 1 overlaps no salient pixel: background set
    assert terms["sal"].item() == pytest.approx(0.0, abs=1e-6)  # M̂ = 0.5 P_0 + 0.5 (1 - P_1 - P_bg) equals M_s
    _, naive = eps_loss(maps, labels, saliency, tau=0.4, lam=0.5, naive=True)
    assert naive["foreground"].tolist() == [[True, True]] and naive["sal"].item() == pytest.approx(0.5, abs=1e-3)
    padded = saliency.clone()
    padded[0, :, 3] = 255  # the crop's padding is ignored
    assert eps_loss(maps, labels, padded, 0.4, 0.5)[1]["sal"].item() == pytest.approx(0.0, abs=1e-6)


def test_eps_trains_with_saliency_and_its_cams_drop_the_background(tiny_tree, tmp_path):
    from conftest import stage_args

    from wsss_stages import WsssError
    from wsss_stages.lib.data.artifacts import load_cams
    from wsss_stages.lib.nets.models import load_model
    from wsss_stages.stages.make_cams import make_cams

    (tiny_tree / "SaliencyMaps").mkdir()
    for image in (tiny_tree / "JPEGImages").glob("*.jpg"):
        Image.fromarray(np.full((32, 48), 200, np.uint8), mode="L").save(
            tiny_tree / "SaliencyMaps" / f"{image.stem}.png"
        )
    model = tmp_path / "eps" / "model.pt"
    train_tiny_classifier(tiny_tree, model, method="eps")
    net, meta = load_model(model, ("classifier",))
    assert meta["background"] and net.classifier.out_channels == 21 and net(torch.zeros(1, 3, 32, 32)).shape == (1, 20)
    args = stage_args("make_cams", tiny_config(train_classifier={"method": "eps"}, make_cams={"cam_type": "eps"}))
    make_cams(
        model=model, data_root=tiny_tree, out_dir=tmp_path / "cams", out_val_dir=tmp_path / "val", threads=1, **args
    )
    cams, classes = load_cams(tmp_path / "cams" / "i0.npz")
    assert cams.shape == (len(classes), 32, 48) and cams.max() <= 1
    (tiny_tree / "SaliencyMaps" / "i3.png").unlink()
    with pytest.raises(WsssError, match="SaliencyMaps/i3.png is missing"):
        train_tiny_classifier(tiny_tree, tmp_path / "again" / "model.pt", method="eps")


def test_score_classifier_measures_how_the_classifier_ranks_each_class(tmp_path):
    """cat images white, dog images black; a head that scores 'cat' by brightness ranks every image
    right (mAP 100), the same head reversed ranks each class's images last."""
    from conftest import write_voc_tree
    from PIL import Image

    from wsss_stages.lib.data.artifacts import read_json
    from wsss_stages.lib.nets.models import CamClassifier, TinyBackbone, model_meta, to_tensor
    from wsss_stages.lib.nets.training import save_model
    from wsss_stages.stages.score_classifier import score_classifier

    labels = {"a": ["cat"], "b": ["cat"], "c": ["dog"], "d": ["dog"], "e": ["cat"], "f": ["dog"]}
    root = write_voc_tree(tmp_path / "voc", {"train": list("abcd"), "val": list("ef")}, labels=labels)
    for image_id, (name,) in labels.items():
        Image.fromarray(np.full((24, 32, 3), 255 if name == "cat" else 0, np.uint8)).save(
            root / "JPEGImages" / f"{image_id}.jpg"
        )
    torch.manual_seed(0)
    net = CamClassifier(TinyBackbone(8), 20).eval()
    with torch.no_grad():
        pooled = {
            v: net.backbone(to_tensor(np.full((24, 32, 3), v, np.uint8), net.backbone.mean, net.backbone.std)[None])[
                "high"
            ].mean((2, 3))[0]
            for v in (255, 0)
        }
        brighter = pooled[255] - pooled[0]
    cat, dog = 8 - 1, 12 - 1  # VOC indices 8 (cat) and 12 (dog), without the background
    meta = model_meta(
        "classifier",
        "tiny",
        8,
        20,
        ["background"] + [f"c{i}" for i in range(20)],
        mean=list(net.backbone.mean),
        std=list(net.backbone.std),
    )
    scores = {}
    for sign in (1.0, -1.0):
        with torch.no_grad():
            net.classifier.weight.zero_()
            net.classifier.weight[cat, :, 0, 0] = sign * brighter
            net.classifier.weight[dog, :, 0, 0] = -sign * brighter
        save_model(tmp_path / "model.pt", net, meta)
        score_classifier(
            model=tmp_path / "model.pt",
            data_root=root,
            out_json=tmp_path / "map.json",
            splits=["train", "val"],
            size=16,
            precision="fp32",
            device="cpu",
        )
        scores[sign] = read_json(tmp_path / "map.json")["splits"]
    assert scores[1.0]["train"] == {"map": pytest.approx(100.0), "images": 4} and scores[1.0]["val"][
        "map"
    ] == pytest.approx(100.0)
    # each class's two positives ranked 3rd and 4th of four: AP = (1/3 + 2/4) / 2
    assert scores[-1.0]["train"]["map"] == pytest.approx(100 * (1 / 3 + 2 / 4) / 2)
