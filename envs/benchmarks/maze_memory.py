"""Memory Maze revisits as the field measures them (Po et al., arXiv 2505.20171): real frames into memory, then
frames generated and scored against the true view (``envs.data.maze_trials``), per memory kind, each run twice:

- ``truepose``: the dream steps to the true poses (its memory read where the agent really is);
- ``actions``: the dream's own pose from its heads, actions only (ours, harder). Retrieval walks the path back,
  which no native action does, so it runs with true poses only.

Scores on generated frames only: PSNR and SSIM per trial and protocol, PSNR against steps since the real context
last saw the place, a side-by-side GIF (real | no memory | best memory), the model's size and GFLOP per frame.

The comparison with the published figures takes the best memory kind whose frames the denoiser draws; a
``+reuse`` run, which pastes the stored view when the pose matches one in memory (on the retrieval walk back,
every pose), is a lookup and is shown as the ceiling of copying, not as generation. Our SSIM is a 7x7 uniform
window on uint8 frames (``worldmodels.metrics.ssim``), not the usual 11x11 Gaussian.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from envs.benchmarks.revisit import dream_from_contexts
from envs.benchmarks.revisit_plots import plot_gaps, write_gif
from envs.data.maze_trials import PROTOCOLS, Trial, build_trials, check_lengths, load_trials, save_trials
from envs.dream.config import DreamConfig, StoredViewsConfig
from memory import MEMORY_KINDS
from worldmodels.flops import count_flops
from worldmodels.metrics import psnr, psnr_per_frame, ssim
from worldmodels.world_model import WorldModel

#: Po et al.'s Memory Maze figures (PSNR / SSIM, as the issue quotes them from arXiv 2505.20171), beside ours
PUBLISHED = {"retrieval": {"Po et al. (SSM + local attention)": (30.8, 0.898),
                           "Po et al.'s full-context causal transformer": (32.6, 0.914)},
             "reasoning": {"Po et al. (SSM + local attention)": (28.2, 0.855)}}
GAP_BINS = (1, 10, 30, 100, 300, 1000)
#: the maze's frame carries the current target's colour as a 2-pixel border: a view remembered from before a
#: target was touched shows the old colour, so the view inside the border is scored apart as well
BORDER = 2


@dataclass
class MazeMemoryConfig:
    """Held-out layouts, the two protocols' lengths, and the dreams run on them."""

    episodes: int = 16
    first_seed: int = 900_000                     # held out: the shipped dataset's layouts are seeds 10000..10079
    retrieval: tuple[int, int] = (401, 400)       # (real context frames, generated frames: walked back from the 400th)
    reasoning: tuple[int, int] = (576, 224)
    memories: list[str] = field(default_factory=lambda: ["none", "recency", "fov", "embedding", "stateful"])
    reuse: list[str] = field(default_factory=lambda: ["fov"])   # also run as "<kind>+reuse" (a stored view at the pose)
    reuse_max_sq_dist: float = 0.001
    modes: list[str] = field(default_factory=lambda: ["truepose", "actions"])
    trials: str | None = None                     # .npz of the real trials: read if it exists, else written there
    workers: int = 2                              # processes that step the real env for the trials

    def __post_init__(self) -> None:
        self.retrieval, self.reasoning = tuple(self.retrieval), tuple(self.reasoning)
        check_lengths(self.retrieval, self.reasoning)
        if not self.memories:
            raise ValueError("memories must name at least one memory kind")
        if self.reuse and self.reuse_max_sq_dist <= 0:
            raise ValueError(f"reuse=[...] reuses a view stored within reuse_max_sq_dist: it must be > 0, "
                             f"got {self.reuse_max_sq_dist}")
        for m in [*self.memories, *self.reuse]:
            if m not in MEMORY_KINDS:
                raise ValueError(f"unknown memory kind {m!r}; choose from {list(MEMORY_KINDS)}")
        bad = [m for m in self.modes if m not in ("truepose", "actions")]
        if bad or not self.modes:
            raise ValueError(f"modes are truepose and/or actions, got {list(self.modes)}")
        if self.episodes < 1:
            raise ValueError(f"episodes must be >= 1, got {self.episodes}")

    def check(self, base: DreamConfig) -> WorldModel:
        """The checkpoint (loaded, and returned) fits these trials: a denoiser with memory, a context no longer than
        the real one; run before any folder is made."""
        model = WorldModel.load(base.checkpoint_path(), source=base.source)
        if not model.cfg.denoiser.memory:
            raise ValueError(f"{base.checkpoint_path()} has a denoiser without memory: every kind would be none")
        if min(self.retrieval[0], self.reasoning[0]) < model.context:
            raise ValueError(f"the real contexts must hold at least the model's {model.context} context frames")
        return model


