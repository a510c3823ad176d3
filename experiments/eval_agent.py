"""``memworld eval-agent policy=runs/x/policy.zip``: judge saved SB3 policies in the real env.

Several policies on the same held-out seeds, so that a dream-trained agent and its real-env
baseline are compared on the same starts with more episodes than training's evaluations use.
With ``dream_episodes > 0`` each policy is also run in the dream (the ``dream`` group), the
figure that says whether a task is solved in the dream at all.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from agents.evaluate import check_dream_evaluation, evaluate_dream, evaluate_real
from agents.train import load_policy
from envs.dream.config import DreamConfig
from experiments.conf import dream_config
from experiments.runs import make_run_dir, save_config, write_results


def run_eval(cfg: DictConfig, dream: DreamConfig, policies: dict) -> dict:
    task, dream_on = dream.task, int(cfg.dream_episodes) > 0
    out = {"task": task.name, "start_region": task.start_region, "episodes": int(cfg.episodes),
           "seed": int(cfg.seed), "deterministic": bool(cfg.deterministic), "dream_episodes": int(cfg.dream_episodes),
           "dream": dream.to_dict() if dream_on else None, "policies": {}}
    for path, policy in policies.items():
        fig = evaluate_real(policy, dream.source, task, int(cfg.episodes), int(cfg.seed), dream.max_episode_steps,
                            deterministic=bool(cfg.deterministic)).figures()
        if dream_on:
            fig.update(evaluate_dream(policy, dream, int(cfg.dream_episodes), int(cfg.seed),
                                      deterministic=bool(cfg.deterministic), worlds=int(cfg.dream_worlds)))
            print(f"{path}: in the dream ({dream.memory} memory) success {fig['dream_success_rate']:.2f}, "
                  f"return {fig['dream_return']:.3f}, forward moves blocked {fig['dream_forward_blocked_share']}")
        out["policies"][path] = fig
        print(f"{path}: success {fig['real_success_rate']:.2f}, return {fig['real_return']:.3f}, "
              f"forward moves blocked {fig['real_forward_blocked_share']}")
    return out


@hydra.main(config_path="conf", config_name="eval_agent", version_base="1.3")
def main(cfg: DictConfig) -> None:
    if not cfg.policies:
        raise ValueError("give policies=[path.zip, ...]")
    dream = dream_config(cfg.dream)   # the task, the dream and every policy are checked before any episode runs
    if int(cfg.dream_episodes) > 0:
        check_dream_evaluation(dream)
        if dream.scene_map and not Path(dream.scene_map).is_file():
            raise FileNotFoundError(f"no scene map at {dream.scene_map}: make one with memworld build-map")
    policies = {str(p): load_policy(str(p), cfg.algo.name) for p in cfg.policies}
    run = make_run_dir("eval-agent", cfg.runs_root, cfg.run_name)
    save_config(run, cfg)
    write_results(run, run_eval(cfg, dream, policies))


if __name__ == "__main__":
    main()
