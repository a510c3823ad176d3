"""True views with their depth at poses drawn over a source's map: what the depth head is fitted on."""

from __future__ import annotations

import math

import numpy as np

from envs.sources.base import PoseOutsideMapError, SourceEnv


def random_poses(env: SourceEnv, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` poses ``(n, 3)`` float32, uniform over the reachable map (``render_at`` accepts them) and in yaw."""
    x0, x1, y0, y1 = env.map_bounds
    out: list[np.ndarray] = []
    tries = 0
    while len(out) < n:
        tries += 1
        if tries > 100 * n + 1000:
            raise RuntimeError(f"could not draw {n} poses inside the map of {env.source_name!r}")
        p = np.array([rng.uniform(x0, x1), rng.uniform(y0, y1), rng.uniform(-math.pi, math.pi)], np.float32)
        try:
            _inside(env, p)
        except PoseOutsideMapError:
            continue
        out.append(p)
    return np.stack(out)


def _inside(env: SourceEnv, pose: np.ndarray) -> None:
    scene = getattr(env, "scene", None)
    if scene is not None and hasattr(scene, "rooms"):     # MiniWorld: cheaper than a render
        p = np.array([pose[0], 0.0, pose[1]])
        if not any(r.point_inside(p) for r in scene.rooms):
            raise PoseOutsideMapError(f"pose {pose.tolist()} is outside the map")
    else:
        env.render_at(pose)


def render_views(env: SourceEnv, poses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The true frames ``(n, 64, 64, 3)`` uint8 and depths ``(n, 64, 64)`` float32 at ``poses (n, 3)``."""
    frames = np.stack([env.render_at(p) for p in poses])
    depth = np.stack([env.depth_at(p) for p in poses])
    return frames, depth


def nearby_poses(env: SourceEnv, poses: np.ndarray, rng: np.random.Generator, step: float = 0.6,
                 max_turn: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """For each pose ``(n, 3)``, one a move of up to ``step`` away in a random direction and turned by up to
    ``max_turn`` radians, kept where it is inside the map: the (stored, new) pose pairs ``(k, 3)`` each, k <= n."""
    keep, new = [], []
    for i, p in enumerate(poses):
        a = rng.uniform(-math.pi, math.pi)
        r = rng.uniform(0.0, step)
        q = np.array([p[0] + r * math.cos(a), p[1] + r * math.sin(a),
                      math.remainder(float(p[2]) + rng.uniform(-max_turn, max_turn), 2 * math.pi)], np.float32)
        try:
            _inside(env, q)
        except PoseOutsideMapError:
            continue
        keep.append(i)
        new.append(q)
    return poses[keep], np.stack(new) if new else np.zeros((0, 3), np.float32)
