"""Collection policies and the loop that records real play into ``Episode``s, in parallel processes.

Scripted actions: 0 turn left, 1 turn right, 2 forward, mapped onto each source's own actions through
``env.primitive_actions`` (Memory Maze: 2, 3, 1).
- ``random``: random actions held for 1-4 steps (action repeat), forward-biased.
- ``revisit``: random segments interleaved with scripted leave-and-return routines
  (a 360-degree turn, out-and-back, a loop), so the data holds revisits of places
  seen far more than a context length ago. In a maze (a source with ``maze_layout``,
  Memory Maze) it is ``MazeRevisitPolicy``: walk shortest paths to the least-visited cell
  (coverage) or back to a cell seen long ago (returns), look around on arrival.

Episode i resets with ``seed + i``. Two seedings of the policy: ``stream`` (the default, and the recipe of every
shipped MemoryRooms dataset) records the episodes one after another with one policy drawing from one
``default_rng(seed)``; ``episode`` gives episode i's policy its own ``default_rng(seed + i)``, so an episode is
the same whichever worker records it and however many workers there are (parallel collection needs it).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from tqdm import tqdm

from envs.data.dataset import Episode
from envs.data.maze_explorer import MazeRevisitPolicy
from envs.sources.base import SourceEnv

LEFT, RIGHT, FORWARD = 0, 1, 2


class RandomPolicy:
    """Random actions with action repeat; forward twice as likely as each turn."""

    def __init__(self, rng: np.random.Generator, max_repeat: int = 4):
        self.rng, self.max_repeat, self._queue = rng, max_repeat, []

    def __call__(self, info: dict) -> int:
        if not self._queue:
            a = int(self.rng.choice(3, p=[0.25, 0.25, 0.5]))
            self._queue = [a] * int(self.rng.integers(1, self.max_repeat + 1))
        return self._queue.pop()


def routine_turn_around(turns: int, rng: np.random.Generator) -> list[int]:
    """A full circle in place, either direction."""
    return [int(rng.integers(0, 2))] * turns


def routine_out_and_back(turns: int, rng: np.random.Generator, steps: int) -> list[int]:
    """Forward ``steps``, turn 180 degrees, forward ``steps``, turn 180 degrees."""
    half = [LEFT] * (turns // 2)
    return [FORWARD] * steps + half + [FORWARD] * steps + half


def routine_loop(turns: int, rng: np.random.Generator, side: int) -> list[int]:
    """Four sides of a square, turning the same way at each corner."""
    d = int(rng.integers(0, 2))
    return ([FORWARD] * side + [d] * (turns // 4)) * 4


class RevisitPolicy:
    """Random walking interleaved with scripted leave-and-return routines."""

    def __init__(self, rng: np.random.Generator, turns_per_circle: int, max_out: int = 12):
        self.rng, self.turns, self.max_out = rng, turns_per_circle, max_out
        self.random, self._queue = RandomPolicy(rng), []

    def __call__(self, info: dict) -> int:
        if not self._queue:
            kind = int(self.rng.integers(0, 4))
            n = int(self.rng.integers(3, self.max_out + 1))
            if kind == 0:
                self._queue = routine_turn_around(self.turns, self.rng)
            elif kind == 1:
                self._queue = routine_out_and_back(self.turns, self.rng, n)
            elif kind == 2:
                self._queue = routine_loop(self.turns, self.rng, max(2, n // 2))
            else:
                self._queue = [self.random(info) for _ in range(n)]
            self._queue.reverse()
        return self._queue.pop()


def _mapped(policy: Callable[[dict], int], env: SourceEnv) -> Callable[[dict], int]:
    """``policy``'s scripted actions (0 left, 1 right, 2 forward) as ``env``'s own actions."""
    if tuple(env.primitive_actions) == (LEFT, RIGHT, FORWARD):
        return policy
    table = tuple(env.primitive_actions)
    return lambda info: table[policy(info)]


POLICIES: dict[str, Callable[[np.random.Generator, SourceEnv], Callable[[dict], int]]] = {
    "random": lambda rng, env: _mapped(RandomPolicy(rng), env),
    "revisit": lambda rng, env: (MazeRevisitPolicy(rng, env) if hasattr(type(env), "maze_layout")
                                 else _mapped(RevisitPolicy(rng, env.turns_per_circle), env)),
}


def make_policy(name: str, rng: np.random.Generator, env: SourceEnv) -> Callable[[dict], int]:
    """The collection policy called ``name`` (``random`` or ``revisit``)."""
    if name not in POLICIES:
        raise ValueError(f"unknown collection policy {name!r}; choose one of {sorted(POLICIES)}")
    return POLICIES[name](rng, env)


def run_episode(env: SourceEnv, act: Callable[[dict], int], seed: int, max_steps: int, sees: bool = False) -> Episode:
    """Step ``env`` from ``reset(seed)`` with ``act(info) -> action`` (with ``sees``: ``act(obs, info)``, a policy
    that looks) for at most ``max_steps``."""
    obs, info = env.reset(seed=seed)
    frames, poses, actions, rewards, terms, truncs = [obs], [info["pose"]], [], [], [], []
    for t in range(max_steps):
        a = act(obs, info) if sees else act(info)
        obs, r, term, trunc, info = env.step(a)
        trunc = trunc or (t == max_steps - 1 and not term)
        frames.append(obs), poses.append(info["pose"]), actions.append(a)
        rewards.append(r), terms.append(term), truncs.append(trunc)
        if term or trunc:
            break
    return Episode(np.stack(frames), np.stack(poses).astype(np.float32), np.array(actions, np.int64),
                   np.array(rewards, np.float32), np.array(terms, bool), np.array(truncs, bool), seed=seed)


def record(env: SourceEnv, policy: str, seed: int, max_steps: int) -> Episode:
    """One episode of ``policy`` from ``reset(seed)``, the policy drawing from ``default_rng(seed)``."""
    return run_episode(env, make_policy(policy, np.random.default_rng(seed), env), seed, max_steps)


def _check(episodes: int, max_steps: int) -> None:
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")


def collect(env: SourceEnv, policy: str, episodes: int, seed: int, max_steps: int,
            progress: bool = True) -> Iterator[Episode]:
    """Yield ``episodes`` episodes of ``policy`` in ``env``, one after another, the ``stream`` seeding: episode i
    resets with ``seed + i`` and one policy draws from one ``default_rng(seed)`` throughout."""
    _check(episodes, max_steps)
    act = make_policy(policy, np.random.default_rng(seed), env)
    for i in tqdm(range(episodes), desc=f"collect {policy}", disable=not progress, unit="ep"):
        if hasattr(act, "new_episode"):
            act.new_episode()
        yield run_episode(env, act, seed + i, max_steps)


_WORKER_ENV: SourceEnv | None = None


def _worker_init(source: str, max_steps: int) -> None:
    global _WORKER_ENV
    from envs.sources import make_source

    _WORKER_ENV = make_source(source, max_episode_steps=max_steps)


def _worker_record(policy: str, seed: int, max_steps: int) -> tuple[Episode, int]:
    return record(_WORKER_ENV, policy, seed, max_steps), int(_WORKER_ENV.action_space.n)


def default_workers() -> int:
    """The CPU cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def collect_parallel(source: str, policy: str, seeds: Sequence[int], max_steps: int, workers: int | None = None,
                     progress: bool = True) -> tuple[list[Episode], int]:
    """Episodes of ``policy`` in source ``source``, one per seed (in the seeds' order), recorded by ``workers``
    processes (default: the cores; 1 records here), and the source's number of actions. Each worker builds its
    own env; an episode depends on its seed only, so any ``workers`` gives the same episodes."""
    seeds = [int(s) for s in seeds]
    _check(len(seeds), max_steps)
    if policy not in POLICIES:
        raise ValueError(f"unknown collection policy {policy!r}; choose one of {sorted(POLICIES)}")
    workers = min(workers or default_workers(), len(seeds))
    bar = tqdm(total=len(seeds), desc=f"collect {source} {policy} x{workers}", disable=not progress, unit="ep")
    if workers == 1:
        _worker_init(source, max_steps)
        try:
            out = []
            for s in seeds:
                out.append(_worker_record(policy, s, max_steps)), bar.update()
        finally:
            _WORKER_ENV.close()
    else:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_worker_init,
                                 initargs=(source, max_steps)) as pool:
            futures = {pool.submit(_worker_record, policy, s, max_steps): i for i, s in enumerate(seeds)}
            out = [None] * len(seeds)
            for f in as_completed(futures):
                out[futures[f]] = f.result()
                bar.update()
    bar.close()
    return [e for e, _ in out], out[0][1]


