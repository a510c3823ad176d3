"""The agent-in-the-loop cycle (``memworld train-agent loop=true cycles=C``).

Cycle 0 trains the agent in the dream of the starting world model. Each later cycle
collects real episodes with the current policy, fine-tunes the world model on all real
data so far (autoencoder frozen), and trains the agent in the new dream again. Every
cycle logs its real frames, world-model one-step PSNR and real-env results, so real
performance against real frames used is the headline curve.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from agents.evaluate import evaluate_real
from agents.plots import plot_success_vs_real_frames
from agents.train import AgentConfig, train
from envs.data.dataset import read_episodes, write_dataset
from envs.data.training import finetune
from envs.tasks import TaskConfig
from worldmodels.checkpoint import atomic_write_bytes, load_tensors


def run_loop(base: AgentConfig, run: Path, cycles: int, collect_episodes: int, finetune_steps: int,
             progress: bool = True) -> dict:
    """``cycles`` cycles from ``base``'s dream; each later one adds ``collect_episodes`` real episodes of the policy
    and fine-tunes the world model for ``finetune_steps`` on all real data so far."""
    if cycles < 1:
        raise ValueError(f"cycles must be >= 1, got {cycles}")
    ckpt = str(base.dream.checkpoint_path())
    _, meta = load_tensors(ckpt)
    if not meta.get("dataset") or not Path(meta["dataset"]).exists():
        raise FileNotFoundError(f"loop=true fine-tunes on the world model's dataset, but {meta.get('dataset')!r} "
                                f"(from {ckpt}) is not here; recreate it with: {meta.get('dataset_recipe')}")
    episodes = read_episodes(meta["dataset"])
    curve, policy = [], None
    for c in range(cycles):
        cdir = run / f"cycle{c}"
        cdir.mkdir(parents=True, exist_ok=True)
        if c > 0:
            # the source's own rewards and terminations (task "learned"): they train the learned heads
            new = evaluate_real(policy, base.dream.source, TaskConfig("learned"), collect_episodes,
                                900_000 + 1000 * c, base.dream.max_episode_steps).episodes
            write_dataset(cdir / "policy_episodes", new, 3, {"source": base.dream.source, "policy": f"cycle {c - 1} agent"})
            episodes += new
            ckpt = finetune(ckpt, episodes, cdir, finetune_steps)
        acfg = dataclasses.replace(base, dream=dataclasses.replace(base.dream, checkpoint=ckpt))
        policy, cb = train(acfg, cdir, "dream", progress=progress)
        policy.save(cdir / "policy.zip")
        fig = cb.evaluate()
        frames = int(sum(len(e.frames) for e in episodes))
        curve.append({"cycle": c, "real_frames_used": frames, "checkpoint": ckpt, **fig})
        atomic_write_bytes(run / "loop_curve.json", json.dumps(curve, indent=2).encode())
        print(f"cycle {c}: {frames} real frames, real success {fig['real_success_rate']:.2f}")
    plot_success_vs_real_frames({"trained in the dream": [(c["real_frames_used"], c["real_success_rate"]) for c in curve]},
                                run / "loop_curve.png")
    return {"cycles": curve, "real_success_rate": curve[-1]["real_success_rate"],
            "real_return": curve[-1]["real_return"], "real_frames_used": curve[-1]["real_frames_used"]}
