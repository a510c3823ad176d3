"""The agent in the loop from a small real budget (``memworld loop``), against the same algorithm in the real env.

Per seed, two arms, judged on the same held-out real seeds at the same real-frame budgets:

- **dream**: record ``first_frames`` real frames with a collection policy, train a world model on them from
  scratch (autoencoder included: no weight that saw other real frames), train the agent in its dream; each later
  cycle the current agent records ``cycle_frames`` more real frames, the world model is refitted on all real
  frames so far (continuing from the last cycle's weights, autoencoder frozen) and the agent continues in the new
  dream. Every real frame is counted from the written datasets; judging episodes are not.
- **real**: the algorithm trained in the real env, judged every ``cycle_frames`` real frames.

Each cycle writes ``cycle.json`` when it is complete, and every stage inside one leaves its output (datasets, the
world model's resumable run, the agent's resume zip): an interrupted loop resumes at the stage it stopped in, and
nothing is collected twice.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from agents.evaluate import evaluate_real
from agents.loop_data import agent_actor, collection_seed, record_frames, scripted_actor
from agents.run import real_baseline
from agents.train import AgentConfig, load_policy, save_atomic, train
from envs.data.dataset import read_episodes, write_dataset
from envs.data.starts import StartSegments
from envs.data.training import WorldModelTraining, train_world_model
from worldmodels.checkpoint import atomic_write_bytes

ARMS = ("dream", "real")


@dataclass
class LoopSchedule:
    """How the real budget is spent and what each cycle trains.

    The curve's points are ``first_frames + c * cycle_frames`` real frames, ``c < cycles``."""

    first_frames: int = 2000        # real frames of the collection policy before any world model
    first_policy: str = "revisit"   # the collection policy (revisit | random), started where the task starts
    cycle_frames: int = 2000        # real frames the current agent records in each later cycle
    cycles: int = 5
    refit_steps: int = 1000         # denoiser steps of each refit on all real frames so far
    refit_lr: float = 3e-4
    agent_steps_first: int = 30000  # dream steps of the first agent
    agent_steps: int = 15000        # dream steps each later cycle adds to the same agent

    def __post_init__(self) -> None:
        for k in ("first_frames", "cycle_frames"):
            if getattr(self, k) < 2:
                raise ValueError(f"schedule.{k} must be >= 2 (one step), got {getattr(self, k)}")
        for k in ("cycles", "agent_steps_first"):
            if getattr(self, k) < 1:
                raise ValueError(f"schedule.{k} must be >= 1, got {getattr(self, k)}")
        for k in ("refit_steps", "agent_steps"):
            if getattr(self, k) < 0:
                raise ValueError(f"schedule.{k} must be >= 0, got {getattr(self, k)}")
        if self.first_frames % self.cycle_frames:
            raise ValueError(f"schedule.first_frames ({self.first_frames}) must be a multiple of cycle_frames "
                             f"({self.cycle_frames}): the real arm is judged every cycle_frames frames, and both arms "
                             f"at the same budgets")

    def budgets(self) -> list[int]:
        return [self.first_frames + c * self.cycle_frames for c in range(self.cycles)]

    def agent_total(self, cycle: int) -> int:
        """Dream steps the agent has taken by the end of ``cycle``."""
        return self.agent_steps_first + cycle * self.agent_steps


@dataclass
class LoopConfig:
    """The comparison: the agent (algorithm, its dream with the task, source and episode length the real env shares,
    judging on ``agent.eval_episodes`` held-out seeds from ``agent.eval_seed``), the world model trained from
    scratch in the first cycle (its dataset is each cycle's), the schedule, the seeds and arms, and the real arm's
    budget (0: twice the dream arm's last)."""

    agent: AgentConfig
    worldmodel: WorldModelTraining
    schedule: LoopSchedule
    seeds: tuple[int, ...] = (0, 1, 2)
    arms: tuple[str, ...] = ARMS
    real_frames: int = 0

    def __post_init__(self) -> None:
        self.seeds, self.arms = tuple(self.seeds), tuple(self.arms)
        if not self.seeds or len(set(self.seeds)) != len(self.seeds) or min(self.seeds) < 0:
            raise ValueError(f"seeds must be distinct and >= 0, got {list(self.seeds)}")
        if not self.arms or set(self.arms) - set(ARMS):
            raise ValueError(f"arms must be among {list(ARMS)}, got {list(self.arms)}")
        if self.worldmodel.init or self.worldmodel.autoencoder_from:
            raise ValueError("the loop trains its world model from scratch on its own real frames: "
                             "worldmodel.init and worldmodel.autoencoder_from must be unset")
        if self.agent.dream.scene_map or self.agent.dream.starts:
            raise ValueError("the loop's dream reads only its own real frames: agent.dream.scene_map and "
                             "agent.dream.starts must be unset")
        if self.schedule.cycle_frames % self.agent.n_envs:
            raise ValueError(f"schedule.cycle_frames ({self.schedule.cycle_frames}) must be a multiple of n_envs "
                             f"({self.agent.n_envs}): the real arm, n_envs frames a step, is judged at exactly "
                             f"the dream arm's budgets")
        if self.real_frames < 0:
            raise ValueError(f"real_frames must be >= 0, got {self.real_frames}")
        if not self.agent.dream.task.pose_defined:
            raise ValueError(f"the loop judges success by the task: give a pose-defined task (reach, homing), "
                             f"not {self.agent.dream.task.name!r}")

    @property
    def real_budget(self) -> int:
        return self.real_frames or 2 * self.schedule.budgets()[-1]


