"""``memworld bench target=sources|worldmodel|dream``: speed and quality figures -> results.json."""

from __future__ import annotations

import dataclasses
import resource
import time
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from experiments.conf import dream_config
from experiments.runs import make_run_dir, save_config, write_results
from worldmodels.flops import call_rates, count_flops, matmul_ceiling_gflops, time_call

TARGETS = ("sources", "worldmodel", "dream", "longrun")


def rss_mb() -> float:
    """Current resident set size in MB (Linux /proc)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def real_steps_per_s(source: str, n: int, seconds: float) -> float:
    """Steps/s of ``n`` real envs in gymnasium's SyncVectorEnv (world-steps, i.e. n per call)."""
    import gymnasium as gym

    import envs
    from gymnasium.vector import AutoresetMode

    vec = gym.make_vec(envs.REAL_IDS[source], num_envs=n, vectorization_mode="sync",
                       vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP})
    vec.reset(seed=0)
    rng = np.random.default_rng(0)
    dt = time_call(lambda: vec.step(rng.integers(0, 3, n)), min_seconds=seconds)
    vec.close()
    return n / dt


def bench_sources(cfg: DictConfig) -> dict:
    from envs.sources import make_source

    out = {}
    for name in ("miniworld", "minigrid", "vizdoom"):
        try:
            env = make_source(name)
        except ImportError as exc:
            out[f"{name}_steps_per_s"] = None
            print(f"skipping {name}: {exc}")
            continue
        env.reset(seed=0)
        rng = np.random.default_rng(0)

        def step():
            _, _, term, trunc, _ = env.step(int(rng.integers(0, 3)))
            if term or trunc:
                env.reset()

        out[f"{name}_steps_per_s"] = 1 / time_call(step, cfg.seconds)
        env.close()
    return out


def _heldout(cfg: DictConfig):
    from envs.data.collection import collect
    from envs.data.dataset import load_arrays, write_dataset
    from envs.sources import make_source

    path = Path(cfg.heldout)
    if not path.exists():
        source = cfg.dream.source
        env = make_source(source)
        write_dataset(path, collect(env, "revisit", cfg.heldout_episodes, seed=900_000, max_steps=300), 3,
                      {"source": source, "policy": "revisit", "seed": 900_000})
    return load_arrays(path)


@torch.no_grad()
def heldout_memory(model, arr, targets: np.ndarray, rng: np.random.Generator):
    """Memory for held-out targets, drawn by the fov retriever with true poses (as in training)."""
    from envs.data.memory_sampler import EpisodeMemorySampler, MemorySamplerConfig

    if not model.cfg.denoiser.memory:
        return None
    lat = torch.cat([model.encode(torch.from_numpy(arr.frames[i:i + 512])) for i in range(0, len(arr.frames), 512)])
    fn = EpisodeMemorySampler(MemorySamplerConfig(model.cfg.memory_m, 256, {"fov": 1.0}), model.context)
    return fn(targets, lat, torch.from_numpy(arr.poses), arr.starts[arr.episode_of(targets)], rng)


@torch.no_grad()
def memory_use_figures(model, arr, targets: np.ndarray, memory) -> dict:
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


def onestep_on_heldout(model, heldout: str, samples: int, seed: int = 0) -> dict:
    """One-step figures on ``samples`` random targets of the held-out dataset."""
    from envs.data.dataset import load_arrays
    from worldmodels.evaluation import onestep_figures

    arr = load_arrays(heldout)
    rng = np.random.default_rng(seed)
    starts = arr.window_starts(model.context + 1)
    targets = np.sort(rng.choice(starts, min(samples, len(starts)), replace=False)) + model.context
    return onestep_figures(model, arr.frames, arr.actions, targets, memory=heldout_memory(model, arr, targets, rng))