@dataclass
class CollectConfig:
    """What to record: ``episodes`` episodes of ``policy`` in source ``env`` (episode i resets with ``seed + i``,
    at most ``max_steps`` steps), into the dataset folder ``out``."""

    env: str = "miniworld"
    policy: str = "revisit"
    episodes: int = 10
    max_steps: int = 300
    seed: int = 0
    out: str | None = None          # default: <run>/dataset
    progress: bool = True
    seeding: str = "stream"         # stream: one policy, one rng (the shipped datasets' recipe) | episode: one per episode
    workers: int = 1                # processes that record (seeding=episode only)

    def __post_init__(self) -> None:
        from envs.sources import SOURCES

        if self.env not in SOURCES:
            raise ValueError(f"env={self.env!r} is not a source; choose one of {sorted(SOURCES)}")
        if self.policy not in POLICIES:
            raise ValueError(f"policy={self.policy!r}; choose one of {' or '.join(sorted(POLICIES))}")
        if self.episodes < 1 or self.max_steps < 1:
            raise ValueError(f"episodes and max_steps must be >= 1, got {self.episodes} and {self.max_steps}")
        if self.seeding not in ("stream", "episode"):
            raise ValueError(f"seeding must be stream or episode, got {self.seeding!r}")
        if self.workers < 1 or (self.workers > 1 and self.seeding != "episode"):
            raise ValueError(f"workers={self.workers}: parallel collection needs seeding=episode (each episode its own "
                             f"seed); workers must be >= 1")


