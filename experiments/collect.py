"""``memworld collect env=<source> episodes=N policy=<random|revisit>``: real play -> Minari dataset."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import hydra
from omegaconf import DictConfig

from envs.data.collection import collect
from envs.data.dataset import write_dataset
from envs.sources import SOURCES, make_source
from experiments.runs import make_run_dir, save_config, write_results


@dataclass
class CollectConfig:
    """What to record: ``episodes`` episodes of ``policy`` in source ``env``."""

    env: str = "miniworld"
    policy: str = "revisit"
    episodes: int = 10
    max_steps: int = 300
    seed: int = 0
    out: str | None = None
    runs_root: str = "runs"
    progress: bool = True

    def __post_init__(self) -> None:
        if self.env not in SOURCES:
            raise ValueError(f"env={self.env!r} is not a source; choose one of {sorted(SOURCES)}")
        if self.policy not in ("random", "revisit"):
            raise ValueError(f"policy={self.policy!r}; choose random or revisit")
        if self.episodes < 1 or self.max_steps < 1:
            raise ValueError(f"episodes and max_steps must be >= 1, got {self.episodes} and {self.max_steps}")


def run_collect(cfg: CollectConfig, run: Path) -> dict:
    """Collect, write the dataset, and return the figures."""
    out = Path(cfg.out) if cfg.out else run / "dataset"
    env = make_source(cfg.env, max_episode_steps=cfg.max_steps)
    t0 = time.perf_counter()
    episodes = list(collect(env, cfg.policy, cfg.episodes, cfg.seed, cfg.max_steps, progress=cfg.progress))
    seconds = time.perf_counter() - t0
    env.close()
    steps = sum(len(e) for e in episodes)
    write_dataset(out, episodes, n_actions=3, metadata={
        "source": cfg.env, "policy": cfg.policy, "seed": cfg.seed, "max_steps": cfg.max_steps,
        "episodes": cfg.episodes, "command": f"memworld collect env={cfg.env} policy={cfg.policy} "
                                            f"episodes={cfg.episodes} max_steps={cfg.max_steps} seed={cfg.seed}"})
    return {"dataset": str(out), "episodes": len(episodes), "steps": steps,
            "successes": int(sum(e.terminations.any() for e in episodes)),
            "collect_steps_per_s": steps / seconds}


@hydra.main(config_path="conf", config_name="collect", version_base="1.3")
def main(dcfg: DictConfig) -> None:
    cfg = CollectConfig(**dcfg)
    run = make_run_dir("collect", cfg.runs_root)
    save_config(run, dcfg)
    write_results(run, run_collect(cfg, run))


if __name__ == "__main__":
    main()
