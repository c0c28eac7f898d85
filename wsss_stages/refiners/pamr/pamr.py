"""Pixel-adaptive mask refinement (PAMR; Araslanov & Roth, CVPR 2020, as RecurSeed uses it).

For every pixel i and its 8 neighbours j at each dilation d (replicate padding at the borders):
κ_ij = softmax_j( mean over colour channels of −|I_i − I_j| / (0.1 · σ_i) ), and the masks are
propagated ``iterations`` times: m_i ← Σ_j κ_ij m_j. σ_i is, per colour channel, the standard
deviation of the pixel's 3×3 neighbourhoods at all the dilations together (the centre counted once
per dilation), as the reference code computes it; the seed paper's text says "local 3×3 std".

κ is row-stochastic, so PAMR is a convex combination per pixel: a constant map stays constant, a
constant background channel next to CAMs stays the same constant (so refining CAM-format maps and
prepending the background threshold afterwards equals refining the score maps), and score maps
keep summing to 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

DILATIONS = (1, 2, 4, 8, 12, 24)
NEIGHBOURS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]


def _shifted(x: torch.Tensor, offsets: Sequence[tuple[int, int]], dilation: int) -> torch.Tensor:
    """``[C, P, H, W]``: x at pixel (y + dy·d, x + dx·d) for each offset, replicate padding."""
    _, h, w = x.shape
    d = dilation
    padded = F.pad(x[None], (d, d, d, d), mode="replicate")[0]
    return torch.stack(
        [padded[:, d + dy * d : d + dy * d + h, d + dx * d : d + dx * d + w] for dy, dx in offsets], dim=1
    )


def pamr_affinity(image: torch.Tensor, dilations: Sequence[int] = DILATIONS) -> torch.Tensor:
    """κ ``[P, H, W]`` over the P = 8 · len(dilations) neighbours, from an image ``[3, H, W]``."""
    around = torch.cat([_shifted(image, [(0, 0), *NEIGHBOURS], d) for d in dilations], dim=1)  # [3, 9D, H, W]
    sigma = around.std(dim=1, keepdim=True)  # [3, 1, H, W]
    neighbours = torch.cat([_shifted(image, NEIGHBOURS, d) for d in dilations], dim=1)  # [3, 8D, H, W]
    logits = -(neighbours - image[:, None]).abs() / (1e-8 + 0.1 * sigma)
    return torch.softmax(logits.mean(0), dim=0)


def pamr(
    image: torch.Tensor, maps: torch.Tensor, iterations: int = 10, dilations: Sequence[int] = DILATIONS
) -> torch.Tensor:
    """Refined ``maps`` ``[K, H, W]`` (the image ``[3, H, W]`` at the same size)."""
    kappa = pamr_affinity(image, dilations)
    for _ in range(iterations):
        maps = (torch.cat([_shifted(maps, NEIGHBOURS, d) for d in dilations], dim=1) * kappa[None]).sum(1)
    return maps


def pamr_at_stride(
    image: torch.Tensor, maps: torch.Tensor, stride: int, iterations: int, dilations: Sequence[int]
) -> torch.Tensor:
    """PAMR at 1/stride of the image's resolution (the reference runs at stride 4, where its dilations
    reach that many times further), upsampled back bilinearly. ``image`` ``[3, H, W]`` in [0, 1]."""
    h, w = image.shape[-2:]
    size = (max(1, round(h / stride)), max(1, round(w / stride)))
    small_image = (
        F.interpolate(image[None], size=size, mode="bilinear", align_corners=False)[0] if stride > 1 else image
    )
    small = F.interpolate(maps[None], size=size, mode="bilinear", align_corners=False)[0] if stride > 1 else maps
    refined = pamr(small_image, small, iterations, dilations)
    return F.interpolate(refined[None], size=(h, w), mode="bilinear", align_corners=False)[0] if stride > 1 else refined
