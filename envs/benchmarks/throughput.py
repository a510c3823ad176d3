"""Speed: real sources alone, dream steps/s against the real env in the same run (with the fraction of the
matmul ceiling), PPO through SB3's ``make_vec_env`` both ways, and the dream's memory over a long run (resident
memory and live tensors must stay flat)."""

from __future__ import annotations

import dataclasses
import resource
import time
from pathlib import Path

import numpy as np
import torch

from envs.dream.config import DreamConfig
from worldmodels.flops import call_rates, count_flops, matmul_ceiling_gflops, time_call


def rss_mb() -> float:
    """Current resident set size in MB (Linux /proc)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


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


def real_steps_per_s(source: str, n: int, seconds: float, processes: int = 0) -> float:
    """Steps/s of ``n`` real envs in gymnasium's SyncVectorEnv (world-steps, i.e. n per call), timed in a spawned
    process of its own: each MiniWorld env holds ~45 MB of EGL context and textures that ``close`` does not give
    back (measured: 32 envs left 1.8 GB behind), which in this process grew the bench's RSS by gigabytes.

    ``processes > 0``: instead, that many spawned processes each step one env at the same time, their rates summed;
    for a real env that gains nothing from a batch (the Memory Maze's physics: ``processes`` = the cores), where N
    envs in one process would only add their resets (~8 s each there)."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    if processes > 0:
        with ProcessPoolExecutor(processes, mp_context=get_context("spawn")) as pool:
            return sum(pool.map(_real_steps_per_s, [source] * processes, [1] * processes, [seconds] * processes))
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        return pool.submit(_real_steps_per_s, source, n, seconds).result()


def _real_steps_per_s(source: str, n: int, seconds: float) -> float:
    import gymnasium as gym
    from gymnasium.vector import AutoresetMode

    import envs

    vec = gym.make_vec(envs.REAL_IDS[source], num_envs=n, vectorization_mode="sync",
                       vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP})
    vec.reset(seed=0)
    rng = np.random.default_rng(0)
    dt = time_call(lambda: vec.step(rng.integers(0, 3, n)), min_seconds=seconds)
    vec.close()
    return n / dt


def source_steps_per_s(seconds: float) -> dict:
    """Steps/s of each real source alone (single env, random actions); ``None`` for one not installed."""
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

        out[f"{name}_steps_per_s"] = 1 / time_call(step, seconds)
        env.close()
    return out


