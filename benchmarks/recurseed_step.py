"""What one RecurSeed training step costs against CAM's, on this machine.

    python benchmarks/recurseed_step.py --configfile configs/voc12_cpu.yaml [--steps 3] [--threads 1]

Times forward + backward of one batch at the config's backbone, crop and batch size (random images,
one labelled class each, fp32) for CAM, RecurSeed without a mix and RecurSeed with each mix (mixing on
from the first step), after one warm-up step each; prints the seconds per step, the ratio to CAM and
the process's peak memory. Name the CPU with the numbers: ratios hold on one machine only.
"""

from __future__ import annotations

import argparse
import functools
import resource
import time

import yaml


def step_seconds(loss_of, steps: int) -> float:
    loss_of().backward()  # warm-up: allocations, oneDNN kernels
    start = time.perf_counter()
    for _ in range(steps):
        loss_of().backward()
    return (time.perf_counter() - start) / steps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configfile", default="configs/voc12_cpu.yaml")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch
    import torch.nn.functional as F

    from wsss_stages.lib.data.provenance import machine
    from wsss_stages.lib.nets.classifier import MethodContext
    from wsss_stages.lib.nets.models import CamClassifier, backbone_from_config
    from wsss_stages.lib.plan.config import validate_config
    from wsss_stages.methods.recurseed.recurseed import MIXES, RecurSeed

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with open(args.configfile) as handle:
        config = yaml.safe_load(handle)
    config["train_classifier"]["method"] = "recurseed"
    config["data_root"] = "."  # only the training sections are read
    section = validate_config(config)["train_classifier"]
    training, classes = section["training"], 20
    x = torch.randn(training["batch_size"], 3, training["crop_size"], training["crop_size"])
    labels = torch.zeros(training["batch_size"], classes)
    labels[torch.arange(len(labels)), torch.arange(len(labels)) % classes] = 1
    backbone = backbone_from_config(section["backbone"])
    cam = CamClassifier(backbone, classes)
    rows = [("CAM", step_seconds(lambda: F.multilabel_soft_margin_loss(cam(x), labels), args.steps))]
    context = MethodContext(dataset=None, ids=[], mean=backbone.mean, std=backbone.std, seed=0)
    for mix in MIXES:
        method = RecurSeed({**section["recurseed"], "mix": mix, "warmup": 0.0}, context)
        net = method.build(backbone_from_config(section["backbone"]), classes)
        name = "RecurSeed" if mix == "none" else f"RecurSeed + {mix}"
        loss_of = functools.partial(method.loss, net, x, {"labels": labels}, 0.5)
        rows.append((name, step_seconds(loss_of, args.steps)))
    cpu = machine()
    print(
        f"{cpu['cpu']} ({', '.join(cpu['cpu_flags'])}), {args.threads} thread(s), fp32, batch {len(x)}, "
        f"crop {x.shape[-1]}, {section['backbone']['name']}"
    )
    print("| training step | s | × CAM |\n| --- | ---: | ---: |")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.2f} | {seconds / rows[0][1]:.2f} |")
    print(f"peak memory of the process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
