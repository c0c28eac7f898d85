"""Where and how a stage runs: device, precision, threads, progress bars.

Light on purpose: torch is imported inside the functions that need it, so that a CPU-only
stage (dense CRF, scoring) neither pays for the import nor depends on training code.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from tqdm import tqdm

from wsss_stages import WsssError

if TYPE_CHECKING:
    import torch


def progress(iterable: Iterable, **kwargs) -> tqdm:
    """A progress bar that stays readable in log files (updates at most every 10 s)."""
    return tqdm(iterable, mininterval=10.0, maxinterval=60.0, dynamic_ncols=False, ncols=100, **kwargs)


def pick_device(device: str = "auto") -> torch.device:
    """CUDA when present, else CPU. Of the GPUs CUDA_VISIBLE_DEVICES exposes: the process's own under
    torchrun (LOCAL_RANK), else one that no other wsss job on this machine holds (lib/nets/distributed.py)."""
    import torch

    from wsss_stages.lib.nets.distributed import claim_gpu, current

    if device == "cuda" and not torch.cuda.is_available():
        raise WsssError("config key 'device' is 'cuda' but no CUDA device is available")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device != "cuda":
        return torch.device(device)
    world = current()
    index = world.local_rank if world.size > 1 else claim_gpu(torch.cuda.device_count())
    torch.cuda.set_device(index)
    return torch.device("cuda", index)


def device_name(device: torch.device) -> str:
    """ "cpu", or the GPU's model name."""
    import torch

    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def native_bf16(device: torch.device) -> bool:
    """bf16 convolutions run in hardware here: a CUDA device with bf16, or a CPU with AMX tiles or
    AVX512-BF16. Inference pays on both CPU kinds (``benchmarks/precision.py``: lite0 CAM forward at
    512 px 1.53x on an AVX512-BF16 Xeon without AMX; 3.4x reported on AMD EPYC)."""
    import torch

    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    probes = [getattr(torch.cpu, name, None) for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")]
    return any(probe and probe() for probe in probes)  # private helpers, hence the guard


def inference_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype for inference: ``fp32`` → None, ``bf16`` → bfloat16, ``auto`` → bf16 where native."""
    import torch

    if precision not in ("auto", "fp32", "bf16"):
        raise WsssError(f"precision must be auto, fp32 or bf16, not {precision!r}")
    if precision == "bf16" or (precision == "auto" and native_bf16(device)):
        return torch.bfloat16
    return None


def training_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype for training: ``fp32`` → None; ``bf16``; ``fp16`` (CUDA only, with a gradient
    scaler); ``auto`` → bf16 on GPUs that have it, fp16 on those that do not (V100, T4), and fp32 on
    every CPU. bf16 inference pays on CPUs with AMX or AVX512-BF16, but a lite0 training step
    (``benchmarks/precision.py``, ``benchmarks/train_speed.py``) ran slower in bf16 on each CPU kind
    measured: 0.71x on an AVX512-BF16 Xeon without AMX, 0.69x (classifier, stem + 2 stages fixed) to
    0.97x (DeepLab v3+) on an AMX Xeon, 0.06x where bf16 is emulated (AVX2 only). On an AMD EPYC with
    AVX512-BF16 (three interleaved rounds) the classifiers ran at 0.99-1.05x and DeepLab at 1.21x
    (1.05-1.45x): one network on one CPU kind, so ``auto`` keeps a single rule and ``bf16`` selects
    it where a measurement says it pays."""
    import torch

    if precision not in ("auto", "fp32", "bf16", "fp16"):
        raise WsssError(f"training precision must be auto, fp32, bf16 or fp16, not {precision!r}")
    if precision == "fp16" and device.type != "cuda":
        raise WsssError("training precision fp16 needs a CUDA device (config key: training.precision)")
    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return None
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def autocast(device: torch.device, dtype: torch.dtype | None):
    """Mixed-precision context for inference (a no-op for fp32)."""
    import torch

    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


def for_inference(net, device: torch.device):
    """Eval mode on ``device`` in channels-last layout (oneDNN and cuDNN convolutions run faster in it)."""
    import torch

    return net.to(device, memory_format=torch.channels_last).eval()


def set_threads(threads: int) -> None:
    """Use exactly the cores Snakemake gave the job."""
    if threads > 0:
        import torch

        torch.set_num_threads(threads)
