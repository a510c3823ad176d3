"""``memworld train-agent algo=ppo task=reach``: an SB3 agent trained in the dream, judged in the real env."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf

from agents.train import AgentConfig, train
from envs.data.dataset import write_dataset
from experiments.conf import dream_config
from experiments.runs import make_run_dir, save_config, write_results


#: train-agent's own keys that are AgentConfig fields (the rest of AgentConfig: algo group, dream group)
AGENT_KEYS = ("total_timesteps", "n_envs", "eval_freq", "eval_episodes", "eval_seed", "video_every", "checkpoint_every",
              "seed")


def agent_config(cfg: DictConfig) -> AgentConfig:
    """The ``AgentConfig`` of a train-agent config: its keys, the ``algo`` group and the whole ``dream`` group."""
    return AgentConfig(algo=cfg.algo.name, hyperparams=OmegaConf.to_container(cfg.algo.hyperparams),
                       dream=dream_config(cfg.dream), **{k: cfg[k] for k in AGENT_KEYS})


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


def run_agent(cfg: DictConfig, run: Path) -> dict:
    from stable_baselines3.common.logger import HParam

    acfg = agent_config(cfg)
    d = acfg.dream
    warn_if_starts_add_real_frames(d.starts, d.checkpoint, d.source)
    model, real_cb = train(acfg, run, "dream", progress=cfg.progress)
    model.save(run / "policy.zip")
    final = real_cb.evaluate()
    write_dataset(run / "real_eval_dataset", real_cb.last.episodes, 3,
                  {"source": d.source, "policy": f"{acfg.algo} trained in the dream", "task": d.task.name},
                  replace=True)
    dream_ret = model.ep_info_buffer and sum(e["r"] for e in model.ep_info_buffer) / len(model.ep_info_buffer)
    # SB3 keeps the last 100 finished dream episodes' is_success (pose tasks: arrival) for rollout/success_rate
    dream_succ = float(np.mean(model.ep_success_buffer)) if len(model.ep_success_buffer) else None
    frames = cfg.real_frames_used or real_frames_of_checkpoint(d.checkpoint, d.source)
    res = {"algo": acfg.algo, "task": d.task.name, "dream": d.to_dict(), "dream_timesteps": acfg.total_timesteps,
           "real_success_rate": final["real_success_rate"], "real_return": final["real_return"],
           "real_episode_length": final["real_episode_length"], "dream_return": float(dream_ret or 0.0),
           "dream_success_rate": dream_succ, "real_frames_used": frames, "eval_history": real_cb.history}
    model.logger.record("hparams", HParam({"algo": acfg.algo, "task": d.task.name, "memory": d.memory,
                                           "total_timesteps": acfg.total_timesteps, **acfg.hyperparams},
                                          {"real/success_rate": final["real_success_rate"],
                                           "real/return": final["real_return"]}), exclude=("stdout", "csv"))
    model.logger.dump(model.num_timesteps)
    if cfg.baseline:
        if not frames:
            raise ValueError("baseline=true needs real_frames_used (the world model's dataset is unknown)")
        bcfg = dataclasses.replace(acfg, total_timesteps=int(frames))
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
    acfg = agent_config(cfg)  # validate before any work
    if cfg.loop and int(cfg.cycles) < 1:
        raise ValueError(f"cycles must be >= 1, got {cfg.cycles}")
    run = make_run_dir("train-agent", cfg.runs_root, cfg.run_name)
    save_config(run, cfg)
    if cfg.loop:
        from experiments.agent_loop import run_loop
        write_results(run, run_loop(cfg, run, acfg))
    else:
        write_results(run, run_agent(cfg, run))


if __name__ == "__main__":
    main()
