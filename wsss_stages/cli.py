"""``wsss <stage> [--option value …]``: one subcommand per stage.

Each stage module ``wsss_stages/<stage>.py`` defines a function of the same name that takes
keyword-only arguments. The command line is derived from that signature (type hints and the
``Args:`` section of its docstring), so the function is the single definition of a stage's
interface and the CLI cannot drift from it. Only the chosen stage's module is imported.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import logging
import sys
import time
import types
import typing

from wsss_stages import WsssError, __version__

STAGES: dict[str, str] = {
    "make_demo_data": "generate the built-in synthetic dataset in VOC layout",
    "train_classifier": "train the multi-label GAP classifier (resumable)",
    "make_cams": "multi-scale + flip class activation maps (CAM or Grad-CAM) for each image's classes",
    "train_erasing": "adversarial erasing (AE-PSL): classifiers on ever more erased images, fused seeds",
    "eval_cams": "background-threshold sweep of CAMs against masks",
    "tune_crf": "sweep the CRF background score on the seed split",
    "refine_crf": "dense CRF on CAM scores or random-walk scores",
    "make_affinity_labels": "confident fg / bg / unsure labels from CAMs for AffinityNet",
    "train_affinitynet": "train the inter-pixel affinity network (resumable)",
    "random_walk": "propagate CAMs by a random walk on learned affinities (sparse, bounded memory)",
    "make_pseudo_masks": "score maps -> palette PNG pseudo-masks (optional 255 band)",
    "eval_pseudo_masks": "score pseudo-masks against ground truth",
    "train_segmentation": "train DeepLab on pseudo-masks (resumable)",
    "predict_segmentation": "predict masks with the segmentation network",
    "eval_segmentation": "score predicted masks against ground truth",
    "summarize_metrics": "collect the headline numbers into metrics.json / metrics.md",
    "write_benchmark": "quality per stage, the fully-supervised upper bound and per-job cost: benchmark.md / .csv",
    "write_leaderboard": "compare several experiments (seeds, pseudo-masks, final val, wall time): leaderboard.md / .csv / .png",
}


def stage_function(stage: str):
    module = importlib.import_module(f"wsss_stages.{stage}")
    return getattr(module, stage)


def _docstring_args(func) -> dict[str, str]:
    """Parse ``name: text`` lines of the ``Args:`` section of a docstring."""
    doc = inspect.getdoc(func) or ""
    helps: dict[str, str] = {}
    in_args, current = False, None
    for line in doc.splitlines():
        if line.strip() == "Args:":
            in_args = True
            continue
        if not in_args:
            continue
        if line and not line.startswith(" "):
            break
        stripped = line.strip()
        if ":" in stripped and line.startswith("    ") and not line.startswith("     "):
            current, text = stripped.split(":", 1)
            helps[current.strip()] = text.strip()
        elif current and stripped:
            helps[current] += " " + stripped
    return helps


def _unwrap_optional(hint):
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return hint, False


def _add_argument(parser: argparse.ArgumentParser, name: str, hint, default, help_text: str) -> None:
    flag = "--" + name.replace("_", "-")
    hint, optional = _unwrap_optional(hint)
    kwargs: dict = {"dest": name, "help": help_text}
    if default is inspect.Parameter.empty:
        kwargs["required"] = True
    else:
        kwargs["default"] = default
        kwargs["help"] = f"{help_text} (default: {default})"
    origin = typing.get_origin(hint)
    if hint is bool:
        kwargs["action"] = argparse.BooleanOptionalAction
    elif origin in (list, tuple):
        (item,) = set(typing.get_args(hint)) - {Ellipsis}
        kwargs.update(nargs="+", type=item)
    elif origin is typing.Literal:
        kwargs.update(choices=typing.get_args(hint), type=type(typing.get_args(hint)[0]))
    else:
        kwargs["type"] = hint
    if optional and kwargs.get("type") in (float, int):
        kwargs["type"] = _none_or(kwargs["type"])
    parser.add_argument(flag, **kwargs)


def _none_or(kind):
    def convert(text: str):
        return None if text.lower() in ("none", "null") else kind(text)

    convert.__name__ = kind.__name__
    return convert


def build_parser(stage: str) -> argparse.ArgumentParser:
    func = stage_function(stage)
    doc = inspect.getdoc(func) or ""
    parser = argparse.ArgumentParser(
        prog=f"wsss {stage}", description=doc.split("\n\nArgs:")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    hints = typing.get_type_hints(func)
    helps = _docstring_args(func)
    for name, param in inspect.signature(func).parameters.items():
        _add_argument(parser, name, hints[name], param.default, helps.get(name, ""))
    return parser


def _top_level_help() -> str:
    width = max(map(len, STAGES))
    lines = [f"wsss {__version__}: weakly-supervised semantic segmentation stages", "",
             "usage: wsss STAGE [options]   (wsss STAGE --help for a stage's options)", "", "stages:"]
    lines += [f"  {name:<{width}}  {text}" for name, text in STAGES.items()]
    return "\n".join(lines)


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S", stream=sys.stderr, force=True)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_top_level_help())
        return 0 if argv else 2
    if argv[0] == "--version":
        print(__version__)
        return 0
    stage, rest = argv[0], argv[1:]
    if stage not in STAGES:
        print(f"wsss: unknown stage '{stage}'\n\n{_top_level_help()}", file=sys.stderr)
        return 2
    args = vars(build_parser(stage).parse_args(rest))
    setup_logging()
    log = logging.getLogger(f"wsss.{stage}")
    log.info("wsss %s %s", stage, " ".join(rest))
    start = time.perf_counter()
    try:
        stage_function(stage)(**args)
    except WsssError as exc:
        log.error("%s", exc)
        print(f"wsss {stage}: error: {exc}", file=sys.stderr)
        return 1
    log.info("%s finished in %.1f s", stage, time.perf_counter() - start)
    return 0
