"""Memory Maze trials as Po et al. (arXiv 2505.20171) measure a video world model's memory: real frames into
memory, then frames to generate, each scored against the true view.

- *retrieval*: ``context`` frames of the maze explorer, then the same path walked back (its poses in reverse
  order, from the one before the last to the first), whose true views are rendered at those poses
  (``render_at``) right when the context ends, so the border shows the target colour of that moment;
- *reasoning*: ``context`` frames of the explorer, then ``generated`` steps of uniformly random actions
  stepped in the real env (its frames are the truth).

One real run per seed (a held-out layout) gives both: the explorer for the reasoning context (the retrieval
context is its first frames, its walk back rendered as they end), then the random steps. The Memory Maze has
no backward action, so a step back along the path is given to the denoiser as its turn mirrored (left <->
right, a forward part as nothing): no action explains the step, which handicaps a dream without memory; the
true pose moves the dream and picks what memory reads.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from envs.data.maze_explorer import MazeRevisitPolicy

PROTOCOLS = ("retrieval", "reasoning")
#: the mirror of each native action on the way back: noop, forward, left, right, forward+left, forward+right
MIRRORED = np.array([0, 0, 3, 2, 3, 2], np.int64)


@dataclass
class Trial:
    """Real frames into memory, then the dream's steps: ``context_frames (C, 64, 64, 3)`` uint8, ``context_poses
    (C, 3)``, ``context_actions (C,)`` (``[j]`` led into frame j, 0 before the first), then ``actions (G,)`` the dream
    takes (``[i]`` leads to target i), the targets' true ``poses (G, 3)`` and views ``truth (G, 64, 64, 3)``."""

    protocol: str
    seed: int
    context_frames: np.ndarray
    context_poses: np.ndarray
    context_actions: np.ndarray
    actions: np.ndarray
    poses: np.ndarray
    truth: np.ndarray

    def context(self) -> dict[str, np.ndarray]:
        """The dream's reset context: every real frame (all written to memory; the last K are the denoiser's)."""
        return {"frames": self.context_frames, "actions": self.context_actions, "poses": self.context_poses}

    def last_seen(self, pos_tol: float = 0.5, yaw_tol: float = 0.5) -> np.ndarray:
        """Per target: steps since a pose within (``pos_tol`` units, ``yaw_tol`` rad) of it was last held in the real
        context (whose views memory holds), -1 if never there."""
        c, out = len(self.context_poses), np.full(len(self.poses), -1)
        for i, p in enumerate(self.poses):
            d = np.linalg.norm(self.context_poses[:, :2] - p[:2], axis=1)
            dyaw = np.abs(np.remainder(self.context_poses[:, 2] - p[2] + np.pi, 2 * np.pi) - np.pi)
            hit = np.flatnonzero((d < pos_tol) & (dyaw < yaw_tol))
            if len(hit):
                out[i] = c + i - hit[-1]
        return out


