"""A dream agent against the real-env baseline on one task, with learning curves: a policy trained in the dream
before (e.g. the one shipped beside the checkpoint) judged on held-out real episodes, a short training run in the
dream and the same algorithm trained in the real env, both evaluated in the real env as they learn.

Real frames are what a dream agent saves: it uses none of its own, only the world model's dataset
(``real_frames_of_world_model``); the baseline uses ``baseline.baseline_real_frames``. Both are reported."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from agents.evaluate import evaluate_real
from agents.plots import plot_success_vs_real_frames
from agents.run import dream_agent, real_baseline, real_frames_of_checkpoint
from agents.train import AgentConfig, load_policy


@dataclass
class Comparison:
    """What to compare. ``agent``: algorithm, hyperparameters, the dream (with the task, whose source, start region
    and episode length the real env shares), evaluation every ``eval_freq`` steps on ``eval_episodes`` episodes."""

    agent: AgentConfig
    policy: str | None = None         # a policy trained in the dream of agent.dream's checkpoint (None: none)
    policy_episodes: int = 100        # real episodes judging it, seeds from policy_seed
    policy_seed: int = 900_000        # held out from collection (1000+) and from training's evaluations (800000+)
    dream_steps: int = 20_000         # the short run in the dream (0: none)
    real_frames: int = 20_000         # the baseline's real frames (0: none)
    print_every: int = 0              # a progress line every this many steps while training


def sha256_of(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def recorded_training(policy: str | Path) -> dict | None:
    """What the training run of ``policy`` recorded beside it (``<policy>.json``: command, dream steps, real-env
    evaluations during training, the checkpoint's sha256), or ``None``."""
    path = Path(policy).with_suffix(".json")
    return json.loads(path.read_text()) if path.is_file() else None


def judge_policy(c: Comparison) -> dict:
    """``c.policy`` on ``c.policy_episodes`` held-out real episodes, with what its training recorded and whether it
    was trained in this dream's checkpoint."""
    d = c.agent.dream
    print(f"[agent] judging {c.policy} on {c.policy_episodes} real episodes (seeds from {c.policy_seed})", flush=True)
    policy = load_policy(c.policy, c.agent.algo)
    fig = evaluate_real(policy, d.source, d.task, c.policy_episodes, c.policy_seed, d.max_episode_steps).figures()
    trained = recorded_training(c.policy)
    same = None if trained is None or "checkpoint_sha256" not in trained else \
        trained["checkpoint_sha256"] == sha256_of(d.checkpoint_path())
    if same is False:
        print(f"[agent] warning: {c.policy} was trained in the dream of another checkpoint than {d.checkpoint_path()}")
    print(f"[agent] {c.policy}: real success {fig['real_success_rate']:.2f} over {c.policy_episodes} episodes", flush=True)
    return {"path": str(c.policy), **fig, "seed": c.policy_seed, "trained": trained, "same_checkpoint": same}


def compare(c: Comparison, run: Path) -> dict:
    """Judge ``c.policy``, train in the dream for ``c.dream_steps`` and in the real env for ``c.real_frames``, both
    judged in the real env as they learn; writes ``success_vs_steps.png`` into ``run``."""
    d = c.agent.dream
    res = {"algo": c.agent.algo, "task": dataclasses.asdict(d.task), "max_episode_steps": d.max_episode_steps,
           "real_frames_of_world_model": real_frames_of_checkpoint(d.checkpoint, d.source),
           "policy": None, "dream_run": None, "baseline": None}
    if c.policy:
        res["policy"] = judge_policy(c)
    if c.dream_steps > 0:
        cfg = dataclasses.replace(c.agent, total_timesteps=c.dream_steps)
        res["dream_run"] = dream_agent(cfg, run, progress=False, print_every=c.print_every)
    if c.real_frames > 0:
        res["baseline"] = real_baseline(c.agent, run, c.real_frames, progress=False, print_every=c.print_every)
    best = res["policy"] or res["dream_run"]
    res["real_success_rate"] = best["real_success_rate"] if best else None
    plot_curves(res, c.agent.algo, run / "success_vs_steps.png")
    return res


def plot_curves(res: dict, algo: str, path: Path) -> None:
    """Real success against steps: real frames for the baseline, dream steps for the dream agents."""
    series = {}
    if res["baseline"]:
        series[f"{algo} in the real env (x: real frames)"] = [(t, f["real_success_rate"])
                                                            for t, f in res["baseline"]["baseline_eval_history"]]
    if res["dream_run"]:
        series[f"{algo} in the dream, this run (x: dream steps)"] = [(t, f["real_success_rate"])
                                                                    for t, f in res["dream_run"]["eval_history"]]
    p = res["policy"]
    if p and p["trained"] and p["trained"].get("eval_history"):
        series[f"{algo} in the dream, the shipped policy's training"] = [(t, f["real_success_rate"])
                                                                       for t, f in p["trained"]["eval_history"]]
    if p and p["trained"] and p["trained"].get("dream_timesteps"):
        series[f"the shipped policy, {p['real_episodes']} held-out episodes"] = [(p["trained"]["dream_timesteps"],
                                                                                p["real_success_rate"])]
    if series:
        plot_success_vs_real_frames(series, path, xlabel="steps: real frames (real env) or dream steps (dream)")
