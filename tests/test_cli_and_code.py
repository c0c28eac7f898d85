import subprocess
import sys

import pytest

from conftest import REPO
from wsss_stages.cli import STAGES, build_parser, main
from wsss_stages.codedeps import stage_code_files


def test_every_stage_builds_a_parser_from_its_signature():
    for stage in STAGES:
        parser = build_parser(stage)
        assert parser.prog == f"wsss {stage}"


def test_parser_types_lists_and_booleans():
    args = build_parser("make_cams").parse_args(
        ["--model", "m.pt", "--data-root", "r", "--splits", "train", "val", "--out-dir", "o", "--scales", "1", "0.5", "--no-flip"])
    assert args.scales == [1.0, 0.5] and args.flip is False and args.splits == ["train", "val"]


def test_stage_error_exits_non_zero_with_message(tmp_path, capsys):
    code = main(["eval_cams", "--cams", str(tmp_path), "--data-root", str(tmp_path / "missing"), "--split", "train",
                 "--out-csv", "a", "--out-best", "b", "--out-per-class", "c", "--out-plot", "d"])
    assert code == 1
    assert "data_root" in capsys.readouterr().err


def test_module_entry_point_lists_stages():
    out = subprocess.run([sys.executable, "-m", "wsss_stages", "--help"], cwd=REPO, capture_output=True, text=True, check=True)
    assert all(stage in out.stdout for stage in STAGES)


def test_code_dependencies_follow_imports():
    files = stage_code_files("refine_crf")
    names = {p.rsplit("/", 1)[-1] for p in files}
    assert {"refine_crf.py", "crf.py", "artifacts.py", "voc.py", "parallel.py"} <= names
    assert "train_segmentation.py" not in names


def test_bad_threshold_argument_is_rejected(tmp_path):
    from wsss_stages import WsssError
    from wsss_stages.refine_crf import resolve_bg_threshold

    with pytest.raises(WsssError, match=r"outside \[0, 1\]"):
        resolve_bg_threshold(1.5, None)
