"""Start segments for dream resets: K real frames with their actions and poses.

Shipped beside a checkpoint as ``<checkpoint>.starts.npz`` so that a dream can start
from real context without the training dataset.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from envs.data.dataset import FrameArrays


@dataclass
class StartSegments:
    """``frames (S, K, 64, 64, 3)`` uint8, ``actions (S, K)``, ``poses (S, K, 3)``.

    ``actions[:, j]`` is the action that led *into* frame j (the dream appends each new
    action to this history, so after a step it holds the actions leaving the context frames).
    """

    frames: np.ndarray
    actions: np.ndarray
    poses: np.ndarray

    @staticmethod
    def path_beside(checkpoint: Path) -> Path:
        return Path(str(checkpoint).removesuffix(".safetensors") + ".starts.npz")

    @classmethod
    def from_arrays(cls, arrays: FrameArrays, k: int, n: int, seed: int = 0,
                    region: tuple[float, float, float, float] | None = None) -> StartSegments:
        """``n`` random K-frame segments that lie inside one episode each (and end inside ``region``
        (x0, x1, y0, y1) when given: where the dream starts)."""
        starts = arrays.window_starts(k + 1)   # one frame of history so every frame has its incoming action
        if len(starts) == 0:
            raise ValueError(f"no episode of the dataset is longer than {k} frames: no start segment to draw")
        if region is not None:
            from envs.tasks import in_region

            starts = starts[in_region(arrays.poses[starts + k], region)]
            if len(starts) == 0:
                raise ValueError(f"no {k}-frame segment of the dataset ends inside {tuple(region)}")
        idx = np.random.default_rng(seed).choice(starts, size=min(n, len(starts)), replace=False)
        win = idx[:, None] + np.arange(k)
        return cls(arrays.frames[win + 1], arrays.actions[win], arrays.poses[win + 1])

    def save(self, path: str | Path) -> None:
        import io

        from worldmodels.checkpoint import atomic_write_bytes

        buf = io.BytesIO()
        np.savez_compressed(buf, frames=self.frames, actions=self.actions, poses=self.poses)
        atomic_write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path: str | Path, k: int | None = None, n: int = 2048,
             region: tuple[float, float, float, float] | None = None) -> StartSegments:
        """Segments saved as ``.npz``, or ``n`` drawn from a dataset folder (``k`` frames each, ending
        inside ``region`` if given): a dream can start from far more real places than the 64 shipped
        beside a checkpoint without touching a real frame beyond the world model's own data."""
        path = Path(path)
        if path.is_dir():
            if k is None:
                raise ValueError(f"start segments from the dataset {path} need the context length k")
            from envs.data.dataset import load_arrays

            return cls.from_arrays(load_arrays(path), k, n, seed=0, region=region)
        if not path.is_file():
            raise FileNotFoundError(f"start segments {path} not found: give a .npz (saved beside a checkpoint) "
                                    f"or a dataset folder")
        try:
            with np.load(path) as z:
                return cls(z["frames"], z["actions"], z["poses"])
        except Exception as exc:
            raise ValueError(f"start segments {path} are corrupt: {exc}") from exc

    def within(self, region: tuple[float, float, float, float]) -> StartSegments:
        """The segments whose last pose (where the dream starts) lies inside ``region`` (x0, x1, y0, y1)."""
        from envs.tasks import in_region

        keep = in_region(self.poses[:, -1], region)
        if not keep.any():
            raise ValueError(f"none of the {len(self.frames)} start segments starts inside {tuple(region)}")
        return StartSegments(self.frames[keep], self.actions[keep], self.poses[keep])

    def pick(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        i = int(rng.integers(0, len(self.frames)))
        return {"frames": self.frames[i], "actions": self.actions[i], "poses": self.poses[i]}
