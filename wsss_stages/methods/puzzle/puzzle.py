"""Puzzle-CAM's training loss (the tensor pieces live in :mod:`wsss_stages.lib.nets.seed_methods`)."""

from __future__ import annotations


class PuzzleCam:
    def __init__(self, options: dict, context) -> None:
        self.options, self.terms = options, list(options["terms"])

    def loss(self, model, x, targets: dict, progress: float):
        from wsss_stages.lib.nets.seed_methods import puzzle_alpha, puzzle_losses

        o = self.options
        terms = puzzle_losses(
            model,
            x,
            targets["labels"],
            level=o.get("level", "feature"),
            distance=o.get("re_loss", "l1"),
            reduction=o.get("re_loss_option", "masking"),
        )
        # without L_re its options are not in the stage's arguments (relevant() drops them)
        alpha = puzzle_alpha(progress, o["alpha"], o.get("alpha_schedule", 0.5)) if "re" in self.terms else 0.0
        return sum((alpha if name == "re" else 1.0) * terms[name] for name in self.terms)
