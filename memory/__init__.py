"""Spatial memory: field of view, memory banks, retrievers, stateful memory (torch only)."""

from memory.bank import MemoryBank
from memory.field_of_view import fov_overlap
from memory.retrievers import RETRIEVERS, Retrieved, retrieve, view_visibility
from memory.stateful import StatefulGridMemory

MEMORY_KINDS = ("none", "recency", "fov", "embedding", "stateful")

__all__ = [
           "MEMORY_KINDS",
           "RETRIEVERS",
           "MemoryBank",
           "Retrieved",
           "StatefulGridMemory",
           "fov_overlap",
           "retrieve",
           "view_visibility",
]
