"""Background thresholds: resolving the value a stage receives, and CAMs → label maps (the one rule).

A pixel takes the class of its strongest CAM when that CAM exceeds the threshold, else background;
that is also the argmax of the CAMs behind a constant background score (``artifacts.cams_to_scores``),
ties going to the background.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from wsss_stages import WsssError
from wsss_stages.lib.data.artifacts import read_json

log = logging.getLogger(__name__)


def resolve_threshold(value: float | None, sweep: Path | None = None, key: str = "bg_threshold") -> float | None:
    """The threshold a stage uses: the best of a sweep (its best.json's ``best_threshold``) when ``sweep`` is
    given ("auto" in the config), else ``value``, a number in [0, 1]; None when neither is."""
    if sweep is not None:
        number = float(read_json(Path(sweep))["best_threshold"])
        log.info("background threshold %.3f from %s", number, sweep)
        return number
    if value is None:
        return None
    number = float(value)
    if not 0.0 <= number <= 1.0:
        raise WsssError(f"background threshold {number} is outside [0, 1] (config key: {key})")
    return number


def strongest(cams: np.ndarray, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel: the strongest class and its CAM value."""
    if cams.shape[0] == 0:
        return np.zeros(cams.shape[1:], np.int64), np.zeros(cams.shape[1:], np.float32)
    return classes[cams.argmax(axis=0)], cams.max(axis=0)


def cam_labels(cams: np.ndarray, classes: np.ndarray, threshold: float) -> np.ndarray:
    """Label map: the strongest class where its CAM exceeds ``threshold``, background (0) elsewhere."""
    label, value = strongest(cams, classes)
    return np.where(value > threshold, label, 0)
