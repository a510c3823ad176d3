"""``memworld train-agent algo=ppo dream.task.name=reach``: an SB3 agent trained in the dream, judged in the real env
(``agents.run``); ``baseline=true`` also trains it in the real env on the same real frames. The agent in the loop is
``memworld loop``."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from agents.run import run_agent
from experiments.configs import agent_config
from experiments.runs import make_run_dir, save_config, write_results


@hydra.main(config_path="conf", config_name="train_agent", version_base="1.3")
def main(cfg: DictConfig) -> None:
    acfg = agent_config(cfg)  # validate before any work
    run = make_run_dir("train-agent", cfg.runs_root, cfg.run_name)
    save_config(run, cfg)
    res = run_agent(acfg, run, bool(cfg.baseline), cfg.real_frames_used, cfg.progress,
                    command="memworld train-agent " + " ".join(sys.argv[1:]))
    write_results(run, res)


if __name__ == "__main__":
    main()
