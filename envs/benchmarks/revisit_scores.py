"""Scores of the revisit benchmark: a dream's frames along leave-and-return paths against the real ones,
the bound of a perfect copying memory, and how far the dream's pose drifts."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from envs.data.revisit import REVISIT_TOL, RevisitPath
from geometry import nearest_pose, pose_change, stalled
from worldmodels.metrics import psnr, psnr_per_frame, ssim

EXACT_TOL = (0.05, 0.05)
"""(units, rad) within which a pose counts as *the same* pose held earlier: a third of a forward step and
a fifth of a turn step, so only a true return qualifies (MiniWorld moves by 0.15 units and 15 degrees)."""


def exact_tolerance(tol) -> tuple[float, float]:
    """``exact_tol`` as (units, rad): both > 0 (a revisit is strictly nearer) and no looser than
    ``REVISIT_TOL``, so the exact revisits are a subset of the revisits."""
    try:
        pos, yaw = (float(x) for x in tol)
    except (TypeError, ValueError):
        raise ValueError(f"exact_tol must be [units, rad], e.g. [0.05, 0.05]; got {tol!r}") from None
    if not (0 < pos <= REVISIT_TOL[0] and 0 < yaw <= REVISIT_TOL[1]):
        raise ValueError(f"exact_tol must lie in (0, {REVISIT_TOL[0]}] units and (0, {REVISIT_TOL[1]}] rad; "
                         f"got [{pos}, {yaw}]")
    return pos, yaw


def score(paths: list[RevisitPath], dreamed: np.ndarray,
          exact_tol: tuple[float, float] = EXACT_TOL) -> tuple[dict, list[tuple[int, float]]]:
    """Per-kind figures and (steps since last visit, PSNR) pairs for the plot; ``dreamed (P, T, 64, 64, 3)``.

    ``revisit_*`` scores every revisit (a pose within ``REVISIT_TOL`` of one held more than K steps
    earlier, ``RevisitPath.revisit_of``); ``exact_revisit_*`` only those back at the same pose (within
    ``exact_tol``), where the true view is the one seen before and a memory that keeps a place looking
    the same can match it; the rest need the place re-rendered from a new viewpoint. The exact ones are
    also split by where the place was first seen: the real context (its real view is in memory) or the
    dream, whose own first drawing of it is scored too (``exact_dream_place_*``)."""
    rev_pred, rev_true, self_pred, self_first, non_pred, non_true, gaps = [], [], [], [], [], [], []
    rev_kind, ex_pred, ex_true, ex_kind, ex_seen = [], [], [], [], []
    first_pred, first_true, back = [], [], []       # returns to a place the dream drew: its first drawing, the return
    for i, p in enumerate(paths):
        of, same = p.revisit_of(), p.revisit_of(*exact_tol)
        for t in range(p.k, len(p.frames)):
            if same[t] >= 0:
                ex_pred.append(dreamed[i, t]), ex_true.append(p.frames[t]), ex_kind.append(p.kind)
                ex_seen.append("dream" if same[t] >= p.k else "context")
                if same[t] >= p.k:
                    first_pred.append(dreamed[i, same[t]]), first_true.append(p.frames[same[t]]), back.append(dreamed[i, t])
            if of[t] >= 0:
                rev_pred.append(dreamed[i, t]), rev_true.append(p.frames[t]), rev_kind.append(p.kind)
                self_pred.append(dreamed[i, t]), self_first.append(dreamed[i, of[t]])
                gaps.append((t - of[t], float(psnr_per_frame(dreamed[i, t][None], p.frames[t][None])[0])))
            else:
                non_pred.append(dreamed[i, t]), non_true.append(p.frames[t])
    if not rev_pred or not non_pred:
        raise ValueError("the revisit paths produced no revisit (or no non-revisit) frames; use longer paths")
    arr = np.stack
    res = {"revisit_psnr": psnr(arr(rev_pred), arr(rev_true)), "revisit_ssim": ssim(arr(rev_pred), arr(rev_true)),
           "self_psnr": psnr(arr(self_pred), arr(self_first)), "nonrevisit_psnr": psnr(arr(non_pred), arr(non_true)),
           "revisit_frames": len(rev_pred), "nonrevisit_frames": len(non_pred),
           "revisit_psnr_by_path": _by_group(rev_kind, rev_pred, rev_true), "exact_revisit_frames": len(ex_pred)}
    if ex_pred:
        res.update({"exact_revisit_psnr": psnr(arr(ex_pred), arr(ex_true)),
                    "exact_revisit_ssim": ssim(arr(ex_pred), arr(ex_true)),
                    "exact_revisit_psnr_by_path": _by_group(ex_kind, ex_pred, ex_true),
                    # first seen in the real context (its real view stored) or in the dream (a generated one)
                    "exact_revisit_psnr_by_first_visit": _by_group(ex_seen, ex_pred, ex_true),
                    "exact_revisit_frames_by_first_visit": {g: ex_seen.count(g) for g in dict.fromkeys(ex_seen)}})
    if first_pred:      # that drawing against the real view, and the return against the drawing
        res.update({"exact_dream_place_first_psnr": psnr(arr(first_pred), arr(first_true)),
                    "exact_dream_place_self_psnr": psnr(arr(back), arr(first_pred))})
    return res, gaps


def _by_group(groups: list[str], pred: list[np.ndarray], true: list[np.ndarray]) -> dict[str, float]:
    """PSNR of each group, e.g. path kind (a group without a frame is left out)."""
    return {g: psnr(np.stack([p for k, p in zip(groups, pred) if k == g]),
                    np.stack([t for k, t in zip(groups, true) if k == g])) for g in dict.fromkeys(groups)}


def copy_bound_psnr(paths: list[RevisitPath], reconstruct: Callable[[np.ndarray], np.ndarray],
                    by_path: bool = False, tol: tuple[float, float] = REVISIT_TOL) -> float | tuple[float, dict[str, float]]:
    """Revisit PSNR of a perfect copying memory of latents: each revisit frame replaced by
    ``reconstruct`` (the autoencoder's round trip) of the real frame held nearest in pose more than K
    steps earlier, nearest as the denoiser's stacked memory frame picks it (``nearest_pose``).

    A revisit lies within ``REVISIT_TOL`` of an earlier pose, so even the true earlier view
    differs from the true view now; beating this takes re-rendering the stored place from the new
    pose. The round trip matters: a raw pixel copy of an exactly revisited pose would score the
    PSNR cap, and a memory of latents cannot hold more than its autoencoder keeps. With ``by_path``
    also the same per path kind; ``tol`` (units, rad) says what counts as a revisit. It copies the
    real earlier view even where the dream, not the real context, first showed that place."""
    stored, now, kinds = [], [], []
    for p in paths:
        of = p.revisit_of(*tol)
        poses = torch.as_tensor(p.poses, dtype=torch.float32)
        for t in range(p.k, len(p.frames)):
            if of[t] >= 0:
                earlier = poses[: t - p.k] - poses[t]
                _, j = nearest_pose(earlier[None], torch.ones(1, len(earlier), dtype=torch.bool))
                stored.append(p.frames[int(j)]), now.append(p.frames[t]), kinds.append(p.kind)
    if not stored:
        raise ValueError("the revisit paths produced no revisit frames; use longer paths")
    copied = reconstruct(np.stack(stored))
    total = psnr(copied, np.stack(now))
    return (total, _by_group(kinds, list(copied), now)) if by_path else total


def pose_drift(paths: list[RevisitPath], poses: np.ndarray) -> dict[str, float]:
    """How far the dream's integrated pose ``poses (P, T, 3)`` strays from the real one: mean over dreamed steps
    and at each path's last step (units), and the share of paths ending more than 0.2 off; and the share of
    dreamed steps that left the pose as it was, in the real env (walls) and in the dream (its blocked head)."""
    err, final, real_stop, dream_stop = [], [], [], []
    for i, p in enumerate(paths):
        n = len(p.poses)
        e = np.linalg.norm(poses[i, p.k:n, :2] - p.poses[p.k:, :2], axis=1)
        err.append(e), final.append(e[-1])
        real_stop.append(stalled(pose_change(p.poses[p.k - 1:n - 1], p.poses[p.k:])))
        dream_stop.append(stalled(pose_change(poses[i, p.k - 1:n - 1], poses[i, p.k:n])))
    final = np.array(final)
    return {"pose_err_mean": float(np.concatenate(err).mean()), "pose_err_final": float(final.mean()),
            "paths_off_by_0.2": float((final > 0.2).mean()), "blocked_steps_real": float(np.concatenate(real_stop).mean()),
            "blocked_steps_dream": float(np.concatenate(dream_stop).mean())}
