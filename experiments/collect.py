"""``memworld collect env=<source> episodes=N policy=<random|revisit>``: real play -> Minari dataset."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from envs.data.collection import collect_dataset
from experiments.configs import collect_config
from experiments.runs import make_run_dir, save_config, write_results


@hydra.main(config_path="conf", config_name="collect", version_base="1.3")
def main(dcfg: DictConfig) -> None:
    cfg = collect_config(dcfg)
    run = make_run_dir("collect", dcfg.runs_root)
    save_config(run, dcfg)
    write_results(run, collect_dataset(cfg, run))


if __name__ == "__main__":
    main()
