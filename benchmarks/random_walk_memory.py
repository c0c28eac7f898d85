"""Peak memory and time of one random walk on a 500x375 image (VOC's usual size), for both walks.

    python benchmarks/random_walk_memory.py [--backbone tf_efficientnet_lite0] [--methods irn psa]

Each walk runs in a fresh process so its peak resident memory (ru_maxrss) is its own: irn's (the
boundary network at stride 4, path-max affinities, beta 10) and psa's (AffinityNet's embedding at
stride 8, a walked background channel, beta 8), both radius 5 and 2^8 steps, with two CAM channels.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

from wsss_stages.lib.evaluation.reports import markdown_table


def measure(backbone: str, method: str, height: int, width: int) -> dict:
    import torch

    from wsss_stages.lib.nets.models import build_backbone
    from wsss_stages.refiners.random_walk.affinity import AffinityNet, BoundaryNet
    from wsss_stages.refiners.random_walk.random_walk import walk_with_background, walk_with_boundary

    torch.set_num_threads(2)
    features = build_backbone(backbone, "none", 16 if backbone != "tiny" else 8)
    net = (BoundaryNet(features) if method == "irn" else AffinityNet(features, 8, 64)).eval()
    image = torch.randn(1, 3, height, width)
    cams = torch.rand(2, height, width)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    with torch.inference_mode():
        if method == "irn":
            grid = net.boundary(image)
            walked = walk_with_boundary(grid, cams, (height, width), beta=10, exp_times=8, radius=5)
        else:
            grid = net(image)[0]
            walked = walk_with_background(grid, cams, (height, width), beta=8, exp_times=8, radius=5, bg_power=16)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "backbone": backbone,
        "method": method,
        "size": f"{width}x{height}",
        "pixels_walked": int(grid.shape[-1] * grid.shape[-2]),
        "seconds": round(seconds, 3),
        "peak_rss_mib": round(peak / 1024, 1),
        "walk_increment_mib": round((peak - base) / 1024, 1),
        "shape": list(walked.shape),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="tf_efficientnet_lite0")
    parser.add_argument("--methods", nargs="+", default=["irn", "psa"], choices=["irn", "psa"])
    parser.add_argument("--size", type=int, nargs=2, default=[375, 500], metavar=("H", "W"))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.backbone, args.methods[0], *args.size)))
        return
    columns = ["backbone", "walk", "image", "pixels walked", "s / image", "peak RSS (MiB)"]
    columns.append("added by network + walk (MiB)")
    cells = []
    for method in args.methods:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                "--backbone",
                args.backbone,
                "--methods",
                method,
                "--size",
                *map(str, args.size),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        r = json.loads(out.stdout.strip().splitlines()[-1])
        cells.append([r["backbone"], r["method"], r["size"], r["pixels_walked"], r["seconds"]])
        cells[-1] += [r["peak_rss_mib"], r["walk_increment_mib"]]
    print("\n".join(markdown_table(columns, cells, right=set(columns[3:]))))


if __name__ == "__main__":
    main()
