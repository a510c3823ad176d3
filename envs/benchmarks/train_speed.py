"""World-model training speed (``memworld bench target=train``): denoiser-and-heads steps/s of a checkpoint's model
on a dataset, with each batch made in line and made ahead (``TrainConfig.prefetch``), GFLOP per step and the
fraction of the matmul ceiling measured in the same run; on CUDA the GPU's utilisation where NVML reports it."""

from __future__ import annotations

import dataclasses
import tempfile
import time

import torch

from envs.data.dataset import load_arrays
from envs.data.memory_sampler import EpisodeMemorySampler, MemorySamplerConfig
from worldmodels.flops import count_flops, matmul_ceiling_gflops
from worldmodels.precision import uses_bf16
from worldmodels.train import TrainConfig, Trainer, pick_device
from worldmodels.world_model import WorldModel


class _Deadline:
    """A stop flag that rises ``seconds`` from now (``Trainer.fit_denoiser`` polls ``.stop`` every step)."""

    def __init__(self, seconds: float):
        self.end = time.perf_counter() + seconds

    @property
    def stop(self) -> bool:
        return time.perf_counter() > self.end


def _gpu_utilisation(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    try:
        return float(torch.cuda.utilization(device))
    except Exception:       # no NVML (pynvml) here: not measurable
        return None


def train_speed(checkpoint: str, dataset: str, train: TrainConfig, seconds: float, prefetch: list[int]) -> dict:
    """Steps/s of training ``checkpoint``'s model size (its autoencoder frozen, as a refit) on ``dataset`` with
    ``train``'s batch, device and precision, for each prefetch depth in ``prefetch``; each timed for ``seconds``
    after ``seconds / 3`` of warm-up."""
    device = pick_device(train.device)
    model = WorldModel.load(checkpoint, device=device)
    arrays = load_arrays(dataset)
    mem = (EpisodeMemorySampler(MemorySamplerConfig(model.cfg.memory_m), model.context)
           if model.cfg.denoiser.memory else None)
    dtype = torch.bfloat16 if uses_bf16(train.precision, device) else torch.float32
    sizes = (1024, 2048) if device.type == "cpu" else (4096, 8192)
    ceiling = matmul_ceiling_gflops(sizes, dtype=dtype, device=device)
    rates, util, flops = {}, {}, None
    for depth in prefetch:
        cfg = dataclasses.replace(train, ae_steps=0, denoiser_steps=10**9, prefetch=depth, checkpoint_every=10**9,
                                  log_every=10**9)
        with tempfile.TemporaryDirectory() as tmp:
            tr = Trainer(model.cfg, cfg, arrays, None, tmp, memory_fn=mem, progress=False, autoencoder=model)
            tr.checkpoint = lambda: None        # no state written: the GPU's utilisation is read right after the steps
            tr.encode_dataset()
            if flops is None:       # one step, counted in line (the prefetch thread's indexing counts nothing)
                tr.cfg.denoiser_steps, tr.cfg.prefetch = 1, 0
                flops = count_flops(lambda: tr.fit_denoiser(_Deadline(1e9)))
                tr.cfg.denoiser_steps, tr.cfg.prefetch = 10**9, depth
            tr.fit_denoiser(_Deadline(seconds / 3))
            steps0, seconds0 = tr.den_step, tr.seconds
            tr.fit_denoiser(_Deadline(seconds))
            rates[depth] = (tr.den_step - steps0) / max(tr.seconds - seconds0, 1e-9)
            util[depth] = _gpu_utilisation(device)
        print(f"prefetch {depth}: {rates[depth]:.1f} training steps/s at batch {train.batch}")
    best = max(rates.values())
    return {"checkpoint": checkpoint, "dataset": dataset, "batch": train.batch, "device": str(device),
            "precision": "bf16" if dtype == torch.bfloat16 else "fp32", "steps_per_s_by_prefetch": rates,
            "gpu_utilisation_by_prefetch": util, "gflop_per_step": flops / 1e9, "ceiling_gflops": ceiling,
            "fraction_of_ceiling": best * flops / 1e9 / ceiling}
