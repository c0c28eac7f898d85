import subprocess
import sys

import pytest
from conftest import REPO

from wsss_stages.cli import build_parser, main, stages
from wsss_stages.lib.plan.codedeps import behaviour, code_files, code_fingerprint


def test_every_stage_builds_a_parser_from_its_signature():
    for stage in stages():
        parser = build_parser(stage)
        assert parser.prog == f"wsss {stage}"


def test_parser_types_lists_and_booleans():
    args = build_parser("make_cams").parse_args(
        [
            "--model",
            "m.pt",
            "--data-root",
            "r",
            "--splits",
            "train",
            "val",
            "--out-dir",
            "o",
            "--out-val-dir",
            "v",
            "--val-split",
            "None",
            "--scales",
            "1",
            "0.5",
            "--flip",
            "False",
            "--precision",
            "auto",
            "--cam-type",
            "cam",
            "--cam-options",
            '{"a": 1}',
            "--device",
            "cpu",
        ]
    )
    assert (
        args.scales == [1.0, 0.5]
        and args.flip is False
        and args.splits == ["train", "val"]
        and args.cam_options == {"a": 1}
    )
    assert args.val_split is None


def test_stage_error_exits_non_zero_with_message(tmp_path, capsys):
    code = main(
        [
            "eval_cams",
            "--cams",
            str(tmp_path),
            "--data-root",
            str(tmp_path / "missing"),
            "--split",
            "train",
            "--out-csv",
            "a",
            "--out-best",
            "b",
            "--out-per-class",
            "c",
            "--out-plot",
            "d",
            "--thresholds",
            "0.1",
            "--rule",
            "auto",
            "--mask-folder",
            "None",
        ]
    )
    assert code == 1
    assert "data_root" in capsys.readouterr().err


def test_module_entry_point_lists_stages():
    out = subprocess.run(
        [sys.executable, "-m", "wsss_stages", "--help"], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert all(stage in out.stdout for stage in stages())


@pytest.mark.parametrize("stage", sorted(stages()))
def test_every_stage_prints_its_help(stage):
    text = build_parser(stage).format_help()  # a stray % in a docstring made `wsss train_erasing --help` crash
    assert f"wsss {stage}" in text


def test_code_dependencies_follow_imports_and_stay_narrow():
    names = {p.rsplit("/", 1)[-1] for p in code_files("wsss_stages.refiners.crf.refine_crf")}
    assert {"refine_crf.py", "densecrf.py", "artifacts.py", "voc.py", "parallel.py", "runtime.py"} <= names
    # editing training code (TrainLoop) or another stage never reruns the CRF
    assert not names & {"training.py", "models.py", "train_segmentation.py", "make_cams.py", "declare.py", "plugin.py"}
    # training and CAMs follow how plug-ins are loaded (registry.py), not the declarations' shape (declare.py,
    # plugin.py) nor what is imported only for type annotations (cams.py's CamSource)
    for stage, method in (
        ("train_classifier", "wsss_stages.methods.cam.cam"),
        ("make_cams", "wsss_stages.methods.gradcam.gradcam"),
    ):
        names = {p.rsplit("/", 1)[-1] for p in code_files(f"wsss_stages.stages.{stage}", method)}
        assert "registry.py" in names and not names & {"declare.py", "plugin.py", "config.py"}, stage


def test_a_fingerprint_ignores_comments_docstrings_and_layout_but_not_expressions(tmp_path):
    def fingerprint(text: str) -> str:
        path = tmp_path / f"module{len(list(tmp_path.iterdir()))}.py"  # a new file each time: parses are cached
        path.write_text(text)
        return behaviour(path)

    base = fingerprint('"""Doc."""\n\ndef f(x):\n    """Adds one."""\n    return x + 1\n')
    assert (
        fingerprint(
            '"""Other doc."""\n# a comment\n\n\ndef f(x):  # why\n    """Adds 1."""\n    return (x +\n            1)\n'
        )
        == base
    )
    assert fingerprint("def f(x):\n    return x + 1\n") == base  # no docstrings at all
    assert fingerprint('"""Doc."""\n\ndef f(x):\n    return x + 2\n') != base
    assert (
        fingerprint('"""Doc."""\n\ndef f(y):\n    return y + 1\n') != base
    )  # a renamed argument is an interface change


def test_a_fingerprint_covers_every_imported_module():
    crf = code_fingerprint("wsss_stages.refiners.crf.refine_crf")
    assert len(crf) == 16 and crf == code_fingerprint("wsss_stages.refiners.crf.refine_crf")
    assert crf != code_fingerprint("wsss_stages.refiners.pamr.refine_pamr")


def test_the_planning_side_never_imports_torch():
    # what the Snakefile imports to build the DAG, with every built-in plug-in registered
    code = (
        "import sys; from wsss_stages.lib.plan import codedeps, config, experiments, pipeline, shards, preflight; "
        "from wsss_stages.lib.plan.declare import load_plugins; load_plugins(); "
        "leaked = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision', 'timm')); "
        "print(leaked); "
        "sys.exit(1 if leaked else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_library_rooms_import_only_downwards():
    # plan imports nothing of data/nets/evaluation at import time except the artifact formats (for shards)
    import ast

    for path in (REPO / "wsss_stages/lib/plan").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.col_offset == 0:
                assert not node.module.startswith(
                    (
                        "wsss_stages.lib.nets",
                        "wsss_stages.lib.evaluation",
                        "wsss_stages.stages",
                        "wsss_stages.reports",
                        "wsss_stages.refiners",
                        "wsss_stages.methods",
                    )
                ), f"{path.name} imports {node.module}"


def test_no_stage_module_imports_another_stage_module():
    import ast

    from wsss_stages.lib.plan.declare import REGISTRY

    modules = {stage.module_name for stage in stages().values()}
    for stage in REGISTRY.stages.values():
        path = REPO / (stage.module_name.replace(".", "/") + ".py")
        imported = {
            n.module for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.ImportFrom) and n.module
        }
        assert not imported & (modules - {stage.module_name}), stage.name


def test_bad_threshold_argument_is_rejected(tmp_path):
    from wsss_stages import WsssError
    from wsss_stages.lib.evaluation.thresholds import resolve_threshold

    with pytest.raises(WsssError, match=r"outside \[0, 1\]"):
        resolve_threshold(1.5)
    assert resolve_threshold(0.25) == 0.25 and resolve_threshold(None) is None
    sweep = tmp_path / "best.json"
    sweep.write_text('{"best_threshold": 0.35}')
    assert resolve_threshold(None, sweep) == 0.35  # "auto": the sweep's best, a flag of its own


def test_a_threshold_and_its_sweep_are_two_flags():
    def parse(threshold: str, sweep: str):
        fixed = "--scores s --out-dir o --ignore-band None".split()
        return build_parser("make_pseudo_masks").parse_args(
            [*fixed, "--bg-threshold", threshold, "--bg-threshold-sweep", sweep]
        )

    args = parse("None", "b.json")  # "auto": the sweep's best
    assert args.bg_threshold is None and str(args.bg_threshold_sweep) == "b.json"
    args = parse("0.3", "None")  # a number
    assert args.bg_threshold == 0.3 and args.bg_threshold_sweep is None
