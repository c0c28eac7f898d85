"""Data-parallel training over several processes, and GPUs for concurrent local jobs.

A training stage whose config asks for ``processes: N > 1`` runs under
``python -m torch.distributed.run --standalone --nproc-per-node N`` (the rule's command says so):
each process reads ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` from torchrun, joins a process group
(NCCL on GPUs, gloo on CPUs, so that it runs and is tested here), takes its slice of every global
batch (:class:`GlobalBatches`), and after each backward pass the gradients are averaged over the
processes with one all-reduce. That is what ``DistributedDataParallel`` does, done after the
backward pass instead of inside the module's ``forward``, because the methods' losses call sub-modules
(``model.backbone``, ``model.class_maps`` …) that a DDP wrapper would not see.

The rule: **the configured ``batch_size`` is the global batch**, split evenly over the processes
(it must be divisible by N), so the learning rate and the schedule are those of one process with the
same batch. Only rank 0 writes checkpoints and artifacts; every rank resumes from the same
checkpoint. With frozen BatchNorm (or none) and fp32, N processes follow the loss curve of one
(tested on CPU with gloo); with BatchNorm in training mode each process normalises its own slice.

Concurrent *local* jobs on one workstation: Snakemake counts GPUs (``--resources gpu=N``) but hands
out no ids, so a single-process job claims a free GPU itself (:func:`claim_gpu`: an exclusive lock
file per device, held until the process exits).
"""

from __future__ import annotations

import fcntl
import logging
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from wsss_stages import WsssError

log = logging.getLogger(__name__)
_CLAIMED: dict = {}  # the GPU this process claimed: {"index": i, "lock": open lock file}


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def current() -> World:
    """This process's place among the training processes (torchrun's environment; one process without it)."""
    return World(
        int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))
    )


def setup(device):
    """Join the process group when there are several processes (once); returns this process's device.
    The CPU threads the job was given are shared among its processes."""
    import torch
    import torch.distributed as dist

    world = current()
    if world.size == 1 or dist.is_initialized():
        return device
    torch.set_num_threads(max(1, torch.get_num_threads() // world.size))
    if device.type == "cuda":
        torch.cuda.set_device(world.local_rank)
        device = torch.device("cuda", world.local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    log.info("training process %d of %d on %s", world.rank + 1, world.size, device)
    return device


def per_process_batch(batch_size: int, world: World) -> int:
    if batch_size % world.size:
        raise WsssError(
            f"batch_size {batch_size} (the global batch) is not divisible by the {world.size} training processes"
        )
    return batch_size // world.size


def average_gradients(parameters: Sequence, world: World) -> None:
    """Average the gradients of ``parameters`` over the processes (one flat all-reduce)."""
    if world.size == 1:
        return
    import torch
    import torch.distributed as dist

    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world.size
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def mean_over_processes(value: float, world: World) -> float:
    if world.size == 1:
        return value
    import torch
    import torch.distributed as dist

    tensor = torch.tensor([float(value)], dtype=torch.float64)
    dist.all_reduce(tensor)
    return float(tensor.item() / world.size)


def any_process(flag: bool, world: World) -> bool:
    """True on every process when it is true on one (e.g. a stop signal one of them received)."""
    if world.size == 1:
        return flag
    import torch
    import torch.distributed as dist

    tensor = torch.tensor([int(flag)])
    dist.all_reduce(tensor)
    return bool(tensor.item())


def barrier(world: World) -> None:
    if world.size > 1:
        import torch.distributed as dist

        dist.barrier()


class GlobalBatches:
    """Batch sampler: each step's *global* batch is the next ``batch_size`` indices of one random
    permutation per epoch (``torch.randperm`` with the loader's generator, as a shuffled DataLoader
    draws it), and this process takes its ``1/N`` slice; ``skip`` leaves out the steps a resumed
    epoch already took. With one process it yields exactly a shuffled, drop-last DataLoader's batches."""

    def __init__(self, length: int, batch_size: int, world: World, generator, skip: int = 0):
        self.length, self.batch_size, self.world, self.generator, self.skip = length, batch_size, world, generator, skip
        self.per_process = per_process_batch(batch_size, world)

    def __len__(self) -> int:
        return max(0, self.length // self.batch_size - self.skip)

    def __iter__(self) -> Iterator[list[int]]:
        import torch

        order = torch.randperm(self.length, generator=self.generator).tolist()
        start = self.world.rank * self.per_process
        for step in range(self.skip, self.length // self.batch_size):
            batch = order[step * self.batch_size : (step + 1) * self.batch_size]
            yield batch[start : start + self.per_process]


# ============================================================================ GPUs for concurrent local jobs
def gpu_lock_dir() -> Path:
    return Path(os.environ.get("WSSS_GPU_LOCKS", Path(tempfile.gettempdir()) / f"wsss-gpu-locks-{os.getuid()}"))


def claim_gpu(count: int, wait_seconds: float = 3600.0, poll: float = 2.0) -> int:
    """Index (among the visible devices) of a GPU no other wsss job on this machine holds; the lock is
    held until this process exits (a second call returns the same GPU). Waits while every GPU is taken."""
    if count <= 1:
        return 0
    if _CLAIMED:
        return _CLAIMED["index"]
    visible = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    names = visible if len(visible) == count else [str(i) for i in range(count)]
    folder = gpu_lock_dir()
    folder.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_seconds
    while True:
        for index, name in enumerate(names):
            handle = open(folder / f"gpu-{name}.lock", "a+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            _CLAIMED.update(index=index, lock=handle)
            log.info("claimed GPU %s (lock %s)", name, handle.name)
            return index
        if time.monotonic() > deadline:
            raise WsssError(f"no free GPU among {count} after {wait_seconds:.0f} s (locks in {folder})")
        time.sleep(poll)
