"""``memworld bench target=sources|worldmodel|dream|longrun|rollouts|train``: speed and quality figures -> results.json.

The measurements are ``envs.benchmarks.throughput`` (sources, dream, longrun), ``envs.benchmarks.worldmodel``,
``envs.benchmarks.long_rollouts`` (does the dream stay a world over 1,000 steps) and ``envs.benchmarks.train_speed``
(world-model training steps/s)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from envs.benchmarks import throughput
from envs.benchmarks.long_rollouts import LongRolloutConfig
from envs.benchmarks.worldmodel import heldout_arrays, worldmodel_figures
from envs.dream.config import DreamConfig
from experiments.conf import dream_config
from experiments.configs import command_config
from experiments.runs import make_run_dir, save_config, write_results

TARGETS = ("sources", "worldmodel", "dream", "longrun", "rollouts", "train")


def measure(cfg: DictConfig, run: Path) -> dict:
    """The figures of ``cfg.target`` (pictures into ``run``)."""
    dream = dream_config(cfg.dream)
    if cfg.target == "sources":
        return throughput.source_steps_per_s(cfg.seconds)
    if cfg.target == "worldmodel":
        from worldmodels.world_model import WorldModel

        model = WorldModel.load(dream.checkpoint_path(), source=dream.source)
        arr = heldout_arrays(cfg.heldout, dream.source, cfg.heldout_episodes)
        return worldmodel_figures(model, arr, cfg.samples, cfg.rollout_starts, cfg.seconds)
    if cfg.target == "dream":
        res = throughput.dream_throughput(dream, list(cfg.worlds), cfg.seconds, real=cfg.get("real", True),
                                          real_processes=int(cfg.real_processes))
        if cfg.clients.envs > 0:
            ppo = OmegaConf.to_container(command_config("train_agent").algo.hyperparams)
            res.update(throughput.sb3_client_steps_per_s(dream, int(cfg.clients.envs), int(cfg.clients.steps), ppo))
        return res
    if cfg.target == "train":
        from envs.benchmarks.train_speed import train_speed
        from worldmodels.train import TrainConfig

        t = cfg.train
        return train_speed(str(dream.checkpoint_path()), t.dataset, TrainConfig(batch=int(t.batch), device=t.device,
                           precision=t.precision), cfg.seconds, list(t.prefetch))
    if cfg.target == "longrun":
        return throughput.longrun(dream, cfg.longrun_steps, cfg.longrun_worlds, cfg.longrun_episode_steps)
    return rollouts(dream, LongRolloutConfig(**OmegaConf.to_container(cfg.rollouts.run)), list(cfg.rollouts.memories),
                    run)


def rollouts(dream: DreamConfig, lcfg: LongRolloutConfig, memories: list[str], run: Path) -> dict:
    """Each memory kind's dream and the real env under the same wandering actions; per horizon bucket the
    measures of ``envs.benchmarks.long_rollouts``, a table printed per kind, a strip of frames per kind."""
    import imageio.v3 as iio

    from envs.benchmarks import long_rollouts as lr
    from worldmodels.world_model import WorldModel

    model = WorldModel.load(dream.checkpoint_path(), source=dream.source)
    actions = lr.wandering_actions(lcfg, model.cfg.n_actions)
    real = lr.real_rollouts(dream.source, lcfg, actions, model)
    out = {"worlds": lcfg.worlds, "steps": lcfg.steps, "real_steps_per_s": real.steps_per_s, "kinds": {}}
    for memory in memories:
        got = lr.dream_rollouts(dataclasses.replace(dream, memory=memory), lcfg, actions, model)
        buckets = lr.bucket_figures(got, real, lcfg.buckets)
        out["kinds"][memory] = {"dream_steps_per_s": got.steps_per_s, "buckets": buckets}
        iio.imwrite(run / f"strip_{memory}.png", lr.strip_image(got, real))
        print(f"{memory} memory ({got.steps_per_s:.0f} dream steps/s): steps | detail x real (the decoder's ceiling) | "
              f"contrast dream/real | collapsed (std, grad) | Fréchet (encoder features; real-vs-real floor)")
        for b, f in buckets.items():
            print(f"  {b:>9} | {f['detail_ratio']:.2f} ({f['roundtrip_detail_ratio']:.2f})"
                  f" | {f['dream_contrast_median']:.1f}/{f['real_contrast_median']:.1f}"
                  f" | {f['collapsed_share_std']:.2f}, {f['collapsed_share_grad']:.2f}"
                  f" | {f['frechet_encoder']:.2f} ({f['frechet_encoder_real_halves']:.2f})")
    return out


@hydra.main(config_path="conf", config_name="bench", version_base="1.3")
def main(cfg: DictConfig) -> None:
    if cfg.target not in TARGETS:
        raise ValueError(f"unknown bench target {cfg.target!r}; choose one of {TARGETS}")
    torch.set_num_threads(int(cfg.threads))
    run = make_run_dir(f"bench-{cfg.target}", cfg.runs_root)
    save_config(run, cfg)
    write_results(run, {"target": cfg.target, **measure(cfg, run), "threads": int(cfg.threads),
                        "config": OmegaConf.to_container(cfg)})


if __name__ == "__main__":
    main()
