"""Spatial memory: pose geometry, memory banks, retrievers, stateful memory (torch only)."""

from memory.bank import MemoryBank
from memory.geometry import compose, fov_overlap, pose_distance, relative_pose, wrap_angle
from memory.retrievers import RETRIEVERS, Retrieved, retrieve, view_visibility
from memory.stateful import StatefulGridMemory

MEMORY_KINDS = ("none", "recency", "fov", "embedding", "stateful")

__all__ = [
           "MEMORY_KINDS",
           "RETRIEVERS",
           "MemoryBank",
           "Retrieved",
           "StatefulGridMemory",
           "compose",
           "fov_overlap",
           "pose_distance",
           "relative_pose",
           "retrieve",
           "view_visibility",
           "wrap_angle",
]
