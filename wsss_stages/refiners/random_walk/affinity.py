"""Inter-pixel affinity: pixel pairs within a radius, the two networks that predict it, the sparse walk.

- **AffinityNet** (psa): an embedding; the affinity of two pixels is exp(−mean |f_i − f_j|).
- **Boundary network** (irn's class-boundary branch): a boundary map B; the affinity of two pixels
  is 1 − the largest B on the discrete path between them (irn's ``PathIndex``: the pixels of the
  bounding box within distance 1 of the segment), so two regions split by a boundary never connect.

Both are *affinity functions* ``affinity(dy, dx)`` that give every pair at one offset at once;
the loss, the transition matrix and the diagnostics take either.

Pairs are enumerated by *offsets* (dy, dx): comparing a map with itself shifted by an offset
gives every pair at that displacement at once, so nothing of size (HW)² is ever built. The
random walk's transition matrix is sparse (one row per pixel, one entry per neighbour within
the radius), so its memory grows linearly with the pixel count — unlike irn's dense matrix,
which needs ~24 GB for one full-resolution image.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F

from wsss_stages.lib.data.artifacts import IGNORE
from wsss_stages.lib.nets.models import Backbone, build_backbone
from wsss_stages.refiners.random_walk.pairs import fitting_offsets, shifted_pair


def embedding_affinity(embedding: torch.Tensor):
    """Affinity function of an embedding ``[..., D, h, w]``: exp(−mean |f_a − f_b|) over the channels."""

    def affinity(dy: int, dx: int) -> torch.Tensor:
        return pair_affinity(*shifted_pair(embedding, dy, dx))

    return affinity


def path_points(dy: int, dx: int) -> list[tuple[int, int]]:
    """irn's path from (0, 0) to (dy, dx): the points of their bounding box whose distance from the
    segment's line is below 1 (both ends included)."""
    length_sq = dy * dy + dx * dx
    return [
        (y, x)
        for y in range(min(0, dy), max(0, dy) + 1)
        for x in range(min(0, dx), max(0, dx) + 1)
        if (dy * x - dx * y) ** 2 / length_sq < 1
    ]


def boundary_affinity(boundary: torch.Tensor):
    """Affinity function of a boundary map ``[..., h, w]`` in [0, 1]: 1 − max boundary on the path."""
    h, w = boundary.shape[-2:]

    def affinity(dy: int, dx: int) -> torch.Tensor:
        y0, y1, x0, x1 = max(0, -dy), h - max(0, dy), max(0, -dx), w - max(0, dx)
        path = torch.stack([boundary[..., y0 + py : y1 + py, x0 + px : x1 + px] for py, px in path_points(dy, dx)])
        return 1.0 - path.max(0).values

    return affinity


def pair_affinity(fa: torch.Tensor, fb: torch.Tensor) -> torch.Tensor:
    """AffinityNet's affinity exp(-mean |f_a - f_b|) over the channel axis (dim -3)."""
    return torch.exp(-(fa - fb).abs().mean(dim=-3))


