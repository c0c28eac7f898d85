"""Pixel pairs within a radius, enumerated by offset (no torch: works on numpy arrays and tensors alike).

Comparing a map with itself shifted by an offset (dy, dx) gives every pair at that displacement
at once, so nothing of size (HW)² is ever built.
"""

from __future__ import annotations


def pair_offsets(radius: int, half: bool = True) -> list[tuple[int, int]]:
    """Offsets with 0 < dy² + dx² < radius²; ``half`` keeps one of each ±pair (dy > 0, or dy == 0 and dx > 0)."""
    out = []
    for dy in range(-radius + 1, radius):
        for dx in range(-radius + 1, radius):
            if 0 < dy * dy + dx * dx < radius * radius and (not half or dy > 0 or (dy == 0 and dx > 0)):
                out.append((dy, dx))
    return out


def fitting_offsets(radius: int, h: int, w: int) -> list[tuple[int, int]]:
    """:func:`pair_offsets` that leave at least one pair on an ``h × w`` map (small crops at coarse strides)."""
    return [(dy, dx) for dy, dx in pair_offsets(radius) if abs(dy) < h and abs(dx) < w]


def shifted_pair(t, dy: int, dx: int):
    """Overlapping crops ``(a, b)`` of ``t[..., H, W]`` such that ``b[y, x] = t[y + dy, x + dx]`` and ``a[y, x]``
    is its partner."""
    h, w = t.shape[-2:]
    y0, y1 = max(0, -dy), h - max(0, dy)
    x0, x1 = max(0, -dx), w - max(0, dx)
    return t[..., y0:y1, x0:x1], t[..., y0 + dy : y1 + dy, x0 + dx : x1 + dx]
