"""``memworld eval-revisit``: does a revisited place look the same? Real env vs dream, per memory kind.

Writes results.json (per memory kind: revisit_psnr, revisit_ssim, self_psnr, nonrevisit_psnr,
steps_per_s, and exact_revisit_* at the returns to the very same pose; plus onestep_psnr, the copy
bounds and the targets' shares of one-step), results.md (tables), psnr_vs_gap.png and revisit.gif
(real | no memory | best memory). The benchmark itself is ``envs.benchmarks.revisit``.

With a Memory Maze dream (``dream.source=memorymaze9``) it runs Po et al.'s retrieval and reasoning protocols on
held-out layouts instead (``envs.benchmarks.maze_memory``, the ``maze`` keys).
"""

from __future__ import annotations

import hydra
import torch
from omegaconf import DictConfig

from envs.benchmarks.maze_memory import maze_memory_benchmark
from envs.benchmarks.revisit import revisit_benchmark
from experiments.conf import dream_config
from experiments.configs import command_config, maze_memory_config, revisit_config
from experiments.runs import make_run_dir, save_config, write_results


MAZE_SOURCES = ("memorymaze9",)


def refuse_path_keys(cfg: DictConfig) -> None:
    """A maze dream runs the ``maze`` protocols: a path-benchmark key set away from its default would be ignored
    without a word, so it is an error naming the keys."""
    defaults = command_config("eval_revisit")
    changed = [k for k in defaults if k not in ("dream", "maze", "threads", "runs_root") and cfg[k] != defaults[k]]
    if changed:
        raise ValueError(f"with a Memory Maze dream eval-revisit runs the maze protocols (maze.* keys); {changed} "
                         f"apply to the MemoryRooms paths only")


@hydra.main(config_path="conf", config_name="eval_revisit", version_base="1.3")
def main(cfg: DictConfig) -> None:
    base = dream_config(cfg.dream)
    if base.source in MAZE_SOURCES:
        refuse_path_keys(cfg)
        mcfg = maze_memory_config(cfg)      # before any run folder
        mcfg.check(base)
        torch.set_num_threads(int(cfg.threads))
        run = make_run_dir("eval-revisit-maze", cfg.runs_root)
        save_config(run, cfg)
        write_results(run, maze_memory_benchmark(mcfg, base, run))
        return
    rcfg = revisit_config(cfg)
    rcfg.check(base)            # before any run folder
    torch.set_num_threads(int(cfg.threads))
    run = make_run_dir("eval-revisit", cfg.runs_root)
    save_config(run, cfg)
    write_results(run, revisit_benchmark(rcfg, base, run))


if __name__ == "__main__":
    main()