def trials_for(cfg: MazeMemoryConfig, source: str) -> list[Trial]:
    """The real trials: from ``cfg.trials`` if that file exists, else stepped in the real env (and saved there)."""
    if cfg.trials and Path(cfg.trials).exists():
        got = load_trials(cfg.trials)
        want = {(p, cfg.first_seed + i, *lengths) for p, lengths in zip(PROTOCOLS, (cfg.retrieval, cfg.reasoning))
                for i in range(cfg.episodes)}
        if {(t.protocol, t.seed, len(t.context_frames), len(t.truth)) for t in got} != want:
            raise ValueError(f"{cfg.trials} holds other trials than episodes={cfg.episodes} from "
                             f"first_seed={cfg.first_seed} of lengths {cfg.retrieval} and {cfg.reasoning}: remove it "
                             f"or point trials= elsewhere")
        return got
    seeds = [cfg.first_seed + i for i in range(cfg.episodes)]
    got = build_trials(source, seeds, cfg.retrieval, cfg.reasoning, cfg.workers)
    if cfg.trials:
        save_trials(cfg.trials, got)
    return got


def dream_trials(model: WorldModel, trials: list[Trial], dream: DreamConfig, true_pose: bool) -> tuple[np.ndarray, float]:
    """Every trial dreamed at once (one world each; same lengths): reset on its real context, then its actions
    (and, with ``true_pose``, its true poses). Returns the generated frames ``(P, G, 64, 64, 3)`` and steps/s."""
    frames, _, steps_per_s = dream_from_contexts(model, dream, [t.context() for t in trials], [t.seed for t in trials],
                                                 np.stack([t.actions for t in trials]),
                                                 np.stack([t.poses for t in trials]) if true_pose else None)
    return frames, steps_per_s


def score_trials(trials: list[Trial], generated: np.ndarray) -> tuple[dict, list[tuple[int, float]]]:
    """PSNR and SSIM of ``generated (P, G, 64, 64, 3)`` against the trials' true views (generated frames only), PSNR
    inside the target-colour border, and (steps since last seen, PSNR) pairs for the plot."""
    truth = np.stack([t.truth for t in trials])
    per = psnr_per_frame(generated.reshape(-1, 64, 64, 3), truth.reshape(-1, 64, 64, 3)).reshape(truth.shape[:2])
    gaps = [(int(s), min(float(v), 100.0)) for t, row in zip(trials, per) for s, v in zip(t.last_seen(), row) if s > 0]
    seen = np.concatenate([t.last_seen() > 0 for t in trials])
    flat_g, flat_t = generated.reshape(-1, 64, 64, 3), truth.reshape(-1, 64, 64, 3)
    inside = (slice(None), slice(BORDER, -BORDER), slice(BORDER, -BORDER))
    return {"psnr": psnr(flat_g, flat_t), "ssim": ssim(flat_g, flat_t), "frames": int(per.size),
            "psnr_inside_border": psnr(flat_g[inside], flat_t[inside]),
            "psnr_seen_in_context": psnr(flat_g[seen], flat_t[seen]) if seen.any() else float("nan"),
            "share_seen_in_context": float(seen.mean())}, gaps


def model_cost(model: WorldModel) -> dict:
    """Parameters (all, and the denoiser's) and GFLOP of one generated frame (a 1-step denoiser call and a decode)."""
    k, c = model.context, model.cfg.autoencoder.latent_channels
    ctx, acts = torch.zeros(1, k, c, 16, 16), torch.zeros(1, k, dtype=torch.long)
    mem = {}
    if model.cfg.denoiser.memory:
        m = model.cfg.memory_m
        mem = {"memory": torch.zeros(1, m, c, 16, 16), "memory_pose": torch.zeros(1, m, 3),
               "memory_mask": torch.ones(1, m, dtype=torch.bool)}
    flops = count_flops(lambda: model.decode(model.sample_next(ctx, acts, **mem)))
    return {"parameters": sum(p.numel() for p in model.parameters()),
            "denoiser_parameters": sum(p.numel() for p in model.denoiser.parameters()),
            "gflop_per_frame": flops / 1e9}