def collect_dataset(cfg: CollectConfig, run: Path) -> dict:
    """Record ``cfg``'s episodes, write them as a dataset (``cfg.out``, or ``run/dataset``) and return the figures."""
    from envs.data.dataset import write_dataset

    from envs.sources import make_source

    out = Path(cfg.out) if cfg.out else run / "dataset"
    workers = min(cfg.workers, cfg.episodes)
    t0 = time.perf_counter()
    if cfg.seeding == "episode":
        episodes, n_actions = collect_parallel(cfg.env, cfg.policy, range(cfg.seed, cfg.seed + cfg.episodes),
                                               cfg.max_steps, workers, progress=cfg.progress)
    else:
        env = make_source(cfg.env, max_episode_steps=cfg.max_steps)
        episodes = list(collect(env, cfg.policy, cfg.episodes, cfg.seed, cfg.max_steps, progress=cfg.progress))
        n_actions = int(env.action_space.n)
        env.close()
    seconds = time.perf_counter() - t0
    steps = sum(len(e) for e in episodes)
    write_dataset(out, episodes, n_actions=n_actions, metadata={
        "source": cfg.env, "policy": cfg.policy, "seed": cfg.seed, "max_steps": cfg.max_steps,
        "episodes": cfg.episodes, "seeding": cfg.seeding,
        "command": f"memworld collect env={cfg.env} policy={cfg.policy} episodes={cfg.episodes} "
                   f"max_steps={cfg.max_steps} seed={cfg.seed} seeding={cfg.seeding}"})
    return {"dataset": str(out), "episodes": len(episodes), "steps": steps,
            "successes": int(sum(e.terminations.any() for e in episodes)),
            "reward": float(sum(e.rewards.sum() for e in episodes)), "workers": workers, "collect_steps_per_s": steps / seconds}
