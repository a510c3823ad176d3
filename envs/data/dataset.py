"""Datasets of play: Minari (HDF5, lossless) on disk, contiguous arrays in memory.

A dataset is a folder ``<path>/`` holding Minari's ``data/`` and ``metadata.json``
plus our ``memworld.json`` (source, policy, seeds, ...). Poses travel as
``infos["pose"]``. Writes are atomic: built under a temporary name beside the
target, then renamed, so an interrupted write never leaves a dataset at ``path``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from envs.sources.base import IMAGE_SIZE

META_FILE = "memworld.json"


class DatasetError(ValueError):
    """A dataset file is missing, corrupt or not in memworld's format."""


@dataclass
class Episode:
    """One episode of ``T`` steps: ``frames (T+1, 64, 64, 3)`` uint8, ``poses (T+1, 3)`` float32,
    ``actions/rewards/terminations/truncations (T,)``. ``extra`` holds more per-frame infos."""

    frames: np.ndarray | None       # None for an encoded dataset (envs/encoded_dataset.py)
    poses: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray
    seed: int | None = None
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.actions)


def write_dataset(path: str | Path, episodes: Iterable[Episode], n_actions: int,
                  metadata: dict[str, Any] | None = None, replace: bool = False) -> Path:
    """Write ``episodes`` as a lossless Minari dataset at ``path`` (atomically); return ``path``.

    An existing dataset at ``path`` is an error unless ``replace``: then it is swapped out only
    once the new one is complete (a run that is resumed rewrites its own evaluation)."""
    import gymnasium as gym
    import minari
    from minari.data_collector import EpisodeBuffer

    path = Path(path).absolute()  # Minari mis-joins relative roots
    if path.exists() and not replace:
        raise FileExistsError(f"dataset {path} already exists; choose another path or delete it")
    path.parent.mkdir(parents=True, exist_ok=True)
    buffers = []
    for i, ep in enumerate(episodes):
        _check_episode(ep, i)
        infos = {"pose": ep.poses.astype(np.float32), **ep.extra}
        buffers.append(EpisodeBuffer(
            id=i, seed=ep.seed, observations=ep.frames, actions=ep.actions.astype(np.int64),
            rewards=ep.rewards.astype(np.float64), terminations=ep.terminations.astype(bool),
            truncations=ep.truncations.astype(bool), infos=infos))
    if not buffers:
        raise ValueError("cannot write a dataset with no episodes")
    tmp_root = Path(tempfile.mkdtemp(prefix=f".tmp-{path.name}-", dir=path.parent))
    saved_env = os.environ.get("MINARI_DATASETS_PATH")
    try:
        os.environ["MINARI_DATASETS_PATH"] = str(tmp_root)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # Minari nags about author/permalink fields
            minari.create_dataset_from_buffers(
                dataset_id="memworld-v0",
                buffer=buffers,
                observation_space=gym.spaces.Box(0, 255, (IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8),
                action_space=gym.spaces.Discrete(n_actions),
                algorithm_name=str((metadata or {}).get("policy", "unknown")),
                author="memworld",
                description="memworld recorded play",
                jpeg_encoding=False,
            )
        built = tmp_root / "memworld-v0"
        (built / META_FILE).write_text(json.dumps({"format": 1, "n_actions": n_actions, **(metadata or {})},
                                                  indent=2, default=str))
        if path.exists():
            os.replace(path, tmp_root / "replaced")
        os.replace(built, path)
    finally:
        if saved_env is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = saved_env
        shutil.rmtree(tmp_root, ignore_errors=True)
    return path


def _check_episode(ep: Episode, i: int) -> None:
    t = len(ep.actions)
    if ep.frames.shape != (t + 1, IMAGE_SIZE, IMAGE_SIZE, 3) or ep.frames.dtype != np.uint8:
        raise ValueError(f"episode {i}: frames must be uint8 (T+1, 64, 64, 3), got {ep.frames.dtype} {ep.frames.shape}")
    if ep.poses.shape != (t + 1, 3):
        raise ValueError(f"episode {i}: poses must be (T+1, 3), got {ep.poses.shape}")


def read_metadata(path: str | Path) -> dict[str, Any]:
    """memworld's metadata of the dataset at ``path``."""
    if not Path(path).is_dir():
        raise DatasetError(f"no dataset at {path}: the folder does not exist")
    meta = Path(path) / META_FILE
    if not meta.is_file():
        raise DatasetError(f"{path} is not a memworld dataset: {META_FILE} is missing")
    try:
        return json.loads(meta.read_text())
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{meta} is corrupt: {exc}") from exc


def read_episodes(path: str | Path) -> list[Episode]:
    """All episodes of the dataset at ``path``, checked for memworld's format."""
    from minari import MinariDataset

    path = Path(path)
    if not (path / "data").is_dir():
        raise DatasetError(f"no dataset at {path}: expected a Minari dataset folder with data/ inside")
    read_metadata(path)
    try:
        ds = MinariDataset(path / "data")
        raw = list(ds.iterate_episodes())
    except Exception as exc:  # h5py/minari raise many kinds on a damaged file
        raise DatasetError(f"dataset {path} is corrupt or unreadable: {type(exc).__name__}: {exc}") from exc
    episodes = []
    for ep in raw:
        obs = np.asarray(ep.observations)
        if obs.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE, 3) or obs.dtype != np.uint8:
            raise DatasetError(f"dataset {path}: episode {ep.id} has images {obs.dtype}{obs.shape[1:]}, "
                               f"expected uint8(64, 64, 3)")
        if "pose" not in ep.infos:
            raise DatasetError(f"dataset {path}: episode {ep.id} has no infos['pose']; memworld needs poses")
        extra = {k: np.asarray(v) for k, v in ep.infos.items() if k != "pose"}
        episodes.append(Episode(
            frames=obs, poses=np.asarray(ep.infos["pose"], np.float32), actions=np.asarray(ep.actions, np.int64),
            rewards=np.asarray(ep.rewards, np.float32), terminations=np.asarray(ep.terminations, bool),
            truncations=np.asarray(ep.truncations, bool), seed=None, extra=extra))
    return episodes


