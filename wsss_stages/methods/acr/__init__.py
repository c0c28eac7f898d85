"""ACR: a classifier trained adversarially against an inpainting reconstructor (stage train_acr)."""
