"""One agent run, as ``memworld train-agent`` makes it: trained in the dream and judged in the real env, and
optionally the baseline, the same algorithm trained in the real env on a real-frame budget; each returns the
figures that go to results.json."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from agents.callbacks import RealEvalCallback
from agents.plots import plot_success_vs_real_frames
from agents.train import AgentConfig, train
from envs.data.dataset import write_dataset


def real_frames_of_checkpoint(checkpoint: str | None, source: str) -> int | None:
    """Real frames behind a world model: its training dataset's size, when it is known."""
    from envs.dream.config import default_checkpoint
    from worldmodels.checkpoint import load_tensors

    _, meta = load_tensors(checkpoint or default_checkpoint(source))
    if meta.get("real_frames"):
        return int(meta["real_frames"])
    ds = meta.get("dataset")
    if ds and Path(ds).exists():
        from envs.data.dataset import load_arrays
        return int(len(load_arrays(ds).frames))
    return None


def warn_if_starts_add_real_frames(starts: str | None, checkpoint: str | None, source: str) -> None:
    """Start segments drawn from a dataset other than the world model's own are real frames the
    reported ``real_frames_used`` does not count: say so."""
    if not starts or not Path(starts).is_dir():
        return
    from envs.dream.config import default_checkpoint
    from worldmodels.checkpoint import load_tensors

    ds = load_tensors(checkpoint or default_checkpoint(source))[1].get("dataset")
    if ds is None or Path(ds).resolve() != Path(starts).resolve():
        print(f"warning: starts={starts} is not the world model's training dataset ({ds}); its frames are real "
              f"frames that real_frames_used does not count")


def final_evaluation(model, cb: RealEvalCallback) -> dict:
    """The real-env figures at the end of training: the periodic evaluation's when it ran at this very step, else a
    new one."""
    if cb.last is not None and cb.history and cb.history[-1][0] == model.num_timesteps:
        return cb.history[-1][1]
    return cb.evaluate()


def write_policy_record(path: Path, cfg: AgentConfig, steps: int, history: list, command: str = "") -> None:
    """Beside a policy, ``<policy>.json``: how it was trained (command, algorithm, the whole dream, dream steps, the
    checkpoint's sha256, the real frames behind it) and its real-env evaluations during training."""
    import hashlib
    import json

    from worldmodels.checkpoint import atomic_write_bytes

    d = cfg.dream
    record = {"command": command, "algo": cfg.algo, "hyperparams": cfg.hyperparams, "dream": d.to_dict(),
              "dream_timesteps": int(steps), "checkpoint": str(d.checkpoint_path()),
              "checkpoint_sha256": hashlib.sha256(d.checkpoint_path().read_bytes()).hexdigest(),
              "real_frames_of_world_model": real_frames_of_checkpoint(d.checkpoint, d.source),
              "eval_seed": cfg.eval_seed, "eval_episodes": cfg.eval_episodes, "eval_history": history}
    atomic_write_bytes(path.with_suffix(".json"), json.dumps(record, indent=2).encode())


def dream_agent(cfg: AgentConfig, run: Path, real_frames_used: int | None = None, progress: bool = True,
                print_every: int = 0, command: str = "") -> dict:
    """Train ``cfg`` in the dream, save ``policy.zip`` (with ``policy.json``, its record), judge it in the real env
    (its episodes saved as ``real_eval_dataset``); ``real_frames_used``: default, the world model's dataset size."""
    from stable_baselines3.common.logger import HParam

    d = cfg.dream
    warn_if_starts_add_real_frames(d.starts, d.checkpoint, d.source)
    model, real_cb = train(cfg, run, "dream", progress=progress, print_every=print_every)
    model.save(run / "policy.zip")
    final = final_evaluation(model, real_cb)
    write_dataset(run / "real_eval_dataset", real_cb.last.episodes, 3,
                  {"source": d.source, "policy": f"{cfg.algo} trained in the dream", "task": d.task.name},
                  replace=True)
    dream_ret = model.ep_info_buffer and sum(e["r"] for e in model.ep_info_buffer) / len(model.ep_info_buffer)
    # SB3 keeps the last 100 finished dream episodes' is_success (pose tasks: arrival) for rollout/success_rate
    dream_succ = float(np.mean(model.ep_success_buffer)) if len(model.ep_success_buffer) else None
    frames = real_frames_used or real_frames_of_checkpoint(d.checkpoint, d.source)
    write_policy_record(run / "policy.zip", cfg, model.num_timesteps, real_cb.history, command)
    model.logger.record("hparams", HParam({"algo": cfg.algo, "task": d.task.name, "memory": d.memory,
                                           "total_timesteps": cfg.total_timesteps, **cfg.hyperparams},
                                          {"real/success_rate": final["real_success_rate"],
                                           "real/return": final["real_return"]}), exclude=("stdout", "csv"))
    model.logger.dump(model.num_timesteps)
    return {"algo": cfg.algo, "task": d.task.name, "dream": d.to_dict(), "dream_timesteps": cfg.total_timesteps,
            "real_success_rate": final["real_success_rate"], "real_return": final["real_return"],
            "real_episode_length": final["real_episode_length"], "dream_return": float(dream_ret or 0.0),
            "dream_success_rate": dream_succ, "real_frames_used": frames, "eval_history": real_cb.history}


def real_baseline(cfg: AgentConfig, run: Path, frames: int, progress: bool = True, print_every: int = 0) -> dict:
    """The same algorithm trained in the real env (same task, source and episode length) on ``frames`` real frames,
    saved as ``baseline_policy.zip``; PPO trains in whole rollouts, so it may see a little more than asked."""
    bcfg = dataclasses.replace(cfg, total_timesteps=int(frames))
    model, cb = train(bcfg, run, "real", progress=progress, print_every=print_every)
    model.save(run / "baseline_policy.zip")
    fin = final_evaluation(model, cb)
    return {"baseline_real_success_rate": fin["real_success_rate"], "baseline_real_return": fin["real_return"],
            "baseline_real_frames": int(model.num_timesteps), "baseline_eval_history": cb.history}


def run_agent(cfg: AgentConfig, run: Path, baseline: bool = False, real_frames_used: int | None = None,
              progress: bool = True, command: str = "") -> dict:
    """The dream agent and, with ``baseline``, the real-env baseline on the same real frames as the world model's
    dataset, with ``success_vs_real_frames.png``."""
    res = dream_agent(cfg, run, real_frames_used, progress, command=command)
    if baseline:
        frames = res["real_frames_used"]
        if not frames:
            raise ValueError("baseline=true needs real_frames_used (the world model's dataset is unknown)")
        res.update(real_baseline(cfg, run, frames, progress))
        plot_success_vs_real_frames({
            f"{cfg.algo} in the dream ({cfg.total_timesteps} dream steps)": [(frames, res["real_success_rate"])],
            f"{cfg.algo} in the real env": [(t, f["real_success_rate"]) for t, f in res["baseline_eval_history"]]},
            run / "success_vs_real_frames.png")
    return res
