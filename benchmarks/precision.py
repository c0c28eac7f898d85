"""Does bf16 autocast pay on this machine? Inference and training steps of a backbone, fp32 against bf16.

    python benchmarks/precision.py [--backbone tf_efficientnet_lite0] [--threads 2]

Random tensors of the preset's shapes (no data loading: this is the compute limit), channels-last,
the same thread count for both: one CAM forward at 512 px (the image and its flip), and one
classifier training step (forward, backward, SGD) at 256 px, batch 8. Prints images per second
and the speed-up, and what the CPU offers (AMX tiles, AVX512-BF16), so that ``precision: auto``
can be checked against a measurement on each kind of machine.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from wsss_stages.lib.evaluation.reports import markdown_table
from wsss_stages.lib.nets.models import CamClassifier, build_backbone
from wsss_stages.lib.nets.runtime import native_bf16


def timed(step, repeats: int) -> float:
    step()  # warm-up: oneDNN picks its kernels on the first call
    step()
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    return (time.perf_counter() - start) / repeats


def inference_step(net, size: int, dtype):
    x = torch.randn(2, 3, size, size).contiguous(memory_format=torch.channels_last)

    def step():
        with torch.inference_mode(), torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
            net.class_maps(x)

    return step, 2


def training_step(net, size: int, batch: int, dtype):
    x = torch.randn(batch, 3, size, size).contiguous(memory_format=torch.channels_last)
    y = (torch.rand(batch, 20) > 0.8).float()
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)

    def step():
        with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = F.multilabel_soft_margin_loss(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step, batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", default="tf_efficientnet_lite0")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cpu = torch.cpu
    print(
        f"CPU: AMX tiles {cpu._is_amx_tile_supported()}, AVX512-BF16 {cpu._is_avx512_bf16_supported()}, "
        f"AVX512 {cpu._is_avx512_supported()}; precision auto picks bf16 here: {native_bf16(torch.device('cpu'))}"
    )
    print(f"{args.backbone}, {args.threads} threads, channels-last\n")
    cells = []
    for name, make in (
        ("CAM forward, 512 px, image + flip", lambda net, d: inference_step(net.eval(), 512, d)),
        ("training step, 256 px, batch 8", lambda net, d: training_step(net.train(), 256, 8, d)),
    ):
        rates = []
        for dtype in (None, torch.bfloat16):
            torch.manual_seed(0)
            net = CamClassifier(build_backbone(args.backbone, "none", 16), 20).to(memory_format=torch.channels_last)
            step, images = make(net, dtype)
            rates.append(images / timed(step, args.repeats))
        cells.append([name, f"{rates[0]:.1f}", f"{rates[1]:.1f}", f"{rates[1] / rates[0]:.2f}x"])
    columns = ["step", "fp32 images/s", "bf16 images/s", "speed-up"]
    print("\n".join(markdown_table(columns, cells, right=set(columns[1:]))))


if __name__ == "__main__":
    main()