def maze_memory_benchmark(cfg: MazeMemoryConfig, base: DreamConfig, out: Path) -> dict:
    """Every dream of ``cfg`` on every protocol; figures into results (returned), results.md, psnr_vs_gap_*.png and
    retrieval.gif in ``out``."""
    model = cfg.check(base)
    trials = trials_for(cfg, base.source)
    dreams = {m: replace(base, memory=m, scene_map=None, views=StoredViewsConfig()) for m in cfg.memories}
    dreams.update({f"{m}+reuse": replace(base, memory=m, scene_map=None,
                                         views=StoredViewsConfig(reuse_max_sq_dist=float(cfg.reuse_max_sq_dist)))
                   for m in cfg.reuse})
    results: dict = {"model": model_cost(model), "episodes": cfg.episodes, "protocols": {}}
    kept = {}
    for protocol in PROTOCOLS:
        ts = [t for t in trials if t.protocol == protocol]
        for mode in cfg.modes:
            if protocol == "retrieval" and mode == "actions":
                continue              # walking back is no native action
            runs, gaps = {}, {}
            for name, dream in dreams.items():
                gen, sps = dream_trials(model, ts, dream, mode == "truepose")
                runs[name], gaps[name] = score_trials(ts, gen)
                runs[name]["steps_per_s"] = sps
                kept[(protocol, mode, name)] = gen[0]
                print(f"{protocol} / {mode} / {name}: PSNR {runs[name]['psnr']:.2f} dB, SSIM {runs[name]['ssim']:.3f} "
                      f"({sps:.0f} steps/s)", flush=True)
            none = "none" if "none" in runs else next(iter(runs))
            best = max(cfg.memories, key=lambda m: runs[m]["psnr"])        # drawn by the denoiser, not pasted
            results["protocols"][f"{protocol}/{mode}"] = {
                "runs": runs, "best": best, "gain_over_none_db": runs[best]["psnr"] - runs[none]["psnr"],
                "best_with_reuse": max(runs, key=lambda m: runs[m]["psnr"])}
            plot_gaps(gaps, out / f"psnr_vs_gap_{protocol}_{mode}.png", bins=GAP_BINS)
            if protocol == "retrieval":
                write_gif(ts[0].truth, kept[(protocol, mode, none)], kept[(protocol, mode, best)], out / "retrieval.gif")
    (out / "results.md").write_text(markdown(results))
    print(markdown(results))
    return results


def markdown(res: dict) -> str:
    """Per protocol and mode, every memory's PSNR / SSIM, then the published figures beside the best."""
    m = res["model"]
    lines = [f"Model: {m['parameters'] / 1e6:.2f}M parameters ({m['denoiser_parameters'] / 1e6:.2f}M denoiser), "
             f"{m['gflop_per_frame']:.2f} GFLOP per generated frame; {res['episodes']} held-out layouts.", "",
             "| protocol / mode | memory | PSNR | SSIM | PSNR inside the border | PSNR where the context saw the place "
             "| steps/s |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for key, p in res["protocols"].items():
        for name, r in p["runs"].items():
            mark = "**" if name == p["best"] else ""
            lines.append(f"| {key} | {mark}{name}{mark} | {r['psnr']:.2f} | {r['ssim']:.3f} | {r['psnr_inside_border']:.2f} | "
                         f"{r['psnr_seen_in_context']:.2f} | {r['steps_per_s']:.0f} |")
    lines += ["", "| protocol | ours: best kind the denoiser draws (true poses) | the lookup: best with reuse | published |",
              "| --- | --- | --- | --- |"]
    for protocol, pub in PUBLISHED.items():
        p = res["protocols"].get(f"{protocol}/truepose")
        if p:
            r, q = p["runs"][p["best"]], p["runs"][p["best_with_reuse"]]
            lines.append(f"| {protocol} | {p['best']}: {r['psnr']:.2f} dB / {r['ssim']:.3f} | {p['best_with_reuse']}: "
                         f"{q['psnr']:.2f} / {q['ssim']:.3f} | " + "; ".join(f"{k}: {v[0]} / {v[1]}" for k, v in pub.items())
                         + " |")
    return "\n".join(lines) + "\n"
