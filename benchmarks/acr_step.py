"""What one ACR training step costs against CAM's, on this machine.

    python benchmarks/acr_step.py --configfile configs/voc12_cpu.yaml [--overlay configs/experiments/acr.yaml]
        [--steps 3] [--threads 1]

Times one step of the config's backbone, crop and batch size (random images, one labelled class each,
fp32): CAM's forward + backward, ACR's reconstructor update alone, its classifier update alone and the
adversarial step (both), with the ``acr.reconstructor`` sizes of the config (the overlay's top level
wins); after one warm-up step each. Prints seconds per step, the ratio to CAM and the process's peak
memory. Name the CPU with the numbers: ratios hold on one machine only.
"""

from __future__ import annotations

import argparse
import resource
import time

import yaml


def seconds_per_call(call, steps: int) -> float:
    call()  # warm-up: allocations, oneDNN kernels
    start = time.perf_counter()
    for _ in range(steps):
        call()
    return (time.perf_counter() - start) / steps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configfile", default="configs/voc12_cpu.yaml")
    parser.add_argument("--overlay", default="configs/experiments/acr.yaml")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch
    import torch.nn.functional as F

    from wsss_stages.lib.data.provenance import machine
    from wsss_stages.lib.nets.models import CamClassifier, backbone_from_config
    from wsss_stages.lib.nets.training import make_optimizer
    from wsss_stages.lib.plan.config import validate_config
    from wsss_stages.lib.plan.experiments import deep_merge
    from wsss_stages.methods.acr.acr import ACRPair, ACRUpdate, OptimizerPair, Reconstructor, unet_levels

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with open(args.configfile) as handle:
        config = yaml.safe_load(handle)
    with open(args.overlay) as handle:
        overlay = yaml.safe_load(handle) or {}
    config = deep_merge(config, {"acr": {**overlay.get("acr", {}), "enabled": True}})
    config["data_root"] = "."  # only the training sections are read
    config = validate_config(config)
    section, acr = config["train_classifier"], config["acr"]
    training, classes = section["training"], 20
    x = torch.randn(training["batch_size"], 3, training["crop_size"], training["crop_size"])
    labels = torch.zeros(training["batch_size"], classes)
    labels[torch.arange(len(labels)), torch.arange(len(labels)) % classes] = 1
    cam = CamClassifier(backbone_from_config(section["backbone"]), classes)
    rows = [("CAM", seconds_per_call(lambda: F.multilabel_soft_margin_loss(cam(x), labels).backward(), args.steps))]
    sizes = acr["reconstructor"]
    c = CamClassifier(backbone_from_config(section["backbone"]), classes)
    r_backbone = backbone_from_config(section["backbone"])
    levels = unet_levels(round(training["crop_size"] * sizes["scale"]), sizes["levels"])
    r = Reconstructor(r_backbone, classes, sizes["feature_dim"], sizes["reduce"], sizes["width"], levels)
    rates = (training["lr"], training["head_lr_mult"], training["weight_decay"], training["momentum"])
    optimizers = OptimizerPair(
        make_optimizer(c, c.head_parameters(), *rates), make_optimizer(r, r.head_parameters(), *rates)
    )
    pair = ACRPair(c, r)
    update = ACRUpdate(
        optimizers, "adversarial", acr["weights"], acr["srf"], r_backbone.mean, r_backbone.std, 100, sizes["scale"]
    )
    chosen = torch.arange(len(x)) % classes
    fp32 = lambda: torch.autocast("cpu", enabled=False)  # noqa: E731
    generator = torch.Generator().manual_seed(0)
    rows.append(
        (
            "ACR: R's update",
            seconds_per_call(
                lambda: update.reconstructor_step(pair, x, labels, chosen, 0.4, generator, fp32), args.steps
            ),
        )
    )
    rows.append(
        ("ACR: C's update", seconds_per_call(lambda: update.classifier_step(pair, x, labels, chosen, fp32), args.steps))
    )
    rows.append(("ACR: adversarial step (both)", rows[-1][1] + rows[-2][1]))
    cpu = machine()
    print(
        f"{cpu['cpu']} ({', '.join(cpu['cpu_flags'])}), {args.threads} thread(s), fp32, batch {len(x)}, "
        f"crop {x.shape[-1]}, {section['backbone']['name']}, reconstructor {sizes}"
    )
    print("| training step | s | × CAM |\n| --- | ---: | ---: |")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.2f} | {seconds / rows[0][1]:.2f} |")
    print(f"peak memory of the process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
