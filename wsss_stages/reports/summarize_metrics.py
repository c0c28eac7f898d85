"""Collect the headline numbers of an experiment into metrics.json and a markdown table."""

from __future__ import annotations

import logging
from pathlib import Path

from wsss_stages.lib.data.artifacts import atomic_path, read_json, read_manifest, write_json
from wsss_stages.lib.data.provenance import provenance
from wsss_stages.lib.evaluation.reports import markdown_table

log = logging.getLogger(__name__)


MASK_SCORES = ("precision", "recall", "fp_rate", "fn_rate")
LABEL_SCORES = ("foreground_share", "missed_labels", "extra_labels")


def scalars(scores: dict) -> dict:
    """The scores of one result next to its mIoU: against masks, or against the labels (labels-only)."""
    return {k: scores.get(k) for k in (LABEL_SCORES if scores.get("labels_only") else MASK_SCORES)}


def label_note(scores: dict | None) -> str:
    if not scores or scores.get("foreground_share") is None:
        return ""
    return (
        f"no masks: foreground {scores['foreground_share']:.1f} %, "
        f"{scores['missed_labels']:.1f} % of labels missed, {scores['extra_labels']:.1f} % extra"
    )


def miou_cell(value: float | None) -> str:
    return "n/a (no masks)" if value is None else f"{value:.2f}"


def metrics_table(metrics: dict) -> str:
    rule = metrics.get("threshold_rule") or "sweep"
    how = "best" if rule == "sweep" else f"{rule} rule's"
    rows = [
        (
            "CAM seeds",
            metrics["seed_split"],
            metrics["cam_miou"],
            "; ".join(
                filter(None, [f"{how} bg threshold {metrics['cam_bg_threshold_best']:.2f}", label_note(metrics["cam"])])
            ),
        ),
    ]
    if metrics.get("cam_val_split") is not None:
        rows.append(
            (
                "CAM seeds",
                metrics["cam_val_split"],
                metrics["cam_miou_val"],
                "; ".join(
                    filter(None, [f"at the threshold of {metrics['seed_split']}", label_note(metrics.get("cam_val"))])
                ),
            )
        )
    threshold = metrics["pseudo_mask_bg_threshold"]
    rows += [
        (
            f"pseudo-masks ({metrics['refinement']})",
            metrics["seed_split"],
            metrics["pseudo_mask_miou"],
            "; ".join(
                filter(
                    None,
                    [
                        "background of its own" if threshold is None else f"background score {threshold:.2f}",
                        label_note(metrics["pseudo_mask"]),
                    ],
                )
            ),
        ),
    ]
    rows += [
        (
            f"pseudo-masks ({name})",
            metrics["seed_split"],
            miou,
            "; ".join(filter(None, ["compared only", label_note(metrics["pseudo_mask_by_refinement"].get(name))])),
        )
        for name, miou in metrics["pseudo_mask_miou_by_refinement"].items()
        if name != metrics["refinement"]
    ]
    if metrics["val_split"] is not None:
        note = "; ".join(filter(None, ["final network", label_note(metrics["segmentation"])]))
        rows.append(("segmentation", metrics["val_split"], metrics["segmentation_miou"], note))
    if metrics.get("decoder_net") is not None:
        note = "; ".join(
            filter(None, ["trained with the classifier, no second training", label_note(metrics["decoder_net"])])
        )
        rows.append(("the classifier's decoder", metrics["decoder_net_split"], metrics["decoder_net_miou"], note))
    lines = [f"## {metrics['experiment']}", ""]
    if metrics.get("labels_only"):
        lines += [
            "No image of the seed split has a mask: no mIoU is computed. Thresholds were chosen by the "
            f"{rule} rule; each row says what its label maps show against the image labels.",
            "",
        ]
    lines += markdown_table(
        ["stage", "split", "mIoU (%)", "note"],
        [[n, s, miou_cell(m), note] for n, s, m, note in rows],
        right={"mIoU (%)"},
    )
    if metrics.get("classifier_map"):
        maps = [["image labels", split, f"{value:.2f}"] for split, value in metrics["classifier_map"].items()]
        lines += ["", *markdown_table(["classifier", "split", "mAP (%)"], maps, right={"mAP (%)"})]
    return "\n".join(lines) + "\n"


