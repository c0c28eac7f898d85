"""Hide-and-Seek's training: CAM's loss on images with random grid patches hidden."""

from __future__ import annotations

from wsss_stages.methods.cam.cam import CamMethod


class HideAndSeekMethod(CamMethod):
    def augment(self, augment):
        from wsss_stages.lib.nets.seed_methods import HideAndSeek, normalised_fill

        mean_rgb = self.context.mean_rgb
        self.context.log.info(
            "Hide-and-Seek: patches %s px, p=%.2f, filled with the dataset mean RGB %s",
            list(self.options["patch_sizes"]),
            self.options["prob"],
            [round(v, 1) for v in mean_rgb],
        )
        fill = normalised_fill(mean_rgb, self.context.mean, self.context.std)
        return HideAndSeek(augment, self.options["patch_sizes"], self.options["prob"], fill, self.context.seed)
