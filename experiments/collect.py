"""``memworld collect env=<source> episodes=N policy=<random|revisit> workers=W``: real play -> Minari dataset."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from envs.data.collection import CollectConfig, collect_dataset
from experiments.runs import make_run_dir, save_config, write_results

run_collect = collect_dataset  # the name demo imports

__all__ = ["CollectConfig", "run_collect"]


@hydra.main(config_path="conf", config_name="collect", version_base="1.3")
def main(dcfg: DictConfig) -> None:
    cfg = CollectConfig(**{k: v for k, v in dcfg.items() if k != "runs_root"})
    run = make_run_dir("collect", dcfg.runs_root)
    save_config(run, dcfg)
    write_results(run, collect_dataset(cfg, run))


if __name__ == "__main__":
    main()