def pseudo_mask_threshold(mask_dir: Path) -> float | None:
    """The background score behind a pseudo-mask folder: its own, or that of the score maps it came from;
    None for score maps with a background of their own (e.g. psa's walked background channel)."""
    manifest = read_manifest(mask_dir, "masks")
    if manifest.get("bg_threshold") is not None:
        return float(manifest["bg_threshold"])
    value = read_manifest(manifest["source"]).get("bg_threshold")
    return None if value is None else float(value)


def summarize_metrics(
    *,
    cam_best: Path,
    pseudo_masks: Path,
    pseudo_mask_dir: Path,
    segmentation: Path | None,
    cam_val: Path | None,
    compare: list[str],
    classifier_info: Path,
    classifier_map: Path,
    seeds: Path,
    decoder_net: Path | None,
    out_json: Path,
    out_md: Path,
    experiment: str,
    refinement: str,
    threads: int = 1,
) -> None:
    """Write results/<experiment>/metrics.json and metrics.md and print the table.

    Args:
        experiment: experiment name
        cam_best: best.json of eval_cams
        pseudo_masks: metrics JSON of eval_pseudo_masks
        pseudo_mask_dir: the pseudo-mask folder (its manifest names the thresholds used)
        segmentation: metrics JSON of eval_segmentation (None when DeepLab is disabled: reported as null)
        cam_val: metrics JSON of score_cams, the seeds on val at the train threshold (None: not scored)
        refinement: refinement used for the pseudo-masks
        out_json: metrics.json
        out_md: metrics.md
        compare: further pseudo-mask scores as refinement=metrics.json (e.g. none=…/metrics.json)
        classifier_info: train_classifier's settings record (its pretrained weights, precision and device)
        classifier_map: score_classifier's metrics JSON (the classifier's mAP per split)
        seeds: the seed CAM folder (its manifest says the inference precision)
        decoder_net: metrics JSON of eval_segmentation for the classifier's own decoder (RecurSeed), or None
        threads: unused
    """
    cam, pseudo = read_json(cam_best), read_json(pseudo_masks)
    seg = read_json(segmentation) if segmentation else {}
    cam_val_metrics = read_json(cam_val) if cam_val else {}
    metrics = {
        "experiment": experiment,
        "cam_miou": cam["miou"],
        "cam_miou_val": cam_val_metrics.get("miou"),
        "cam_val_split": cam_val_metrics.get("split"),
        "pseudo_mask_miou": pseudo["miou"],
        "segmentation_miou": seg.get("miou"),
        "refinement": refinement,
        "cam_bg_threshold_best": cam["best_threshold"],
        "pseudo_mask_bg_threshold": pseudo_mask_threshold(Path(pseudo_mask_dir)),
        "seed_split": cam["split"],
        "seed_images": cam["images"],
        "val_split": seg.get("split"),
        "val_images": seg.get("images"),
        "labels_only": bool(cam.get("labels_only")),
        "threshold_rule": cam.get("rule", "sweep"),
        "cam": scalars(cam),
        "cam_val": scalars(cam_val_metrics) if cam_val_metrics else None,
        "pseudo_mask": scalars(pseudo),
        "segmentation": (
            {k: seg.get(k) for k in ("precision", "recall", "pixel_accuracy")}
            if seg and not seg.get("labels_only")
            else (scalars(seg) if seg else None)
        ),
        "segmentation_per_class_iou": seg.get("per_class_iou"),
        "classifier_map": {split: score["map"] for split, score in read_json(classifier_map)["splits"].items()},
    }
    by_refinement, details = {refinement: pseudo["miou"]}, {refinement: scalars(pseudo)}
    for item in compare or []:
        name, path = item.split("=", 1)
        compared = read_json(Path(path))
        by_refinement[name], details[name] = compared["miou"], scalars(compared)
    metrics["pseudo_mask_miou_by_refinement"] = by_refinement
    decoder = read_json(decoder_net) if decoder_net else {}
    metrics["decoder_net_miou"] = decoder.get("miou")
    metrics["decoder_net"] = scalars(decoder) if decoder else None
    metrics["decoder_net_split"] = decoder.get("split")
    metrics["pseudo_mask_by_refinement"] = details
    info = read_json(classifier_info)
    metrics["provenance"] = {
        **provenance(),
        "classifier": {k: info.get(k) for k in ("weights_source", "precision_used", "device_used")},
        "cam_precision": read_manifest(seeds).get("dtype"),
    }
    write_json(out_json, metrics)
    table = metrics_table(metrics)
    with atomic_path(out_md) as tmp:
        tmp.write_text(table)
    print(table, flush=True)
    log.info("wrote %s and %s", out_json, out_md)
