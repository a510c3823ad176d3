"""Scripted leave-and-return paths, stepped in the real env for ground truth.

Each path starts with K context steps, then leaves and comes back: a 360-degree turn,
out-and-back, a loop around a square, or a random walk that retraces itself. A step
is a *revisit* when its real pose is near a pose the path held more than K steps
earlier (so the view is outside the context window) and the agent went away in between.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from envs.data.collection import FORWARD, LEFT, RIGHT
from envs.sources.base import SourceEnv

PATH_KINDS = ("turn_around", "out_and_back", "loop", "random_return")
REVISIT_TOL = (0.6, 0.3)
"""(units, rad): a pose this near one held earlier is a revisit (up to three forward steps or one
15-degree turn step away in MiniWorld, so the true view may differ from the stored one)."""


@dataclass
class RevisitPath:
    """A path's real rollout: ``frames (T+1, 64, 64, 3)``, ``poses (T+1, 3)``, ``actions (T,)``
    (``actions[t]`` leads from frame t to t+1); the first ``k`` frames are the dream's context,
    and dream step i produces the counterpart of real frame ``k + i``."""

    kind: str
    seed: int
    k: int
    frames: np.ndarray
    poses: np.ndarray
    actions: np.ndarray

    def context(self) -> dict[str, np.ndarray]:
        """The first K frames with the actions that led into them (unknown before frame 0: 0)."""
        into = np.concatenate([[0], self.actions[: self.k - 1]])
        return {"frames": self.frames[: self.k], "actions": into, "poses": self.poses[: self.k]}

    def dream_actions(self) -> np.ndarray:
        """Actions the dream takes after its context: those leading to frames K, K+1, ..."""
        return self.actions[self.k - 1:]

    def revisit_of(self, pos_tol: float = REVISIT_TOL[0], yaw_tol: float = REVISIT_TOL[1]) -> np.ndarray:
        """For each frame t: the earliest frame s < t - k with a near pose, held before the agent
        last went away (a pose not near frame t's), else -1. Pushing into a wall leaves the pose as it
        was: frames that never left are not a return."""
        p = self.poses
        out = np.full(len(p), -1)
        for t in range(len(p)):
            d = np.linalg.norm(p[:t, :2] - p[t, :2], axis=1)
            dyaw = np.abs(np.remainder(p[:t, 2] - p[t, 2] + np.pi, 2 * np.pi) - np.pi)
            near = (d < pos_tol) & (dyaw < yaw_tol)
            away = np.flatnonzero(~near)
            if len(away) == 0:
                continue
            hit = np.flatnonzero(near[: max(0, min(t - self.k, int(away[-1])))])
            if len(hit):
                out[t] = hit[0]
        return out


def path_actions(kind: str, rng: np.random.Generator, turns: int, length: int) -> list[int]:
    """The leave-and-return actions of a path kind (after the context)."""
    half = [LEFT] * (turns // 2)
    if kind == "turn_around":
        return [int(rng.choice([LEFT, RIGHT]))] * turns
    if kind == "out_and_back":
        n = max(3, length // 2 - turns // 2)
        return [FORWARD] * n + half + [FORWARD] * n + half
    if kind == "loop":
        side = max(2, length // 4 - turns // 4)
        d = int(rng.choice([LEFT, RIGHT]))
        return ([FORWARD] * side + [d] * (turns // 4)) * 4
    if kind == "random_return":
        out = []
        while len(out) < length // 2 - turns // 2:
            out += [int(rng.choice([LEFT, RIGHT, FORWARD, FORWARD]))] * int(rng.integers(1, 4))
        back = [{LEFT: RIGHT, RIGHT: LEFT, FORWARD: FORWARD}[a] for a in reversed(out)]
        return out + half + back + half
    raise ValueError(f"unknown path kind {kind!r}; choose one of {PATH_KINDS}")


def run_path(env: SourceEnv, kind: str, seed: int, k: int, length: int = 48) -> RevisitPath:
    """Step a path in the real env. Context: K steps of turning (cheap, always legal)."""
    rng = np.random.default_rng(seed)
    obs, info = env.reset(seed=seed)
    frames, poses = [obs], [info["pose"]]
    actions = [LEFT] * (k - 1) + path_actions(kind, rng, env.turns_per_circle, length)
    for a in actions:
        obs, _, _, _, info = env.step(a)
        frames.append(obs)
        poses.append(info["pose"])
    truth = np.stack([env.render_at(p) for p in poses])
    assert np.array_equal(truth, np.stack(frames)), "render_at disagrees with the observed frames"
    return RevisitPath(kind, seed, k, np.stack(frames), np.stack(poses), np.array(actions, np.int64))
