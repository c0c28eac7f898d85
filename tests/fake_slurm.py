#!/usr/bin/env python3
"""A fake SLURM cluster on this machine, for testing the SLURM profile end to end.

Installed by the test as ``sbatch``, ``squeue``, ``sacct``, ``scancel``, ``sinfo``, ``scontrol``,
``srun``, ``sacctmgr`` and ``sshare`` on PATH (symlinks to this file; the name it is called by picks
the command). State lives in ``$FAKE_SLURM_DIR``: ``submissions.jsonl`` (one line per ``sbatch``
call: the job id, its argv and the parsed options), ``jobs/<id>.sh`` (the submitted script),
``jobs/<id>.state`` (PENDING, RUNNING, COMPLETED, FAILED, CANCELLED) and ``jobs/<id>.pid``.

``sbatch`` answers like ``sbatch --parsable`` and runs the script in the background, detached, in
the directory of ``-D``, with ``SLURM_JOB_ID`` and ``SLURM_CPUS_PER_TASK`` set and its output in
``--output`` (``%j`` replaced). A job whose ``--comment`` contains ``$FAKE_SLURM_FAIL`` is reported
FAILED without running, as after a node failure. ``sacct`` and ``squeue`` print ``<id>|<STATE>`` for
the jobs of a ``--name``, the format the executor plugin asks for; ``srun`` runs its command (or
``sh -s`` with the script on stdin) after dropping its options.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

ACCOUNT = "fakeproj"
PARTITIONS = ("cpu*", "gpu")
VALUE_OPTIONS = {
    "--job-name",
    "--output",
    "--comment",
    "-A",
    "--account",
    "-p",
    "--partition",
    "-t",
    "--time",
    "--mem",
    "--mem-per-cpu",
    "-D",
    "--chdir",
    "-C",
    "--qos",
    "--clusters",
    "--gres",
    "--gpus",
    "--ntasks",
    "--cpus-per-task",
    "--cpus-per-gpu",
    "--nodes",
    "--ntasks-per-gpu",
    "--exclude",
    "--reservation",
}


def state_dir() -> Path:
    root = Path(os.environ["FAKE_SLURM_DIR"])
    (root / "jobs").mkdir(parents=True, exist_ok=True)
    return root


def parse_sbatch(argv: list[str]) -> tuple[dict, str | None]:
    """``--opt value`` / ``--opt=value`` / ``-X value`` options, and the script path (or None for --wrap)."""
    options: dict[str, str] = {}
    script = None
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg.startswith("--") and "=" in arg:
            key, value = arg.split("=", 1)
            options[key] = value
        elif arg in VALUE_OPTIONS:
            options[arg] = args.pop(0)
        elif arg.startswith("-"):
            options[arg] = ""
        else:
            script = arg
    return options, script


def next_job_id(root: Path) -> int:
    with open(root / "counter.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        counter = root / "counter"
        job_id = int(counter.read_text()) + 1 if counter.exists() else 1001
        counter.write_text(str(job_id))
    return job_id


def sbatch(argv: list[str]) -> int:
    root = state_dir()
    options, script = parse_sbatch(argv)
    text = (
        sys.stdin.read()
        if script in ("/dev/stdin", "-")
        else (Path(script).read_text() if script else f"#!/bin/sh\n{options['--wrap']}\n")
    )
    job_id = next_job_id(root)
    job = root / "jobs" / str(job_id)
    job.with_suffix(".sh").write_text(text)
    with open(root / "submissions.jsonl", "a") as log:
        log.write(json.dumps({"id": job_id, "argv": argv, "options": options}) + "\n")
    failing = os.environ.get("FAKE_SLURM_FAIL")
    if failing and failing in options.get("--comment", ""):
        job.with_suffix(".state").write_text("FAILED")
    else:
        job.with_suffix(".state").write_text("PENDING")
        output = options.get("--output", str(job.with_suffix(".out"))).replace("%j", str(job_id))
        env = dict(
            os.environ,
            SLURM_JOB_ID=str(job_id),
            SLURM_JOBID=str(job_id),
            SLURM_CPUS_PER_TASK=options.get("--cpus-per-task", "1"),
            SLURM_JOB_NAME=options.get("--job-name", ""),
        )
        runner = (
            f'echo RUNNING > "{job}.state"; sh "{job}.sh" > "{output}" 2>&1; rc=$?; '
            f'if [ "$(cat "{job}.state")" != CANCELLED ]; then '
            f'if [ $rc -eq 0 ]; then echo COMPLETED > "{job}.state"; else echo FAILED > "{job}.state"; fi; fi'
        )
        process = subprocess.Popen(
            ["sh", "-c", runner],
            cwd=options.get("-D", os.getcwd()),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        job.with_suffix(".pid").write_text(str(process.pid))
    print(job_id)
    return 0


def jobs_named(name: str | None) -> list[tuple[int, str]]:
    root = state_dir()
    found = []
    path = root / "submissions.jsonl"
    for line in path.read_text().splitlines() if path.exists() else []:
        entry = json.loads(line)
        if name is None or entry["options"].get("--job-name") == name:
            state = (root / "jobs" / f"{entry['id']}.state").read_text().strip()
            found.append((entry["id"], state))
    return found


def option_value(argv: list[str], flag: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def sacct(argv: list[str]) -> int:
    if any(a.lower().startswith("account") for a in argv):  # the plugin guessing an account from past jobs
        print(ACCOUNT)
        return 0
    for job_id, state in jobs_named(option_value(argv, "--name")):
        print(f"{job_id}|{state}")
    return 0


def squeue(argv: list[str]) -> int:
    return sacct(argv)


def scancel(argv: list[str]) -> int:
    root = state_dir()
    for job_id in [a for a in argv if a.isdigit()]:
        job = root / "jobs" / job_id
        job.with_suffix(".state").write_text("CANCELLED")
        pid = job.with_suffix(".pid")
        if pid.exists():
            try:
                os.killpg(int(pid.read_text()), signal.SIGTERM)
            except ProcessLookupError:
                pass
    return 0


def sinfo(argv: list[str]) -> int:
    print("PARTITION")
    print("\n".join(PARTITIONS))
    return 0


def scontrol(argv: list[str]) -> int:
    if argv[:2] == ["show", "config"]:
        print("MaxArraySize            = 1001\nMinJobAge               = 300 sec")
        return 0
    if argv[:2] == ["show", "partition"]:
        for name in PARTITIONS:
            print(
                f"PartitionName={name.rstrip('*')}\n   MaxTime=UNLIMITED MaxNodes=UNLIMITED\n   TotalCPUs=2 "
                f"TotalNodes=1\n"
            )
        return 0
    print(f"scontrol: fake cluster does not know {' '.join(argv)}", file=sys.stderr)
    return 1


def srun(argv: list[str]) -> int:
    args = list(argv)
    while args and args[0].startswith("-"):
        flag = args.pop(0)
        if flag in VALUE_OPTIONS and "=" not in flag:
            args.pop(0)
    if not args:
        return 0
    return subprocess.run(args).returncode  # as srun does: the command's argv, no shell


def accounts(argv: list[str]) -> int:
    print(ACCOUNT)
    return 0


COMMANDS = {
    "sbatch": sbatch,
    "squeue": squeue,
    "sacct": sacct,
    "scancel": scancel,
    "sinfo": sinfo,
    "scontrol": scontrol,
    "srun": srun,
    "sacctmgr": accounts,
    "sshare": accounts,
}


def install(bin_dir: Path) -> list[str]:
    """Put every stand-in on ``bin_dir`` (symlinks to this file); returns their names."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    me = Path(__file__).resolve()
    me.chmod(0o755)
    for name in COMMANDS:
        (bin_dir / name).unlink(missing_ok=True)
        (bin_dir / name).symlink_to(me)
    return list(COMMANDS)


if __name__ == "__main__":
    sys.exit(COMMANDS[Path(sys.argv[0]).name](sys.argv[1:]))
