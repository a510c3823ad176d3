"""The maze explorer that collects Memory Maze play: cover the maze, and come back to places seen long ago, since
the revisit benchmark needs returns (random turns in a 9x9 maze neither cover it nor return)."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator

import numpy as np

from envs.sources.base import SourceEnv
from geometry import wrap_yaw


class MazeRevisitPolicy:
    """Explore a grid maze and come back: shortest paths (breadth-first on ``env.maze_layout``) to the
    least-visited free cell (coverage) or, with probability ``p_return``, to a cell last seen at least
    ``min_gap`` steps ago (a return); a full look-around on arrival with probability ``p_look``; random
    actions (noop included) with probability ``p_random``, held 1-3 steps. Native Memory Maze actions."""

    NOOP, FORWARD, LEFT, RIGHT, FORWARD_LEFT, FORWARD_RIGHT = range(6)

    def __init__(self, rng: np.random.Generator, env: SourceEnv, p_return: float = 0.4, p_look: float = 0.3,
                 p_random: float = 0.05, min_gap: int = 100):
        if not hasattr(type(env), "maze_layout"):
            raise ValueError(f"source {env.source_name!r} has no maze_layout; MazeRevisitPolicy needs a grid maze")
        self.rng, self.env, self.turns = rng, env, env.turns_per_circle
        self.p_return, self.p_look, self.p_random, self.min_gap = p_return, p_look, p_random, min_gap
        self.new_episode()

    def new_episode(self) -> None:
        """Forget the last maze: a new episode is a new layout."""
        self.t, self.last_seen, self.path, self.queue = 0, {}, deque(), []
        self.stuck_cell, self.stuck_steps = None, 0

    def _neighbours(self, cell: tuple[int, int]) -> Iterator[tuple[int, int]]:
        layout = self.env.maze_layout
        x, y = cell
        for nx, ny in ((x + 1, y), (x - 1, y), (x, y + 1), (x, y - 1)):
            if 0 <= ny < layout.shape[0] and 0 <= nx < layout.shape[1] and layout[ny, nx]:
                yield nx, ny

    def _path(self, start: tuple[int, int], goal: tuple[int, int]) -> deque:
        prev, frontier = {start: None}, deque([start])
        while frontier:
            c = frontier.popleft()
            if c == goal:
                break
            for n in self._neighbours(c):
                if n not in prev:
                    prev[n] = c
                    frontier.append(n)
        path, c = deque(), goal if goal in prev else start
        while c is not None and c != start:
            path.appendleft(c)
            c = prev[c]
        return path

    def _new_goal(self, cell: tuple[int, int]) -> None:
        ys, xs = np.nonzero(self.env.maze_layout)
        free = list(zip(xs.tolist(), ys.tolist()))
        old = [c for c in free if c != cell and self.t - self.last_seen.get(c, self.t) >= self.min_gap]
        if old and self.rng.random() < self.p_return:
            goal = old[int(self.rng.integers(len(old)))]
        else:
            unseen = [c for c in free if c not in self.last_seen and c != cell] or [c for c in free if c != cell]
            goal = unseen[int(self.rng.integers(len(unseen)))]
        self.path = self._path(cell, goal)

    def _steer(self, pose: np.ndarray) -> int:
        x, y, yaw = (float(v) for v in pose)
        while self.path:
            cx, cy = self.path[0][0] + 0.5, self.path[0][1] + 0.5
            if math.hypot(cx - x, cy - y) > 0.3:
                break
            self.path.popleft()
        if not self.path:
            return self.NOOP
        err = wrap_yaw(math.atan2(cy - y, cx - x) - yaw)
        if abs(err) > math.radians(35):
            return self.LEFT if err > 0 else self.RIGHT
        if abs(err) > math.radians(10):
            return self.FORWARD_LEFT if err > 0 else self.FORWARD_RIGHT
        return self.FORWARD

    def __call__(self, info: dict) -> int:
        pose = info["pose"]
        cell = (int(pose[0]), int(pose[1]))
        self.last_seen[cell], self.t = self.t, self.t + 1
        self.stuck_steps = self.stuck_steps + 1 if cell == self.stuck_cell else 0
        self.stuck_cell = cell
        if self.stuck_steps > 25:  # wedged against a wall: shake loose, then plan again
            self.path.clear()
            self.queue, self.stuck_steps = [int(self.rng.integers(6))] * 3, 0
        if not self.queue and self.rng.random() < self.p_random:
            self.queue = [int(self.rng.integers(6))] * int(self.rng.integers(1, 4))
        if self.queue:
            return self.queue.pop()
        if not self.path:
            if self.t > 1 and self.rng.random() < self.p_look:
                self.queue = [self.LEFT if self.rng.random() < 0.5 else self.RIGHT] * self.turns
                self._new_goal(cell)
                return self.queue.pop()
            self._new_goal(cell)
        return self._steer(pose)
