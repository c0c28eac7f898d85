"""Peak memory and time of one random walk on a 500x375 image (VOC's usual size).

    python benchmarks/random_walk_memory.py [--backbone tf_efficientnet_lite0] [--strides 4 8]

Each setting runs in a fresh process so its peak resident memory (ru_maxrss) is its own. The
walk uses irn's defaults (radius 5, beta 10, 2^8 steps) and two CAM channels.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time



def measure(backbone: str, stride: int, height: int, width: int) -> dict:
    import torch

    from wsss_stages.lib.affinity import AffinityNet
    from wsss_stages.lib.models import build_backbone
    from wsss_stages.random_walk import walk_cams

    torch.set_num_threads(2)
    net = AffinityNet(build_backbone(backbone, "none", 16 if backbone != "tiny" else 8), stride, 64).eval()
    image = torch.randn(1, 3, height, width)
    cams = torch.rand(2, height, width)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    with torch.inference_mode():
        embedding = net(image)[0]
        scores = walk_cams(embedding, cams, (height, width), beta=10, exp_times=8, radius=5)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"backbone": backbone, "stride": stride, "size": f"{width}x{height}", "pixels_walked": int(embedding[0].numel()),
            "seconds": round(seconds, 3), "peak_rss_mib": round(peak / 1024, 1),
            "walk_increment_mib": round((peak - base) / 1024, 1), "shape": list(scores.shape)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="tf_efficientnet_lite0")
    parser.add_argument("--strides", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--size", type=int, nargs=2, default=[375, 500], metavar=("H", "W"))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.backbone, args.strides[0], *args.size)))
        return
    print("| backbone | stride | image | pixels walked | s / image | peak RSS (MiB) | added by the walk (MiB) |")
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: |")
    for stride in args.strides:
        out = subprocess.run([sys.executable, __file__, "--child", "--backbone", args.backbone, "--strides", str(stride),
                              "--size", *map(str, args.size)], capture_output=True, text=True, check=True)  # fmt: skip
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"| {r['backbone']} | {r['stride']} | {r['size']} | {r['pixels_walked']} | {r['seconds']} | "
              f"{r['peak_rss_mib']} | {r['walk_increment_mib']} |")


if __name__ == "__main__":
    main()
