import numpy as np
import torch

from wsss_stages.lib.data.voc import VOCDataset
from wsss_stages.lib.evaluation.thresholds import strongest as cam_labels
from wsss_stages.lib.nets.cams import class_maps_multiscale, normalise_cams, plain_loop_cams
from wsss_stages.lib.nets.models import CamClassifier, TinyBackbone
from wsss_stages.stages.eval_cams import sweep_confusions


def test_normalise_divides_each_map_by_its_max():
    cams = torch.tensor([[[0.0, 2.0], [1.0, 4.0]], [[0.0, 0.0], [0.0, 0.0]]])
    out = normalise_cams(cams)
    assert torch.allclose(out[0], torch.tensor([[0.0, 0.5], [0.25, 1.0]]))
    assert torch.equal(out[1], torch.zeros(2, 2))  # an all-zero map stays zero


def _tiny_classifier(num_classes=3):
    torch.manual_seed(0)
    return CamClassifier(TinyBackbone(8), num_classes).eval()


def test_multiscale_merge_shapes_and_flip_symmetry():
    net = _tiny_classifier()
    images = torch.randn(2, 3, 37, 53)
    with torch.no_grad():
        maps = class_maps_multiscale(net, images, [1.0, 0.5, 1.5, 2.0], flip=True)
        assert maps.shape == (2, 3, 37, 53)
        assert (maps >= 0).all()
        # flip-averaged maps of a mirrored image are the mirror of the maps
        mirrored = class_maps_multiscale(net, images.flip(-1), [1.0, 0.5], flip=True)
        direct = class_maps_multiscale(net, images, [1.0, 0.5], flip=True)
        torch.testing.assert_close(mirrored, direct.flip(-1), rtol=1e-3, atol=1e-3)


def test_batched_extraction_equals_reference_style_loop():
    net = _tiny_classifier()
    image = (np.random.default_rng(1).random((40, 56, 3)) * 255).astype(np.uint8)
    classes = np.array([1, 3])
    mean, std = net.backbone.mean, net.backbone.std
    from wsss_stages.lib.nets.models import to_tensor

    with torch.no_grad():
        batched = class_maps_multiscale(net, to_tensor(image, mean, std)[None], [1.0, 0.5, 1.5], True)[0]
        batched = normalise_cams(batched[torch.as_tensor(classes - 1)]).numpy()
    loop = plain_loop_cams(net, image, classes, mean, std, [1.0, 0.5, 1.5], True, torch.device("cpu"))
    np.testing.assert_allclose(batched, loop, rtol=1e-4, atol=1e-5)


def test_cam_labels_pick_strongest_class():
    cams = np.array([[[0.9, 0.1]], [[0.2, 0.3]]])
    label, value = cam_labels(cams, np.array([4, 7]))
    assert label.tolist() == [[4, 7]] and value.tolist() == [[0.9, 0.3]]


def test_threshold_sweep_confusions(voc_tree):
    from wsss_stages.lib.data.artifacts import save_cams

    ds = VOCDataset(voc_tree)
    cams_dir = voc_tree.parent / "cams"
    gt = ds.load_mask("a")
    cam = np.where(gt > 0, 0.8, 0.3)[None].astype(np.float32)  # object 0.8, background 0.3
    save_cams(cams_dir / "a.npz", cam, ds.labels("a"))
    conf = sweep_confusions(ds, cams_dir, ["a"], [0.2, 0.5, 0.9])
    n_obj = int((gt > 0).sum())
    n_bg = int((gt == 0).sum())
    cls = int(ds.labels("a")[0])
    assert conf[0][0, cls] == n_bg  # threshold 0.2: everything is the object
    assert conf[1][0, 0] == n_bg and conf[1][cls, cls] == n_obj  # 0.5 separates perfectly
    assert conf[2][cls, 0] == n_obj  # 0.9: everything is background


def test_bf16_extraction_stays_close_to_fp32_in_channels_last():
    from wsss_stages.lib.nets.models import to_tensor
    from wsss_stages.lib.nets.runtime import autocast, for_inference

    net = for_inference(_tiny_classifier(), torch.device("cpu"))
    image = (np.random.default_rng(2).random((40, 56, 3)) * 255).astype(np.uint8)
    x = to_tensor(image, net.backbone.mean, net.backbone.std)[None]
    with torch.inference_mode():
        fp32 = normalise_cams(class_maps_multiscale(net, x, [1.0, 0.5], True)[0])
        with autocast(torch.device("cpu"), torch.bfloat16):
            bf16 = normalise_cams(class_maps_multiscale(net, x, [1.0, 0.5], True)[0])
    assert bf16.dtype == torch.float32  # summed and normalised in fp32
    assert float((bf16 - fp32).abs().max()) < 0.05


def test_inference_precision_choices():
    import pytest

    from wsss_stages import WsssError
    from wsss_stages.lib.nets.runtime import inference_dtype

    cpu = torch.device("cpu")
    assert inference_dtype("fp32", cpu) is None
    assert inference_dtype("bf16", cpu) is torch.bfloat16
    assert inference_dtype("auto", cpu) in (None, torch.bfloat16)
    with pytest.raises(WsssError, match="precision"):
        inference_dtype("fp8", cpu)
