"""The same code on a GPU: skipped where torch sees no CUDA device (as in CI); run on a lent GPU with
``pytest tests/test_cuda.py``. Uses the shipped checkpoint, so no real env is needed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from envs.dream import DreamVectorEnv
from envs.dream.config import default_checkpoint

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def _rollout(memory: str, seed: int = 0, steps: int = 12, **kw) -> np.ndarray:
    vec = DreamVectorEnv(num_envs=4, device="cuda", memory=memory, **kw)
    obs = [vec.reset(seed=seed)[0]]
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        obs.append(vec.step(rng.integers(0, 3, 4))[0])
    return np.stack(obs)


@pytest.mark.parametrize("memory", ["none", "recency", "fov", "embedding", "stateful"])
def test_the_dream_runs_on_cuda_with_every_memory_kind(memory):
    obs = _rollout(memory, steps=6)
    assert obs.shape == (7, 4, 64, 64, 3) and obs.dtype == np.uint8
    assert obs[1:].std() > 1.0                        # frames, not a constant


def test_the_cuda_dream_is_deterministic_for_a_seed():
    a, b = _rollout("fov", seed=3), _rollout("fov", seed=3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, _rollout("fov", seed=4))


def test_cuda_and_cpu_give_the_same_denoiser_and_decoder():
    from worldmodels.world_model import WorldModel

    cpu = WorldModel.load(default_checkpoint("miniworld"), source="miniworld")
    gpu = WorldModel.load(default_checkpoint("miniworld"), source="miniworld", device=torch.device("cuda"))
    g = torch.Generator().manual_seed(0)
    k, c = cpu.context, cpu.cfg.autoencoder.latent_channels
    ctx = torch.randn(8, k, c, 16, 16, generator=g)
    acts = torch.randint(0, 3, (8, k), generator=g)
    x = torch.randn(8, c, 16, 16, generator=g) * cpu.cfg.sampler.sigma_max
    sigma = torch.full((8,), cpu.cfg.sampler.sigma_max)
    with torch.no_grad():
        d_cpu = cpu.denoiser(x, sigma, context=ctx, actions=acts)
        d_gpu = gpu.denoiser(x.cuda(), sigma.cuda(), context=ctx.cuda(), actions=acts.cuda()).cpu()
        f_cpu, f_gpu = cpu.decode(d_cpu).float(), gpu.decode(d_cpu.cuda()).cpu().float()
    # cuDNN may run convolutions in TF32: agreement to ~1e-3 of the signal, not bit for bit
    assert (d_cpu - d_gpu).abs().max() < 2e-2 * d_cpu.abs().max()
    mse = ((f_cpu - f_gpu) ** 2).mean()
    assert 10 * torch.log10(255.0**2 / mse.clamp_min(1e-12)) > 40.0


def test_ppo_trains_on_a_cuda_dream():
    from stable_baselines3 import PPO

    from envs.dream.sb3 import DreamSB3VecEnv

    venv = DreamSB3VecEnv(num_envs=4, device="cuda", max_episode_steps=40)
    model = PPO("CnnPolicy", venv, n_steps=64, batch_size=64, n_epochs=1, verbose=0, seed=0, device="cuda")
    model.learn(256)
    assert model.num_timesteps >= 256
