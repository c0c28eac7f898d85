"""Self-correlation map generation (SCG; from SPOL, as RecurSeed uses it): class maps from how
strongly each pixel's backbone features correlate with the confident foreground of a class against
its confident background.

Per feature level l (features ``[D, h, w]`` resized to one common grid, n = h·w pixels, each
feature vector L2-normalised to f̂):

- first order SC1 = ReLU(f̂ f̂ᵀ), entries below ``first_threshold`` (0.50) zeroed, each column
  divided by its sum;
- second order SC2 = SC1 · SC1 with the diagonal zeroed, columns divided by their sums, entries
  below ``second_threshold / n`` (0.10 / n) zeroed;
- HSC = the mean over levels of max(SC1, SC2)  (n × n).

For class c with CAM ``M_c`` on the grid: SCG_c = minmax(ReLU(minmax(Σ_{j: M_c ≥ fg} HSC[:, j]) −
minmax(Σ_{j: M_c ≤ bg} HSC[:, j]))), fg 0.30 and bg 0.05. The matrices are n × n at the grid of the
backbone's last level (stride 16 for the presets: 768 pixels for a 500×375 image, three 768² float
matrices, about 7 MB per image; 1200 pixels, 17 MB, for a 640×480 COCO image), so no blocking is needed.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def _column_normalised(matrix: torch.Tensor) -> torch.Tensor:
    return matrix / matrix.sum(0, keepdim=True).clamp_min(1e-8)


def correlation_of_level(features: torch.Tensor, first_threshold: float, second_threshold: float) -> torch.Tensor:
    """max(SC1, SC2) ``[n, n]`` of one level's features ``[D, h, w]``."""
    flat = F.normalize(features.flatten(1).T.float(), dim=1)  # [n, D]
    n = flat.shape[0]
    first = (flat @ flat.T).clamp_min(0)
    first = _column_normalised(torch.where(first < first_threshold, torch.zeros_like(first), first))
    second = first @ first
    second.fill_diagonal_(0)
    second = _column_normalised(second)
    second = torch.where(second < second_threshold / n, torch.zeros_like(second), second)
    return torch.maximum(first, second)


def high_order_correlation(
    levels: Sequence[torch.Tensor], size: tuple[int, int], first_threshold: float = 0.5, second_threshold: float = 0.1
) -> torch.Tensor:
    """HSC ``[n, n]``: the levels' ``[D_l, h_l, w_l]`` features resized to ``size`` (h, w), averaged."""
    maps = [
        correlation_of_level(
            F.interpolate(f[None].float(), size=size, mode="bilinear", align_corners=False)[0],
            first_threshold,
            second_threshold,
        )
        for f in levels
    ]
    return torch.stack(maps).mean(0)


def _minmax(x: torch.Tensor) -> torch.Tensor:
    low, high = x.min(), x.max()
    return (x - low) / (high - low) if high > low else torch.zeros_like(x)


def scg_maps(hsc: torch.Tensor, cams: torch.Tensor, fg: float = 0.3, bg: float = 0.05) -> torch.Tensor:
    """SCG maps ``[K, h, w]`` from HSC ``[n, n]`` and CAMs ``[K, h, w]`` on the same grid (each peaking at 1)."""
    k, h, w = cams.shape
    out = torch.zeros(k, h * w)
    for c, cam in enumerate(cams.flatten(1)):
        confident_fg, confident_bg = cam >= fg, cam <= bg
        if not confident_fg.any():
            continue
        towards = _minmax(hsc[:, confident_fg].sum(1))
        away = _minmax(hsc[:, confident_bg].sum(1)) if confident_bg.any() else torch.zeros_like(towards)
        out[c] = _minmax((towards - away).clamp_min(0))
    return out.view(k, h, w)
