"""Dense CRF (Krähenbühl & Koltun) through pydensecrf, on soft scores or on hard labels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CrfParams:
    """Defaults: psa / Puzzle-CAM CRF on CAM scores (t=10, Gaussian 3/3, bilateral 80/13/10)."""

    iterations: int = 10
    gaussian_sxy: float = 3.0
    gaussian_compat: float = 3.0
    bilateral_sxy: float = 80.0
    bilateral_srgb: float = 13.0
    bilateral_compat: float = 10.0


# DeepLab post-processing (EPS / RS+EPM READMEs): bi_w 4, bi_xy 67, bi_rgb 3, pos_w 3, pos_xy 1
DEEPLAB_CRF = CrfParams(
    iterations=10, gaussian_sxy=1, gaussian_compat=3, bilateral_sxy=67, bilateral_srgb=3, bilateral_compat=4
)
# irn's crf_inference_label (affinity labels): Gaussian 3/3, bilateral 50/5/10, gt_prob 0.7
IRN_LABEL_CRF = CrfParams(
    iterations=10, gaussian_sxy=3, gaussian_compat=3, bilateral_sxy=50, bilateral_srgb=5, bilateral_compat=10
)


def _crf(image: np.ndarray, unary: np.ndarray, n_labels: int, params: CrfParams) -> np.ndarray:
    import pydensecrf.densecrf as dcrf

    h, w = image.shape[:2]
    model = dcrf.DenseCRF2D(w, h, n_labels)
    model.setUnaryEnergy(np.ascontiguousarray(unary, dtype=np.float32))
    model.addPairwiseGaussian(sxy=params.gaussian_sxy, compat=params.gaussian_compat)
    model.addPairwiseBilateral(
        sxy=params.bilateral_sxy,
        srgb=params.bilateral_srgb,
        rgbim=np.ascontiguousarray(image, dtype=np.uint8),
        compat=params.bilateral_compat,
    )
    q = model.inference(params.iterations)
    return np.asarray(q, dtype=np.float32).reshape(n_labels, h, w)


def crf_on_scores(image: np.ndarray, scores: np.ndarray, params: CrfParams = CrfParams()) -> np.ndarray:
    """Refine non-negative scores ``[L, H, W]`` (normalised to probabilities) → probabilities ``[L, H, W]``."""
    probs = np.clip(scores, 0, None).astype(np.float32)
    probs /= np.clip(probs.sum(0, keepdims=True), 1e-8, None)
    unary = -np.log(np.clip(probs, 1e-5, 1.0)).reshape(len(probs), -1)
    return _crf(image, unary, len(probs), params)


def crf_on_labels(
    image: np.ndarray, labels: np.ndarray, n_labels: int, gt_prob: float = 0.7, params: CrfParams = IRN_LABEL_CRF
) -> np.ndarray:
    """Refine a label map (values 0..n_labels-1) → the CRF's argmax labels (irn's crf_inference_label)."""
    onehot = np.full((n_labels, labels.size), (1 - gt_prob) / max(n_labels - 1, 1), np.float32)
    onehot[labels.ravel(), np.arange(labels.size)] = gt_prob
    q = _crf(image, -np.log(onehot), n_labels, params)
    return q.argmax(0)
