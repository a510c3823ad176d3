"""``memworld eval-agent policy=runs/x/policy.zip``: judge saved SB3 policies in the real env.

Several policies on the same held-out seeds, so that a dream-trained agent and its real-env
baseline are compared on the same starts with more episodes than training's evaluations use.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from agents.evaluate import evaluate_real
from agents.train import ALGOS
from envs.tasks import TaskConfig
from experiments.runs import make_run_dir, save_config, write_results


def load_policy(path: str, algo: str):
    """An SB3 policy zip; a missing file or another algorithm's zip gives one clear error."""
    if algo not in ALGOS:
        raise ValueError(f"unknown algorithm {algo!r}; choose one of {sorted(ALGOS)}")
    if not Path(path).is_file():
        raise FileNotFoundError(f"policy {path} not found")
    try:
        return ALGOS[algo].load(path, device="cpu")
    except Exception as exc:
        raise ValueError(f"policy {path} could not be loaded as {algo}: {exc}") from exc


def run_eval(cfg: DictConfig) -> dict:
    task = TaskConfig(cfg.task, radius=float(cfg.task_radius), shaping=float(cfg.task_shaping),
                      start_region=None if cfg.task_start_region is None else tuple(cfg.task_start_region))
    policies = {str(p): load_policy(str(p), cfg.algo.name) for p in cfg.policies}   # all load before any episode runs
    out = {"task": task.name, "start_region": task.start_region, "episodes": int(cfg.episodes),
           "seed": int(cfg.seed), "deterministic": bool(cfg.deterministic), "policies": {}}
    for path, policy in policies.items():
        ev = evaluate_real(policy, cfg.source, task, int(cfg.episodes), int(cfg.seed), int(cfg.max_episode_steps),
                           deterministic=bool(cfg.deterministic))
        out["policies"][path] = ev.figures()
        print(f"{path}: success {ev.figures()['real_success_rate']:.2f}, return {ev.figures()['real_return']:.3f}")
    return out


@hydra.main(config_path="conf", config_name="eval_agent", version_base="1.3")
def main(cfg: DictConfig) -> None:
    if not cfg.policies:
        raise ValueError("give policies=[path.zip, ...]")
    TaskConfig(cfg.task)   # validate before any work
    run = make_run_dir("eval-agent", cfg.runs_root, cfg.run_name)
    save_config(run, cfg)
    write_results(run, run_eval(cfg))


if __name__ == "__main__":
    main()
