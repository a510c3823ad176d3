"""``memworld train-agent algo=ppo task=reach``: an SB3 agent trained in the dream, judged in the real env."""

from __future__ import annotations

from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf

from agents.train import AgentConfig, train
from envs.dataset import write_dataset
from envs.tasks import TaskConfig
from experiments.runs import make_run_dir, save_config, write_results


def task_config(cfg: DictConfig) -> TaskConfig:
    """The task of a ``train-agent`` / ``eval-agent`` config (``task``, ``task_radius``, ...)."""
    region = cfg.get("task_start_region")
    return TaskConfig(cfg.task, radius=float(cfg.task_radius), leave=float(cfg.get("task_leave", 3.0)),
                      shaping=float(cfg.task_shaping), cue=bool(cfg.get("task_cue", False)),
                      start_region=None if region is None else tuple(region))


def agent_config(cfg: DictConfig) -> AgentConfig:
    return AgentConfig(
        algo=cfg.algo.name, task=task_config(cfg),
        total_timesteps=int(cfg.total_timesteps), n_envs=int(cfg.n_envs), source=cfg.source,
        checkpoint=cfg.checkpoint, starts=cfg.get("starts"), memory=cfg.memory, scene_map=cfg.get("scene_map"),
        reuse_tol=float(cfg.get("reuse_tol", 0.0)), turn_tol=float(cfg.get("turn_tol", 0.0)),
        move=bool(cfg.get("move", False)), sampler_steps=cfg.sampler_steps,
        compile=bool(cfg.compile), precision=str(cfg.get("precision", "fp32")),
        max_episode_steps=int(cfg.max_episode_steps), eval_freq=int(cfg.eval_freq),
        eval_episodes=int(cfg.eval_episodes), eval_seed=int(cfg.eval_seed), video_every=int(cfg.video_every),
        checkpoint_every=int(cfg.checkpoint_every),
        seed=int(cfg.seed), hyperparams=OmegaConf.to_container(cfg.algo.hyperparams))


def real_frames_of_checkpoint(checkpoint: str | None, source: str) -> int | None:
    """Real frames behind a world model: its training dataset's size, when it is known."""
    from envs.dream_core import default_checkpoint
    from worldmodels.checkpoint import load_tensors

    _, meta = load_tensors(checkpoint or default_checkpoint(source))
    if meta.get("real_frames"):
        return int(meta["real_frames"])
    ds = meta.get("dataset")
    if ds and Path(ds).exists():
        from envs.dataset import load_arrays
        return int(len(load_arrays(ds).frames))
    return None


def warn_if_starts_add_real_frames(starts: str | None, checkpoint: str | None, source: str) -> None:
    """Start segments drawn from a dataset other than the world model's own are real frames the
    reported ``real_frames_used`` does not count: say so."""
    if not starts or not Path(starts).is_dir():
        return
    from envs.dream_core import default_checkpoint
    from worldmodels.checkpoint import load_tensors

    ds = load_tensors(checkpoint or default_checkpoint(source))[1].get("dataset")
    if ds is None or Path(ds).resolve() != Path(starts).resolve():
        print(f"warning: starts={starts} is not the world model's training dataset ({ds}); its frames are real "
              f"frames that real_frames_used does not count")


def run_agent(cfg: DictConfig, run: Path) -> dict:
    from stable_baselines3.common.logger import HParam

    acfg = agent_config(cfg)
    warn_if_starts_add_real_frames(acfg.starts, acfg.checkpoint, acfg.source)
    model, real_cb = train(acfg, run, "dream", progress=cfg.progress)
    model.save(run / "policy.zip")
    final = real_cb.evaluate()
    write_dataset(run / "real_eval_dataset", real_cb.last.episodes, 3,
                  {"source": acfg.source, "policy": f"{acfg.algo} trained in the dream", "task": acfg.task.name},
                  replace=True)
    dream_ret = model.ep_info_buffer and sum(e["r"] for e in model.ep_info_buffer) / len(model.ep_info_buffer)
    # SB3 keeps the last 100 finished dream episodes' is_success (pose tasks: arrival) for rollout/success_rate
    dream_succ = float(np.mean(model.ep_success_buffer)) if len(model.ep_success_buffer) else None
    frames = cfg.real_frames_used or real_frames_of_checkpoint(acfg.checkpoint, acfg.source)
    res = {"algo": acfg.algo, "task": acfg.task.name, "memory": acfg.memory, "dream_timesteps": acfg.total_timesteps,
           "starts": acfg.starts, "scene_map": acfg.scene_map, "reuse_tol": acfg.reuse_tol, "turn_tol": acfg.turn_tol,
           "move": acfg.move,
           "real_success_rate": final["real_success_rate"], "real_return": final["real_return"],
           "real_episode_length": final["real_episode_length"], "dream_return": float(dream_ret or 0.0),
           "dream_success_rate": dream_succ, "real_frames_used": frames, "eval_history": real_cb.history}
    model.logger.record("hparams", HParam({"algo": acfg.algo, "task": acfg.task.name, "memory": acfg.memory,
                                           "total_timesteps": acfg.total_timesteps, **acfg.hyperparams},
                                          {"real/success_rate": final["real_success_rate"],
                                           "real/return": final["real_return"]}), exclude=("stdout", "csv"))
    model.logger.dump(model.num_timesteps)
    if cfg.baseline:
        if not frames:
            raise ValueError("baseline=true needs real_frames_used (the world model's dataset is unknown)")
        bcfg = agent_config(OmegaConf.merge(cfg, {"total_timesteps": int(frames)}))
        bmodel, bcb = train(bcfg, run, "real", progress=cfg.progress)
        bmodel.save(run / "baseline_policy.zip")
        bfin = bcb.evaluate()
        res.update({"baseline_real_success_rate": bfin["real_success_rate"], "baseline_real_return": bfin["real_return"],
                    # PPO trains in whole rollouts: the baseline may see a little more than the budget asked
                    "baseline_real_frames": int(bmodel.num_timesteps), "baseline_eval_history": bcb.history})
        from experiments.plots import plot_success_vs_real_frames

        plot_success_vs_real_frames({
            f"{acfg.algo} in the dream ({acfg.total_timesteps} dream steps)": [(frames, final["real_success_rate"])],
            f"{acfg.algo} in the real env": [(t, f["real_success_rate"]) for t, f in bcb.history]},
            run / "success_vs_real_frames.png")
    return res


@hydra.main(config_path="conf", config_name="train_agent", version_base="1.3")
def main(cfg: DictConfig) -> None:
    agent_config(cfg)  # validate before any work
    if cfg.loop and int(cfg.cycles) < 1:
        raise ValueError(f"cycles must be >= 1, got {cfg.cycles}")
    run = make_run_dir("train-agent", cfg.runs_root, cfg.run_name)
    save_config(run, cfg)
    if cfg.loop:
        from experiments.agent_loop import run_loop
        write_results(run, run_loop(cfg, run, agent_config))
    else:
        write_results(run, run_agent(cfg, run))


if __name__ == "__main__":
    main()
