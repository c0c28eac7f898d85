# wsss: weakly-supervised semantic segmentation as a Snakemake DAG.
# Table of contents only: config validation, includes, the default target.
# Rules declare; the wsss_stages package computes (one `python -m wsss_stages <stage>` per rule).

import os
import sys

from snakemake.settings.types import DeploymentMethod
from snakemake.utils import min_version

min_version("9.0")

# The package is installed (`make install`, editable). To run from a checkout where it is not (e.g.
# with --sdm conda, or on cluster nodes that see only the checkout), uncomment this line:
# sys.path.insert(0, workflow.basedir)
try:
    from wsss_stages import WsssError
    from wsss_stages.lib.plan.config import validate_config
    from wsss_stages.lib.plan.experiments import expand_experiments
    from wsss_stages.lib.plan.preflight import check_job_python
except ImportError as error:
    sys.exit(
        f"wsss: cannot import the wsss_stages package ({error}): run `make install` and activate .venv "
        "(source .venv/bin/activate), or `pip install -e .` in this environment"
    )


# config.yaml is the demo; a preset given with --configfile stands alone (schema defaults fill
# the rest), so no demo setting leaks into a real-data run.
if not workflow.overwrite_configfiles:

    configfile: os.path.join(workflow.basedir, "config.yaml")


# Jobs run `python -m wsss_stages` with the `python` on PATH; with --sdm conda they get the env of envs/.
if DeploymentMethod.CONDA not in workflow.deployment_settings.deployment_method:
    try:
        check_job_python()
    except WsssError as error:
        sys.exit(f"wsss: {error}")

try:
    _validated = validate_config(config)
    EXPERIMENT_CONFIGS = expand_experiments(_validated)  # one, or one per entry of `experiments`
except WsssError as error:
    sys.exit(f"wsss: {error}")
config.clear()
config.update(_validated)


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/stages.smk"
include: "rules/shards.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    input:
        [target for name in EXPERIMENTS for target in experiment_targets(name)],
        rules.write_leaderboard.output if MULTI else [],


onsuccess:
    print_metrics_table()
