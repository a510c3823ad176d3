"""``memworld train-agent algo=ppo dream.task.name=reach``: an SB3 agent trained in the dream, judged in the real env
(``agents.run``); ``baseline=true`` also trains it in the real env on the same real frames; ``loop=true`` runs the
agent-in-the-loop cycle (``agents.loop``)."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from agents.loop import run_loop
from agents.run import run_agent
from experiments.configs import agent_config
from experiments.runs import make_run_dir, save_config, write_results


@hydra.main(config_path="conf", config_name="train_agent", version_base="1.3")
def main(cfg: DictConfig) -> None:
    acfg = agent_config(cfg)  # validate before any work
    if cfg.loop and int(cfg.cycles) < 1:
        raise ValueError(f"cycles must be >= 1, got {cfg.cycles}")
    run = make_run_dir("train-agent", cfg.runs_root, cfg.run_name)
    save_config(run, cfg)
    if cfg.loop:
        res = run_loop(acfg, run, int(cfg.cycles), int(cfg.loop_collect_episodes), int(cfg.loop_finetune_steps),
                       cfg.progress)
    else:
        res = run_agent(acfg, run, bool(cfg.baseline), cfg.real_frames_used, cfg.progress,
                        command="memworld train-agent " + " ".join(sys.argv[1:]))
    write_results(run, res)


if __name__ == "__main__":
    main()
