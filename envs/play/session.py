"""One play session: the dream, and beside it the real env, both started from the same place.

A person plays through a front end (``window.py``: pygame; ``web.py``: a page in the browser); the front ends
only turn keys into ``step``/``reset``/``next_memory``/``save`` calls and draw ``view()`` and ``readouts()``.

Side by side, ``reset`` steps the real env through its first K frames (K = the model's context) and gives them,
with their actions and poses, to the dream as its context: at step 0 both panes show the same place, the dream's
pane as its autoencoder sees it (the round trip of the real frame), so the PSNR between the panes starts at the
autoencoder's bound and the user sees how and when the two worlds part.
"""

from __future__ import annotations

import dataclasses
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from envs.data.dataset import Episode, write_dataset
from envs.dream.config import DreamConfig
from envs.dream.gym_env import DreamEnv
from memory import MEMORY_KINDS
from worldmodels.metrics import psnr

#: what a front end's keys mean: the sources' shared actions (0 left, 1 right, 2 forward)
KEY_ACTIONS = {"left": 0, "right": 1, "up": 2}
HELP = "arrows: turn / forward   r: new start   m: memory kind   s: save   esc: quit"


class PlaySession:
    """The dream (and, ``side_by_side``, the real source) driven one action at a time, with everything logged.

    ``warmup_action`` is the action the real env takes through its first K-1 steps to make the dream's context."""

    def __init__(self, dream: DreamConfig, side_by_side: bool = True, seed: int = 0, warmup_action: int = 0):
        self.cfg, self.side_by_side, self.seed, self.warmup_action = dream, side_by_side, seed, warmup_action
        self.real = None
        if side_by_side:
            from envs.sources import make_source   # MiniWorld sets pyglet headless (EGL) at import: see window.py

            self.real = make_source(dream.source)
        self.env = DreamEnv(source=dream.source, config=dream)
        self.episodes: list[dict[str, list]] = []    # finished episodes, kept for ``save``
        self.step_seconds: deque[float] = deque(maxlen=30)
        self.saves = 0
        self.reset(seed)

    @property
    def core(self):
        return self.env.core

    @property
    def memory(self) -> str:
        """The memory kind the dream reads (``none`` whatever is asked when the checkpoint has no memory pathway)."""
        return self.core.memory.kind

    def reset(self, seed: int | None = None) -> None:
        """A new start (the session's next seed unless given); the finished episode is kept for ``save``."""
        self._close_episode()
        self.seed = self.seed + 1 if seed is None else seed
        ctx = self._real_start(self.seed) if self.real is not None else None
        obs, info = self.env.reset(seed=self.seed, options={"context": ctx} if ctx else None)
        # the dream's first frame as the model sees it: the autoencoder's round trip of the start frame
        self.dream_frame = self.core.model.decode(self.core.ctx[0, -1]).cpu().numpy()
        self.dream_pose, self.since_visit = info["pose"], info["steps_since_visit"]
        self.done = False
        self.panes = self._compose()
        self.log: dict[str, list] = {"dream": [self.dream_frame], "dream_pose": [self.dream_pose], "actions": [],
                                     "rewards": [], "ends": [], "real": [], "real_pose": [], "panes": [self.panes]}
        if self.real is not None:
            self.log["real"], self.log["real_pose"] = [self.real_frame], [self.real_pose]

    def _real_start(self, seed: int) -> dict[str, np.ndarray]:
        """The real env's first K frames, actions (the first 0: none led into it) and poses: the dream's context."""
        obs, info = self.real.reset(seed=seed)
        frames, poses, actions = [obs], [info["pose"]], [0]
        for _ in range(self.core.k - 1):
            obs, _, _, _, info = self.real.step(self.warmup_action)
            frames.append(obs)
            poses.append(info["pose"])
            actions.append(self.warmup_action)
        self.real_frame, self.real_pose = obs, info["pose"]
        return {"frames": np.stack(frames), "actions": np.array(actions), "poses": np.stack(poses)}

    def step(self, action: int) -> None:
        """One action in both worlds; an episode that ended in either starts over (a new start)."""
        if self.done:
            self.reset()
        t0 = time.perf_counter()
        self.dream_frame, reward, term, trunc, info = self.env.step(action)
        self.dream_pose, self.since_visit = info["pose"], info["steps_since_visit"]
        ends = (term, trunc)
        if self.real is not None:
            self.real_frame, _, rterm, rtrunc, rinfo = self.real.step(action)
            self.real_pose = rinfo["pose"]
            ends = (term or rterm, (trunc or rtrunc) and not (term or rterm))
            self.log["real"].append(self.real_frame)
            self.log["real_pose"].append(self.real_pose)
        self.step_seconds.append(time.perf_counter() - t0)
        self.log["dream"].append(self.dream_frame)
        self.log["dream_pose"].append(self.dream_pose)
        self.log["actions"].append(int(action))
        self.log["rewards"].append(float(reward))
        self.log["ends"].append(ends)
        self.done = any(ends)
        self.panes = self._compose()
        self.log["panes"].append(self.panes)

    def next_memory(self) -> str:
        """Switch the dream to the next memory kind and start again from the same start (both panes)."""
        kinds = list(MEMORY_KINDS)
        kind = kinds[(kinds.index(self.cfg.memory) + 1) % len(kinds)]
        if kind == "none" and self.cfg.scene_map:
            kind = kinds[(kinds.index(kind) + 1) % len(kinds)]
        self.cfg = dataclasses.replace(self.cfg, memory=kind)
        self.env = DreamEnv(source=self.cfg.source, config=self.cfg)
        self.reset(self.seed)
        return self.memory

    @property
    def steps(self) -> int:
        return len(self.log["actions"])

    def pane_psnr(self) -> float | None:
        """PSNR (dB) of the dream pane against the real pane (None without the real env)."""
        return None if self.real is None else psnr(self.dream_frame, self.real_frame)

    def steps_per_second(self) -> float:
        return len(self.step_seconds) / sum(self.step_seconds) if self.step_seconds else 0.0

    def view(self) -> np.ndarray:
        """What the front ends draw: the panes after the last step or reset (see ``_compose``)."""
        return self.panes

    def _compose(self) -> np.ndarray:
        """The panes ``(64 + 32, W, 3)`` uint8: dream (and real) on top, the retrieved memory frames below at half size."""
        top = self.dream_frame if self.real is None else np.concatenate([self.dream_frame, self.real_frame], axis=1)
        mem = self.core.memory_frames(0)[:, ::2, ::2]
        row = np.concatenate(list(mem), axis=1) if len(mem) else np.zeros((32, 32, 3), np.uint8)
        width = max(top.shape[1], row.shape[1])
        pad = lambda a: np.pad(a, ((0, 0), (0, width - a.shape[1]), (0, 0)))
        return np.concatenate([pad(top), pad(row)], axis=0)

    def readouts(self) -> dict[str, Any]:
        """What the front ends print under the panes (JSON-able)."""
        p = self.pane_psnr()
        return {"step": self.steps, "memory": self.memory, "psnr": None if p is None else round(p, 2),
                "since_visit": int(self.since_visit), "dream_pose": [round(float(v), 2) for v in self.dream_pose],
                "real_pose": None if self.real is None else [round(float(v), 2) for v in self.real_pose],
                "steps_per_s": round(self.steps_per_second(), 1), "seed": self.seed, "saves": self.saves}

    def status_line(self) -> str:
        r = self.readouts()
        psnr_s = "" if r["psnr"] is None else f"  psnr {r['psnr']:.1f} dB"
        return f"step {r['step']}  memory {r['memory']}{psnr_s}  since visit {r['since_visit']}"

    def _close_episode(self) -> None:
        if getattr(self, "log", None) and self.log["actions"]:
            self.episodes.append(self.log)

    def save(self, folder: str | Path, fps: int = 8) -> dict[str, Path]:
        """Write the session so far into ``folder``: ``session.gif`` (the panes, every step) and ``episodes/``, a
        Minari dataset of the played episodes (the real env's frames and poses side by side, the dream's frames
        and poses as the infos ``dream_frame``/``dream_pose``; the dream's own otherwise)."""
        import imageio.v3 as iio

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        logs = [*self.episodes, self.log] if self.log["actions"] else list(self.episodes)
        if not logs:
            raise ValueError("nothing to save yet: take a step first")
        panes = [np.repeat(np.repeat(p, 2, 0), 2, 1) for log in logs for p in log["panes"]]
        gif = folder / "session.gif"
        iio.imwrite(gif, np.stack(panes), duration=1000 / fps, loop=0)
        eps = [self._episode(log) for log in logs]
        meta = {"source": self.cfg.source, "policy": "human", "side_by_side": self.side_by_side,
                "dream": self.cfg.to_dict()}
        data = write_dataset(folder / "episodes", eps, n_actions=self.core.n_actions, metadata=meta, replace=True)
        self.saves += 1
        return {"gif": gif, "dataset": data}

    def _episode(self, log: dict[str, list]) -> Episode:
        t = len(log["actions"])
        real = self.real is not None
        frames = np.stack(log["real"] if real else log["dream"])
        poses = np.stack(log["real_pose"] if real else log["dream_pose"]).astype(np.float32)
        extra = {"dream_frame": np.stack(log["dream"]), "dream_pose": np.stack(log["dream_pose"]).astype(np.float32)}
        ends = np.array(log["ends"], bool).reshape(t, 2)
        return Episode(frames, poses, np.array(log["actions"]), np.array(log["rewards"], np.float32), ends[:, 0],
                       ends[:, 1], seed=None, extra=extra if real else {})

    def close(self) -> None:
        if self.real is not None:
            self.real.close()
