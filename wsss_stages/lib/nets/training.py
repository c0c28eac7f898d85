"""What the training stages share: data augmentation, the poly-LR SGD loop with
resumable checkpoints, and atomic saving of the final weights.

Checkpoints live in a folder that Snakemake does not know as an output (Snakemake deletes
declared outputs before rerunning a job); a checkpoint is reused only when the training
arguments that produced it are identical (its *signature*).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from wsss_stages import WsssError
from wsss_stages.lib.data.artifacts import IGNORE, atomic_path, read_manifest
from wsss_stages.lib.nets import distributed
from wsss_stages.lib.nets.models import freeze_batchnorm, to_tensor
from wsss_stages.lib.nets.runtime import autocast, progress, training_dtype

log = logging.getLogger(__name__)


# ============================================================================ images
def resize_with_maps(image: np.ndarray, maps: dict[str, np.ndarray], scale: float):
    """Bilinear image, nearest-neighbour label maps (no label mixing)."""
    h, w = image.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    image = np.array(Image.fromarray(image).resize(size, Image.BILINEAR))
    return image, {k: np.array(Image.fromarray(m).resize(size, Image.NEAREST)) for k, m in maps.items()}


def random_crop_with_maps(image: torch.Tensor, maps: dict[str, torch.Tensor], crop: int, rng: np.random.Generator):
    """Pad (image with 0 = the mean after normalisation, maps with 255 = ignore) and crop ``crop``²."""
    _, h, w = image.shape
    ph, pw = max(crop - h, 0), max(crop - w, 0)
    if ph or pw:
        image = F.pad(image, (0, pw, 0, ph), value=0.0)
        maps = {k: F.pad(m, (0, pw, 0, ph), value=IGNORE) for k, m in maps.items()}
    _, h, w = image.shape
    top, left = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
    window = (slice(top, top + crop), slice(left, left + crop))
    return image[(slice(None), *window)], {k: m[window] for k, m in maps.items()}


@dataclass
class Augment:
    """Random rescale, horizontal flip and square crop of an image and its per-pixel maps (masks,
    saliency …), deterministic given (seed, epoch, index), whatever the number of workers."""

    crop_size: int
    scale_range: tuple[float, float]
    mean: Sequence[float]
    std: Sequence[float]
    seed: int = 0

    def __call__(self, image: np.ndarray, maps: dict[str, np.ndarray], epoch: int, index: int):
        rng = np.random.default_rng([self.seed, epoch, index])
        scale = float(rng.uniform(*self.scale_range))
        image, maps = resize_with_maps(image, maps, scale)
        if rng.random() < 0.5:
            image = image[:, ::-1]
            maps = {k: m[:, ::-1] for k, m in maps.items()}
        x = to_tensor(image, self.mean, self.std)
        tensors = {k: torch.from_numpy(np.ascontiguousarray(m)).long() for k, m in maps.items()}
        return random_crop_with_maps(x, tensors, self.crop_size, rng)


class EpochDataset(torch.utils.data.Dataset):
    """Wraps ``load(index) -> (image, maps, targets)`` with :class:`Augment`; set ``epoch`` each pass.

    A sample is ``(x, targets)``: ``targets`` holds the loader's targets (e.g. "labels") and the
    augmented per-pixel ``maps`` (e.g. "mask", "saliency"), so a method may use several."""

    def __init__(self, length: int, load: Callable, augment: Augment):
        self.length, self.load, self.augment, self.epoch = length, load, augment, 0

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int):
        image, maps, targets = self.load(index)
        x, maps = self.augment(image, maps, self.epoch, index)
        return x, {**targets, **maps}


# ============================================================================ optimisation
def make_optimizer(
    model: nn.Module,
    head_params: list[nn.Parameter],
    lr: float,
    head_lr_mult: float,
    weight_decay: float,
    momentum: float,
) -> torch.optim.SGD:
    head_ids = {id(p) for p in head_params}
    backbone = [p for p in model.parameters() if p.requires_grad and id(p) not in head_ids]
    head = [p for p in head_params if p.requires_grad]
    groups = [
        {"params": backbone, "lr": lr, "base_lr": lr},
        {"params": head, "lr": lr * head_lr_mult, "base_lr": lr * head_lr_mult},
    ]
    return torch.optim.SGD([g for g in groups if g["params"]], lr=lr, momentum=momentum, weight_decay=weight_decay)


def poly_lr(optimizer: torch.optim.Optimizer, step: int, total: int, power: float = 0.9) -> None:
    factor = (1 - step / total) ** power
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * factor


class EpochClock:
    """Splits an epoch's wall time into waiting for the loader and the rest (forward, backward, step),
    for the images/s and data-loading share each epoch logs."""

    def __init__(self):
        self.data = self.total = 0.0
        self.images = 0
        self._start = None

    def wrap(self, batches: Iterable):
        iterator = iter(batches)
        while True:
            before = time.perf_counter()
            try:
                batch = next(iterator)
            except StopIteration:
                return
            now = time.perf_counter()
            self.data += now - before
            self._start = self._start or before
            yield batch

    def step_done(self, images: int) -> None:
        self.images += images
        self.total = time.perf_counter() - self._start

    def summary(self) -> dict:
        return {
            "images_per_s": self.images / self.total if self.total else 0.0,
            "data_share": 100.0 * self.data / self.total if self.total else 0.0,
        }


@dataclass
class TrainLoop:
    """Poly-LR SGD over epochs with a resumable checkpoint every ``checkpoint_every`` epochs (and every
    ``checkpoint_steps`` steps, and when SIGTERM or SIGUSR1 arrives: SLURM's pre-emption and time-limit
    signals; the job then stops, and its rerun or requeue resumes at that step).

    Under torchrun, each of the N processes takes its slice of every global batch of ``batch_size``
    and the gradients are averaged after each backward pass (:mod:`wsss_stages.lib.nets.distributed`);
    only rank 0 writes checkpoints."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    dataset: EpochDataset
    batch_size: int
    epochs: int
    device: torch.device
    checkpoint_dir: Path
    signature: dict
    freeze_bn: bool = False
    workers: int = 0
    checkpoint_every: int = 1
    seed: int = 0
    dtype: torch.dtype | None = None  # autocast dtype of forward and loss (None: fp32); see runtime.training_dtype
    checkpoint_steps: int = 0  # also checkpoint every this many steps (0: at epoch ends only)
    progress: float = 0.0
    timing: list = field(default_factory=list)  # per epoch: images/s and the share of the time spent waiting for data
    # a step of its own (two networks, two optimisers): update(model, x, targets, global_step, precision) does its
    # backward passes, optimiser steps and learning rates and returns the loss to log; `precision()` is the
    # autocast context. ``optimizer`` then only needs state_dict / load_state_dict (one checkpoint for all)
    update: Callable | None = None

    @classmethod
    def from_recipe(
        cls,
        model: nn.Module,
        optimizer,
        dataset: EpochDataset,
        training: dict,
        backbone: dict,
        device: torch.device,
        out_model: Path,
        signature: dict,
        seed: int,
        epochs: int | None = None,
        update: Callable | None = None,
    ) -> TrainLoop:
        """The loop a training stage's config sections describe (``training``: batch, epochs, workers,
        checkpoints, precision; ``backbone``: freeze_bn), checkpointing next to ``out_model``."""
        return cls(
            model,
            optimizer,
            dataset,
            training["batch_size"],
            training["epochs"] if epochs is None else epochs,
            device,
            checkpoint_dir_for(out_model),
            signature,
            backbone["freeze_bn"],
            training["workers"],
            training["checkpoint_every"],
            seed,
            training_dtype(training["precision"], device),
            training["checkpoint_steps"],
            update=update,
        )

    def run(self, loss_fn: Callable[[nn.Module, torch.Tensor, dict], torch.Tensor]) -> list[float]:
        world = distributed.current()
        if self.update is not None and world.size > 1:
            raise WsssError("a training stage with its own update step runs in one process (no torchrun)")
        self.device = distributed.setup(self.device)
        steps_per_epoch = max(1, len(self.dataset) // self.batch_size)
        total = steps_per_epoch * self.epochs
        start_epoch, start_step, history, partial = self._resume()
        # channels-last: the same numbers, ~25 % faster steps on CPU (oneDNN) and friendlier to cuDNN
        self.model.to(self.device, memory_format=torch.channels_last)
        scaler = torch.amp.GradScaler(self.device.type, enabled=self.dtype == torch.float16)
        parameters = [p for p in self.model.parameters() if p.requires_grad]
        with stop_signals() as stop:
            for epoch in range(start_epoch, self.epochs):
                self.dataset.epoch = epoch
                skip = start_step if epoch == start_epoch else 0
                # the generator draws the workers' base seed, then the permutation, as a shuffled DataLoader does
                generator = torch.Generator().manual_seed(self.seed * 1000 + epoch)
                batches = distributed.GlobalBatches(len(self.dataset), self.batch_size, world, generator, skip)
                loader = torch.utils.data.DataLoader(
                    self.dataset,
                    batch_sampler=batches,
                    num_workers=self.workers,
                    generator=generator,
                    persistent_workers=False,
                )
                self.model.train()
                if self.freeze_bn:  # the backbone's statistics only: a new head's BatchNorm must learn
                    freeze_batchnorm(getattr(self.model, "backbone", self.model))
                losses = list(partial) if skip else []
                bar = progress(loader, desc=f"epoch {epoch + 1}/{self.epochs}", total=steps_per_epoch, initial=skip)
                clock = EpochClock()
                for step, (x, y) in enumerate(clock.wrap(bar), start=skip):
                    global_step = epoch * steps_per_epoch + step
                    self.progress = global_step / total  # for schedules inside a loss (Puzzle-CAM's α)
                    x = x.to(self.device).contiguous(memory_format=torch.channels_last)
                    y = {k: v.to(self.device) for k, v in y.items()}
                    if self.update is not None:
                        loss = self.update(self.model, x, y, global_step, lambda: autocast(self.device, self.dtype))
                    else:
                        poly_lr(self.optimizer, global_step, total)
                        with autocast(self.device, self.dtype):
                            loss = loss_fn(self.model, x, y)
                        self.optimizer.zero_grad(set_to_none=True)
                        scaler.scale(loss).backward()  # fp16 only: bf16 and fp32 need no loss scaling
                        distributed.average_gradients(parameters, world)
                        scaler.step(self.optimizer)
                        scaler.update()
                    losses.append(distributed.mean_over_processes(loss.item(), world))
                    if not math.isfinite(losses[-1]):
                        raise WsssError(
                            f"training diverged at epoch {epoch + 1}, step {step + 1} (loss {losses[-1]}): lower the "
                            f"learning rate"
                        )
                    bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}", refresh=False)
                    clock.step_done(len(x))
                    done = step + 1
                    stopping = distributed.any_process(stop.received is not None, world)
                    if done < steps_per_epoch and (
                        stopping or (self.checkpoint_steps and done % self.checkpoint_steps == 0)
                    ):
                        self._save(epoch, history, step=done, partial=losses)
                    if stopping:
                        raise WsssError(
                            f"stopped by signal {stop.received or 'on another process'} at epoch {epoch + 1}, "
                            f"step {done}: checkpoint saved in {self.checkpoint_dir}; run again to resume"
                        )
                if not losses or not math.isfinite(np.mean(losses)):
                    raise WsssError(
                        f"training diverged in epoch {epoch + 1} (loss {np.mean(losses) if losses else 'n/a'})"
                    )
                history.append(float(np.mean(losses)))
                self.timing.append(clock.summary())
                log.info(
                    "epoch %d/%d mean loss %.4f; %.1f images/s, %.0f %% of the time waiting for data",
                    epoch + 1,
                    self.epochs,
                    history[-1],
                    self.timing[-1]["images_per_s"],
                    self.timing[-1]["data_share"],
                )
                if (epoch + 1) % self.checkpoint_every == 0 or epoch + 1 == self.epochs:
                    self._save(epoch + 1, history)
        return history

    @property
    def _checkpoint(self) -> Path:
        return self.checkpoint_dir / "last.pt"

    def _save(self, epoch: int, history: list[float], step: int = 0, partial: Sequence[float] = ()) -> None:
        """``epoch`` epochs done, and ``step`` steps of the next (their losses ``partial``); rank 0 writes."""
        world = distributed.current()
        if world.main:
            state = {
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "epoch": epoch,
                "step": step,
                "history": history,
                "partial": list(partial),
                "signature": json.dumps(self.signature, sort_keys=True),
                "rng": torch.get_rng_state(),  # dropout and other draws continue as if never interrupted
            }
            with atomic_path(self._checkpoint) as tmp:
                torch.save(state, tmp)
        distributed.barrier(world)

    def _resume(self) -> tuple[int, int, list[float], list[float]]:
        """(epochs done, steps done in the next epoch, loss history, that epoch's losses so far)."""
        if not self._checkpoint.is_file():
            return 0, 0, [], []
        try:
            state = torch.load(self._checkpoint, map_location="cpu", weights_only=True)
        except Exception as exc:
            log.warning("ignoring unreadable checkpoint %s (%s)", self._checkpoint, exc)
            return 0, 0, [], []
        if state.get("signature") != json.dumps(self.signature, sort_keys=True):
            log.info("checkpoint %s was made with other settings: starting afresh", self._checkpoint)
            return 0, 0, [], []
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as exc:  # the model's code changed since
            log.warning(
                "checkpoint %s does not fit the current model (%s): starting afresh",
                self._checkpoint,
                str(exc).splitlines()[0],
            )
            return 0, 0, [], []
        if "rng" in state:
            torch.set_rng_state(state["rng"])
        step = int(state.get("step", 0))
        log.info(
            "resuming from %s after epoch %d%s", self._checkpoint, state["epoch"], f", step {step}" if step else ""
        )
        return int(state["epoch"]), step, list(state["history"]), list(state.get("partial", []))


