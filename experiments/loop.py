"""``memworld loop``: the agent in the loop from a small real budget against the same algorithm in the real env
(``agents.loop``); rerun with the same ``run_name`` to resume."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from agents.loop import run_loop
from experiments.configs import loop_config
from experiments.runs import make_run_dir, save_config, write_results


@hydra.main(config_path="conf", config_name="loop", version_base="1.3")
def main(cfg: DictConfig) -> None:
    lcfg = loop_config(cfg)  # every option checked before any run folder exists
    run = make_run_dir("loop", cfg.runs_root, cfg.run_name)
    save_config(run, cfg)
    write_results(run, run_loop(lcfg, run))


if __name__ == "__main__":
    main()
