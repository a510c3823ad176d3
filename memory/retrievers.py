"""Retrievers: pick M entries of a batched bank for each world's query.

All share one signature over bank tensors ``(N, E, ...)`` so that a ``MemoryBank``,
a ``StatefulGridMemory`` and the training loop (a window of an episode) use the same code.
Only entries with ``step < now - exclude_recent`` are eligible: generating the frame of step ``now``
from a context of the K frames ``now-K .. now-1``, pass ``exclude_recent=K``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from memory.field_of_view import visible, wedge_points_world


@dataclass
class Retrieved:
    """``indices (N, M)`` into the bank and ``mask (N, M)``: False where nothing fit."""

    indices: torch.Tensor
    mask: torch.Tensor

    def gather(self, latents: torch.Tensor, poses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Memory latents ``(N, M, ...)`` and poses ``(N, M, 3)`` of the picked entries."""
        n, m = self.indices.shape
        ar = torch.arange(n, device=self.indices.device)[:, None]
        return latents[ar, self.indices], poses[ar, self.indices]


def _eligible(steps: torch.Tensor, valid: torch.Tensor, now: torch.Tensor, exclude_recent: int) -> torch.Tensor:
    return valid & (steps < now[:, None] - exclude_recent)


def _topk(score: torch.Tensor, ok: torch.Tensor, m: int) -> Retrieved:
    m_eff = min(m, score.shape[1])
    s = score.masked_fill(~ok, -math.inf)
    val, idx = s.topk(m_eff, dim=1)
    mask = torch.isfinite(val)
    if m_eff < m:
        pad = m - m_eff
        idx = torch.cat([idx, idx.new_zeros(idx.shape[0], pad)], 1)
        mask = torch.cat([mask, mask.new_zeros(mask.shape[0], pad)], 1)
    return Retrieved(idx.masked_fill(~mask, 0), mask)


def retrieve_recency(now, query_pose, query_latent, latents, poses, steps, valid, m, exclude_recent=0, **_):
    """The M most recent eligible entries (no long-term memory: the baseline)."""
    ok = _eligible(steps, valid, now, exclude_recent)
    return _topk(steps.float(), ok, m)


def retrieve_embedding(now, query_pose, query_latent, latents, poses, steps, valid, m, exclude_recent=0, **_):
    """The M entries whose latents are most cosine-similar to the query latent."""
    ok = _eligible(steps, valid, now, exclude_recent)
    q = torch.nn.functional.normalize(query_latent.flatten(1), dim=1)
    k = torch.nn.functional.normalize(latents.flatten(2), dim=2)
    return _topk(torch.einsum("nd,ned->ne", q, k), ok, m)


def retrieve_fov(now, query_pose, query_latent, latents, poses, steps, valid, m, exclude_recent=0,
                 fov: float = math.radians(60), view_range: float = 6.0, age_penalty: float = 0.05,
                 max_age: float = 1000.0, vis: torch.Tensor | None = None, **_):
    """Greedy coverage of the query's view wedge by stored views, minus an age penalty (as in WorldMem).

    Each pick maximises (newly covered fraction + 0.1 * total overlap - age_penalty * age / max_age);
    entries that see none of the query's view are never picked. ``vis (N, E, P)``, which of the query's
    wedge points each entry sees, may be passed in when the caller has it (``view_visibility``).
    """
    ok = _eligible(steps, valid, now, exclude_recent)
    if vis is None:
        vis = view_visibility(query_pose, poses, fov, view_range)
    overlap = vis.float().mean(-1)
    ok = ok & (overlap > 0)
    age = (now[:, None] - steps).clamp(min=0).float() / max_age
    covered = torch.zeros_like(vis[:, 0])
    idx, mask = [], []
    for _ in range(m):
        gain = (vis & ~covered[:, None]).float().mean(-1)
        score = (gain + 0.1 * overlap - age_penalty * age).masked_fill(~ok, -math.inf)
        best = score.argmax(1)
        good = torch.isfinite(score.gather(1, best[:, None]))[:, 0]
        idx.append(torch.where(good, best, torch.zeros_like(best)))
        mask.append(good)
        ar = torch.arange(len(best), device=best.device)
        covered = covered | (vis[ar, best] & good[:, None])
        ok = ok.clone()
        ok[ar, best] = False
    return Retrieved(torch.stack(idx, 1), torch.stack(mask, 1))


def view_visibility(query_pose: torch.Tensor, poses: torch.Tensor, fov: float = math.radians(60),
                    view_range: float = 6.0) -> torch.Tensor:
    """Which of the query's wedge points ``(N, P)`` each stored pose ``(N, E, 3)`` sees: bool ``(N, E, P)``."""
    return visible(wedge_points_world(query_pose, fov, view_range)[:, None], poses, fov, view_range)


RETRIEVERS = {"recency": retrieve_recency, "fov": retrieve_fov, "embedding": retrieve_embedding}


def retrieve(kind: str, **kwargs) -> Retrieved:
    """Run the retriever called ``kind`` (``recency``, ``fov`` or ``embedding``)."""
    if kind not in RETRIEVERS:
        raise ValueError(f"unknown retriever {kind!r}; choose one of {sorted(RETRIEVERS)}")
    return RETRIEVERS[kind](**kwargs)