def frames_in(dataset: Path) -> int:
    """Real frames (observations, resets included) in a written dataset: the counter's ground truth."""
    return int(sum(len(e.frames) for e in read_episodes(dataset)))


def _collect(cfg: LoopConfig, seed: int, cycle: int, cdir: Path, previous: Path | None) -> None:
    d, s = cfg.agent.dream, cfg.schedule
    torch.manual_seed(collection_seed(seed, cycle))     # the agent samples its actions: the same ones on a rerun
    if cycle == 0:
        actor, frames, policy = scripted_actor(s.first_policy, collection_seed(seed, 0)), s.first_frames, s.first_policy
    else:
        actor = agent_actor(load_policy(previous / "policy.zip", cfg.agent.algo))
        frames, policy = s.cycle_frames, f"{cfg.agent.algo} agent of cycle {cycle - 1}"
    eps = record_frames(d.source, d.task, actor, frames, collection_seed(seed, cycle), d.max_episode_steps)
    n_actions = int(cfg.worldmodel.model.n_actions)
    write_dataset(cdir / "collected", eps, n_actions, {"source": d.source, "policy": policy, "task": d.task.name,
                                                       "loop_seed": seed, "cycle": cycle})


def _training(cfg: LoopConfig, seed: int, cycle: int, dataset: Path, previous: Path | None, out: Path
              ) -> WorldModelTraining:
    """Cycle 0: the configured model from scratch; later: a refit of the previous cycle's, autoencoder frozen."""
    w = cfg.worldmodel
    train = dataclasses.replace(w.train, seed=seed, heldout_episodes=0)
    if cycle > 0:
        train = dataclasses.replace(train, denoiser_steps=cfg.schedule.refit_steps, lr=cfg.schedule.refit_lr,
                                    seed=seed * 1000 + cycle)
    return dataclasses.replace(w, dataset=str(dataset), train=train, heldout_episodes=0, out=str(out),
                               init=str(previous / "world_model.safetensors") if cycle else None, progress=False,
                               command=f"{w.command} (loop seed {seed}, cycle {cycle})")


def dream_arm(cfg: LoopConfig, seed: int, root: Path, log=print) -> list[dict]:
    """The dream arm of ``seed`` in ``root``: one record per cycle (real frames, real-env figures, seconds)."""
    curve, s = [], cfg.schedule
    for c in range(s.cycles):
        cdir, prev = root / f"cycle{c}", (root / f"cycle{c - 1}" if c else None)
        done = cdir / "cycle.json"
        if done.exists():
            curve.append(json.loads(done.read_text()))
            continue
        cdir.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        if not (cdir / "collected").exists():
            _collect(cfg, seed, c, cdir, prev)
        if not (cdir / "real_all").exists():
            eps = [e for j in range(c + 1) for e in read_episodes(root / f"cycle{j}" / "collected")]
            write_dataset(cdir / "real_all", eps, cfg.worldmodel.model.n_actions,
                          {"source": cfg.agent.dream.source, "policy": "every real frame of the loop so far"})
        t1 = time.perf_counter()
        ckpt = cdir / "world_model.safetensors"
        if not StartSegments.path_beside(ckpt).exists():     # written after the checkpoint: the run's last output
            train_world_model(_training(cfg, seed, c, cdir / "real_all", prev, ckpt), cdir / "worldmodel")
        t2 = time.perf_counter()
        if not (cdir / "policy.zip").exists():
            if prev is not None and not (cdir / "dream_resume.zip").exists():     # the same agent continues
                tmp = cdir / "dream_resume.zip.tmp"
                shutil.copyfile(prev / "dream_resume.zip", tmp)
                os.replace(tmp, cdir / "dream_resume.zip")
            d = dataclasses.replace(cfg.agent.dream, checkpoint=str(ckpt), starts=None)
            acfg = dataclasses.replace(cfg.agent, seed=seed, total_timesteps=s.agent_total(c), dream=d, eval_freq=0)
            model, _ = train(acfg, cdir, "dream", progress=False)
            save_atomic(model, cdir / "policy.zip")
        t3 = time.perf_counter()
        a = cfg.agent
        fig = evaluate_real(load_policy(cdir / "policy.zip", a.algo), a.dream.source, a.dream.task, a.eval_episodes,
                            a.eval_seed, a.dream.max_episode_steps).figures()
        frames = sum(frames_in(root / f"cycle{j}" / "collected") for j in range(c + 1))
        rec = {"cycle": c, "budget": s.budgets()[c], "real_frames": frames, "dream_steps": s.agent_total(c), **fig,
               "seconds": {"collect": t1 - t0, "worldmodel": t2 - t1, "agent": t3 - t2,
                           "judge": time.perf_counter() - t3}}
        atomic_write_bytes(done, json.dumps(rec, indent=2).encode())
        log(f"[loop seed {seed}] dream cycle {c}: {frames} real frames, real success {fig['real_success_rate']:.2f}")
        curve.append(rec)
    return curve


