"""Paired per-image bootstrap of two scored artifacts (their ``per_image.npz``) on the images both scored.

    python benchmarks/paired.py results/b/eval_pseudo_masks/sec/per_image.npz
    results/a/eval_pseudo_masks/none/per_image.npz

Prints mIoU(B), mIoU(A), B − A and its 95 % interval (1000 resamples of the images,
``stats.paired_bootstrap``). It answers "is B better than A on these images"; it says nothing of the
spread between retrained classifiers (that needs repeats).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main() -> None:
    from wsss_stages.lib.data.artifacts import load_confusions
    from wsss_stages.lib.evaluation.stats import describe_difference, miou_of, paired_difference

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("b", type=Path, help="per_image.npz of the method")
    parser.add_argument("a", type=Path, help="per_image.npz of the baseline")
    args = parser.parse_args()
    b, a = load_confusions(args.b), load_confusions(args.a)
    common = sorted(set(a[0]) & set(b[0]))
    print(
        f"B {miou_of(b[1].sum(0)):.2f} ({len(b[0])} images), A {miou_of(a[1].sum(0)):.2f} ({len(a[0])} images); "
        f"B - A on {len(common)} common images: {describe_difference(*paired_difference(b, a))}"
    )


if __name__ == "__main__":
    main()
