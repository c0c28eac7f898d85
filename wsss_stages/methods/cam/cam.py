"""The CAM classifier's training: the multilabel soft-margin loss on the globally pooled class maps."""

from __future__ import annotations


class CamMethod:
    """The plain classifier: no extra targets, no change to the samples."""

    def __init__(self, options: dict, context) -> None:
        self.options, self.context = options, context

    def loss(self, model, x, targets: dict, progress: float):
        import torch.nn.functional as F

        return F.multilabel_soft_margin_loss(model(x), targets["labels"])