@dataclass
class FrameArrays:
    """All frames of a dataset as contiguous arrays, for training without per-sample copies.

    ``frames (N, 64, 64, 3)`` uint8 and ``poses (N, 3)`` hold every episode's T+1 frames
    back to back; ``actions/rewards/terminations (N,)`` are those of the step *leaving*
    frame i (0 after an episode's last frame). ``starts``/``lengths`` (E,) locate episodes
    (a length counts frames).
    """

    frames: np.ndarray | None       # None for an encoded dataset (envs/encoded_dataset.py)
    poses: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminations: np.ndarray
    starts: np.ndarray
    lengths: np.ndarray
    n_actions: int

    @classmethod
    def from_episodes(cls, episodes: list[Episode], n_actions: int) -> FrameArrays:
        frames = np.concatenate([e.frames for e in episodes])
        poses = np.concatenate([e.poses for e in episodes])
        pad = lambda a, dt: np.concatenate([np.asarray(a, dt), np.zeros(1, dt)])
        actions = np.concatenate([pad(e.actions, np.int64) for e in episodes])
        rewards = np.concatenate([pad(e.rewards, np.float32) for e in episodes])
        terms = np.concatenate([pad(e.terminations, bool) for e in episodes])
        lengths = np.array([len(e.frames) for e in episodes], np.int64)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        return cls(frames, poses, actions, rewards, terms, starts, lengths, n_actions)

    def window_starts(self, length: int) -> np.ndarray:
        """Every index i such that frames i .. i+length-1 lie in one episode."""
        out = [np.arange(s, s + n - length + 1) for s, n in zip(self.starts, self.lengths) if n >= length]
        return np.concatenate(out) if out else np.zeros(0, np.int64)

    def episode_of(self, index: np.ndarray) -> np.ndarray:
        """Episode number of each global frame index."""
        return np.searchsorted(self.starts, index, side="right") - 1

    def split(self, n_heldout: int) -> tuple[FrameArrays, FrameArrays]:
        """(train, held-out): the last ``n_heldout`` episodes are held out."""
        e = len(self.starts)
        if not 0 < n_heldout < e:
            raise ValueError(f"cannot hold out {n_heldout} of {e} episodes")
        cut = int(self.starts[e - n_heldout])
        return self._slice(0, cut, slice(0, e - n_heldout)), self._slice(cut, len(self.poses), slice(e - n_heldout, e))

    def _slice(self, a: int, b: int, eps: slice) -> FrameArrays:
        frames = None if self.frames is None else self.frames[a:b]
        return FrameArrays(frames, self.poses[a:b], self.actions[a:b], self.rewards[a:b],
                           self.terminations[a:b], self.starts[eps] - a, self.lengths[eps], self.n_actions)


def load_arrays(path: str | Path) -> FrameArrays:
    """Load the dataset at ``path`` as contiguous ``FrameArrays``."""
    meta = read_metadata(path)
    return FrameArrays.from_episodes(read_episodes(path), int(meta["n_actions"]))
