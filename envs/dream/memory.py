"""One interface over every memory kind for the dream: ``none``, ``recency``, ``fov``,
``embedding`` (a bounded ``MemoryBank`` read by that retriever) and ``stateful``
(a ``StatefulGridMemory``)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from geometry import nearest_pose, relative_pose
from memory import MEMORY_KINDS, RETRIEVERS, MemoryBank, StatefulGridMemory, retrieve, view_visibility
from memory.scene_map import MAP_STEP, SceneMap


@dataclass
class MemoryRead:
    """What the denoiser gets: ``latents (N, M, C, H, W)``, ``rel_pose (N, M, 3)``, ``mask (N, M)``,
    and the bank slots picked ``indices (N, M)`` (-1 where empty); ``map_indices (N, M)``: the scene map's
    entries picked (-1 where the pick is none), when the memory reads a map."""

    latents: torch.Tensor | None
    rel_pose: torch.Tensor | None
    mask: torch.Tensor | None
    indices: torch.Tensor
    map_indices: torch.Tensor | None = None


def reuse_stored_view(z: torch.Tensor, read: MemoryRead, tol: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The sample ``z (N, C, H, W)`` with, in each world whose memory read holds a frame stored at (nearly)
    the query pose, that stored latent instead; and which worlds reused ``(N,)``. The candidate is the
    frame the denoiser stacks on its input (``nearest_pose``).

    "Nearly": squared pose distance ``dx^2 + dy^2 + 2 (1 - cos dyaw)`` below ``tol`` (0.001: within about
    0.03 units and 0.03 rad, a fifth of a step, an eighth of a turn). In a static scene the view is a function of the
    pose, so the stored view is what the place looks like; the denoiser's own copy of it is blurrier."""
    if read.latents is None or tol <= 0:
        return z, torch.zeros(z.shape[0], dtype=torch.bool, device=z.device)
    dmin, j = nearest_pose(read.rel_pose, read.mask)
    hit = dmin < tol
    stored = read.latents[torch.arange(z.shape[0], device=z.device), j]
    return torch.where(hit[:, None, None, None], stored, z), hit


