"""Real source environments behind one contract (see ``base.py``)."""

from __future__ import annotations

from envs.sources.base import IMAGE_SIZE, SCENE_BOUNDS, PoseOutsideMapError, SourceEnv, make_pose, scene_bounds

#: source name -> (module, class); modules are imported lazily (MiniWorld needs EGL).
SOURCES: dict[str, tuple[str, str]] = {
    "miniworld": ("envs.sources.miniworld_rooms", "MiniWorldSource"),
    "minigrid": ("envs.sources.minigrid_source", "MiniGridSource"),
    "vizdoom": ("envs.sources.vizdoom_source", "ViZDoomSource"),
    "memorymaze9": ("envs.sources.memory_maze_source", "MemoryMazeSource"),
}


def make_source(name: str, **kwargs) -> SourceEnv:
    """Build the source env called ``name`` (``miniworld``, ``minigrid``, ``vizdoom``, ``memorymaze9``)."""
    import importlib

    if name not in SOURCES:
        raise ValueError(f"unknown source {name!r}; choose one of {sorted(SOURCES)}")
    module, cls = SOURCES[name]
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        hint = {"vizdoom": " (install the extra: pip install 'memworld[vizdoom]')",
                "memorymaze9": " (pip install memory-maze gym; rendering needs MuJoCo's EGL: MUJOCO_GL=egl)"}.get(name, "")
        raise ImportError(f"source {name!r} is unavailable: {exc}{hint}") from exc
    return getattr(mod, cls)(**kwargs)


__all__ = ["IMAGE_SIZE", "SCENE_BOUNDS", "SOURCES", "PoseOutsideMapError", "SourceEnv", "make_pose", "make_source",
           "scene_bounds"]
