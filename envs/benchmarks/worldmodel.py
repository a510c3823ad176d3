"""A world model's figures on held-out real episodes: reconstruction, one-step (beside the copy baseline),
whether the denoiser uses its memory, open-loop rollouts, every sampler, and generation speed."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from envs.data.dataset import FrameArrays, load_arrays
from worldmodels.flops import count_flops, matmul_ceiling_gflops, time_call
from worldmodels.world_model import WorldModel

SAMPLERS = ("euler", "heun", "dpmpp_2m")
SAMPLER_STEPS = (1, 2, 3, 5)


def heldout_arrays(path: str | Path, source: str, episodes: int = 16, seed: int = 900_000) -> FrameArrays:
    """The held-out dataset at ``path``, recorded first (``episodes`` revisit episodes of 300 steps, seeds
    ``seed + i``, never used in training) when it is missing."""
    from envs.data.collection import collect
    from envs.data.dataset import write_dataset
    from envs.sources import make_source

    path = Path(path)
    if not path.exists():
        print(f"collecting the held-out dataset {path} ({episodes} episodes)")
        env = make_source(source)
        write_dataset(path, collect(env, "revisit", episodes, seed=seed, max_steps=300), int(env.action_space.n),
                      {"source": source, "policy": "revisit", "seed": seed})
    return load_arrays(path)


@torch.no_grad()
def heldout_memory(model: WorldModel, arr: FrameArrays, targets: np.ndarray, rng: np.random.Generator):
    """Memory for held-out ``targets``, drawn by the fov retriever with true poses (as in training); ``None``
    for a model without memory."""
    from envs.data.memory_sampler import EpisodeMemorySampler, MemorySamplerConfig

    if not model.cfg.denoiser.memory:
        return None
    lat = torch.cat([model.encode(torch.from_numpy(arr.frames[i:i + 512])) for i in range(0, len(arr.frames), 512)])
    fn = EpisodeMemorySampler(MemorySamplerConfig(model.cfg.memory_m, 256, {"fov": 1.0}), model.context)
    return fn(targets, lat, torch.from_numpy(arr.poses), arr.starts[arr.episode_of(targets)], rng)


@torch.no_grad()
def memory_use_figures(model: WorldModel, arr: FrameArrays, targets: np.ndarray, memory) -> dict:
    """Does the denoiser use its memory? One-step PSNR on the same targets without memory, with
    the true target stored (slot 0, relative pose 0), and with that memory but the context
    replaced by noise (announced as dropped): a model that can copy a revisited view scores
    near ``ae_psnr`` on the last one."""
    from worldmodels.edm import DROPPED_CONTEXT_AUG
    from worldmodels.metrics import psnr

    if memory is None:
        return {}
    k, m = model.context, model.cfg.memory_m
    win = targets[:, None] - k + np.arange(k)
    ctx = model.encode(torch.from_numpy(arr.frames[win]))
    acts = torch.from_numpy(arr.actions[win])
    true = model.encode(torch.from_numpy(arr.frames[targets]))
    exact = (torch.zeros(len(targets), m, *true.shape[1:]), torch.zeros(len(targets), m, 3),
             torch.zeros(len(targets), m, dtype=torch.bool))
    exact[0][:, 0], exact[2][:, 0] = true, True

    def gen(context, aug, mem) -> float:
        cond = {} if mem is None else {"memory": mem[0], "memory_pose": mem[1], "memory_mask": mem[2]}
        z = model.sample_next(context, acts, aug=aug, generator=torch.Generator().manual_seed(0), **cond)
        return psnr(model.decode(z).numpy(), arr.frames[targets])

    drop = torch.full((len(targets),), DROPPED_CONTEXT_AUG)
    noise = torch.randn(ctx.shape, generator=torch.Generator().manual_seed(1))
    return {"onestep_psnr_no_memory": gen(ctx, None, None), "onestep_psnr_retrieved_memory": gen(ctx, None, memory),
            "onestep_psnr_exact_memory": gen(ctx, None, exact),
            "exact_memory_no_context_psnr": gen(noise, drop, exact)}


def onestep_on_heldout(model: WorldModel, heldout: str | Path, samples: int, seed: int = 0) -> dict:
    """One-step figures on ``samples`` random targets of the held-out dataset."""
    from worldmodels.evaluation import onestep_figures

    arr = load_arrays(heldout)
    rng = np.random.default_rng(seed)
    starts = arr.window_starts(model.context + 1)
    targets = np.sort(rng.choice(starts, min(samples, len(starts)), replace=False)) + model.context
    return onestep_figures(model, arr.frames, arr.actions, targets, memory=heldout_memory(model, arr, targets, rng))


def worldmodel_figures(model: WorldModel, arr: FrameArrays, samples: int = 512, rollout_starts: int = 64,
                       seconds: float = 3.0) -> dict:
    """Every figure of ``memworld bench target=worldmodel`` on the held-out episodes ``arr``: ``samples``
    one-step targets, ``rollout_starts`` open-loop rollouts, ``seconds`` per speed measurement."""
    from worldmodels.evaluation import evaluate_autoencoder, onestep_figures, reward_figures, rollout_figures
    from worldmodels.world_model import SamplerConfig

    rng = np.random.default_rng(0)
    k = model.context
    starts = arr.window_starts(k + 1)
    targets = np.sort(rng.choice(starts, min(samples, len(starts)), replace=False)) + k
    print(f"[worldmodel] reconstruction and one-step on {len(targets)} of {len(arr.frames)} held-out frames")
    out = {"heldout_frames": len(arr.frames), **evaluate_autoencoder(model, arr.frames[rng.choice(len(arr.frames), 2048)])}
    memory = heldout_memory(model, arr, targets, rng)
    out.update(onestep_figures(model, arr.frames, arr.actions, targets, memory=memory))
    out["onestep_gain_over_copy"] = out["onestep_psnr"] - out["copy_psnr"]
    print(f"[worldmodel] one-step {out['onestep_psnr']:.2f} dB, copy {out['copy_psnr']:.2f} dB; memory use")
    out.update(memory_use_figures(model, arr, targets[:256], None if memory is None else tuple(x[:256] for x in memory)))
    transitions = arr.window_starts(2)
    out.update(reward_figures(model, arr.frames, arr.actions, arr.rewards, transitions))
    print(f"[worldmodel] reward head on {len(transitions)} held-out transitions ({out['reward_steps']} rewarded): "
          f"recall {out['reward_recall']:.2f}, false positives {out['reward_false_positive_rate']:.4f}")
    long_windows = arr.window_starts(k + 16)
    r_starts = rng.choice(long_windows, min(rollout_starts, len(long_windows)), replace=False)
    print(f"[worldmodel] {len(r_starts)} open-loop rollouts of 16 steps")
    out.update(rollout_figures(model, arr.frames, arr.actions, arr.poses, r_starts))
    table = {}
    sub = targets[:128]
    mem_sub = None if memory is None else tuple(x[:128] for x in memory)
    for name in SAMPLERS:
        print(f"[worldmodel] sampler {name}, {'/'.join(map(str, SAMPLER_STEPS))} steps")
        for steps in SAMPLER_STEPS:
            s = SamplerConfig(name, steps, model.cfg.sampler.sigma_min, model.cfg.sampler.sigma_max)
            t0 = time.perf_counter()
            fig = onestep_figures(model, arr.frames, arr.actions, sub, memory=mem_sub, sampler=s)
            table[f"{name}_{steps}"] = {"psnr": fig["onestep_psnr"], "sharpness": fig["onestep_sharpness"],
                                        "frames_per_s": len(sub) / (time.perf_counter() - t0)}
    out["sampler_table"] = table
    print("[worldmodel] generation speed at batch 1, 8, 32")
    out.update(generation_speed(model, seconds))
    out["train_minutes"] = model.meta.get("train_minutes")  # this checkpoint's own run
    # with every run it was fine-tuned from (older checkpoints only know their own run)
    out["train_minutes_total"] = model.meta.get("train_minutes_total", model.meta.get("train_minutes"))
    return out


def generation_speed(model: WorldModel, seconds: float) -> dict:
    """GFLOP per generated frame and frames/s at batch 1, 8, 32 (denoiser + decoder, default sampler)."""
    k, c = model.context, model.cfg.autoencoder.latent_channels
    m = model.cfg.memory_m if model.cfg.denoiser.memory else 0

    def gen(b):
        ctx = torch.randn(b, k, c, 16, 16)
        acts = torch.zeros(b, k, dtype=torch.long)
        mem = {"memory": torch.randn(b, m, c, 16, 16), "memory_pose": torch.randn(b, m, 3),
               "memory_mask": torch.ones(b, m, dtype=torch.bool)} if m else {}
        return lambda: model.decode(model.sample_next(ctx, acts, **mem))

    flops = count_flops(gen(1))
    out = {"gflop_per_frame": flops / 1e9, "ceiling_gflops": matmul_ceiling_gflops()}
    for b in (1, 8, 32):
        out[f"frames_per_s_b{b}"] = b / time_call(gen(b), seconds)
    out["achieved_gflops_b32"] = out["frames_per_s_b32"] * out["gflop_per_frame"]
    return out
