"""``memworld bench target=sources|worldmodel|dream|longrun``: speed and quality figures -> results.json.

The measurements are ``envs.benchmarks.throughput`` (sources, dream, longrun) and ``envs.benchmarks.worldmodel``."""

from __future__ import annotations

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from envs.benchmarks import throughput
from envs.benchmarks.worldmodel import heldout_arrays, worldmodel_figures
from experiments.conf import dream_config
from experiments.runs import make_run_dir, save_config, write_results

TARGETS = ("sources", "worldmodel", "dream", "longrun")


def measure(cfg: DictConfig) -> dict:
    """The figures of ``cfg.target``."""
    dream = dream_config(cfg.dream)
    if cfg.target == "sources":
        return throughput.source_steps_per_s(cfg.seconds)
    if cfg.target == "worldmodel":
        from worldmodels.world_model import WorldModel

        model = WorldModel.load(dream.checkpoint_path(), source=dream.source)
        arr = heldout_arrays(cfg.heldout, dream.source, cfg.heldout_episodes)
        return worldmodel_figures(model, arr, cfg.samples, cfg.rollout_starts, cfg.seconds)
    if cfg.target == "dream":
        return throughput.dream_throughput(dream, list(cfg.worlds), cfg.seconds, real=cfg.get("real", True))
    return throughput.longrun(dream, cfg.longrun_steps, cfg.longrun_worlds, cfg.longrun_episode_steps)


@hydra.main(config_path="conf", config_name="bench", version_base="1.3")
def main(cfg: DictConfig) -> None:
    if cfg.target not in TARGETS:
        raise ValueError(f"unknown bench target {cfg.target!r}; choose one of {TARGETS}")
    torch.set_num_threads(int(cfg.threads))
    run = make_run_dir(f"bench-{cfg.target}", cfg.runs_root)
    save_config(run, cfg)
    write_results(run, {"target": cfg.target, **measure(cfg), "threads": int(cfg.threads),
                        "config": OmegaConf.to_container(cfg)})


if __name__ == "__main__":
    main()
