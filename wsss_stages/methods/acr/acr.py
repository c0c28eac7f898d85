"""ACR (Kweon, Yoon & Yoon, CVPR 2023): a classifier C and an inpainting reconstructor R trained against
each other, so that C's CAMs cut the image where one segment says nothing about the other.

Per image and step one labelled class t is the target; ``s_t`` is C's min-max normalised CAM of t at the
crop's size and ``s_n = 1 - s_t`` (:func:`segments`). R encodes the image with its own backbone (the
deepest features projected to ``feature_dim`` channels, two mid-level ones reduced, all at the crop's
size) and decodes features masked by a segment back to the image with a U-Net (:class:`UNetGenerator`).

- **R's update** (C frozen): BCE of R's own class head + ``r_full`` · L1 of the unmasked
  reconstruction + ``r_target`` · L1 on the target region from features with the target hidden +
  ``r_other`` · the same for the non-target region. With stochastic random feeding (SRF) a segment is
  hidden only in the cells of a grid that are drawn hidden (:func:`srf_cells`), so R always sees
  remnants of what it must rebuild and learns to use them.
- **C's update** (R frozen): BCE − ``c_target`` · L1 of the image rebuilt from the target segment alone,
  on the pixels outside it − ``c_other`` · L1 of the image rebuilt from the non-target segment, on the
  target's pixels: C is rewarded when R cannot infer one segment from the other.

Where we differ from the authors' code (sangrockEG/ACR), on purpose:

- SRF's hiding probability grows linearly over the schedule from ``srf_start`` to ``srf_end`` and is
  clamped to [0, 1]; theirs grows by 1 % per epoch and their trainer runs 100 epochs of a 40-epoch
  plan, so it passes 100 % (and SRF stops hiding at random).
- C's negative L1 terms are bounded: the reconstruction is clipped to the value range of a normalised
  image before they are measured, so each lies in [0, range] and C cannot win by pushing R's output
  anywhere; theirs are unbounded.
- The target region of C's second term is where t is the strongest of the image's *labelled* classes;
  theirs takes the argmax over all 20 classes, absent ones included.
- Nothing is selected on ground truth: the final weights are used, and thresholds are tuned by the
  pipeline like any classifier's; theirs pick the checkpoint and threshold on train masks every epoch.
- The reconstructor's width, feature size, depth and resolution are config keys (``acr.reconstructor``):
  the authors' sizes (full resolution) are the schema defaults; the CPU preset uses narrower ones and
  rebuilds the crop at half resolution (the decoder costs ~4× less; the CAMs and the image are resized to it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from wsss_stages.lib.nets.models import Backbone, CamClassifier, freeze_batchnorm
from wsss_stages.lib.nets.training import poly_lr

STRATEGIES = ("adversarial", "pretrained")


# ============================================================================ networks
class _Down(nn.Module):
    def __init__(self, cin: int, cout: int, normalize: bool = True, dropout: float = 0.0):
        super().__init__()
        layers = [nn.Conv2d(cin, cout, 4, 2, 1, bias=False)]
        if normalize:
            layers.append(nn.InstanceNorm2d(cout))
        layers.append(nn.LeakyReLU(0.2))
        if dropout:
            layers.append(nn.Dropout(dropout))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class _Up(nn.Module):
    def __init__(self, cin: int, cout: int, dropout: float = 0.0):
        super().__init__()
        layers = [nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.InstanceNorm2d(cout), nn.ReLU(inplace=True)]
        if dropout:
            layers.append(nn.Dropout(dropout))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.body(x), skip], dim=1)


class UNetGenerator(nn.Module):
    """The pix2pix U-Net R decodes with: ``levels`` stride-2 convolutions (widths ``width`` · 1, 2, 4, 8, 8 …,
    InstanceNorm, LeakyReLU; dropout 0.5 in the deeper half) and as many transposed ones with skips,
    then an upsampling 3×3 convolution to ``cout`` channels. Inputs need sides divisible by 2**levels."""

    def __init__(self, cin: int, cout: int = 3, width: int = 64, levels: int = 8):
        super().__init__()
        widths = [width * min(2**i, 8) for i in range(levels)]
        deep = levels // 2  # the authors' 8 levels: dropout on the 4 deepest downs and the 4 first ups
        self.downs = nn.ModuleList(
            _Down(a, b, normalize=0 < i < levels - 1, dropout=0.5 if i >= levels - deep else 0.0)
            for i, (a, b) in enumerate(zip([cin, *widths[:-1]], widths))
        )
        self.ups = nn.ModuleList(
            _Up(
                widths[-1] if i == 0 else 2 * widths[levels - 1 - i],
                widths[levels - 2 - i],
                dropout=0.5 if i < deep else 0,
            )
            for i in range(levels - 1)
        )
        self.final = nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(2 * widths[0], cout, 3, padding=1))
        self.levels = levels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for down in self.downs:
            x = down(x)
            skips.append(x)
        x = skips.pop()
        for up in self.ups:
            x = up(x, skips.pop())
        return self.final(x)


class Reconstructor(nn.Module):
    """R: its own backbone with a class head (GAP, BCE) and a feature map for inpainting: the deepest
    features projected to ``feature_dim`` channels and the two levels before them reduced to
    ``reduce`` channels, at the finest of their resolutions; :meth:`reconstruct` decodes them."""

    def __init__(
        self, backbone: Backbone, num_classes: int, feature_dim: int, reduce: list[int], width: int, levels: int
    ):
        super().__init__()
        if len(backbone.level_channels) < 3:
            raise ValueError("the reconstructor needs a backbone with at least three levels")
        self.backbone = backbone
        self.classifier = nn.Conv2d(backbone.high_channels, num_classes, 1, bias=False)
        self.project = nn.Conv2d(backbone.high_channels, feature_dim, 1, bias=False)
        mid = backbone.level_channels[-3:-1]
        self.reduce = nn.ModuleList(nn.Conv2d(c, r, 1, bias=False) for c, r in zip(mid, reduce))
        self.generator = UNetGenerator(feature_dim + sum(reduce), 3, width, levels)
        nn.init.xavier_uniform_(self.classifier.weight)

    def encode(self, x: torch.Tensor, size: tuple[int, int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(class logits ``[B, C]``, features ``[B, D, H, W]`` at ``size``, default the input's)."""
        feats = self.backbone(x)
        levels = feats["levels"]
        logits = self.classifier(feats["high"]).mean(dim=(2, 3))
        parts = [r(level) for r, level in zip(self.reduce, levels[-3:-1])] + [self.project(feats["high"])]
        finest = max((p.shape[-2:] for p in parts), key=lambda s: s[0] * s[1])
        joined = torch.cat([F.interpolate(p, size=finest, mode="bilinear", align_corners=False) for p in parts], 1)
        return logits, F.interpolate(joined, size=size or x.shape[-2:], mode="bilinear", align_corners=False)

    def reconstruct(self, features: torch.Tensor) -> torch.Tensor:
        return self.generator(features)

    def head_parameters(self) -> list[nn.Parameter]:
        return [p for m in (self.classifier, self.project, self.reduce, self.generator) for p in m.parameters()]


