"""Shared fixtures: tiny datasets and a tiny world model, built once per session."""

from __future__ import annotations

import os

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """Four short MiniWorld revisit episodes as a Minari dataset folder."""
    from envs.data.collection import collect
    from envs.data.dataset import write_dataset
    from envs.sources import make_source

    env = make_source("miniworld", max_episode_steps=40)
    eps = list(collect(env, "revisit", 4, seed=7, max_steps=40, progress=False))
    env.close()
    path = tmp_path_factory.mktemp("data") / "tiny"
    write_dataset(path, eps, n_actions=3, metadata={"source": "miniworld", "policy": "revisit"})
    return path, eps


def tiny_model_config():
    from worldmodels.autoencoder import AutoencoderConfig
    from worldmodels.heads import HeadsConfig
    from worldmodels.unet import DenoiserConfig
    from worldmodels.world_model import WorldModelConfig

    return WorldModelConfig(
        source="miniworld",
        autoencoder=AutoencoderConfig(4, (8, 8, 16), (16, 8, 8)),
        denoiser=DenoiserConfig(channels=(8, 16, 16), cond_dim=16, context=2),
        heads=HeadsConfig(channels=8, hidden=16), memory_m=2)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, tiny_dataset):
    """A tiny world model trained for a few steps on the tiny dataset, saved to disk."""
    from envs.data.dataset import load_arrays
    from envs.data.memory_sampler import EpisodeMemorySampler, MemorySamplerConfig
    from envs.data.starts import StartSegments
    from worldmodels.train import TrainConfig, Trainer

    arrays = load_arrays(tiny_dataset[0])
    run = tmp_path_factory.mktemp("wm")
    cfg = tiny_model_config()
    tr = Trainer(cfg, TrainConfig(ae_steps=5, ae_batch=8, denoiser_steps=5, batch=4, checkpoint_every=100),
                 arrays, None, run, memory_fn=EpisodeMemorySampler(MemorySamplerConfig(m=2, window=32), 2),
                 progress=False, meta={"dataset": str(tiny_dataset[0])})
    model = tr.fit()
    path = run / "tiny.safetensors"
    model.save(path)
    StartSegments.from_arrays(arrays, k=2, n=8).save(StartSegments.path_beside(path))
    return path
