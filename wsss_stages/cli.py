"""``wsss <stage> [--option value …]``: one subcommand per registered stage.

Each stage's module defines a function of the same name that takes keyword-only arguments. The
command line is derived from that signature (type hints and the ``Args:`` section of its
docstring), so the function is the single definition of a stage's interface and the CLI cannot
drift from it. Values take the form the generated rule commands pass: booleans as true/false,
config sections as JSON objects, "None" for an absent value. Only the chosen stage's module is imported.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import logging
import sys
import time
import types
import typing

from wsss_stages import WsssError, __version__
from wsss_stages.lib.plan.declare import load_plugins


def stages() -> dict:
    """The registered stages (core, built-in plug-ins, and the modules named in WSSS_PLUGINS)."""
    return load_plugins().stages


def stage_function(stage: str):
    declared = stages().get(stage)
    if declared is None:
        raise WsssError(f"unknown stage '{stage}'")
    return getattr(importlib.import_module(declared.module_name), stage)


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


def _boolean(text: str) -> bool:
    value = text.strip().lower()
    if value not in ("true", "false", "1", "0", "yes", "no"):
        raise argparse.ArgumentTypeError(f"expected true or false, not {text!r}")
    return value in ("true", "1", "yes")


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"expected a JSON object ({exc})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object")
    return value


def _none_or(kind):
    def convert(text: str):
        return None if text.lower() in ("none", "null", "") else kind(text)

    convert.__name__ = getattr(kind, "__name__", "value")
    return convert


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
        kwargs["type"] = _boolean
        kwargs["metavar"] = "{true,false}"
    elif hint is dict or origin is dict:
        kwargs["type"] = _json_object
        kwargs["metavar"] = "JSON"
    elif origin in (list, tuple):
        (item,) = set(typing.get_args(hint)) - {Ellipsis}
        kwargs.update(nargs="*", type=item)
    else:
        kwargs["type"] = hint
    if optional:
        kwargs["type"] = _none_or(kwargs["type"])
    parser.add_argument(flag, **kwargs)


def _optional_list(values):
    """``--x None`` for an optional list parses as [None]: that is None."""
    return None if values == [None] else values


def build_parser(stage: str) -> argparse.ArgumentParser:
    func = stage_function(stage)
    doc = inspect.getdoc(func) or ""
    parser = argparse.ArgumentParser(
        prog=f"wsss {stage}",
        description=doc.split("\n\nArgs:")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    hints = typing.get_type_hints(func)
    helps = _docstring_args(func)
    for name, param in inspect.signature(func).parameters.items():
        # argparse %-formats help texts: a literal % in a docstring ("mAP (%)") must not end the help
        _add_argument(parser, name, hints[name], param.default, helps.get(name, "").replace("%", "%%"))
    return parser


def _top_level_help() -> str:
    registered = stages()
    width = max(map(len, registered))
    lines = [
        f"wsss {__version__}: weakly-supervised semantic segmentation stages",
        "",
        "usage: wsss STAGE [options]   (wsss STAGE --help for a stage's options)",
        "",
        "stages:",
    ]
    lines += [f"  {name:<{width}}  {stage.help}" for name, stage in registered.items()]
    return "\n".join(lines)


def setup_logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
        force=True,
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_top_level_help())
        return 0 if argv else 2
    if argv[0] == "--version":
        print(__version__)
        return 0
    stage, rest = argv[0], argv[1:]
    try:
        known = stage in stages()
    except WsssError as exc:
        print(f"wsss: error: {exc}", file=sys.stderr)
        return 2
    if not known:
        print(f"wsss: unknown stage '{stage}'\n\n{_top_level_help()}", file=sys.stderr)
        return 2
    args = {k: _optional_list(v) for k, v in vars(build_parser(stage).parse_args(rest)).items()}
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