def unet_levels(side: int, most: int) -> int:
    """The U-Net's depth for a rebuilt crop of ``side`` px: ``most``, or fewer when ``side`` has fewer
    factors of 2 (each level halves it exactly; the innermost reaches at least 1 px)."""
    levels = 0
    while levels < most and side % 2 ** (levels + 1) == 0:
        levels += 1
    return levels


class ACRPair(nn.Module):
    """C and R in one module, so that one checkpoint holds both."""

    def __init__(self, classifier: CamClassifier, reconstructor: Reconstructor):
        super().__init__()
        self.classifier, self.reconstructor = classifier, reconstructor


# ============================================================================ the pieces of a step
def minmax_cams(maps: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """ReLU'd maps ``[B, C, h, w]`` min-max normalised per class to [0, 1], zero for unlabelled classes."""
    maps = F.relu(maps.float())
    flat = maps.flatten(2)
    low, high = flat.min(-1).values[:, :, None, None], flat.max(-1).values[:, :, None, None]
    return F.relu(maps - low - 1e-5) / (high - low + 1e-5) * labels[:, :, None, None]


def choose_targets(labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One labelled class per image, uniformly (``-1`` for an image without a class)."""
    weights = labels.float().cpu() + 1e-12 * (labels.sum(1, keepdim=True) == 0).cpu()
    chosen = torch.multinomial(weights, 1, generator=generator).flatten()
    return torch.where(labels.sum(1).cpu() > 0, chosen, torch.full_like(chosen, -1)).to(labels.device)


def segments(cams: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(s_t, s_n)`` ``[B, 1, H, W]``: the target class's map and its complement (all non-target for ``-1``)."""
    rows = torch.arange(len(targets), device=cams.device)
    target = cams[rows, targets.clamp_min(0)][:, None] * (targets >= 0).float()[:, None, None, None]
    return target, 1 - target


def srf_probability(progress: float, start: float, end: float) -> float:
    """SRF's hiding probability at ``progress`` ∈ [0, 1] of the reconstructor's schedule, within [0, 1]."""
    progress = min(max(progress, 0.0), 1.0)
    return min(max(start + (end - start) * progress, 0.0), 1.0)


def srf_cells(batch: int, size: tuple[int, int], cells: int, probability: float, generator: torch.Generator):
    """``[B, 1, H, W]``: 1 where a grid cell is drawn hidden (each with ``probability``), 0 elsewhere."""
    drawn = (torch.rand(batch, 1, cells, cells, generator=generator) < probability).float()
    return F.interpolate(drawn, size=size, mode="nearest")


def strongest_is_target(cams: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``[B, 1, H, W]``: 1 where the target is the strongest of the image's labelled classes."""
    masked = cams.masked_fill(labels[:, :, None, None] == 0, -1.0)
    return (masked.argmax(1, keepdim=True) == targets[:, None, None, None]).float()


def masked_l1(rebuilt: torch.Tensor, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The authors' masked L1: the mean over every pixel of |rebuilt − image| · mask."""
    return F.l1_loss(rebuilt * mask, image * mask)


def clip_to_image_range(rebuilt: torch.Tensor, mean, std) -> torch.Tensor:
    """The reconstruction clipped to the values a normalised image can take (bounds C's negative terms)."""
    mean = torch.tensor(mean, device=rebuilt.device).view(1, 3, 1, 1)
    std = torch.tensor(std, device=rebuilt.device).view(1, 3, 1, 1)
    return torch.clamp(rebuilt, -mean / std, (1 - mean) / std)


# ============================================================================ the update
class OptimizerPair:
    """C's and R's optimisers, saved and restored as one (the training loop's checkpoint)."""

    def __init__(self, classifier: torch.optim.Optimizer, reconstructor: torch.optim.Optimizer):
        self.classifier, self.reconstructor = classifier, reconstructor

    def state_dict(self) -> dict:
        return {"classifier": self.classifier.state_dict(), "reconstructor": self.reconstructor.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.classifier.load_state_dict(state["classifier"])
        self.reconstructor.load_state_dict(state["reconstructor"])


@dataclass
class ACRUpdate:
    """One training step of ACR: R's update, then C's (``adversarial``); or, ``pretrained``, R's update
    alone for the first half of the schedule and C's alone for the second (C starts trained, as
    train_classifier trains it). Each network has its own poly schedule over its own steps."""

    optimizers: OptimizerPair
    strategy: str
    weights: dict
    srf: dict  # enabled, grid, start, end
    mean: tuple
    std: tuple
    total_steps: int
    scale: float = 1.0  # the reconstruction's resolution relative to the crop
    seed: int = 0
    freeze_bn: bool = True
    terms: list = field(default_factory=list)  # per step: every loss term (for the record)

    def phases(self, step: int) -> tuple[tuple[str, int, int], ...]:
        """(network, its step, its number of steps) to update at this global step."""
        if self.strategy == "adversarial":
            return (("reconstructor", step, self.total_steps), ("classifier", step, self.total_steps))
        half = self.total_steps // 2
        return (
            (("reconstructor", step, half),) if step < half else (("classifier", step - half, self.total_steps - half),)
        )

    def __call__(self, model: ACRPair, x: torch.Tensor, targets: dict, step: int, precision) -> torch.Tensor:
        labels = targets["labels"].float()
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + step)  # the same draws after a resume
        chosen = choose_targets(labels, generator)
        record, total = {}, torch.zeros((), device=x.device)
        for network, own_step, own_total in self.phases(step):
            poly_lr(getattr(self.optimizers, network), own_step, own_total)
            if network == "reconstructor":
                hidden_p = srf_probability(own_step / own_total, self.srf["start"], self.srf["end"])
                loss, terms = self.reconstructor_step(model, x, labels, chosen, hidden_p, generator, precision)
            else:
                loss, terms = self.classifier_step(model, x, labels, chosen, precision)
            record.update(terms)
            total = total + loss
        self.terms.append(record)
        return total

    def _at_scale(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """The image R rebuilds (the crop, area-downsampled by ``scale``) and its size."""
        size = (round(x.shape[-2] * self.scale), round(x.shape[-1] * self.scale))
        target = x if self.scale == 1 else F.interpolate(x.float(), size=size, mode="area")
        return target.float(), size

    def _train(self, module: nn.Module) -> None:
        module.train()
        if self.freeze_bn:
            freeze_batchnorm(module.backbone)

    def reconstructor_step(self, model, x, labels, chosen, hidden_p, generator, precision):
        c, r = model.classifier, model.reconstructor
        c.eval()
        self._train(r)
        x32, size = self._at_scale(x)
        with torch.no_grad(), precision():
            cams = minmax_cams(c.class_maps(x)[:, : c.num_classes], labels)
        cams = F.interpolate(cams.float(), size=size, mode="bilinear", align_corners=False)
        target, other = segments(cams, chosen)
        if self.srf["enabled"]:
            hidden = srf_cells(len(x), size, self.srf["grid"], hidden_p, generator).to(x.device)
        else:
            hidden = torch.ones_like(target)
        hide_t, hide_n = target * hidden, other * hidden  # what R must rebuild
        valid = (1 - hide_t).flatten(1).sum(1) > 50 * self.scale**2  # the authors': enough left to rebuild from
        w = self.weights
        with precision():
            logits, feats = r.encode(x, size)
            full = r.reconstruct(feats.detach())
            from_rest_t = r.reconstruct(feats * (1 - hide_t))
            from_rest_n = r.reconstruct(feats * (1 - hide_n))
        cls = F.multilabel_soft_margin_loss(logits.float(), labels)
        l_full = F.l1_loss(full.float(), x32)
        l_t = masked_l1(from_rest_t.float()[valid], x32[valid], hide_t[valid]) if valid.any() else x32.new_zeros(())
        l_n = masked_l1(from_rest_n.float(), x32, hide_n)
        loss = w["r_cls"] * cls + w["r_full"] * l_full + w["r_target"] * l_t + w["r_other"] * l_n
        self.optimizers.reconstructor.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizers.reconstructor.step()
        terms = {"r_cls": cls.item(), "r_full": l_full.item(), "r_target": l_t.item(), "r_other": l_n.item()}
        return loss.detach(), {**terms, "srf_p": hidden_p if self.srf["enabled"] else 1.0}

    def classifier_step(self, model, x, labels, chosen, precision):
        c, r = model.classifier, model.reconstructor
        r.eval()
        self._train(c)
        x32, size = self._at_scale(x)
        with torch.no_grad(), precision():
            _, feats = r.encode(x, size)
        feats = feats.float()
        with precision():
            maps = c.class_maps(x)[:, : c.num_classes]
        logits = maps.float().mean(dim=(2, 3))
        cams = F.interpolate(minmax_cams(maps, labels), size=size, mode="bilinear", align_corners=False)
        target, other = segments(cams, chosen)
        r.generator.requires_grad_(False)  # gradients flow through R to C's maps, not into R's weights
        try:
            with precision():
                from_t = r.reconstruct(feats * target)
                from_n = r.reconstruct(feats * other)
        finally:
            r.generator.requires_grad_(True)
        outside_t = (target == 0).float().detach()  # hard: where t has no activation at all
        inside_t = (target * strongest_is_target(cams, labels, chosen)).detach()  # soft
        cls = F.multilabel_soft_margin_loss(logits, labels)
        adv_t = masked_l1(clip_to_image_range(from_t.float(), self.mean, self.std), x32, outside_t)
        adv_n = masked_l1(clip_to_image_range(from_n.float(), self.mean, self.std), x32, inside_t)
        loss = cls - self.weights["c_target"] * adv_t - self.weights["c_other"] * adv_n
        self.optimizers.classifier.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizers.classifier.step()
        return loss.detach(), {"c_cls": cls.item(), "c_target": adv_t.item(), "c_other": adv_n.item()}
