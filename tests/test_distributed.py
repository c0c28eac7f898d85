"""Data-parallel training (torchrun, gloo on CPU), step checkpoints and pre-emption, GPU claims."""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from wsss_stages import WsssError
from wsss_stages.lib.nets import distributed
from wsss_stages.lib.nets.distributed import GlobalBatches, World, claim_gpu
from wsss_stages.lib.nets.models import CamClassifier, TinyBackbone
from wsss_stages.lib.nets.training import Augment, EpochDataset, TrainLoop, make_optimizer, save_model


def test_one_process_takes_exactly_the_batches_of_a_shuffled_dataloader():
    data = list(range(23))
    loader = torch.utils.data.DataLoader(
        data, batch_size=4, shuffle=True, drop_last=True, generator=torch.Generator().manual_seed(7)
    )
    generator = torch.Generator().manual_seed(
        7
    )  # one generator for the workers' base seed and the order, as TrainLoop does
    ours = torch.utils.data.DataLoader(
        data, batch_sampler=GlobalBatches(23, 4, World(), generator), generator=generator
    )
    assert [b.tolist() for b in loader] == [b.tolist() for b in ours]


def test_processes_split_every_global_batch_and_skip_resumed_steps():
    def batches(rank, skip=0):
        return list(GlobalBatches(20, 4, World(rank, 2), torch.Generator().manual_seed(1), skip))

    whole = list(GlobalBatches(20, 4, World(), torch.Generator().manual_seed(1)))
    assert [a + b for a, b in zip(batches(0), batches(1))] == whole
    assert batches(1, skip=3) == batches(1)[3:] and len(GlobalBatches(20, 4, World(), None, skip=3)) == 2
    with pytest.raises(WsssError, match="not divisible"):
        GlobalBatches(20, 5, World(0, 2), None)


def test_only_rank_0_writes_the_final_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    save_model(tmp_path / "model.pt", torch.nn.Linear(2, 2), {"arch": "x"})
    assert not list(tmp_path.iterdir())


def _loop(tmp_path, epochs, **kwargs):
    torch.manual_seed(0)
    net = CamClassifier(TinyBackbone(8), 2)
    data = EpochDataset(
        16,
        lambda i: (np.full((16, 16, 3), i * 13, np.uint8), {}, {"labels": torch.tensor([i % 2, 1.0 - i % 2])}),
        Augment(16, (0.8, 1.2), (0.5,) * 3, (0.25,) * 3, seed=3),
    )
    opt = make_optimizer(net, net.head_parameters(), 0.01, 1, 0, 0.9)
    return TrainLoop(
        net, opt, data, 4, epochs, torch.device("cpu"), tmp_path / "ckpt", {"a": 1}, freeze_bn=True, **kwargs
    ), net


def _loss(model, x, y):
    return F.multilabel_soft_margin_loss(model(x), y["labels"])


def test_a_preempted_run_checkpoints_its_step_and_resumes_to_the_same_weights(tmp_path):
    reference, ref_net = _loop(tmp_path / "ref", 2)
    ref_history = reference.run(_loss)
    calls = {"n": 0}

    def preempted_at_step_6(model, x, y):  # SLURM's pre-emption signal arrives during the 6th step (epoch 2, step 2)
        calls["n"] += 1
        if calls["n"] == 6:
            os.kill(os.getpid(), signal.SIGTERM)
        return _loss(model, x, y)

    interrupted, _ = _loop(tmp_path / "run", 2)
    with pytest.raises(WsssError, match="stopped by signal .* epoch 2, step 2"):
        interrupted.run(preempted_at_step_6)
    state = torch.load(tmp_path / "run" / "ckpt" / "last.pt", weights_only=True)
    assert (state["epoch"], state["step"]) == (1, 2)
    resumed, net = _loop(tmp_path / "run", 2)
    assert resumed.run(_loss) == pytest.approx(ref_history)
    for a, b in zip(ref_net.state_dict().values(), net.state_dict().values()):
        assert torch.equal(a, b)


def test_step_checkpoints_are_written_every_n_steps(tmp_path):
    loop, _ = _loop(tmp_path, 1, checkpoint_steps=2)
    seen = []
    original = loop._save
    loop._save = lambda epoch, history, step=0, partial=(): (
        seen.append((epoch, step)),
        original(epoch, history, step, partial),
    )
    loop.run(_loss)
    assert seen == [(0, 2), (1, 0)]  # after step 2 of 4, then at the end of the epoch


@pytest.mark.integration
def test_two_gloo_processes_follow_the_loss_curve_of_one(tmp_path):
    """The tiny classifier (frozen BatchNorm, fp32) under torchrun with 2 processes and the same global batch."""
    from wsss_stages.stages.make_demo_data import make_demo_data

    data = tmp_path / "VOC2012"
    make_demo_data(out_dir=data, num_train=32, num_seed_eval=8, num_val=8, image_size=48, seed=0)
    training = {
        "epochs": 2,
        "batch_size": 8,
        "crop_size": 48,
        "scale_range": [0.9, 1.1],
        "lr": 0.02,
        "head_lr_mult": 10,
        "weight_decay": 0.0001,
        "momentum": 0.9,
        "workers": 0,
        "checkpoint_every": 1,
        "checkpoint_steps": 0,
        "precision": "fp32",
    }
    args = [
        "-m",
        "wsss_stages",
        "train_classifier",
        "--data-root",
        str(data),
        "--split",
        "train_aug",
        "--method",
        "cam",
        "--method-options",
        "{}",
        "--seed",
        "0",
        "--device",
        "cpu",
        "--threads",
        "2",
        "--training",
        json.dumps(training),
        "--backbone",
        json.dumps({"name": "tiny", "weights": "none", "output_stride": 8, "freeze_bn": True}),
    ]

    def train(name, launcher):
        out = tmp_path / name / "train_classifier"
        cmd = [
            sys.executable,
            *launcher,
            *args,
            "--out-model",
            str(out / "model.pt"),
            "--out-info",
            str(out / "model.json"),
        ]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-4000:]
        return out, result.stderr

    one, _ = train("one", [])
    two, log = train("two", ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"])
    assert "training process 2 of 2" in log
    history = [json.loads((out / "model.json").read_text())["loss_history"] for out in (one, two)]
    assert history[1] == pytest.approx(history[0], rel=1e-4)
    weights = [torch.load(out / "model.pt", weights_only=True)["state_dict"] for out in (one, two)]
    for key, value in weights[0].items():
        assert torch.allclose(value.float(), weights[1][key].float(), atol=1e-4), key
    assert sorted(p.name for p in two.iterdir()) == ["model.json", "model.pt"]  # one writer, no stray temporary files


def test_concurrent_jobs_claim_distinct_gpus(tmp_path, monkeypatch):
    monkeypatch.setenv("WSSS_GPU_LOCKS", str(tmp_path))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    monkeypatch.setattr(distributed, "_CLAIMED", {})
    assert claim_gpu(2) == 0 and claim_gpu(2) == 0  # a process keeps its GPU
    monkeypatch.setattr(distributed, "_CLAIMED", {})  # as another process would see it
    assert claim_gpu(2) == 1
    monkeypatch.setattr(distributed, "_CLAIMED", {})
    with pytest.raises(WsssError, match="no free GPU"):
        claim_gpu(2, wait_seconds=0.0, poll=0.01)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gpu-3.lock", "gpu-5.lock"]
