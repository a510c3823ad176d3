"""What a dream runs: the one description of every dream option and its default.

Commands and agents hold a whole ``DreamConfig`` (Hydra builds it from the ``dream`` group); ``gym.make`` keyword
arguments map onto it (``DreamConfig.from_kwargs``); recordings store it whole (``dataclasses.asdict``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envs.tasks import TaskConfig
from worldmodels.precision import check_precision


@dataclass
class StoredViewsConfig:
    """Stored views drawn into the dream's frames (static scenes only; everything off by default).

    A view stored at (nearly) the new pose is reused whole; one stored near the new place under another heading
    is turned to the new heading (a depth-free homography), or, with ``move``, moved there by its predicted depth,
    and painted over the drawing where it sees."""

    reuse_max_sq_dist: float = 0.0   # reuse a view whose squared pose distance dx^2+dy^2+2(1-cos dyaw) is below this
    turn_radius: float = 0.0         # units: views stored this near the new place are turned (a step is 0.15)
    turn_max_yaw: float = 0.8        # rad: the largest turn of a stored view
    move: bool = False               # move views by the depth head's depth, from up to turn_radius away

    def __post_init__(self) -> None:
        if self.reuse_max_sq_dist < 0:
            raise ValueError(f"views.reuse_max_sq_dist must be >= 0, got {self.reuse_max_sq_dist}")
        if self.turn_radius < 0 or not 0 < self.turn_max_yaw < 1.5:
            raise ValueError(f"views.turn_radius must be >= 0 and views.turn_max_yaw in (0, 1.5) rad, got "
                             f"{self.turn_radius}, {self.turn_max_yaw}")
        if self.move and self.turn_radius <= 0:
            raise ValueError("views.move=true moves the turned stored views: it needs views.turn_radius > 0")

    @property
    def reuses(self) -> bool:
        return self.reuse_max_sq_dist > 0

    @property
    def paints(self) -> bool:
        """Whether stored views are turned (or moved) and painted: the dream then keeps each slot's pixels."""
        return self.turn_radius > 0


@dataclass
class DreamConfig:
    """A dream: world model, memory, stored views, sampler, task, episode length, where and how it computes."""

    source: str = "miniworld"
    checkpoint: str | None = None          # default: the shipped checkpoint of the source
    starts: str | None = None              # start segments (.npz) or a dataset folder; default: beside the checkpoint
    starts_count: int = 2048               # segments drawn when ``starts`` is a dataset folder
    memory: str = "fov"                    # none | recency | fov | embedding | stateful
    memory_capacity: int = 320             # >= an episode (300 steps) plus the context
    scene_map: str | None = None           # recorded views by pose (memworld build-map) read beside the episode's
    map_candidates: int = 16               # the map's entries nearest the pose that join the retriever's candidates
    views: StoredViewsConfig = field(default_factory=StoredViewsConfig)
    sampler: str | None = None             # default: the checkpoint's
    sampler_steps: int | None = None
    # each drawn latent keeps at least this share of the previous frame's contrast (worldmodels/contrast.py); 0: off
    contrast_keep: float = 0.0
    max_episode_steps: int = 300
    task: TaskConfig = field(default_factory=TaskConfig)
    device: str = "cpu"
    compile: bool = False                  # torch.compile the denoiser and decoder (slow first step, faster after)
    # conv weights in NHWC, oneDNN's own layout on CPU: no re-layout on every call (1.5x steps/s at N = 32 here)
    channels_last: bool = True
    # bf16 autocast of the denoiser and decoder (fp32 | bf16 | auto): on a CPU with AMX 1.2-1.5x steps/s at
    # 64 worlds, frames within ~50 dB PSNR of fp32's; fp32 is the default, the precision the model was judged in
    precision: str = "fp32"

    def __post_init__(self) -> None:
        if isinstance(self.task, str):
            self.task = TaskConfig(self.task)
        elif isinstance(self.task, dict):
            self.task = TaskConfig(**self.task)
        if isinstance(self.views, dict):
            self.views = StoredViewsConfig(**self.views)
        if self.sampler_steps is not None and self.sampler_steps < 1:
            raise ValueError(f"sampler_steps must be >= 1, got {self.sampler_steps}")
        if not 0.0 <= self.contrast_keep <= 1.0:
            raise ValueError(f"contrast_keep is a share of the previous frame's contrast in [0, 1], "
                             f"got {self.contrast_keep}")
        check_precision(self.precision)
        from memory import MEMORY_KINDS

        if self.memory not in MEMORY_KINDS:
            raise ValueError(f"unknown memory kind {self.memory!r}; choose one of {list(MEMORY_KINDS)}")
        if self.scene_map is not None and self.memory in ("none", "stateful"):
            raise ValueError(f"scene_map needs a memory kind that reads it (recency, fov, embedding), not {self.memory!r}")
        for k in ("map_candidates", "starts_count", "max_episode_steps", "memory_capacity"):
            if getattr(self, k) < 1:
                raise ValueError(f"{k} must be >= 1, got {getattr(self, k)}")

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> DreamConfig:
        """The config of ``gym.make(id, **kwargs)``: keys are ``DreamConfig`` fields (``task`` a name, a dict or a
        ``TaskConfig``; ``views`` a dict or a ``StoredViewsConfig``); an unknown key is one clear error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(kwargs) - known
        if unknown:
            raise TypeError(f"unknown dream option(s) {sorted(unknown)}; known: {sorted(known)}")
        if isinstance(kwargs.get("views"), dict):
            names = {f.name for f in dataclasses.fields(StoredViewsConfig)}
            bad = set(kwargs["views"]) - names
            if bad:
                raise TypeError(f"unknown stored-view option(s) {sorted(bad)}; known: {sorted(names)}")
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """Every field, nested configs as dicts: what a recording stores and ``from_dict`` rebuilds."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DreamConfig:
        task = dict(d.get("task") or {})
        for k in ("goal", "start_region"):
            if task.get(k) is not None:
                task[k] = tuple(task[k])
        return cls.from_kwargs(**{**d, "task": TaskConfig(**task), "views": StoredViewsConfig(**(d.get("views") or {}))})

    def checkpoint_path(self) -> Path:
        return Path(self.checkpoint) if self.checkpoint else default_checkpoint(self.source)


DEFAULT_CHECKPOINTS = {"miniworld": "checkpoints/memoryrooms.safetensors",
                       "memorymaze9": "checkpoints/memorymaze9x9.safetensors"}


def default_checkpoint(source: str) -> Path:
    """The shipped checkpoint for ``source`` (looked up beside the package, then in the cwd)."""
    if source not in DEFAULT_CHECKPOINTS:
        raise FileNotFoundError(f"no shipped checkpoint for source {source!r}: train one with memworld "
                                f"train-worldmodel and pass checkpoint=<path>")
    rel = DEFAULT_CHECKPOINTS[source]
    for root in (Path(__file__).resolve().parents[2], Path.cwd()):
        if (root / rel).is_file():
            return root / rel
    raise FileNotFoundError(f"shipped checkpoint {rel} not found; train one with memworld train-worldmodel")