def dream_throughput(dream_cfg: DreamConfig, worlds: list[int], seconds: float, real: bool = True,
                     real_processes: int = 0) -> dict:
    """Dream steps/s of the dream ``dream_cfg`` for each N in ``worlds`` against the real env's in the same run
    (``real=False`` skips it, e.g. on a GPU machine with no OpenGL for MiniWorld; ``real_processes``: see
    ``real_steps_per_s``), and the fraction of the matmul ceiling (in the dream's precision) the dream's best
    window reaches."""
    from envs.dream import DreamVectorEnv
    from worldmodels.precision import uses_bf16

    rss0 = rss_mb()
    precision, device = dream_cfg.precision, torch.device(dream_cfg.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("bench device=cuda, but torch sees no CUDA device")
    dtype = torch.bfloat16 if uses_bf16(precision, device) else torch.float32
    # the ceiling before and after the dream and the larger one counts: this machine's speed drifts
    # by a third within minutes, and a ceiling caught in a slow moment would flatter the fraction
    sizes = (1024, 2048) if device.type == "cpu" else (4096, 8192)
    ceiling_start = matmul_ceiling_gflops(sizes, dtype=dtype, device=device)
    dream, dream_best, real_sps, flops_step = {}, {}, {}, None
    for n in worlds:
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
        mean, best = call_rates(lambda: vec.step(rng.integers(0, 3, n)), seconds)
        dream[n], dream_best[n] = n * mean, n * best
        if real:     # one env per process does not depend on N: timed once
            real_sps[n] = (real_sps[worlds[0]] if real_processes > 0 and n != worlds[0]
                           else real_steps_per_s(dream_cfg.source, n, seconds, real_processes))
        else:
            real_sps[n] = None
        print(f"N={n}: dream {dream[n]:.0f} steps/s (best window {dream_best[n]:.0f}), real "
              + (f"{real_sps[n]:.0f} steps/s" if real_sps[n] is not None else "not measured"))
    ceiling_end = matmul_ceiling_gflops(sizes, dtype=dtype, device=device)
    ceiling = max(ceiling_start, ceiling_end)
    n_best = max(dream_best, key=dream_best.get)
    achieved = dream_best[n_best] * flops_step / 1e9
    return {"memory": dream_cfg.memory, "compile": dream_cfg.compile, "device": str(device),
            "precision": "bf16" if dtype == torch.bfloat16 else "fp32",
            "dream_steps_per_s": dream, "dream_steps_per_s_best_window": dream_best, "real_steps_per_s": real_sps,
            "gflop_per_step": flops_step / 1e9, "achieved_gflops": achieved, "achieved_at_worlds": n_best,
            "achieved_gflops_mean": max(dream.values()) * flops_step / 1e9,
            "ceiling_gflops": ceiling, "ceiling_gflops_start": ceiling_start, "ceiling_gflops_end": ceiling_end,
            "fraction_of_ceiling": achieved / ceiling,
            "fraction_of_ceiling_mean": max(dream.values()) * flops_step / 1e9 / ceiling,
            "real_processes": real_processes, "rss_mb_start": rss0, "rss_mb_end": rss_mb()}


def sb3_client_steps_per_s(dream_cfg: DreamConfig, n_envs: int, steps: int, hyperparams: dict) -> dict:
    """PPO's env-steps/s end to end (rollouts and updates) on ``n_envs`` dreams built by SB3's ``make_vec_env`` from
    the registered id, as most clients build them: N one-world dreams stepped one after another (``DummyVecEnv``,
    the default) against the same call with ``vec_env_cls=batched_dream`` (one dream of N worlds). One rollout of
    warm-up, then ``steps`` env-steps timed; ``hyperparams``: PPO's (train-agent's ``algo/ppo.yaml``)."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    from envs import DREAM_IDS
    from envs.dream.sb3 import batched_dream

    out = {"clients_envs": n_envs}
    for name, cls in (("single_envs", None), ("batched_dream", batched_dream)):
        venv = make_vec_env(DREAM_IDS[dream_cfg.source], n_envs=n_envs, seed=0, vec_env_cls=cls,
                            env_kwargs={"config": dream_cfg})
        model = PPO("CnnPolicy", venv, seed=0, verbose=0, **hyperparams)
        model.learn(model.n_steps * n_envs)
        t0 = time.perf_counter()
        model.learn(steps, reset_num_timesteps=False)
        out[f"ppo_{name}_steps_per_s"] = (model.num_timesteps - model.n_steps * n_envs) / (time.perf_counter() - t0)
        venv.close()
        print(f"PPO on {n_envs} dreams from make_vec_env, {name}: {out[f'ppo_{name}_steps_per_s']:.0f} env-steps/s")
    return out


def longrun(dream_cfg: DreamConfig, steps: int, worlds: int, episode_steps: int) -> dict:
    """``steps`` world-steps of the dream ``dream_cfg`` in ``worlds`` worlds with episodes of ``episode_steps``:
    resident memory must stay flat.

    RSS and the live-tensor count are sampled 50 times; a leak shows as a steady slope over the
    second half, allocator noise as steps that come and go."""
    from tqdm import tqdm

    from envs.dream import DreamVectorEnv

    n = int(worlds)
    dream_cfg = dataclasses.replace(dream_cfg, max_episode_steps=int(episode_steps))
    vec = DreamVectorEnv(num_envs=n, source=dream_cfg.source, config=dream_cfg)
    vec.reset(seed=0)
    rng = np.random.default_rng(0)
    calls = int(steps) // n
    every = max(1, calls // 50)
    samples = []
    for i in tqdm(range(calls), desc="longrun", unit="batch"):
        vec.step(rng.integers(0, 3, n))
        if i % every == 0 or i == calls - 1:
            samples.append((i * n, rss_mb(), trimmed_rss_mb(), live_tensors()))
            if len(samples) % 5 == 1 or i == calls - 1:
                print(f"world-steps {i * n}: rss {samples[-1][1]:.0f} MB ({samples[-1][2]:.0f} MB trimmed), "
                      f"live tensors {samples[-1][3]}")
    at = np.array([s[0] for s in samples], float)
    rss, trimmed = np.array([s[1] for s in samples]), np.array([s[2] for s in samples])
    half = at >= at[-1] / 2
    slope = float(np.polyfit(at[half], trimmed[half], 1)[0] * 10_000) if half.sum() > 1 else 0.0
    after = trimmed[at >= at[-1] / 10]
    return {"world_steps": calls * n, "worlds": n, "rss_mb_start": float(rss[0]), "rss_mb_end": float(rss[-1]),
            "trimmed_rss_mb_start": float(trimmed[0]), "trimmed_rss_mb_end": float(trimmed[-1]),
            "trimmed_rss_mb_growth_after_first_tenth": float(after.max() - after[0]),
            "trimmed_rss_mb_per_10k_steps_second_half": slope,
            "live_tensors_start": samples[0][3], "live_tensors_end": samples[-1][3],
            "samples": [[int(a), float(b), float(c), int(d)] for a, b, c, d in samples],
            "sample_columns": ["world_steps", "rss_mb", "trimmed_rss_mb", "live_tensors"]}