def turnable_views(read: MemoryRead, pos_tol: float, max_yaw: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Which read entries ``(N, M)`` were stored within ``pos_tol`` units of the query's place under a heading
    at most ``max_yaw`` rad away, so that turning them (``memory.reprojection``) gives the view now; and their
    order, best first ``(N, M)`` (smallest turn, then nearest place). No read or ``pos_tol <= 0``: none."""
    if read.latents is None or pos_tol <= 0:
        n = read.indices.shape[0]
        return torch.zeros(n, read.indices.shape[1], dtype=torch.bool), torch.zeros(n, read.indices.shape[1], dtype=torch.long)
    dist, turn = read.rel_pose[..., :2].norm(dim=-1), read.rel_pose[..., 2].abs()
    use = read.mask & (dist < pos_tol) & (turn <= max_yaw)
    order = (turn + dist + (~use).float() * 1e3).argsort(1)
    return use, order


class DreamMemory:
    """Memory of ``n_worlds`` dream worlds; ``exclude_recent`` skips frames still in the context."""

    def __init__(self, kind: str, n_worlds: int, latent_shape: tuple[int, ...], m: int, capacity: int,
                 exclude_recent: int, bounds: tuple[float, float, float, float], device: torch.device | str = "cpu",
                 scene_map: SceneMap | None = None, map_candidates: int = 16):
        if kind not in MEMORY_KINDS:
            raise ValueError(f"unknown memory kind {kind!r}; choose one of {list(MEMORY_KINDS)}")
        if scene_map is not None and kind not in RETRIEVERS:
            raise ValueError(f"a scene map is read by the {', '.join(RETRIEVERS)} memories, not by {kind!r}")
        # the map's entries nearest the query join the bank's as candidates, stored long ago (step MAP_STEP)
        self.scene_map, self.map_candidates = scene_map, map_candidates
        if m < 1 or capacity < 1:
            raise ValueError(f"memory m and capacity must be >= 1, got {m} and {capacity}")
        self.kind, self.m, self.exclude_recent, self.n_worlds = kind, m, exclude_recent, n_worlds
        self._overlap: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None  # (now, pose, overlap) of the last read
        if kind == "stateful":
            self.store = StatefulGridMemory(n_worlds, latent_shape, bounds, device=device)
        else:
            self.store = MemoryBank(n_worlds, capacity, latent_shape, device=device)

    def reset(self, mask: torch.Tensor | None = None) -> None:
        self.store.reset(mask)

    def _used(self) -> int:
        """The bank's slots worth reading: the prefix that holds every valid entry (all for the stateful grid,
        whose slots are places). Early in episodes most of a ring is empty, and the fov read's cost is per slot."""
        return max(1, self.store.used()) if self.kind != "stateful" else self.store.capacity

    def write(self, latents: torch.Tensor, poses: torch.Tensor, steps: torch.Tensor,
              mask: torch.Tensor | None = None) -> torch.Tensor:
        """Store the entries of the worlds in ``mask``; returns the slot written in each world ``(N,)`` (-1: none)."""
        if self.kind == "none":
            return torch.full((self.n_worlds,), -1, dtype=torch.long, device=latents.device)
        return self.store.write(latents, poses, steps, mask)

    @property
    def capacity(self) -> int:
        """Slots per world (0 for ``none``)."""
        return 0 if self.kind == "none" else self.store.capacity

    def read(self, now: torch.Tensor, query_pose: torch.Tensor, query_latent: torch.Tensor) -> MemoryRead:
        n = self.n_worlds
        if self.kind == "none":
            return MemoryRead(None, None, None, torch.full((n, self.m), -1, dtype=torch.long))
        s = self.store
        e = self._used()
        lat, poses = s.latents[:, :e], s.poses[:, :e]
        vis = view_visibility(query_pose, poses)   # computed once: retrieval and steps_since_visit share it
        self._overlap = (now.clone(), query_pose.clone(), vis.float().mean(-1))
        if self.kind == "stateful":
            r = s.read(now, query_pose, self.m, self.exclude_recent, vis=vis)
        else:
            steps, valid = s.steps[:, :e], s.valid[:, :e]
            if self.scene_map is not None:
                lat, poses, steps, valid, vis, map_j = self._with_map(query_pose, lat, poses, steps, valid, vis)
            r = retrieve(self.kind, now=now, query_pose=query_pose, query_latent=query_latent, latents=lat,
                         poses=poses, steps=steps, valid=valid, m=self.m, exclude_recent=self.exclude_recent, vis=vis)
        got, got_pose = r.gather(lat, poses)
        rel = relative_pose(got_pose, query_pose[:, None]) * r.mask[..., None]
        # a pick past the bank's first e slots is a map entry, no bank slot
        on_map = r.mask & (r.indices >= e)
        map_indices = None
        if self.scene_map is not None and self.kind != "stateful":
            map_indices = map_j.gather(1, (r.indices - e).clamp(min=0)).masked_fill(~on_map, -1)
        return MemoryRead(got * r.mask[..., None, None, None], rel, r.mask,
                          r.indices.masked_fill(~r.mask | (r.indices >= e), -1), map_indices)

    def nearest_stored(self, query_pose: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Over everything stored (not only what a read picked): the squared pose distance ``(N,)`` of the entry
        nearest ``query_pose (N, 3)`` (inf where none) and its latent ``(N, C, H, W)``; None without memory."""
        if self.kind == "none":
            return None
        s, e = self.store, self._used()
        dist, j = nearest_pose(relative_pose(s.poses[:, :e], query_pose[:, None]), s.valid[:, :e])
        return dist, s.latents[torch.arange(self.n_worlds, device=j.device), j]

    def _with_map(self, query_pose: torch.Tensor, lat: torch.Tensor, poses: torch.Tensor, steps: torch.Tensor,
                  valid: torch.Tensor, vis: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The bank's candidates ``(N, E, ...)`` followed by the map's entries nearest each query, stored at
        ``MAP_STEP`` and always valid: ``(latents, poses, steps, valid, vis)``, and the map entries ``(N, k)``."""
        map_lat, map_pose, map_j = self.scene_map.nearest(query_pose, self.map_candidates)
        n, c = map_pose.shape[:2]
        return (torch.cat([lat, map_lat], 1), torch.cat([poses, map_pose], 1),
                torch.cat([steps, steps.new_full((n, c), MAP_STEP)], 1), torch.cat([valid, valid.new_ones(n, c)], 1),
                torch.cat([vis, view_visibility(query_pose, map_pose)], 1), map_j)

    def steps_since_visit(self, now: torch.Tensor, pose: torch.Tensor, min_overlap: float = 0.5) -> torch.Tensor:
        """Steps since a stored view overlapped ``pose``'s by ``min_overlap`` (outside the context); -1 if never."""
        if self.kind == "none":
            return torch.full((self.n_worlds,), -1, dtype=torch.long)
        s = self.store
        e = self._used()
        # called after step ``now`` was written: the context is now ``now-K+1 .. now``
        ok = s.valid[:, :e] & (s.steps[:, :e] <= now[:, None] - self.exclude_recent)
        cached = self._overlap
        if cached is not None and torch.equal(cached[0], now) and torch.equal(cached[1], pose):
            # slots written since the read hold the newest frame, inside the context: excluded by ``ok``
            overlap = torch.nn.functional.pad(cached[2], (0, e - cached[2].shape[1]))
        else:
            overlap = view_visibility(pose, s.poses[:, :e]).float().mean(-1)
        ok = ok & (overlap >= min_overlap)
        last = s.steps[:, :e].masked_fill(~ok, -1).max(dim=1).values
        return torch.where(last >= 0, now - last, torch.full_like(now, -1))