def bench_worldmodel(cfg: DictConfig, model) -> dict:
    from worldmodels.evaluation import evaluate_autoencoder, onestep_figures, rollout_figures
    from worldmodels.world_model import SamplerConfig

    arr = _heldout(cfg)
    rng = np.random.default_rng(0)
    k = model.context
    starts = arr.window_starts(k + 1)
    targets = np.sort(rng.choice(starts, min(cfg.samples, len(starts)), replace=False)) + k
    out = {"heldout_frames": len(arr.frames), **evaluate_autoencoder(model, arr.frames[rng.choice(len(arr.frames), 2048)])}
    memory = heldout_memory(model, arr, targets, rng)
    out.update(onestep_figures(model, arr.frames, arr.actions, targets, memory=memory))
    out["onestep_gain_over_copy"] = out["onestep_psnr"] - out["copy_psnr"]
    out.update(memory_use_figures(model, arr, targets[:256], None if memory is None else tuple(x[:256] for x in memory)))
    long_windows = arr.window_starts(k + 16)
    r_starts = rng.choice(long_windows, min(cfg.rollout_starts, len(long_windows)), replace=False)
    out.update(rollout_figures(model, arr.frames, arr.actions, arr.poses, r_starts))
    table = {}
    sub = targets[:128]
    mem_sub = None if memory is None else tuple(x[:128] for x in memory)
    for name in ("euler", "heun", "dpmpp_2m"):
        for steps in (1, 2, 3, 5):
            s = SamplerConfig(name, steps, model.cfg.sampler.sigma_min, model.cfg.sampler.sigma_max)
            t0 = time.perf_counter()
            fig = onestep_figures(model, arr.frames, arr.actions, sub, memory=mem_sub, sampler=s)
            table[f"{name}_{steps}"] = {"psnr": fig["onestep_psnr"], "sharpness": fig["onestep_sharpness"],
                                        "frames_per_s": len(sub) / (time.perf_counter() - t0)}
    out["sampler_table"] = table
    out.update(_throughput(cfg, model))
    out["train_minutes"] = model.meta.get("train_minutes")  # this checkpoint's own run
    # with every run it was fine-tuned from (older checkpoints only know their own run)
    out["train_minutes_total"] = model.meta.get("train_minutes_total", model.meta.get("train_minutes"))
    return out


def _throughput(cfg: DictConfig, model) -> dict:
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
        out[f"frames_per_s_b{b}"] = b / time_call(gen(b), cfg.seconds)
    out["achieved_gflops_b32"] = out["frames_per_s_b32"] * out["gflop_per_frame"]
    return out


