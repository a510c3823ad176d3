"""Stored views drawn into the dream's frames: reused at the same pose, turned to a new heading, or moved to a
new place by their depth, then painted over the denoiser's drawing (static scenes only; ``StoredViewsConfig``).

One component with explicit state, on only as its config says: the decoded frame of every memory slot (kept
when views are painted, so a turn costs one encode and no decode), each slot's depth (when views are moved,
found the first time the slot is moved and kept until it is written again), and the scene map's entries decoded
and their depth found once (the map does not change).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

import torch

from envs.dream.config import StoredViewsConfig
from envs.dream.memory import MemoryRead, reuse_stored_view, turnable_views
from memory.reprojection import lay_moved_views, lay_turned_views
from memory.scene_map import SceneMap
from worldmodels.world_model import WorldModel


class StoredViews:
    """Stored views of ``n_worlds`` worlds with ``capacity`` memory slots each, painted by ``model``."""

    def __init__(self, cfg: StoredViewsConfig, model: WorldModel, n_worlds: int, capacity: int,
                 scene_map: SceneMap | None, device: torch.device, autocast: Callable[[], AbstractContextManager]):
        self.cfg, self.model, self.autocast, self.scene_map = cfg, model, autocast, scene_map
        # views are painted from what memory holds: with no memory (capacity 0) there is nothing to paint
        self.paints = cfg.paints and capacity > 0
        self.reuses = cfg.reuses and capacity > 0
        slots = capacity if self.paints else 0
        self.slot_frames = torch.zeros(n_worlds, slots, 64, 64, 3, dtype=torch.uint8, device=device)
        self.slot_depth = torch.zeros(n_worlds, slots if cfg.move else 0, 64, 64, device=device)
        self.slot_has_depth = torch.zeros(n_worlds, self.slot_depth.shape[1], dtype=torch.bool, device=device)
        n_map = len(scene_map) if scene_map is not None and self.paints else 0
        self.map_frames = torch.zeros(n_map, 64, 64, 3, dtype=torch.uint8, device=device)
        self.map_has_frame = torch.zeros(n_map, dtype=torch.bool, device=device)
        self.map_depth = torch.zeros(n_map if cfg.move else 0, 64, 64, dtype=torch.float16, device=device)
        self.map_has_depth = torch.zeros(self.map_depth.shape[0], dtype=torch.bool, device=device)

    def remember_context(self, worlds: torch.Tensor, slots: torch.Tensor, latents: torch.Tensor) -> None:
        """After a reset: the context ``latents (W, L, C, h, w)`` of ``worlds (W,)`` went to ``slots (W, L)``."""
        if not self.paints:
            return
        with self.autocast():
            frames = self.model.decode(latents)                  # (W, L, 64, 64, 3), once per reset
        self.slot_frames[worlds[:, None], slots] = frames
        if self.cfg.move:
            self.slot_has_depth[worlds[:, None], slots] = False

    def remember(self, slots: torch.Tensor, drawn: torch.Tensor) -> None:
        """After a step: every world's frame ``drawn (N, 64, 64, 3)`` went to its slot ``slots (N,)``."""
        if not self.paints:
            return
        ar = torch.arange(len(slots), device=slots.device)
        self.slot_frames[ar, slots] = drawn
        if self.cfg.move:
            self.slot_has_depth[ar, slots] = False

    def reuse(self, z: torch.Tensor, read: MemoryRead,
              nearest: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The sample ``z (N, C, h, w)`` with a view stored at (nearly) the query pose in its place; which reused.
        The view comes from the read (which holds the scene map's entries) or, failing that, from ``nearest``
        (``DreamMemory.nearest_stored``): a read picks M views by its own measure, which in a maze (view wedges
        ignore walls) often leaves out the one stored at the very pose."""
        z, hit = reuse_stored_view(z, read, self.cfg.reuse_max_sq_dist)
        if nearest is None or self.cfg.reuse_max_sq_dist <= 0:
            return z, hit
        dist, latent = nearest
        use = (dist < self.cfg.reuse_max_sq_dist) & ~hit
        return torch.where(use[:, None, None, None], latent.to(z.dtype), z), hit | use

    def paint(self, z: torch.Tensor, drawn: torch.Tensor, read: MemoryRead,
              skip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``z (N, C, h, w)`` and its decoded ``drawn (N, 64, 64, 3)`` with, in each world not in ``skip`` whose
        read holds a view of this place, that view turned (or moved) to the new pose and painted over the
        drawing; the latent of such a world is the painted frame encoded."""
        if not self.paints:
            return z, drawn
        use, order = turnable_views(read, self.cfg.turn_radius, self.cfg.turn_max_yaw)
        worlds = (use.any(1) & ~skip).nonzero()[:, 0]
        if len(worlds) == 0:
            return z, drawn
        ar = torch.arange(len(worlds), device=z.device)[:, None]
        o = order[worlds]
        idx, rel, use = read.indices[worlds][ar, o].to(z.device), read.rel_pose[worlds][ar, o], use[worlds][ar, o]
        views = self.slot_frames[worlds[:, None], idx.clamp(min=0)]     # advanced indexing: a copy
        from_map = use & (idx < 0)                 # a scene map's entry has no slot: its own cache
        map_j = read.map_indices[worlds][ar, o].to(z.device) if read.map_indices is not None else None
        if from_map.any():
            views[from_map] = self._map_frames(map_j[from_map])
        base, stored = drawn[worlds].permute(0, 3, 1, 2).float(), views.permute(0, 1, 4, 2, 3).float()
        if self.cfg.move:
            depth = self._slot_depth(worlds, idx, views, use & ~from_map)
            if from_map.any():
                depth[from_map] = self._map_depth(map_j[from_map])
            frames, _ = lay_moved_views(base, stored, depth, rel, use)
        else:   # relative pose: the stored yaw minus the query's, so the turn from stored to now is its negative
            frames, _ = lay_turned_views(base, stored, -rel[..., 2], use)
        frames = frames.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
        z, drawn = z.clone(), drawn.clone()
        with self.autocast():
            z[worlds] = self.model.encode(frames).to(z.dtype)
        drawn[worlds] = frames
        return z, drawn

    def _slot_depth(self, worlds: torch.Tensor, idx: torch.Tensor, views: torch.Tensor,
                    use: torch.Tensor) -> torch.Tensor:
        """Depth ``(W, M, 64, 64)`` of the stored ``views (W, M, 64, 64, 3)`` at slots ``idx (W, M)`` of ``worlds``,
        where ``use``: a slot's cached depth, or the depth head's on its view, then cached."""
        slot = idx.clamp(min=0)
        depth = self.slot_depth[worlds[:, None], slot]
        need = use & ~self.slot_has_depth[worlds[:, None], slot]
        if need.any():
            found = self.model.predict_depth(views[need]).float()
            depth[need] = found
            w_need = worlds[:, None].expand_as(idx)[need]
            self.slot_depth[w_need, slot[need]] = found
            self.slot_has_depth[w_need, slot[need]] = True
        return depth

    def _map_frames(self, j: torch.Tensor) -> torch.Tensor:
        """Decoded scene map entries ``j (P,)`` -> ``(P, 64, 64, 3)`` uint8, each decoded once."""
        todo = j.unique()
        todo = todo[~self.map_has_frame[todo]]
        if len(todo):
            with self.autocast():
                self.map_frames[todo] = self.model.decode(self.scene_map.latents[todo])
            self.map_has_frame[todo] = True
        return self.map_frames[j]

    def _map_depth(self, j: torch.Tensor) -> torch.Tensor:
        """Depth of scene map entries ``j (P,)`` -> ``(P, 64, 64)``, each found once (after ``_map_frames``)."""
        todo = j.unique()
        todo = todo[~self.map_has_depth[todo]]
        if len(todo):
            self.map_depth[todo] = self.model.predict_depth(self.map_frames[todo]).to(self.map_depth.dtype)
            self.map_has_depth[todo] = True
        return self.map_depth[j].float()