def real_arm(cfg: LoopConfig, seed: int, root: Path, log=print) -> list[dict]:
    """The real arm of ``seed`` in ``root``: the algorithm trained in the real env, judged every ``cycle_frames``."""
    done = root / "arm.json"
    if done.exists():
        return [{"budget": r["real_frames"], **r} for r in json.loads(done.read_text())]
    t0 = time.perf_counter()
    acfg = dataclasses.replace(cfg.agent, seed=seed, eval_freq=cfg.schedule.cycle_frames,
                               checkpoint_every=cfg.schedule.cycle_frames)
    res = real_baseline(acfg, root, cfg.real_budget, progress=False)
    seconds = time.perf_counter() - t0
    curve = [{"budget": int(t), "real_frames": int(t), **f} for t, f in res["baseline_eval_history"]]
    for r in curve:
        r["seconds_total"] = seconds
    atomic_write_bytes(done, json.dumps(curve, indent=2).encode())
    log(f"[loop seed {seed}] real arm: " + ", ".join(f"{r['real_frames']}: {r['real_success_rate']:.2f}" for r in curve))
    return curve


def run_loop(cfg: LoopConfig, run: Path, log=print) -> dict:
    """Every arm of every seed in ``run/seed<s>/<arm>`` (seeds one after another, resumable), then the figures over
    seeds: ``loop_curve.png``, ``loop_table.md``, tensorboard ``loop/`` tags, and the dict for results.json."""
    from agents.loop_report import TARGET_SUCCESS, by_budget, log_tensorboard, markdown, targets
    from agents.plots import plot_success_bands

    arms = {"dream": dream_arm, "real": real_arm}
    curves: dict[str, dict[int, list[dict]]] = {a: {} for a in cfg.arms}
    for seed in cfg.seeds:
        for arm in cfg.arms:
            root = run / f"seed{seed}" / arm
            root.mkdir(parents=True, exist_ok=True)
            curves[arm][seed] = arms[arm](cfg, seed, root, log)
    rows = {a: by_budget(c) for a, c in curves.items()}
    seconds = {"dream": _mean([sum(sum(r["seconds"].values()) for r in c) for c in curves.get("dream", {}).values()]),
               "real": _mean([c[-1]["seconds_total"] for c in curves.get("real", {}).values() if c])}
    seconds = {a: s for a, s in seconds.items() if a in cfg.arms}
    labels = {"dream": f"{cfg.agent.algo} in the loop (trained in the dream)", "real": f"{cfg.agent.algo} in the real env"}
    plot_success_bands({labels[a]: r for a, r in rows.items()}, run / "loop_curve.png", TARGET_SUCCESS)
    table = markdown(rows, seconds)
    atomic_write_bytes(run / "loop_table.md", table.encode())
    log_tensorboard(curves, rows, run / "tb")
    print(table)
    res = {"schedule": dataclasses.asdict(cfg.schedule), "seeds": list(cfg.seeds), "arms": list(cfg.arms),
           "task": dataclasses.asdict(cfg.agent.dream.task), "max_episode_steps": cfg.agent.dream.max_episode_steps,
           "judge": {"episodes": cfg.agent.eval_episodes, "first_seed": cfg.agent.eval_seed},
           "real_arm_frames": cfg.real_budget if "real" in cfg.arms else None,
           "by_budget": rows, "seconds_per_seed": seconds,
           "curves": {a: {str(s): c for s, c in per.items()} for a, per in curves.items()}}
    if "dream" in rows and "real" in rows:
        res["targets"] = targets(rows["dream"], rows["real"])
    return res


def _mean(xs: list[float]) -> float:
    return float(sum(xs) / len(xs)) if xs else 0.0
