"""Checks the Snakefile makes before it plans anything (light: no torch)."""

from __future__ import annotations

import shutil
import subprocess

from wsss_stages import WsssError

JOB_MODULES = ("numpy", "PIL", "torch", "timm", "pydensecrf", "yaml", "jsonschema", "tqdm", "matplotlib")


def check_job_python(executable: str = "python") -> None:
    """Jobs run ``python -m wsss_stages`` with the ``python`` found on PATH: make sure it can import
    what the stages need, so a run with an unactivated environment stops now, not inside a job log."""
    found = shutil.which(executable)
    if found is None:
        raise WsssError(
            f"no '{executable}' on PATH: jobs run `{executable} -m wsss_stages`; activate the environment "
            "(source .venv/bin/activate), or use --sdm conda"
        )
    probe = "import importlib.util as u, sys; print(' '.join(m for m in sys.argv[1:] if u.find_spec(m) is None))"
    result = subprocess.run([found, "-c", probe, *JOB_MODULES], capture_output=True, text=True, timeout=60)
    missing = (
        result.stdout.split()
        if result.returncode == 0
        else ["(the interpreter failed: " + result.stderr.strip()[-200:] + ")"]
    )
    if missing:
        raise WsssError(
            f"jobs run `{found} -m wsss_stages`, which cannot import {', '.join(missing)}: activate the environment "
            "that has them (source .venv/bin/activate, or `make install` first), or use --sdm conda"
        )