# ============================================================================ the network
class AffinityNet(nn.Module):
    """Backbone (initialised from the trained classifier) + an embedding at ``stride``.

    Low-level (stride 4) and high-level features are brought to ``stride`` and mixed by 1×1
    convolutions into a ``dim``-channel embedding; affinities compare embeddings.
    """

    def __init__(self, backbone: Backbone, stride: int = 8, dim: int = 64, freeze_backbone: bool = False):
        super().__init__()
        if stride not in (4, 8):
            raise ValueError("affinity stride must be 4 or 8")
        self.backbone, self.stride, self.freeze_backbone = backbone, stride, freeze_backbone
        for p in self.backbone.parameters():
            p.requires_grad_(not freeze_backbone)
        self.low = nn.Sequential(nn.Conv2d(backbone.low_channels, 64, 1), nn.ReLU(inplace=True))
        self.high = nn.Sequential(nn.Conv2d(backbone.high_channels, 128, 1), nn.ReLU(inplace=True))
        self.embed = nn.Sequential(nn.Conv2d(192, 128, 1), nn.ReLU(inplace=True), nn.Conv2d(128, dim, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.freeze_backbone:
            with torch.no_grad():
                self.backbone.eval()
                feats = self.backbone(x)
        else:
            feats = self.backbone(x)
        low = self.low(feats["low"])
        if self.stride == 8:
            low = F.avg_pool2d(low, 2, ceil_mode=True)
        high = F.interpolate(self.high(feats["high"]), size=low.shape[-2:], mode="bilinear", align_corners=False)
        return self.embed(torch.cat([low, high], dim=1))

    def head_parameters(self) -> list[nn.Parameter]:
        return [p for m in (self.low, self.high, self.embed) for p in m.parameters()]


class BoundaryNet(nn.Module):
    """irn's class-boundary branch on the classifier's backbone, whose features it does not train
    (irn detaches them). Each feature level → 1×1 conv to 32 channels, GroupNorm, ReLU, brought to
    stride 4 (finer levels average-pooled, coarser ones upsampled bilinearly); concatenated; a 1×1
    conv gives the boundary logit at stride 4.

    ``levels``: "all" reads every stage of the backbone, as irn reads ResNet-50's five (lite0 has
    five too, the first at stride 2; the tiny demo backbone four); "two" reads only the stride-4
    level and the last (kept so that models trained that way still load)."""

    stride = 4

    def __init__(self, backbone: Backbone, levels: str = "all"):
        super().__init__()
        if levels not in ("all", "two"):
            raise ValueError(f"boundary levels must be all or two, not {levels!r}")
        self.backbone, self.levels = backbone, levels
        for p in self.backbone.parameters():
            p.requires_grad_(False)

        def level(channels: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(channels, 32, 1, bias=False), nn.GroupNorm(4, 32), nn.ReLU(inplace=True))

        if levels == "two":
            self.low, self.high = level(backbone.low_channels), level(backbone.high_channels)
            self.out = nn.Conv2d(64, 1, 1, bias=True)
        else:
            self.branches = nn.ModuleList(level(c) for c in backbone.level_channels)
            self.out = nn.Conv2d(32 * len(backbone.level_channels), 1, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Boundary logits ``[B, 1, H/4, W/4]``."""
        with torch.no_grad():
            self.backbone.eval()
            feats = self.backbone(x)
        if self.levels == "two":
            pairs = [(self.low, feats["low"]), (self.high, feats["high"])]
        else:
            pairs = list(zip(self.branches, feats["levels"]))
        size = feats["low"].shape[-2:]
        return self.out(torch.cat([to_grid(branch(f), size) for branch, f in pairs], dim=1))

    def boundary(self, image: torch.Tensor) -> torch.Tensor:
        """Boundary map ``[h, w]`` in [0, 1] of one image ``[1, 3, H, W]``: the sigmoid of the mean logit of
        the image and its mirror image, as irn infers it."""
        logits = self(torch.cat([image, image.flip(-1)]))
        return torch.sigmoid((logits[0, 0] + logits[1, 0].flip(-1)) / 2)

    def head_parameters(self) -> list[nn.Parameter]:
        return [p for n, p in self.named_parameters() if not n.startswith("backbone.")]


def to_grid(features: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Features brought to the spatial ``size``: area-averaged when finer, bilinear when coarser."""
    if tuple(features.shape[-2:]) == tuple(size):
        return features
    if features.shape[-2] > size[0]:
        return F.adaptive_avg_pool2d(features, size)
    return F.interpolate(features, size=size, mode="bilinear", align_corners=False)


def build_affinitynet(meta: dict) -> nn.Module:
    """Rebuild a pair network (AffinityNet or the boundary network) from saved metadata (``models.load_model``)."""
    backbone = build_backbone(meta["backbone"], "none", meta["output_stride"])
    if meta["kind"] == "boundarynet":
        return BoundaryNet(backbone, meta.get("boundary_levels", "two"))
    return AffinityNet(backbone, meta["stride"], meta["dim"], True)


def downsample_labels(labels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest-neighbour resize of a ``[B, H, W]`` label map (no label mixing)."""
    return F.interpolate(labels[:, None].float(), size=size, mode="nearest")[:, 0].long()


def affinity_loss(embedding: torch.Tensor, labels: torch.Tensor, radius: int) -> tuple[torch.Tensor, dict]:
    """psa's balanced pair loss on an embedding ``[B, D, h, w]`` (see :func:`pair_loss`)."""
    return pair_loss(embedding_affinity(embedding), labels, radius)


def pair_loss(affinity, labels: torch.Tensor, radius: int) -> tuple[torch.Tensor, dict]:
    """The balanced pair loss of psa and irn: background pairs /4 + same-class foreground pairs /4 +
    cross-label pairs /2 (irn writes it (bg/2 + fg/2 + neg) / 2), each the mean of −log(affinity) or
    −log(1 − affinity) over its pairs. ``labels`` (``[B, h, w]``, 255 = unsure) match the affinity's grid."""
    sums = {"bg": 0.0, "fg": 0.0, "neg": 0.0}
    counts = {"bg": 0, "fg": 0, "neg": 0}
    eps = 1e-5
    for dy, dx in fitting_offsets(radius, *labels.shape[-2:]):
        la, lb = shifted_pair(labels, dy, dx)
        aff = affinity(dy, dx)
        valid = (la != IGNORE) & (lb != IGNORE)
        same = valid & (la == lb)
        groups = {"bg": same & (la == 0), "fg": same & (la > 0), "neg": valid & (la != lb)}
        for name, mask in groups.items():
            if mask.any():
                values = -torch.log(aff[mask] + eps) if name != "neg" else -torch.log(1 + eps - aff[mask])
                sums[name] = sums[name] + values.sum()
                counts[name] += int(mask.sum())
    zero = labels.new_zeros((), dtype=torch.float32)
    means = {k: sums[k] / counts[k] if counts[k] else zero for k in sums}
    loss = means["bg"] / 4 + means["fg"] / 4 + means["neg"] / 2
    return loss, counts


# ============================================================================ random walk
def transition_matrix(embedding: torch.Tensor, radius: int = 5, beta: float = 10.0) -> torch.Tensor:
    """The walk's matrix from an embedding ``[D, h, w]`` (see :func:`transition_from`)."""
    return transition_from(
        embedding_affinity(embedding), *embedding.shape[-2:], radius=radius, beta=beta, device=embedding.device
    )


def transition_from(affinity, h: int, w: int, *, radius: int = 5, beta: float = 10.0, device=None) -> torch.Tensor:
    """Sparse row-stochastic ``[N, N]`` matrix (N = h·w) from an affinity function.

    A_pq = affinity(p, q)^beta for 0 < |p - q| < radius (both directions) and A_pp = 1;
    T = D⁻¹A. Memory: N · (1 + number of offsets) entries.
    """
    index = torch.arange(h * w, device=device).view(h, w)
    rows, cols, vals = [index.flatten()], [index.flatten()], [torch.ones(h * w, device=device)]
    for dy, dx in fitting_offsets(radius, h, w):
        ia, ib = shifted_pair(index, dy, dx)
        aff = affinity(dy, dx).flatten().float().clamp_min(0) ** beta
        rows += [ia.flatten(), ib.flatten()]
        cols += [ib.flatten(), ia.flatten()]
        vals += [aff, aff]
    rows, cols, vals = torch.cat(rows), torch.cat(cols), torch.cat(vals)
    degree = torch.zeros(h * w, device=device).index_add_(0, rows, vals)
    vals = vals / degree[rows]
    indices = torch.stack([rows, cols])
    with warnings.catch_warnings():  # torch flags CSR as beta; matrix-vector products are what we use
        warnings.simplefilter("ignore", UserWarning)
        matrix = torch.sparse_coo_tensor(indices, vals, (h * w, h * w), check_invariants=False)
        return matrix.coalesce().to_sparse_csr()


def random_walk(scores: torch.Tensor, transition: torch.Tensor, steps: int) -> torch.Tensor:
    """Propagate ``scores [C, h, w]``: x ← T x, ``steps`` times (each pixel averages its neighbours)."""
    c, h, w = scores.shape
    x = scores.reshape(c, h * w).T.contiguous()
    for _ in range(steps):
        x = torch.sparse.mm(transition, x)
    return x.T.reshape(c, h, w)


def pair_affinity_histograms(
    affinity, truth: torch.Tensor, radius: int, bins: int = 1000
) -> tuple[torch.Tensor, torch.Tensor]:
    """Histograms over [0, 1] of the affinities (an affinity function, or an embedding ``[D, h, w]``) of
    ground-truth same-class and different-class pairs within ``radius``; ``truth`` ``[h, w]`` (255 =
    void) matches the affinity's grid."""
    if isinstance(affinity, torch.Tensor):
        affinity = embedding_affinity(affinity)
    same, diff = torch.zeros(bins, dtype=torch.float64), torch.zeros(bins, dtype=torch.float64)
    for dy, dx in fitting_offsets(radius, *truth.shape[-2:]):
        ta, tb = shifted_pair(truth, dy, dx)
        known = (ta != IGNORE) & (tb != IGNORE)
        index = (affinity(dy, dx).float().clamp(0, 1) * (bins - 1)).round().long()
        same += torch.bincount(index[known & (ta == tb)].cpu(), minlength=bins).double()
        diff += torch.bincount(index[known & (ta != tb)].cpu(), minlength=bins).double()
    return same, diff
