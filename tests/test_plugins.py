"""Plug-ins registered only through the documented point (the config key `plugins`): a toy classifier
method and a toy refiner, planned and run by the DAG with their own folders and rerun scope."""

import textwrap

import pytest
import yaml
from test_pipeline import planned_jobs, snakemake

pytestmark = pytest.mark.integration

# Each plug-in is one folder, as docs/extending.md shows: its registration in plugin.py, its code beside it.
TOY_FILES = {
    "toy_method/__init__.py": '''"""A toy classifier method: CAM's loss, weighted."""''',
    "toy_method/plugin.py": """
        from wsss_stages.lib.plan.declare import ClassifierMethod, register_method

        register_method(ClassifierMethod(
            "toy", impl="toy_method.loss:WeightedLoss", label=lambda o: f"Toy (w {o['weight']:g})",
            schema={"weight": {"type": "number", "default": 1.0, "description": "loss weight"}},
        ))
    """,
    "toy_method/loss.py": """
        class WeightedLoss:
            def __init__(self, options, context):
                self.weight = options["weight"]

            def loss(self, model, x, targets, progress):
                import torch.nn.functional as F

                return self.weight * F.multilabel_soft_margin_loss(model(x), targets["labels"])
    """,
    "toy_refiner/__init__.py": '''"""A toy refiner: box-filtered CAMs."""''',
    "toy_refiner/plugin.py": """
        from wsss_stages.lib.plan.declare import Output, Refiner, Stage, register_refiner
        from wsss_stages.lib.plan.pipeline import chain_ref

        SECTION = {"type": "object", "additionalProperties": False, "default": {}, "properties": {
            "width": {"type": "integer", "minimum": 1, "default": 3, "description": "box width"},
            "bg_threshold": {"$ref": "#/$defs/threshold_or_auto", "default": 0.3, "description": "threshold"},
        }}
        REFINE = Stage(
            "refine_toy", "box-filter CAMs", inputs=lambda cfg, source: {"cams": chain_ref(cfg, source)},
            input_args=("cams",), outputs={"out_dir": Output("{source}/cams", directory=True)},
            params={"width": "refine_toy.width"}, variant="source", module="toy_refiner.refine_toy",
        )
        register_refiner(Refiner(
            "toy", "box filter", apply="refine_toy", artifact="out_dir", output="cams",
            threshold="refine_toy.bg_threshold", stages=(REFINE,), sections={"refine_toy": SECTION},
        ))
    """,
    "toy_refiner/refine_toy.py": '''
        from pathlib import Path

        import numpy as np

        from wsss_stages.lib.data.artifacts import atomic_dir, load_cams, read_manifest, save_cams, write_manifest


        def refine_toy(*, cams: Path, data_root: Path, out_dir: Path, width: int, threads: int = 1) -> None:
            """Box-filter every CAM.

            Args:
                cams: CAM-format maps
                data_root: data root (unused)
                out_dir: output folder
                width: box width in pixels
                threads: unused
            """
            ids = read_manifest(cams, "cams")["ids"]
            kernel = np.ones(width) / width
            with atomic_dir(out_dir) as tmp:
                for image_id in ids:
                    maps, classes = load_cams(Path(cams) / f"{image_id}.npz")
                    maps = np.apply_along_axis(lambda row: np.convolve(row, kernel, mode="same"), -1, maps)
                    save_cams(tmp / f"{image_id}.npz", maps / max(maps.max(), 1e-5), classes.tolist())
                write_manifest(tmp, "cams", ids)
    ''',
}


def write_plugins(folder):
    for name, text in TOY_FILES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(textwrap.dedent(text).lstrip("\n"))


OVERLAY = {
    "plugins": ["toy_method.plugin", "toy_refiner.plugin"],
    "train_classifier": {"method": "toy", "training": {"epochs": 2}},
    "make_pseudo_masks": {"refinement": "toy", "compare": []},
    "train_segmentation": {"enabled": False},
}


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("plugins")
    write_plugins(workdir)
    overlay = workdir / "overlay.yaml"
    overlay.write_text(yaml.safe_dump(OVERLAY))
    env = {"PYTHONPATH": str(workdir)}
    snakemake(workdir, "all", overlays=(overlay,), env=env)
    return workdir, overlay, env


def test_plugins_run_in_their_own_folders(toy_run):
    workdir, _, _ = toy_run
    assert sorted(p.name for p in (workdir / "toy_refiner").glob("*.py")) == [
        "__init__.py",
        "plugin.py",
        "refine_toy.py",
    ]
    results = workdir / "results" / "tiny"
    assert (results / "refine_toy/cams/cams/manifest.json").is_file()
    assert (results / "make_pseudo_masks/toy/masks/manifest.json").is_file()
    record = yaml.safe_load((results / "train_classifier/model.json").read_text())
    assert record["method"] == "toy" and record["method_options"] == {"weight": 1.0}
    assert (results / "metrics.json").is_file() and "pseudo-masks (toy)" in (results / "metrics.md").read_text()


def test_plugin_settings_rerun_only_what_reads_them(toy_run):
    workdir, overlay, env = toy_run
    assert "Nothing to be done" in snakemake(workdir, "-n", overlays=(overlay,), env=env).stdout
    width = planned_jobs(
        snakemake(workdir, "-n", "--config", "refine_toy={width: 5}", overlays=(overlay,), env=env).stdout
    )
    assert width == {"refine_toy", "make_pseudo_masks", "eval_pseudo_masks", "summarize_metrics", "all"}
    threshold = planned_jobs(
        snakemake(workdir, "-n", "--config", "refine_toy={bg_threshold: 0.5}", overlays=(overlay,), env=env).stdout
    )
    assert threshold == {"make_pseudo_masks", "eval_pseudo_masks", "summarize_metrics", "all"}
    weight = planned_jobs(
        snakemake(workdir, "-n", "--config", "train_classifier={toy: {weight: 2}}", overlays=(overlay,), env=env).stdout
    )
    assert {"train_classifier", "make_cams", "refine_toy"} <= weight and "make_demo_data" not in weight


def test_plugin_refiner_chains_with_a_builtin_one(toy_run):
    workdir, overlay, env = toy_run
    out = snakemake(
        workdir,
        "-n",
        "--config",
        "make_pseudo_masks={compare: [toy+crf, crf+toy]}",
        overlays=(overlay,),
        env=env,
        check=False,
    )
    assert out.returncode != 0 and "'toy' cannot refine scores" in out.stdout + out.stderr
    out = snakemake(
        workdir, "-n", "--config", "make_pseudo_masks={compare: [toy+crf]}", overlays=(overlay,), env=env
    ).stdout
    assert "results/tiny/refine_crf/toy/scores" in out and planned_jobs(out) >= {"refine_crf", "make_pseudo_masks"}
    assert "refine_toy" not in planned_jobs(out) and "train_classifier" not in planned_jobs(out)


def test_unknown_plugin_module_is_named(tmp_path):
    result = snakemake(tmp_path, "-n", "--config", "plugins=[no_such_plugin]", check=False)
    assert result.returncode != 0 and "no_such_plugin" in result.stdout + result.stderr
