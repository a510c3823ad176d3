"""Collection policies and the loop that records real play into ``Episode``s.

Actions everywhere: 0 turn left, 1 turn right, 2 forward.
- ``random``: random actions held for 1-4 steps (action repeat), forward-biased.
- ``revisit``: random segments interleaved with scripted leave-and-return routines
  (a 360-degree turn, out-and-back, a loop), so the data holds revisits of places
  seen far more than a context length ago.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
from tqdm import tqdm

from envs.data.dataset import Episode
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


POLICIES: dict[str, Callable[[np.random.Generator, SourceEnv], Callable[[dict], int]]] = {
    "random": lambda rng, env: RandomPolicy(rng),
    "revisit": lambda rng, env: RevisitPolicy(rng, env.turns_per_circle),
}


def make_policy(name: str, rng: np.random.Generator, env: SourceEnv) -> Callable[[dict], int]:
    """The collection policy called ``name`` (``random`` or ``revisit``)."""
    if name not in POLICIES:
        raise ValueError(f"unknown collection policy {name!r}; choose one of {sorted(POLICIES)}")
    return POLICIES[name](rng, env)


def run_episode(env: SourceEnv, act: Callable[[dict], int], seed: int, max_steps: int) -> Episode:
    """Step ``env`` from ``reset(seed)`` with ``act(info) -> action`` for at most ``max_steps``."""
    obs, info = env.reset(seed=seed)
    frames, poses, actions, rewards, terms, truncs = [obs], [info["pose"]], [], [], [], []
    for t in range(max_steps):
        a = act(info)
        obs, r, term, trunc, info = env.step(a)
        trunc = trunc or (t == max_steps - 1 and not term)
        frames.append(obs), poses.append(info["pose"]), actions.append(a)
        rewards.append(r), terms.append(term), truncs.append(trunc)
        if term or trunc:
            break
    return Episode(np.stack(frames), np.stack(poses).astype(np.float32), np.array(actions, np.int64),
                   np.array(rewards, np.float32), np.array(terms, bool), np.array(truncs, bool), seed=seed)


def collect(env: SourceEnv, policy: str, episodes: int, seed: int, max_steps: int,
            progress: bool = True) -> Iterator[Episode]:
    """Yield ``episodes`` episodes of ``policy`` in ``env``; episode i resets with ``seed + i``."""
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")
    rng = np.random.default_rng(seed)
    act = make_policy(policy, rng, env)
    for i in tqdm(range(episodes), desc=f"collect {policy}", disable=not progress, unit="ep"):
        yield run_episode(env, act, seed + i, max_steps)
