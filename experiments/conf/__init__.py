"""Hydra configs of the commands. The ``dream`` group's one option, ``base``, is ``DreamConfig`` itself: every dream
option and its default are defined once, in ``envs.dream.config``; a command's YAML lists only where it
deliberately differs (``tests/test_agents.py`` holds the list)."""

from __future__ import annotations

from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from envs.dream.config import DreamConfig

ConfigStore.instance().store(group="dream", name="base", node=DreamConfig)


def dream_config(node: DictConfig | Any) -> DreamConfig:
    """The ``DreamConfig`` of a command's ``dream`` node (its own checks run here, before any run folder)."""
    return OmegaConf.to_object(node) if isinstance(node, DictConfig) else node
