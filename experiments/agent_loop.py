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

from omegaconf import DictConfig

from agents.evaluate import evaluate_real
from agents.train import AgentConfig, train
from envs.data.dataset import FrameArrays, read_episodes, write_dataset
from envs.data.memory_sampler import EpisodeMemorySampler, MemorySamplerConfig
from envs.data.starts import StartSegments
from envs.tasks import TaskConfig
from worldmodels.checkpoint import atomic_write_bytes, load_tensors
from worldmodels.train import TrainConfig, Trainer
from worldmodels.world_model import WorldModel


def run_loop(cfg: DictConfig, run: Path, base: AgentConfig) -> dict:
    ckpt = str(base.dream.checkpoint_path())
    _, meta = load_tensors(ckpt)
    if not meta.get("dataset") or not Path(meta["dataset"]).exists():
        raise FileNotFoundError(f"loop=true fine-tunes on the world model's dataset, but {meta.get('dataset')!r} "
                                f"(from {ckpt}) is not here; recreate it with: {meta.get('dataset_recipe')}")
    episodes = read_episodes(meta["dataset"])
    curve, policy = [], None
    for c in range(int(cfg.cycles)):
        cdir = run / f"cycle{c}"
        cdir.mkdir(parents=True, exist_ok=True)
        if c > 0:
            # the source's own rewards and terminations (task "learned"): they train the learned heads
            new = evaluate_real(policy, base.dream.source, TaskConfig("learned"), int(cfg.loop_collect_episodes),
                                900_000 + 1000 * c, base.dream.max_episode_steps).episodes
            write_dataset(cdir / "policy_episodes", new, 3, {"source": base.dream.source, "policy": f"cycle {c - 1} agent"})
            episodes += new
            ckpt = finetune(ckpt, episodes, cdir, int(cfg.loop_finetune_steps))
        acfg = dataclasses.replace(base, dream=dataclasses.replace(base.dream, checkpoint=ckpt))
        policy, cb = train(acfg, cdir, "dream", progress=cfg.progress)
        policy.save(cdir / "policy.zip")
        fig = cb.evaluate()
        frames = int(sum(len(e.frames) for e in episodes))
        curve.append({"cycle": c, "real_frames_used": frames, "checkpoint": ckpt, **fig})
        atomic_write_bytes(run / "loop_curve.json", json.dumps(curve, indent=2).encode())
        print(f"cycle {c}: {frames} real frames, real success {fig['real_success_rate']:.2f}")
    plot_curve(curve, run / "loop_curve.png")
    return {"cycles": curve, "real_success_rate": curve[-1]["real_success_rate"],
            "real_return": curve[-1]["real_return"], "real_frames_used": curve[-1]["real_frames_used"]}


def finetune(ckpt: str, episodes: list, out: Path, steps: int) -> str:
    """Fine-tune the denoiser and heads of ``ckpt`` on ``episodes``; returns the new checkpoint path."""
    init = WorldModel.load(ckpt)
    arrays = FrameArrays.from_episodes(episodes, init.cfg.n_actions)
    mem = EpisodeMemorySampler(MemorySamplerConfig(init.cfg.memory_m), init.context) if init.cfg.denoiser.memory else None
    tr = Trainer(init.cfg, TrainConfig(ae_steps=0, denoiser_steps=steps, lr=3e-4), arrays, None, out / "worldmodel",
                 memory_fn=mem, meta={**init.meta, "finetuned_from": ckpt, "real_frames": len(arrays.frames)},
                 init=init)
    model = tr.fit()
    path = out / "world_model.safetensors"
    model.save(path)
    StartSegments.from_arrays(arrays, model.context, 64).save(StartSegments.path_beside(path))
    return str(path)


def plot_curve(curve: list[dict], path: Path) -> None:
    from experiments.plots import plot_success_vs_real_frames

    plot_success_vs_real_frames({"trained in the dream": [(c["real_frames_used"], c["real_success_rate"]) for c in curve]},
                                path)