def bench_dream(cfg: DictConfig) -> dict:
    """Dream steps/s for each N against the real env's in the same run, and the fraction of the matmul
    ceiling (in the dream's precision) the dream's best window reaches."""
    from envs.dream import DreamVectorEnv
    from worldmodels.precision import uses_bf16

    rss0 = rss_mb()
    dream_cfg = dream_config(cfg.dream)
    precision, device = dream_cfg.precision, torch.device(dream_cfg.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("bench device=cuda, but torch sees no CUDA device")
    dtype = torch.bfloat16 if uses_bf16(precision, device) else torch.float32
    # the ceiling before and after the dream and the larger one counts: this machine's speed drifts
    # by a third within minutes, and a ceiling caught in a slow moment would flatter the fraction
    sizes = (1024, 2048) if device.type == "cpu" else (4096, 8192)
    ceiling_start = matmul_ceiling_gflops(sizes, dtype=dtype, device=device)
    dream, dream_best, real, flops_step = {}, {}, {}, None
    for n in cfg.worlds:
        vec = DreamVectorEnv(num_envs=n, source=dream_cfg.source, config=dream_cfg)
        vec.reset(seed=0)
        rng = np.random.default_rng(0)
        for _ in range(3):  # warm up (and compile, when asked)
            vec.step(rng.integers(0, 3, n))
        if flops_step is None:
            # FLOPs counted in eager mode on CPU: a compiled graph hides its operations from the counter
            eager = dataclasses.replace(dream_cfg, compile=False, device="cpu", precision="fp32")
            vec1 = DreamVectorEnv(num_envs=1, source=eager.source, config=eager)
            vec1.reset(seed=0)
            flops_step = count_flops(lambda: vec1.step(np.array([2])))
        mean, best = call_rates(lambda: vec.step(rng.integers(0, 3, n)), cfg.seconds)
        dream[n], dream_best[n] = n * mean, n * best
        # real=false skips the real env, e.g. on a GPU machine with no OpenGL for MiniWorld
        real[n] = real_steps_per_s(dream_cfg.source, n, cfg.seconds) if cfg.get("real", True) else None
        print(f"N={n}: dream {dream[n]:.0f} steps/s (best window {dream_best[n]:.0f}), real "
              + (f"{real[n]:.0f} steps/s" if real[n] is not None else "not measured"))
    ceiling_end = matmul_ceiling_gflops(sizes, dtype=dtype, device=device)
    ceiling = max(ceiling_start, ceiling_end)
    n_best = max(dream_best, key=dream_best.get)
    achieved = dream_best[n_best] * flops_step / 1e9
    return {"memory": dream_cfg.memory, "compile": dream_cfg.compile, "device": str(device),
            "precision": "bf16" if dtype == torch.bfloat16 else "fp32",
            "dream_steps_per_s": dream, "dream_steps_per_s_best_window": dream_best, "real_steps_per_s": real,
            "gflop_per_step": flops_step / 1e9, "achieved_gflops": achieved, "achieved_at_worlds": n_best,
            "achieved_gflops_mean": max(dream.values()) * flops_step / 1e9,
            "ceiling_gflops": ceiling, "ceiling_gflops_start": ceiling_start, "ceiling_gflops_end": ceiling_end,
            "fraction_of_ceiling": achieved / ceiling,
            "fraction_of_ceiling_mean": max(dream.values()) * flops_step / 1e9 / ceiling,
            "rss_mb_start": rss0, "rss_mb_end": rss_mb()}


def trimmed_rss_mb() -> float:
    """RSS after handing freed heap pages back to the OS (glibc ``malloc_trim``): what is really in use,
    without the allocator's cache of freed blocks, which comes and goes with fragmentation."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    return rss_mb()


def live_tensors() -> int:
    """Tensors reachable from Python: grows without bound if a step keeps its tensors alive."""
    import gc
    import warnings

    gc.collect()
    with warnings.catch_warnings():   # isinstance on torch's deprecated module aliases warns
        warnings.simplefilter("ignore", FutureWarning)
        return sum(1 for o in gc.get_objects() if isinstance(o, torch.Tensor))


def bench_longrun(cfg: DictConfig) -> dict:
    """``longrun_steps`` world-steps of the dream with memory: resident memory must stay flat.

    RSS and the live-tensor count are sampled 50 times; a leak shows as a steady slope over the
    second half, allocator noise as steps that come and go."""
    from tqdm import tqdm

    from envs.dream import DreamVectorEnv

    n = int(cfg.longrun_worlds)
    dream_cfg = dataclasses.replace(dream_config(cfg.dream), max_episode_steps=int(cfg.longrun_episode_steps))
    vec = DreamVectorEnv(num_envs=n, source=dream_cfg.source, config=dream_cfg)
    vec.reset(seed=0)
    rng = np.random.default_rng(0)
    calls = int(cfg.longrun_steps) // n
    every = max(1, calls // 50)
    samples = []
    for i in tqdm(range(calls), desc="longrun", unit="batch"):
        vec.step(rng.integers(0, 3, n))
        if i % every == 0 or i == calls - 1:
            samples.append((i * n, rss_mb(), trimmed_rss_mb(), live_tensors()))
            if len(samples) % 5 == 1 or i == calls - 1:
                print(f"world-steps {i * n}: rss {samples[-1][1]:.0f} MB ({samples[-1][2]:.0f} MB trimmed), "
                      f"live tensors {samples[-1][3]}")
    steps = np.array([s[0] for s in samples], float)
    rss, trimmed = np.array([s[1] for s in samples]), np.array([s[2] for s in samples])
    half = steps >= steps[-1] / 2
    slope = float(np.polyfit(steps[half], trimmed[half], 1)[0] * 10_000) if half.sum() > 1 else 0.0
    after = trimmed[steps >= steps[-1] / 10]
    return {"world_steps": calls * n, "worlds": n, "rss_mb_start": float(rss[0]), "rss_mb_end": float(rss[-1]),
            "trimmed_rss_mb_start": float(trimmed[0]), "trimmed_rss_mb_end": float(trimmed[-1]),
            "trimmed_rss_mb_growth_after_first_tenth": float(after.max() - after[0]),
            "trimmed_rss_mb_per_10k_steps_second_half": slope,
            "live_tensors_start": samples[0][3], "live_tensors_end": samples[-1][3],
            "samples": [[int(a), float(b), float(c), int(d)] for a, b, c, d in samples],
            "sample_columns": ["world_steps", "rss_mb", "trimmed_rss_mb", "live_tensors"]}


@hydra.main(config_path="conf", config_name="bench", version_base="1.3")
def main(cfg: DictConfig) -> None:
    if cfg.target not in TARGETS:
        raise ValueError(f"unknown bench target {cfg.target!r}; choose one of {TARGETS}")
    torch.set_num_threads(int(cfg.threads))
    run = make_run_dir(f"bench-{cfg.target}", cfg.runs_root)
    save_config(run, cfg)
    if cfg.target == "sources":
        res = bench_sources(cfg)
    elif cfg.target == "worldmodel":
        from worldmodels.world_model import WorldModel

        dream_cfg = dream_config(cfg.dream)
        model = WorldModel.load(dream_cfg.checkpoint_path(), source=dream_cfg.source)
        res = bench_worldmodel(cfg, model)
    elif cfg.target == "dream":
        res = bench_dream(cfg)
    else:
        res = bench_longrun(cfg)
    write_results(run, {"target": cfg.target, **res, "threads": int(cfg.threads),
                        "config": OmegaConf.to_container(cfg)})


if __name__ == "__main__":
    main()
