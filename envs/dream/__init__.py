"""The dream: a world model stepped as N batched worlds (``core``), its memory, the stored views it paints,
and the Gymnasium and SB3 adapters over it."""

from envs.dream.config import DreamConfig, StoredViewsConfig
from envs.dream.core import DreamCore
from envs.dream.gym_env import DreamEnv, DreamVectorEnv

__all__ = ["DreamConfig", "StoredViewsConfig", "DreamCore", "DreamEnv", "DreamVectorEnv"]