class _Stop:
    received: int | None = None


@contextlib.contextmanager
def stop_signals():
    """Note SIGTERM / SIGUSR1 (SLURM sends them before a pre-emption or the time limit) instead of dying
    at once, so that the loop can checkpoint the step it is in; the previous handlers come back after."""
    stop = _Stop()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def note(signum, frame):
        stop.received = signum
        log.warning("received signal %d: checkpointing after this step", signum)

    previous = {sig: signal.signal(sig, note) for sig in (signal.SIGTERM, signal.SIGUSR1)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def save_model(path: Path, model: nn.Module, meta: dict) -> None:
    """The final weights, written atomically (by rank 0 alone under torchrun); then the run's checkpoint
    (:func:`checkpoint_dir_for`) is removed, so a rerun of the stage (its code changed) trains afresh
    instead of resuming the finished run."""
    if not distributed.current().main:
        return
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save({"state_dict": state, "meta": meta}, tmp)
    (checkpoint_dir_for(path) / "last.pt").unlink(missing_ok=True)


def checkpoint_dir_for(output: Path) -> Path:
    """``results/x/train_y/model.pt`` → ``results/x/.checkpoints/train_y`` (not a declared output)."""
    output = Path(output)
    return output.parent.parent / ".checkpoints" / output.parent.name


def ids_with_label_maps(dataset, split: str, folder: Path, batch_size: int) -> list[str]:
    """Ids of ``split`` that have ``<id>.png`` in ``folder`` (by its manifest when it has one)."""
    folder = Path(folder)
    if (folder / "manifest.json").is_file():
        available = set(read_manifest(folder)["ids"])
        ids = [i for i in dataset.split_ids(split) if i in available]
    else:  # e.g. ground-truth masks for a fully-supervised run
        ids = [i for i in dataset.split_ids(split) if (folder / f"{i}.png").is_file()]
    if len(ids) < batch_size:
        raise WsssError(
            f"only {len(ids)} images of split '{split}' have a label map in {folder} (batch_size {batch_size})"
        )
    return ids


def files_fingerprint(paths: Iterable[Path]) -> str:
    """Identity of training inputs (names, sizes, modification times) for checkpoint signatures.

    A checkpoint made from other data (e.g. pseudo-masks rewritten with a new threshold) must
    never be resumed, even when every argument is the same.
    """
    digest = hashlib.sha1()
    for path in sorted(Path(p) for p in paths):
        stat = path.stat()
        digest.update(f"{path}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
