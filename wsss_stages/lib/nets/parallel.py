"""Process-parallel map over images for CPU-bound stages (dense CRF releases no GIL)."""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable, Sequence
from typing import TypeVar

from wsss_stages.lib.nets.runtime import progress

T = TypeVar("T")
R = TypeVar("R")


def parallel_map(func: Callable[[T], R], items: Sequence[T], processes: int, desc: str) -> list[R]:
    """``[func(item) for item in items]`` on ``processes`` worker processes, with a progress bar.

    ``func`` must be picklable (a module-level function or a functools.partial of one).
    With one process it runs inline, which keeps tracebacks simple.
    """
    processes = max(1, min(processes, len(items)))
    if processes == 1:
        return [func(item) for item in progress(items, desc=desc)]
    context = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
    with context.Pool(processes) as pool:
        results = pool.imap(func, items, chunksize=max(1, min(16, len(items) // (processes * 8))))
        return list(progress(results, desc=desc, total=len(items)))
