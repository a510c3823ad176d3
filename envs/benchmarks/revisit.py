"""The revisit benchmark: does a revisited place look the same? Scripted leave-and-return paths run in the real
env (ground truth, ``render_at``) and dreamed from the same real context with the same actions, once per memory
kind and stored-view option; each dream scored against the real frames (``revisit_scores``).

``revisit_benchmark`` returns what ``memworld eval-revisit`` writes to results.json (per run: revisit_psnr,
revisit_ssim, self_psnr, nonrevisit_psnr, steps_per_s, exact_revisit_* at the returns to the very same pose,
pose drift; plus onestep_psnr, the copy bounds, the best kind, the memory cost) and writes results.md,
psnr_vs_gap.png and revisit.gif (real | no memory | best memory) into its folder."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from envs.benchmarks.revisit_plots import markdown_table, plot_gaps, write_gif
from envs.benchmarks.revisit_scores import EXACT_TOL, copy_bound_psnr, exact_tolerance, pose_drift, score
from envs.data.revisit import RevisitPath, run_path
from envs.dream.config import DreamConfig, StoredViewsConfig
from envs.dream.core import DreamCore
from envs.sources import make_source
from envs.tasks import TaskConfig
from memory import MEMORY_KINDS, RETRIEVERS
from worldmodels.world_model import WorldModel


@dataclass
class RevisitConfig:
    """The paths, and the dreams run along them (each from the command's dream, ``base``)."""

    kinds: list[str] = field(default_factory=lambda: ["turn_around", "out_and_back", "loop", "random_return"])
    seeds_per_kind: int = 4
    first_seed: int = 700_000         # held out: training data used seeds 1000..1199
    length: int = 48                  # leave-and-return steps after the context
    memories: list[str] = field(default_factory=lambda: ["none", "recency", "fov", "embedding", "stateful"])
    reuse: list[str] = field(default_factory=lambda: ["fov"])       # kinds also run as "<kind>+reuse"
    turn: list[str] = field(default_factory=lambda: ["fov"])        # ... as "<kind>+reuse+turn"
    move: list[str] = field(default_factory=list)                   # ... as "<kind>+reuse+move" (a depth head)
    true_pose: list[str] = field(default_factory=list)              # ... stepped to the real poses, "...+truepose"
    map: list[str] = field(default_factory=list)                    # ... reading base.scene_map, "...+map"
    cost_repeats: int = 3             # memory cost: steps/s measured in turns, best of this many (0: one pass)
    reuse_max_sq_dist: float = 0.001  # +reuse: squared pose distance below which a stored view is reused
    turn_radius: float = 0.1          # +turn: units within which a stored view is turned to the new heading
    move_radius: float = 1.0          # +move: units within which a stored view is moved there by its depth
    exact_tol: tuple[float, float] = EXACT_TOL   # (units, rad): a revisit back at the *same* pose
    heldout: str | None = "data/memoryrooms-heldout-16"   # for the one-step PSNR the shares are of
    onestep_samples: int = 256        # 0: no one-step figure

    def __post_init__(self) -> None:
        for m in [*self.memories, *self.reuse, *self.turn, *self.move, *self.true_pose, *self.map]:
            if m not in MEMORY_KINDS:
                raise ValueError(f"unknown memory kind {m!r}; choose from {list(MEMORY_KINDS)}")
        self.exact_tol = exact_tolerance(self.exact_tol)
        if self.move and self.move_radius <= 0:
            raise ValueError(f"move=[...] moves stored views from up to move_radius units away: it must be > 0, "
                             f"got {self.move_radius}")

    def check(self, base: DreamConfig) -> None:
        """What needs the files of ``base``: ``map=[...]`` a scene map that fits the checkpoint, ``move=[...]`` a
        checkpoint with a depth head; and every run's stored-view options."""
        from envs.data.scene_map import load_scene_map

        if self.map:
            if not base.scene_map:
                raise ValueError("map=[...] runs kinds with a scene map: give dream.scene_map=<file> (memworld build-map)")
            bad = [m for m in self.map if m not in RETRIEVERS]
            if bad:
                raise ValueError(f"map=[...]: only {', '.join(RETRIEVERS)} read a scene map, not {bad}")
            load_scene_map(base.scene_map, WorldModel.load(base.checkpoint_path(), source=base.source))
        if self.move and WorldModel.load(base.checkpoint_path(), source=base.source).depth_net is None:
            raise ValueError(f"move=[...] needs a checkpoint with a depth head; {base.checkpoint_path()} has none "
                             f"(memworld train-depth)")
        revisit_runs(self, base)


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


def revisit_runs(cfg: RevisitConfig, base: DreamConfig) -> list[DreamRun]:
    """The dreams ``cfg`` asks for: each memory kind, then the kinds in ``reuse``, ``turn`` and ``move`` with
    stored views, then those again stepped to the real poses (``true_pose``) and reading the scene map (``map``)."""
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


class NoStarts:
    """The start segments of a dream whose every reset brings its own context (revisit paths, maze trials)."""

    def pick(self, rng):
        raise RuntimeError("this dream's resets always give a context")


def dream_from_contexts(model: WorldModel, dream: DreamConfig, contexts: list[dict], seeds: list[int],
                        actions: np.ndarray, true_poses: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """One world per real context (``DreamCore.reset_worlds``), stepped with ``actions (P, G)`` (and, if given, to
    ``true_poses (P, G, 3)``) in the dream ``dream``, its task replaced by one that never ends and its memory large
    enough for the longest context and every step. Returns frames ``(P, G, 64, 64, 3)``, poses ``(P, G, 3)``, steps/s."""
    capacity = max(dream.memory_capacity, len(contexts[0]["frames"]) + actions.shape[1] + 8)
    cfg = replace(dream, task=TaskConfig("reach", goal=(1e3, 1e3)), max_episode_steps=100_000, memory_capacity=capacity)
    core = DreamCore(cfg, len(contexts), model=model, starts=NoStarts())
    core.reset_worlds(list(range(len(contexts))), seeds, contexts)
    frames = np.zeros((*actions.shape, 64, 64, 3), np.uint8)
    poses = np.zeros((*actions.shape, 3), np.float32)
    t0 = time.perf_counter()
    for j in range(actions.shape[1]):
        step = core.step(torch.from_numpy(actions[:, j]), None if true_poses is None else torch.from_numpy(true_poses[:, j]))
        frames[:, j], poses[:, j] = step["frames"].numpy(), step["pose"].numpy()
    return frames, poses, actions.size / (time.perf_counter() - t0)


def dream_paths(model: WorldModel, paths: list[RevisitPath], dream: DreamConfig,
                true_pose: bool = False) -> tuple[np.ndarray, float, np.ndarray]:
    """Dream every path at once (one world each) from its real context with its actions, in the dream ``dream``
    (its task and episode length replaced: a path never ends early).

    Returns frames ``(P, T+1, 64, 64, 3)`` aligned with the real frames (context copied in), steps/s,
    and the dream's own poses ``(P, T+1, 3)`` (the real ones over the context). ``true_pose``: the dream
    steps to the real poses instead of its heads' (a diagnostic: what is left once the pose cannot drift).
    """
    k, t_max = paths[0].k, max(len(p.frames) for p in paths)
    acts = np.zeros((len(paths), t_max - k), np.int64)
    for i, p in enumerate(paths):
        a = p.dream_actions()
        acts[i, : len(a)] = a
    real_poses = np.stack([np.concatenate([p.poses, np.repeat(p.poses[-1:], t_max - len(p.poses), 0)]) for p in paths])
    frames, poses, steps_per_s = dream_from_contexts(model, dream, [p.context() for p in paths], [p.seed for p in paths],
                                                     acts, real_poses[:, k:] if true_pose else None)
    context_frames = np.stack([p.frames[:k] for p in paths])
    return (np.concatenate([context_frames, frames], 1), steps_per_s,
            np.concatenate([real_poses[:, :k], poses], 1))


def revisit_benchmark(cfg: RevisitConfig, base: DreamConfig, out: Path) -> dict:
    """Run every dream of ``cfg`` along the paths, score it, and write the figures into the folder ``out``."""
    model = WorldModel.load(base.checkpoint_path(), source=base.source)
    env = make_source(base.source)
    paths = [run_path(env, kind, cfg.first_seed + 100 * j + i, model.context, cfg.length)
             for j, kind in enumerate(cfg.kinds) for i in range(cfg.seeds_per_kind)]
    env.close()
    results, gaps, dreams = {}, {}, {}
    runs = revisit_runs(cfg, base)
    for r in runs:
        m = r.name
        dreamed, sps, poses = r.run(model, paths)
        results[m], gaps[m] = score(paths, dreamed, cfg.exact_tol)
        results[m]["steps_per_s"] = sps
        results[m].update(pose_drift(paths, poses))
        dreams[m] = dreamed
        print(f"{m}: revisit {results[m]['revisit_psnr']:.2f} dB, non-revisit {results[m]['nonrevisit_psnr']:.2f} dB, "
              f"{sps:.0f} steps/s, pose off by {results[m]['pose_err_mean']:.3f} on average, "
              f"{results[m]['blocked_steps_dream']:.1%} of steps blocked (real {results[m]['blocked_steps_real']:.1%})")
    none = "none" if "none" in results else cfg.memories[0]
    apart = {r.name for r in runs if r.true_pose or r.dream.scene_map}
    best = max((m for m in results if m != none and m not in apart),
               key=lambda m: results[m]["revisit_psnr"], default=none)
    if cfg.onestep_samples > 0 and cfg.heldout and Path(cfg.heldout).exists():
        from envs.benchmarks.worldmodel import onestep_on_heldout
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
    results["revisit_gain_db"] = results[best]["revisit_psnr"] - results[none]["revisit_psnr"]
    if results[best]["exact_revisit_frames"]:
        results["exact_copy_bound_psnr"] = copy_bound_psnr(paths, round_trip, tol=cfg.exact_tol)
        results["exact_revisit_gain_db"] = results[best]["exact_revisit_psnr"] - results[none]["exact_revisit_psnr"]
    if "onestep_psnr" in results:           # the target: the best kind's revisit PSNR as a share of one-step
        for key in ("revisit_psnr", "exact_revisit_psnr"):
            if key in results[best]:
                results[f"{key}_share_of_onestep"] = results[best][key] / results["onestep_psnr"]
    print(f"{best}: revisit {results[best]['revisit_psnr']:.2f} dB ({results['revisit_gain_db']:+.2f} over {none}); "
          f"back at the same pose ({results[best]['exact_revisit_frames']} frames) "
          f"{results[best].get('exact_revisit_psnr', float('nan')):.2f} dB "
          f"({results.get('exact_revisit_gain_db', float('nan')):+.2f}; by where it was first seen: "
          f"{results[best].get('exact_revisit_psnr_by_first_visit', {})}), "
          f"one-step {results.get('onestep_psnr', float('nan')):.2f} dB")
    results.update(memory_cost(cfg, model, paths, runs, results, none, best))
    # the same without reused views: what the memory-conditioned denoiser alone achieves
    denoiser_only = [m for m in cfg.memories if m != none]
    if denoiser_only:
        best_den = max(denoiser_only, key=lambda m: results[m]["revisit_psnr"])
        results["best_denoiser_memory"] = best_den
        results["denoiser_revisit_gain_db"] = results[best_den]["revisit_psnr"] - results[none]["revisit_psnr"]
    results["paths"] = len(paths)
    plot_gaps(gaps, out / "psnr_vs_gap.png")
    i = int(np.argmax([len(p.frames) for p in paths]))
    write_gif(paths[i].frames, dreams[none][i], dreams[best][i], out / "revisit.gif")
    (out / "results.md").write_text(markdown_table(results))
    print(markdown_table(results))
    return results


def memory_cost(cfg: RevisitConfig, model: WorldModel, paths: list[RevisitPath], runs: list[DreamRun],
                results: dict, none: str, best: str) -> dict:
    """Steps/s of the memoryless dream against the best kind and every run that paints stored views, measured in
    turns, best of ``cfg.cost_repeats`` each (measured once per kind, minutes apart, this machine's drifting
    speed alone moved the ratio by 10 points); ``cost_repeats=0`` takes the one-pass figures."""
    by_name = {r.name: r for r in runs}
    costed = list(dict.fromkeys([none, best, *(r.name for r in runs if r.dream.views.paints and not r.true_pose)]))
    paired = {m: 0.0 for m in costed} if int(cfg.cost_repeats) > 0 else {m: results[m]["steps_per_s"] for m in costed}
    for _ in range(int(cfg.cost_repeats)):
        for m in paired:
            paired[m] = max(paired[m], by_name[m].run(model, paths)[1])
    return {"memory_cost_steps_per_s": paired, "memory_cost": 1 - paired[best] / paired[none],
            "memory_cost_by_kind": {m: 1 - paired[m] / paired[none] for m in costed if m != none}}