def explore(env, seed: int, steps: int, at: int = -1,
            then: Callable[[np.ndarray], None] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``steps`` steps of the maze explorer from ``reset(seed)``: frames and poses ``(steps+1, ...)``, and the actions
    into each frame ``(steps+1,)`` (0 before the first); ``then(poses so far (at+1, 3))`` is called on reaching
    frame ``at``."""
    act = MazeRevisitPolicy(np.random.default_rng(seed), env)
    obs, info = env.reset(seed=seed)
    frames, poses, actions = [obs], [info["pose"]], [0]
    for t in range(steps + 1):
        if t == at and then is not None:
            then(np.stack(poses).astype(np.float32))
        if t == steps:
            break
        a = act(info)
        obs, _, _, _, info = env.step(a)
        frames.append(obs), poses.append(info["pose"]), actions.append(a)
    return np.stack(frames), np.stack(poses).astype(np.float32), np.array(actions, np.int64)


def check_lengths(retrieval: tuple[int, int], reasoning: tuple[int, int], episode_steps: int = 1000) -> None:
    """``ValueError`` unless both are (context, generated) pairs of positive lengths that one real run holds: the
    retrieval context is the start of the reasoning one, the walk back at most its context less one frame, and
    the whole run within a Memory Maze episode (``episode_steps``)."""
    for name, pair in (("retrieval", retrieval), ("reasoning", reasoning)):
        if len(pair) != 2 or min(pair) < 1:
            raise ValueError(f"{name} must be [context frames, generated frames], both >= 1, got {list(pair)}")
    (rc, rg), (qc, qg) = retrieval, reasoning
    if not rg <= rc - 1:
        raise ValueError(f"retrieval walks its context back from the frame before its last: at most {rc - 1} "
                         f"generated frames, got {rg}")
    if rc > qc:
        raise ValueError(f"the retrieval context is the start of the reasoning one: {rc} > {qc} frames")
    if qc - 1 + qg > episode_steps:
        raise ValueError(f"one real run of {qc - 1 + qg} steps does not fit a Memory Maze episode of {episode_steps}")


def real_trials(env, seed: int, retrieval: tuple[int, int], reasoning: tuple[int, int]) -> list[Trial]:
    """Both trials of one layout (``reset(seed)``): ``retrieval`` and ``reasoning`` are (context, generated) frames."""
    check_lengths(retrieval, reasoning)
    (rc, rg), (qc, qg) = retrieval, reasoning
    back = np.arange(rc - 2, rc - 2 - rg, -1)         # the path walked back from the pose before the last
    rendered: list[np.ndarray] = []
    frames, poses, actions = explore(env, seed, qc - 1, at=rc - 1,
                                     then=lambda seen: rendered.extend(env.render_at(p) for p in seen[back]))
    q_actions = np.random.default_rng(seed + 1).integers(0, env.action_space.n, qg)
    q_frames, q_poses = [], []
    for a in q_actions:        # the explorer's run goes on with random actions
        obs, _, _, _, info = env.step(int(a))
        q_frames.append(obs), q_poses.append(info["pose"])
    b_actions = MIRRORED[actions[back + 1]]           # undoes the step into back[i] + 1
    return [Trial("retrieval", seed, frames[:rc], poses[:rc], actions[:rc], b_actions, poses[back], np.stack(rendered)),
            Trial("reasoning", seed, frames[:qc], poses[:qc], actions[:qc], q_actions.astype(np.int64),
                  np.stack(q_poses).astype(np.float32), np.stack(q_frames))]


_ENV = None


def _init(source: str) -> None:
    global _ENV
    from envs.sources import make_source

    _ENV = make_source(source, max_episode_steps=100_000)


def _run(seed: int, retrieval: tuple[int, int], reasoning: tuple[int, int]) -> list[Trial]:
    return real_trials(_ENV, seed, retrieval, reasoning)


def build_trials(source: str, seeds: list[int], retrieval: tuple[int, int], reasoning: tuple[int, int],
                 workers: int = 2) -> list[Trial]:
    """Every seed's trials (retrieval ones first, then reasoning), recorded by ``workers`` spawned processes."""
    if workers <= 1:
        _init(source)
        per_seed = [_run(s, retrieval, reasoning) for s in seeds]
    else:
        with ProcessPoolExecutor(min(workers, len(seeds)), mp_context=get_context("spawn"), initializer=_init,
                                 initargs=(source,)) as pool:
            per_seed = list(pool.map(_run, seeds, [retrieval] * len(seeds), [reasoning] * len(seeds)))
    return [t for p in PROTOCOLS for ts in per_seed for t in ts if t.protocol == p]


FIELDS = ("context_frames", "context_poses", "context_actions", "actions", "poses", "truth")


def save_trials(path: str | Path, trials: list[Trial]) -> None:
    """One ``.npz`` (compressed, lossless), written whole or not at all."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp.npz")
    arrays = {f"{i}/{f}": getattr(t, f) for i, t in enumerate(trials) for f in FIELDS}
    meta = np.array([f"{t.protocol}:{t.seed}" for t in trials])
    np.savez_compressed(tmp, meta=meta, **arrays)
    tmp.replace(path)


def load_trials(path: str | Path) -> list[Trial]:
    """The trials ``save_trials`` wrote; ``ValueError`` naming the file if it is not such a file."""
    try:
        with np.load(path) as z:
            out = []
            for i, m in enumerate(z["meta"]):
                protocol, seed = str(m).split(":")
                out.append(Trial(protocol, int(seed), *(z[f"{i}/{f}"] for f in FIELDS)))
            return out
    except (OSError, KeyError, ValueError) as exc:
        raise ValueError(f"{path} is not a trials file written by memworld eval-revisit ({exc})") from None
