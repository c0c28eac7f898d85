"""Self-correlation map generation (SCG; from SPOL, as RecurSeed uses it): class maps from how
strongly each pixel's backbone features correlate with the confident foreground of a class against
its confident background.

Per feature level l (features ``[D, h, w]`` resized to one common grid, n = h·w pixels, each
feature vector L2-normalised to f̂), first order SC1 = column-normalised ReLU(f̂ f̂ᵀ) with entries
below ``first_threshold`` (0.50) zeroed. Two variants (``refine_scg.variant``) differ from there on:

- ``authors`` (the ``SCG`` class of the RecurSeed code, ``core/inferences.py``): the second order
  squares the thresholded first-order matrix with its diagonal zeroed and its columns normalised,
  normalises the product's columns and zeroes entries below ``second_threshold / n``; each level's
  max(SC1, SC2) is column-normalised and the levels are summed. For class c the columns of its
  confident pixels are each min-max normalised before they are summed.
- ``averaged``: the second order squares SC1 and zeroes the product's diagonal afterwards; the
  levels' max(SC1, SC2) are averaged as they are; a class sums its confident columns as they are.

Then SCG_c = minmax(ReLU(minmax(towards the pixels with M_c ≥ fg) − minmax(towards those ≤ bg))),
fg 0.30 and bg 0.05. The matrices are n × n at the grid of the backbone's last level (stride 16 for
the presets: 768 pixels for a 500×375 image, three 768² float matrices, about 7 MB per image; 1200
pixels, 17 MB, for a 640×480 COCO image), so no blocking is needed.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

VARIANTS = ("authors", "averaged")


def _column_normalised(matrix: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    return matrix / matrix.sum(0, keepdim=True).clamp_min(eps)


def _first_order(features: torch.Tensor, first_threshold: float) -> torch.Tensor:
    """ReLU(f̂ f̂ᵀ) ``[n, n]`` of features ``[D, h, w]``, entries below ``first_threshold`` zeroed (not normalised)."""
    flat = F.normalize(features.flatten(1).T.float(), dim=1)  # [n, D]
    first = (flat @ flat.T).clamp_min(0)
    return torch.where(first < first_threshold, torch.zeros_like(first), first)


def _below_to_zero(matrix: torch.Tensor, threshold: float) -> torch.Tensor:
    return torch.where(matrix < threshold, torch.zeros_like(matrix), matrix)


def correlation_of_level(
    features: torch.Tensor, first_threshold: float, second_threshold: float, variant: str = "averaged"
) -> torch.Tensor:
    """max(SC1, SC2) ``[n, n]`` of one level's features ``[D, h, w]`` (column-normalised for ``authors``)."""
    first = _first_order(features, first_threshold)
    n = first.shape[0]
    sc1 = _column_normalised(first)
    if variant == "authors":
        hollow = first.clone()
        hollow.fill_diagonal_(0)
        hollow = _column_normalised(hollow)
        sc2 = _below_to_zero(_column_normalised(hollow @ hollow), second_threshold / n)
        return _column_normalised(torch.maximum(sc1, sc2))
    second = sc1 @ sc1
    second.fill_diagonal_(0)
    sc2 = _below_to_zero(_column_normalised(second), second_threshold / n)
    return torch.maximum(sc1, sc2)


def high_order_correlation(
    levels: Sequence[torch.Tensor],
    size: tuple[int, int],
    first_threshold: float = 0.5,
    second_threshold: float = 0.1,
    variant: str = "averaged",
) -> torch.Tensor:
    """HSC ``[n, n]``: the levels' ``[D_l, h_l, w_l]`` features resized to ``size`` (h, w), then summed
    (``authors``) or averaged (``averaged``)."""
    if variant not in VARIANTS:
        raise ValueError(f"SCG variant {variant!r} is not one of {VARIANTS}")
    maps = torch.stack(
        [
            correlation_of_level(
                F.interpolate(f[None].float(), size=size, mode="bilinear", align_corners=False)[0],
                first_threshold,
                second_threshold,
                variant,
            )
            for f in levels
        ]
    )
    return maps.sum(0) if variant == "authors" else maps.mean(0)


def _minmax(x: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    if dim is not None:
        low, high = x.min(dim, keepdim=True).values, x.max(dim, keepdim=True).values
        return (x - low) / (high - low).clamp_min(1e-10)
    low, high = x.min(), x.max()
    return (x - low) / (high - low) if high > low else torch.zeros_like(x)


def _towards(hsc: torch.Tensor, pixels: torch.Tensor, variant: str) -> torch.Tensor:
    """How strongly each pixel correlates with ``pixels`` (a boolean ``[n]``), min-max normalised."""
    if not pixels.any():
        return torch.zeros(hsc.shape[0])
    columns = hsc[:, pixels]
    if variant == "authors":
        columns = _minmax(columns, dim=0)
    return _minmax(columns.sum(1))


def scg_maps(
    hsc: torch.Tensor, cams: torch.Tensor, fg: float = 0.3, bg: float = 0.05, variant: str = "averaged"
) -> torch.Tensor:
    """SCG maps ``[K, h, w]`` from HSC ``[n, n]`` and CAMs ``[K, h, w]`` on the same grid (each peaking at 1)."""
    k, h, w = cams.shape
    out = torch.zeros(k, h * w)
    for c, cam in enumerate(cams.flatten(1)):
        if not (cam >= fg).any():
            continue
        out[c] = _minmax((_towards(hsc, cam >= fg, variant) - _towards(hsc, cam <= bg, variant)).clamp_min(0))
    return out.view(k, h, w)
