"""``memworld train-depth``: fit a depth head on a trained world model, so the dream can move a stored view to
a new pose (``DreamConfig.move``); nothing else in the model changes.

Fitted on the autoencoder's round trips of real frames (what the dream shows) at poses drawn uniformly over the
scene, against the real env's depth buffer. Writes the new checkpoint (start segments copied beside it) and
results.json: the held-out depth errors, and a warp check on held-out pose pairs a short move and turn apart —
PSNR against the real view of a stored real view moved with the predicted depth, with the true depth, and only
turned (no depth), each on the pixels it covers, with the share covered.
"""

from __future__ import annotations

import math
import shutil
import sys
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig

from envs.data.depth_views import nearby_poses, random_poses, render_views
from envs.dream.config import default_checkpoint
from envs.sources import SourceEnv, make_source
from envs.data.starts import StartSegments
from experiments.runs import make_run_dir, save_config, write_results
from geometry import relative_pose
from memory.reprojection import move_view, rotate_view
from worldmodels.depth_training import DepthFitConfig, evaluate_depth, fit_depth_head
from worldmodels.world_model import WorldModel


@torch.no_grad()
def round_trip(model: WorldModel, frames: np.ndarray, chunk: int = 512) -> torch.Tensor:
    """``frames (N, 64, 64, 3)`` uint8 -> the model's decodings of their latents, the same shape."""
    x = torch.from_numpy(frames)
    return torch.cat([model.decode(model.encode(x[i:i + chunk])).cpu() for i in range(0, len(x), chunk)])


def views(env: SourceEnv, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    poses = random_poses(env, n, np.random.default_rng(seed))
    return (poses, *render_views(env, poses))


def _masked_psnr(pred: torch.Tensor, true: torch.Tensor, ok: torch.Tensor) -> float:
    err = ((pred - true) ** 2).mean(1)
    m = ok.float()
    return float(10 * math.log10(255.0**2 / max((err * m).sum().item() / max(m.sum().item(), 1.0), 1e-10)))


@torch.no_grad()
def warp_check(model: WorldModel, env: SourceEnv, n: int, seed: int) -> dict[str, float]:
    """Stored real views moved to a nearby pose (up to 0.6 units and 0.5 rad away) against the real view there."""
    rng = np.random.default_rng(seed)
    stored, new = nearby_poses(env, random_poses(env, n, rng), rng)
    frames, depth = render_views(env, stored)
    target = torch.from_numpy(np.stack([env.render_at(p) for p in new])).permute(0, 3, 1, 2).float()
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
    rel = relative_pose(torch.from_numpy(stored), torch.from_numpy(new))
    pred_depth = model.predict_depth(round_trip(model, frames)).cpu()
    res = {"pairs": int(len(stored))}
    warps = {"predicted_depth": move_view(x, pred_depth, rel), "true_depth": move_view(x, torch.from_numpy(depth), rel),
             "turn_only": rotate_view(x, -rel[:, 2])}
    for name, (w, ok) in warps.items():
        res[f"{name}_psnr"] = _masked_psnr(w, target, ok)
        res[f"{name}_covered"] = float(ok.float().mean())
    return res


def run(cfg: DictConfig, run_dir: Path) -> dict:
    fit_cfg = DepthFitConfig(int(cfg.steps), int(cfg.batch), float(cfg.lr), int(cfg.seed))
    init = Path(cfg.init) if cfg.init else default_checkpoint(cfg.source)
    model = WorldModel.load(init, source=cfg.source)
    env = make_source(cfg.source)
    env.reset(seed=0)
    try:
        print(f"rendering {cfg.n_train} + {cfg.n_heldout} views with depth at random poses")
        _, frames, depth = views(env, int(cfg.n_train), int(cfg.seed) + 1)
        _, held_frames, held_depth = views(env, int(cfg.n_heldout), int(cfg.heldout_seed))
        new, seconds = fit_depth_head(model, round_trip(model, frames), torch.from_numpy(depth), fit_cfg,
                                      progress=bool(cfg.progress))
        held = evaluate_depth(new, round_trip(model, held_frames), torch.from_numpy(held_depth))
        warp = warp_check(new, env, int(cfg.n_warp), int(cfg.heldout_seed) + 1)
    finally:
        env.close()
    out = Path(cfg.out) if cfg.out else run_dir / "world_model.safetensors"
    new.save(out, depth_train_minutes=seconds / 60, depth_trained_from=str(init),
             depth_command="memworld train-depth " + " ".join(sys.argv[1:]))
    starts = StartSegments.path_beside(init)
    if starts.exists():
        shutil.copyfile(starts, StartSegments.path_beside(out))
    print(f"held-out depth: abs_rel {held['abs_rel']:.3f}, rmse_log {held['rmse_log']:.3f}, "
          f"within 1.25x {held['delta_1.25']:.1%}")
    print(f"moved views vs the real view ({warp['pairs']} pairs): predicted depth {warp['predicted_depth_psnr']:.2f} dB "
          f"on {warp['predicted_depth_covered']:.0%}, true depth {warp['true_depth_psnr']:.2f} dB on "
          f"{warp['true_depth_covered']:.0%}, turned only {warp['turn_only_psnr']:.2f} dB on {warp['turn_only_covered']:.0%}")
    return {"checkpoint": str(out), "depth_train_minutes": seconds / 60, "train_views": int(cfg.n_train),
            "heldout": held, "warp": warp}


@hydra.main(config_path="conf", config_name="train_depth", version_base="1.3")
def main(cfg: DictConfig) -> None:
    if cfg.init and not Path(cfg.init).is_file():
        raise FileNotFoundError(f"no checkpoint at {cfg.init}")
    torch.set_num_threads(int(cfg.threads))
    run_dir = make_run_dir("train-depth", cfg.runs_root, cfg.run_name)
    save_config(run_dir, cfg)
    write_results(run_dir, run(cfg, run_dir))


if __name__ == "__main__":
    main()
