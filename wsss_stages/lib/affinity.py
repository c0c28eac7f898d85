"""Inter-pixel affinity: pixel pairs within a radius, AffinityNet, and the sparse random walk.

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

from wsss_stages.lib.artifacts import IGNORE
from wsss_stages.lib.models import Backbone, build_backbone
from wsss_stages.lib.pairs import fitting_offsets, shifted_pair


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


def build_affinitynet(meta: dict) -> AffinityNet:
    """Rebuild an AffinityNet from saved metadata (for ``models.load_model``)."""
    return AffinityNet(build_backbone(meta["backbone"], "none", meta["output_stride"]), meta["stride"], meta["dim"], True)


def downsample_labels(labels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest-neighbour resize of a ``[B, H, W]`` label map (no label mixing)."""
    return F.interpolate(labels[:, None].float(), size=size, mode="nearest")[:, 0].long()


def affinity_loss(embedding: torch.Tensor, labels: torch.Tensor, radius: int) -> tuple[torch.Tensor, dict]:
    """psa's balanced pair loss: background pairs /4 + same-class foreground pairs /4 + cross-label pairs /2.

    ``labels`` (``[B, h, w]``, 255 = unsure) must match the embedding's resolution.
    """
    sums = {"bg": 0.0, "fg": 0.0, "neg": 0.0}
    counts = {"bg": 0, "fg": 0, "neg": 0}
    eps = 1e-5
    for dy, dx in fitting_offsets(radius, *embedding.shape[-2:]):
        fa, fb = shifted_pair(embedding, dy, dx)
        la, lb = shifted_pair(labels, dy, dx)
        aff = pair_affinity(fa, fb)
        valid = (la != IGNORE) & (lb != IGNORE)
        same = valid & (la == lb)
        groups = {"bg": same & (la == 0), "fg": same & (la > 0), "neg": valid & (la != lb)}
        for name, mask in groups.items():
            if mask.any():
                values = -torch.log(aff[mask] + eps) if name != "neg" else -torch.log(1 + eps - aff[mask])
                sums[name] = sums[name] + values.sum()
                counts[name] += int(mask.sum())
    means = {k: sums[k] / counts[k] if counts[k] else embedding.new_zeros(()) for k in sums}
    loss = means["bg"] / 4 + means["fg"] / 4 + means["neg"] / 2
    return loss, counts


# ============================================================================ random walk
def transition_matrix(embedding: torch.Tensor, radius: int = 5, beta: float = 10.0) -> torch.Tensor:
    """Sparse row-stochastic ``[N, N]`` matrix (N = h·w) from an embedding ``[D, h, w]``.

    A_pq = affinity(p, q)^beta for 0 < |p - q| < radius (both directions) and A_pp = 1;
    T = D⁻¹A. Memory: N · (1 + number of offsets) entries.
    """
    _, h, w = embedding.shape
    index = torch.arange(h * w, device=embedding.device).view(h, w)
    rows, cols, vals = [index.flatten()], [index.flatten()], [torch.ones(h * w, device=embedding.device)]
    for dy, dx in fitting_offsets(radius, h, w):
        fa, fb = shifted_pair(embedding, dy, dx)
        ia, ib = shifted_pair(index, dy, dx)
        aff = pair_affinity(fa, fb).flatten() ** beta
        rows += [ia.flatten(), ib.flatten()]
        cols += [ib.flatten(), ia.flatten()]
        vals += [aff, aff]
    rows, cols, vals = torch.cat(rows), torch.cat(cols), torch.cat(vals)
    degree = torch.zeros(h * w, device=embedding.device).index_add_(0, rows, vals)
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


def pair_affinity_histograms(embedding: torch.Tensor, truth: torch.Tensor, radius: int, bins: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """Histograms over [0, 1] of the affinities of ground-truth same-class and different-class pairs
    within ``radius``; ``truth`` ``[h, w]`` (255 = void) matches the embedding ``[D, h, w]``."""
    same, diff = torch.zeros(bins, dtype=torch.float64), torch.zeros(bins, dtype=torch.float64)
    for dy, dx in fitting_offsets(radius, *embedding.shape[-2:]):
        fa, fb = shifted_pair(embedding, dy, dx)
        ta, tb = shifted_pair(truth, dy, dx)
        known = (ta != IGNORE) & (tb != IGNORE)
        index = (pair_affinity(fa, fb).clamp(0, 1) * (bins - 1)).round().long()
        same += torch.bincount(index[known & (ta == tb)].cpu(), minlength=bins).double()
        diff += torch.bincount(index[known & (ta != tb)].cpu(), minlength=bins).double()
    return same, diff
