"""``memworld eval-revisit``: does a revisited place look the same? Real env vs dream, per memory kind.

Writes results.json (per memory kind: revisit_psnr, revisit_ssim, self_psnr, nonrevisit_psnr,
steps_per_s, and exact_revisit_* at the returns to the very same pose; plus onestep_psnr, the copy
bounds and the targets' shares of one-step), results.md (tables), psnr_vs_gap.png and revisit.gif
(real | no memory | best memory).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig

from envs.dream.config import DreamConfig, StoredViewsConfig
from envs.dream.core import DreamCore
from envs.data.revisit import REVISIT_TOL, RevisitPath, run_path
from envs.data.scene_map import load_scene_map
from envs.sources import make_source
from envs.tasks import TaskConfig
from experiments.conf import dream_config
from experiments.runs import make_run_dir, save_config, write_results
from memory import MEMORY_KINDS, RETRIEVERS
from geometry import nearest_pose, pose_change, stalled
from worldmodels.metrics import psnr, psnr_per_frame, ssim
from worldmodels.world_model import WorldModel


def dream_paths(model: WorldModel, paths: list[RevisitPath], dream: DreamConfig,
                true_pose: bool = False) -> tuple[np.ndarray, float, np.ndarray]:
    """Dream every path at once (one world each) from its real context with its actions, in the dream ``dream``
    (its task and episode length replaced: a path never ends early).

    Returns frames ``(P, T+1, 64, 64, 3)`` aligned with the real frames (context copied in), steps/s,
    and the dream's own poses ``(P, T+1, 3)`` (the real ones over the context). ``true_pose``: the dream
    steps to the real poses instead of its heads' (a diagnostic: what is left once the pose cannot drift).
    """
    cfg = replace(dream, task=TaskConfig("reach", goal=(1e3, 1e3)), max_episode_steps=10_000)
    core = DreamCore(cfg, len(paths), model=model, starts=_NoStarts())
    core.reset_worlds(list(range(len(paths))), [p.seed for p in paths], [p.context() for p in paths])
    k, t_max = paths[0].k, max(len(p.frames) for p in paths)
    out = np.zeros((len(paths), t_max, 64, 64, 3), np.uint8)
    poses = np.zeros((len(paths), t_max, 3), np.float32)
    for i, p in enumerate(paths):
        out[i, :k], poses[i, :k] = p.frames[:k], p.poses[:k]
    acts = np.zeros((len(paths), t_max - k), np.int64)
    for i, p in enumerate(paths):
        a = p.dream_actions()
        acts[i, : len(a)] = a
    real_poses = np.stack([np.concatenate([p.poses, np.repeat(p.poses[-1:], t_max - len(p.poses), 0)]) for p in paths])
    t0 = time.perf_counter()
    for j in range(t_max - k):
        step = core.step(torch.from_numpy(acts[:, j]), torch.from_numpy(real_poses[:, k + j]) if true_pose else None)
        out[:, k + j], poses[:, k + j] = step["frames"].numpy(), step["pose"].numpy()
    steps_per_s = len(paths) * (t_max - k) / (time.perf_counter() - t0)
    return out, steps_per_s, poses


@dataclass(frozen=True)
class DreamRun:
    """One dream of the paths: its name in results.json, the dream, and whether it steps to the real poses."""

    name: str
    dream: DreamConfig
    true_pose: bool = False

    @property
    def kind(self) -> str:
        return self.dream.memory

    def run(self, model: WorldModel, paths: list[RevisitPath]) -> tuple[np.ndarray, float, np.ndarray]:
        return dream_paths(model, paths, self.dream, self.true_pose)


def revisit_runs(cfg: DictConfig, base: DreamConfig) -> list[DreamRun]:
    """The dreams an eval-revisit config asks for: each memory kind, then the kinds in ``reuse``, ``turn`` and
    ``move`` with stored views (eval-revisit's ``reuse_max_sq_dist``, ``turn_radius``, ``move_radius``), then
    those again stepped to the real poses (``true_pose``) and reading the scene map (``map``)."""
    def run(name: str, m: str, **views) -> DreamRun:
        return DreamRun(name, replace(base, memory=m, scene_map=None, views=StoredViewsConfig(**views)))

    reuse, yaw = float(cfg.reuse_max_sq_dist), base.views.turn_max_yaw
    runs = [run(m, m) for m in cfg.memories]
    runs += [run(f"{m}+reuse", m, reuse_max_sq_dist=reuse) for m in cfg.reuse]
    runs += [run(f"{m}+reuse+turn", m, reuse_max_sq_dist=reuse, turn_radius=float(cfg.turn_radius), turn_max_yaw=yaw)
             for m in cfg.turn]
    runs += [run(f"{m}+reuse+move", m, reuse_max_sq_dist=reuse, turn_radius=float(cfg.move_radius), turn_max_yaw=yaw,
                 move=True) for m in cfg.move]
    episode_runs = list(runs)
    # kept apart from the best kind: the same dreams stepped to the real poses, a diagnostic, and those with a
    # scene map, which knows the place from other episodes
    runs += [replace(r, name=f"{r.name}+truepose", true_pose=True) for r in episode_runs if r.kind in cfg.true_pose]
    runs += [replace(r, name=f"{r.name}+map", dream=replace(r.dream, scene_map=base.scene_map))
             for r in episode_runs if r.kind in cfg.map]
    return runs


class _NoStarts:
    """Paths bring their own contexts."""

    def pick(self, rng):
        raise RuntimeError("revisit paths always give a context")


def pose_drift(paths: list[RevisitPath], poses: np.ndarray) -> dict[str, float]:
    """How far the dream's integrated pose strays from the real one: mean over dreamed steps and at
    each path's last step (units), and the share of paths ending more than 0.2 off; and the share of
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


EXACT_TOL = (0.05, 0.05)
"""(units, rad) within which a pose counts as *the same* pose held earlier: a third of a forward step and
a fifth of a turn step, so only a true return qualifies (MiniWorld moves by 0.15 units and 15 degrees)."""


def score(paths: list[RevisitPath], dreamed: np.ndarray,
          exact_tol: tuple[float, float] = EXACT_TOL) -> tuple[dict, list[tuple[int, float]]]:
    """Per-kind figures and (steps since last visit, PSNR) pairs for the plot.

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
           "revisit_psnr_by_path": _by_path(rev_kind, rev_pred, rev_true), "exact_revisit_frames": len(ex_pred)}
    if ex_pred:
        res.update({"exact_revisit_psnr": psnr(arr(ex_pred), arr(ex_true)),
                    "exact_revisit_ssim": ssim(arr(ex_pred), arr(ex_true)),
                    "exact_revisit_psnr_by_path": _by_path(ex_kind, ex_pred, ex_true),
                    # first seen in the real context (its real view stored) or in the dream (a generated one)
                    "exact_revisit_psnr_by_first_visit": _by_path(ex_seen, ex_pred, ex_true),
                    "exact_revisit_frames_by_first_visit": {g: ex_seen.count(g) for g in dict.fromkeys(ex_seen)}})
    if first_pred:      # that drawing against the real view, and the return against the drawing
        res.update({"exact_dream_place_first_psnr": psnr(arr(first_pred), arr(first_true)),
                    "exact_dream_place_self_psnr": psnr(arr(back), arr(first_pred))})
    return res, gaps


def _by_path(kinds: list[str], pred: list[np.ndarray], true: list[np.ndarray]) -> dict[str, float]:
    """Revisit PSNR of each group, e.g. path kind (a group without a revisit is left out)."""
    return {kind: psnr(np.stack([p for k, p in zip(kinds, pred) if k == kind]),
                       np.stack([t for k, t in zip(kinds, true) if k == kind])) for kind in dict.fromkeys(kinds)}


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
    return (total, _by_path(kinds, list(copied), now)) if by_path else total


def plot_gaps(gaps: dict[str, list[tuple[int, float]]], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    bins = np.array([5, 10, 20, 30, 45, 70])
    for kind, pairs in gaps.items():
        g = np.array([x for x, _ in pairs])
        v = np.array([y for _, y in pairs])
        centers, means = [], []
        for lo, hi in zip(bins[:-1], bins[1:]):
            sel = (g >= lo) & (g < hi)
            if sel.any():
                centers.append((lo + hi) / 2), means.append(np.minimum(v[sel], 100).mean())
        ax.plot(centers, means, marker="o", label=kind)
    ax.set_xlabel("steps since last visit")
    ax.set_ylabel("PSNR vs real view (dB)")
    ax.set_title("Revisit PSNR by memory kind")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_gif(real: np.ndarray, none: np.ndarray, best: np.ndarray, path: Path) -> None:
    import imageio.v2 as imageio

    frames = [np.concatenate([r, n, b], axis=1) for r, n, b in zip(real, none, best)]
    imageio.mimsave(path, frames, duration=0.12, loop=0)


def markdown_table(res: dict) -> str:
    rows = ["| memory | revisit PSNR | revisit SSIM | self PSNR | non-revisit PSNR | exact revisit PSNR | steps/s | "
            "pose error (mean / final) |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for kind, r in res.items():
        if isinstance(r, dict) and "revisit_psnr" in r:
            rows.append(f"| {kind} | {r['revisit_psnr']:.2f} | {r['revisit_ssim']:.3f} | {r['self_psnr']:.2f} | "
                        f"{r['nonrevisit_psnr']:.2f} | {r.get('exact_revisit_psnr', float('nan')):.2f} | "
                        f"{r['steps_per_s']:.0f} | "
                        f"{r['pose_err_mean']:.3f} / {r['pose_err_final']:.3f} |")
    kinds = list(res.get("copy_bound_psnr_by_path", {}))
    if kinds:       # where the revisit PSNR is lost, and how close a perfect copy would get there
        rows += ["", "| revisit PSNR by path | " + " | ".join(kinds) + " |", "| --- |" + " --- |" * len(kinds)]
        for kind, r in res.items():
            if isinstance(r, dict) and "revisit_psnr_by_path" in r:
                rows.append(f"| {kind} | " + " | ".join(f"{r['revisit_psnr_by_path'].get(k, float('nan')):.2f}"
                                                          for k in kinds) + " |")
        rows.append("| copy bound | " + " | ".join(f"{res['copy_bound_psnr_by_path'][k]:.2f}" for k in kinds) + " |")
    groups = [g for g in ("context", "dream") if any(g in r.get("exact_revisit_frames_by_first_visit", {})
                                                     for r in res.values() if isinstance(r, dict))]
    if groups:      # back at the same pose: a place whose real view is in memory, or one the dream drew itself
        rows += ["", "| same pose, first seen in | " + " | ".join(groups) + " |", "| --- |" + " --- |" * len(groups)]
        for kind, r in res.items():
            if isinstance(r, dict) and "exact_revisit_psnr_by_first_visit" in r:
                rows.append(f"| {kind} | " + " | ".join(
                    f"{r['exact_revisit_psnr_by_first_visit'].get(g, float('nan')):.2f} "
                    f"({r['exact_revisit_frames_by_first_visit'].get(g, 0)})" for g in groups) + " |")
    if res.get("memory_cost_by_kind"):     # steps/s measured in turns against the memoryless dream
        rows += ["", "| memory | paired steps/s | cost |", "| --- | --- | --- |"]
        sps = res["memory_cost_steps_per_s"]
        rows += [f"| {m} | {sps[m]:.0f} | {c:.1%} |" for m, c in res["memory_cost_by_kind"].items()]
    return "\n".join(rows) + "\n"


def exact_tolerance(tol) -> tuple[float, float]:
    """``exact_tol`` from the config as (units, rad): both > 0 (a revisit is strictly nearer) and no
    looser than ``REVISIT_TOL``, so the exact revisits are a subset of the revisits."""
    try:
        pos, yaw = (float(x) for x in tol)
    except (TypeError, ValueError):
        raise ValueError(f"exact_tol must be [units, rad], e.g. [0.05, 0.05]; got {tol!r}") from None
    if not (0 < pos <= REVISIT_TOL[0] and 0 < yaw <= REVISIT_TOL[1]):
        raise ValueError(f"exact_tol must lie in (0, {REVISIT_TOL[0]}] units and (0, {REVISIT_TOL[1]}] rad; "
                         f"got [{pos}, {yaw}]")
    return pos, yaw


def run_eval(cfg: DictConfig, run: Path) -> dict:
    reuse = list(cfg.reuse)
    exact = exact_tolerance(cfg.exact_tol)
    for m in [*cfg.memories, *reuse, *cfg.turn, *cfg.move, *cfg.true_pose, *cfg.map]:
        if m not in MEMORY_KINDS:
            raise ValueError(f"unknown memory kind {m!r}; choose from {list(MEMORY_KINDS)}")
    dream = dream_config(cfg.dream)
    model = WorldModel.load(dream.checkpoint_path(), source=dream.source)
    env = make_source(dream.source)
    paths = [run_path(env, kind, cfg.first_seed + 100 * j + i, model.context, cfg.length)
             for j, kind in enumerate(cfg.kinds) for i in range(cfg.seeds_per_kind)]
    env.close()
    results, gaps, dreams = {}, {}, {}
    runs = revisit_runs(cfg, dream)
    for r in runs:
        m = r.name
        dreamed, sps, poses = r.run(model, paths)
        results[m], gaps[m] = score(paths, dreamed, exact)
        results[m]["steps_per_s"] = sps
        results[m].update(pose_drift(paths, poses))
        dreams[m] = dreamed
        print(f"{m}: revisit {results[m]['revisit_psnr']:.2f} dB, non-revisit {results[m]['nonrevisit_psnr']:.2f} dB, "
              f"{sps:.0f} steps/s, pose off by {results[m]['pose_err_mean']:.3f} on average, "
              f"{results[m]['blocked_steps_dream']:.1%} of steps blocked (real {results[m]['blocked_steps_real']:.1%})")
    base = "none" if "none" in results else cfg.memories[0]
    apart = {r.name for r in runs if r.true_pose or r.dream.scene_map}
    best = max((m for m in results if m != base and m not in apart),
               key=lambda m: results[m]["revisit_psnr"], default=base)
    if cfg.onestep_samples > 0 and Path(cfg.heldout).exists():
        from experiments.bench import onestep_on_heldout
        results["onestep_psnr"] = onestep_on_heldout(model, cfg.heldout, cfg.onestep_samples)["onestep_psnr"]
    results["best_memory"] = best
    with_map = [r.name for r in runs if r.dream.scene_map]
    if with_map:
        results["best_with_map"] = max(with_map, key=lambda m: results[m]["revisit_psnr"])
        if "onestep_psnr" in results:
            results["revisit_psnr_with_map_share_of_onestep"] = \
                results[results["best_with_map"]]["revisit_psnr"] / results["onestep_psnr"]

    def round_trip(f: np.ndarray) -> np.ndarray:
        return model.decode(model.encode(torch.from_numpy(f))).numpy()

    results["copy_bound_psnr"], results["copy_bound_psnr_by_path"] = copy_bound_psnr(paths, round_trip, by_path=True)
    print(f"a perfect copy of the nearest stored view would score {results['copy_bound_psnr']:.2f} dB")
    results["revisit_gain_db"] = results[best]["revisit_psnr"] - results[base]["revisit_psnr"]
    if results[best]["exact_revisit_frames"]:
        results["exact_copy_bound_psnr"] = copy_bound_psnr(paths, round_trip, tol=exact)
        results["exact_revisit_gain_db"] = results[best]["exact_revisit_psnr"] - results[base]["exact_revisit_psnr"]
    if "onestep_psnr" in results:           # the target: the best kind's revisit PSNR as a share of one-step
        for key in ("revisit_psnr", "exact_revisit_psnr"):
            if key in results[best]:
                results[f"{key}_share_of_onestep"] = results[best][key] / results["onestep_psnr"]
    print(f"{best}: revisit {results[best]['revisit_psnr']:.2f} dB ({results['revisit_gain_db']:+.2f} over {base}); "
          f"back at the same pose ({results[best]['exact_revisit_frames']} frames) "
          f"{results[best].get('exact_revisit_psnr', float('nan')):.2f} dB "
          f"({results.get('exact_revisit_gain_db', float('nan')):+.2f}; by where it was first seen: "
          f"{results[best].get('exact_revisit_psnr_by_first_visit', {})}), "
          f"one-step {results.get('onestep_psnr', float('nan')):.2f} dB")
    # the cost from steps/s measured in turns, best of three each: measured once per kind, minutes apart,
    # this machine's drifting speed alone moved the ratio by 10 points
    by_name = {r.name: r for r in runs}
    # also the turned, moved and map runs, whose cost differs most from the memory's alone
    costed = list(dict.fromkeys([base, best, *(r.name for r in runs if r.dream.views.paints and not r.true_pose)]))
    paired = {m: 0.0 for m in costed} if int(cfg.cost_repeats) > 0 else \
        {m: results[m]["steps_per_s"] for m in costed}      # cost_repeats=0: the one-pass figures
    for _ in range(int(cfg.cost_repeats)):
        for m in paired:
            paired[m] = max(paired[m], by_name[m].run(model, paths)[1])
    results["memory_cost_steps_per_s"] = paired
    results["memory_cost"] = 1 - paired[best] / paired[base]
    results["memory_cost_by_kind"] = {m: 1 - paired[m] / paired[base] for m in costed if m != base}
    # the same without reused views: what the memory-conditioned denoiser alone achieves
    denoiser_only = [m for m in cfg.memories if m != base]
    if denoiser_only:
        best_den = max(denoiser_only, key=lambda m: results[m]["revisit_psnr"])
        results["best_denoiser_memory"] = best_den
        results["denoiser_revisit_gain_db"] = results[best_den]["revisit_psnr"] - results[base]["revisit_psnr"]
    results["paths"] = len(paths)
    plot_gaps(gaps, run / "psnr_vs_gap.png")
    i = int(np.argmax([len(p.frames) for p in paths]))
    write_gif(paths[i].frames, dreams[base][i], dreams[best][i], run / "revisit.gif")
    (run / "results.md").write_text(markdown_table(results))
    print(markdown_table(results))
    return results


def check_options(cfg: DictConfig) -> None:
    """Checked before any run folder: the memory kinds, the dream, ``map=[...]`` with the dream's scene map (and
    the map the checkpoint's), ``move=[...]`` with a checkpoint that has a depth head."""
    for m in [*cfg.memories, *cfg.reuse, *cfg.turn, *cfg.move, *cfg.true_pose, *cfg.map]:
        if m not in MEMORY_KINDS:
            raise ValueError(f"unknown memory kind {m!r}; choose from {list(MEMORY_KINDS)}")
    base = dream_config(cfg.dream)
    if cfg.map:
        if not base.scene_map:
            raise ValueError("map=[...] runs kinds with a scene map: give dream.scene_map=<file> (memworld build-map)")
        bad = [m for m in cfg.map if m not in RETRIEVERS]
        if bad:
            raise ValueError(f"map=[...]: only {', '.join(RETRIEVERS)} read a scene map, not {bad}")
        load_scene_map(base.scene_map, WorldModel.load(base.checkpoint_path(), source=base.source))
    if cfg.move:
        if float(cfg.move_radius) <= 0:
            raise ValueError(f"move=[...] moves stored views from up to move_radius units away: it must be > 0, "
                             f"got {cfg.move_radius}")
        if WorldModel.load(base.checkpoint_path(), source=base.source).depth_net is None:
            raise ValueError(f"move=[...] needs a checkpoint with a depth head; {base.checkpoint_path()} has none "
                             f"(memworld train-depth)")
    revisit_runs(cfg, base)     # each run's stored-view options checked


@hydra.main(config_path="conf", config_name="eval_revisit", version_base="1.3")
def main(cfg: DictConfig) -> None:
    check_options(cfg)
    torch.set_num_threads(int(cfg.threads))
    run = make_run_dir("eval-revisit", cfg.runs_root)
    save_config(run, cfg)
    write_results(run, run_eval(cfg, run))


if __name__ == "__main__":
    main()
