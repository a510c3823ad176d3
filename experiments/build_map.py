"""``memworld build-map``: a scene map from recorded play, for ``DreamConfig.scene_map`` (``envs/scene_map.py``).

Writes the map and results.json: entries, bytes, and how well the nearest-pose map frame alone predicts the
held-out frames of ``heldout`` (PSNR, no context, no model: the map's own reach).
"""

from __future__ import annotations

import time
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig

from envs.data.dataset import load_arrays, read_metadata
from envs.dream.config import default_checkpoint
from envs.data.scene_map import build_scene_map, save_scene_map
from experiments.runs import make_run_dir, save_config, write_results
from geometry import pose_distance
from worldmodels.metrics import psnr
from worldmodels.world_model import WorldModel


def lookup_psnr(model: WorldModel, smap, frames: np.ndarray, poses: np.ndarray, n: int = 1000) -> float:
    """PSNR of the decoded nearest-pose map entry against ``n`` held-out frames."""
    pick = np.sort(np.random.default_rng(0).choice(len(frames), min(n, len(frames)), replace=False))
    q = torch.from_numpy(poses[pick]).float()
    j = pose_distance(smap.poses[None], q[:, None]).argmin(1)
    with torch.no_grad():
        pred = model.decode(smap.latents[j]).numpy()
    return psnr(pred, frames[pick])


def run(cfg: DictConfig, run_dir: Path, meta: dict) -> dict:
    ckpt = Path(cfg.checkpoint) if cfg.checkpoint else default_checkpoint(meta.get("source", "miniworld"))
    model = WorldModel.load(ckpt, source=meta.get("source"))
    t0 = time.perf_counter()
    arrays = load_arrays(cfg.dataset)
    if cfg.heldout_episodes:
        arrays = arrays.split(int(cfg.heldout_episodes))[0]
    smap = build_scene_map(model, arrays, float(cfg.cell), int(cfg.yaw_bins))
    out = Path(cfg.out) if cfg.out else run_dir / "scene_map.safetensors"
    save_scene_map(smap, out)
    res = {"scene_map": str(out), "entries": len(smap), "bytes": out.stat().st_size, "cell": float(cfg.cell),
           "yaw_bins": int(cfg.yaw_bins), "from_frames": int(len(arrays.poses)), "checkpoint": str(ckpt),
           "build_seconds": time.perf_counter() - t0}
    if cfg.heldout and Path(cfg.heldout).exists():
        held = load_arrays(cfg.heldout)
        res["lookup_psnr_heldout"] = lookup_psnr(model, smap, held.frames, held.poses)
    print(f"{len(smap)} map entries from {len(arrays.poses)} frames -> {out} ({res['bytes'] / 2**20:.1f} MiB); "
          f"nearest-pose entry vs held-out frames: {res.get('lookup_psnr_heldout', float('nan')):.2f} dB")
    return res


@hydra.main(config_path="conf", config_name="build_map", version_base="1.3")
def main(cfg: DictConfig) -> None:
    meta = read_metadata(cfg.dataset)
    if cfg.checkpoint and not Path(cfg.checkpoint).is_file():
        raise FileNotFoundError(f"no checkpoint at {cfg.checkpoint}")
    if float(cfg.cell) <= 0 or int(cfg.yaw_bins) < 1:
        raise ValueError(f"cell must be > 0 and yaw_bins >= 1, got {cfg.cell} and {cfg.yaw_bins}")
    torch.set_num_threads(int(cfg.threads))
    run_dir = make_run_dir("build-map", cfg.runs_root, cfg.run_name)
    save_config(run_dir, cfg)
    write_results(run_dir, run(cfg, run_dir, meta))


if __name__ == "__main__":
    main()
