"""``memworld train-pose``: refit a trained world model's pose head on its frozen latents, by default as a
``pose_prev`` head (it also sees the previous latent's change and the previous action, meant to let a
forward move into a wall stop the dream's pose; on the default scene it lowers the error on blocked moves
but does not bring them to a standstill, docs/results.md), and/or (``blocked=true``) fit a blocked head that
stops the pose and repeats the frame on a move it predicts will not move the agent; nothing else changes.

Writes the new checkpoint (start segments copied beside it) and results.json: the per-step position
error of the old and the new pose head on held-out steps, split into blocked and free forward moves, and
the blocked head's recall, precision and share of free moves stopped.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig

from envs.data.dataset import load_arrays
from envs.dream.config import default_checkpoint
from envs.data.starts import StartSegments
from experiments.runs import make_run_dir, save_config, write_results
from worldmodels.pose_training import PoseFitConfig, dreamed_latents, fit_pose_head, pose_errors, transitions
from worldmodels.world_model import WorldModel


def _transitions(model: WorldModel, arrays):
    episode = arrays.episode_of(np.arange(len(arrays.frames)))
    return transitions(model, arrays.frames, arrays.actions, arrays.poses, episode)


def _fig(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


def run(cfg: DictConfig, run_dir: Path) -> dict:
    fit_cfg = PoseFitConfig(int(cfg.steps), int(cfg.batch), float(cfg.lr), int(cfg.seed), bool(cfg.pose_prev),
                            pose=bool(cfg.pose), blocked=bool(cfg.blocked), dreamed=float(cfg.dreamed))
    init = Path(cfg.init) if cfg.init else default_checkpoint(cfg.source)
    model = WorldModel.load(init, source=cfg.source)
    dataset = cfg.dataset or model.meta.get("dataset")
    if not dataset or not Path(dataset).exists():
        raise FileNotFoundError(f"training data {dataset!r} not found: give dataset=<folder> "
                                f"(the checkpoint names {model.meta.get('dataset')!r})")
    train = load_arrays(dataset)
    if cfg.heldout_episodes:
        train = train.split(int(cfg.heldout_episodes))[0]
    what = " and ".join((["pose head (pose_prev=%s)" % fit_cfg.pose_prev] if fit_cfg.pose else []) +
                        (["blocked head"] if fit_cfg.blocked else []))
    print(f"{init}: fitting the {what} on {len(train.frames)} frames of {dataset}")
    data = _transitions(model, train)
    dreamed, gen_seconds = None, 0.0
    if fit_cfg.dreamed > 0:
        t0 = time.perf_counter()
        episode = train.episode_of(np.arange(len(train.frames)))
        print(f"generating the model's own prediction of {len(data.t)} frames")
        dreamed = dreamed_latents(model, data, train.actions, episode, seed=fit_cfg.seed)
        gen_seconds = time.perf_counter() - t0
    new, seconds = fit_pose_head(model, data, fit_cfg, progress=bool(cfg.progress), dreamed=dreamed)
    minutes = (seconds + gen_seconds) / 60
    out = Path(cfg.out) if cfg.out else run_dir / "world_model.safetensors"
    total = float(model.meta.get("train_minutes_total", model.meta.get("train_minutes") or 0.0)) + minutes
    new.save(out, train_minutes_total=total, pose_train_minutes=minutes, pose_trained_from=str(init),
             pose_command="memworld train-pose " + " ".join(sys.argv[1:]))
    starts = StartSegments.path_beside(init)
    if starts.exists():
        shutil.copyfile(starts, StartSegments.path_beside(out))
    res = {"checkpoint": str(out), "pose_train_minutes": minutes, "train_minutes_total": total,
           "train_steps": int(len(data.t))}
    if cfg.heldout and Path(cfg.heldout).exists():
        held = _transitions(model, load_arrays(cfg.heldout))
        res["heldout"] = {"old": pose_errors(model, held), "new": pose_errors(new, held)}
        o, n = res["heldout"]["old"], res["heldout"]["new"]
        print(f"held-out position error per step (units): old {o['pos_err']:.4f} (blocked moves "
              f"{_fig(o['pos_err_blocked'])}), new {n['pos_err']:.4f} (blocked moves {_fig(n['pos_err_blocked'])}); "
              f"{n['blocked_share_of_forward']:.1%} of forward moves blocked")
        if "blocked_recall" in n:
            print(f"blocked head: stops {_fig(n['blocked_recall'])} of blocked moves ({_fig(n['blocked_recall_first_push'])} "
                  f"of first pushes into a wall, {_fig(n['blocked_recall_repeat_push'])} of repeated ones) and "
                  f"{_fig(n['free_forward_stopped'])} of free forward moves (precision {_fig(n['blocked_precision'])})")
    return res


@hydra.main(config_path="conf", config_name="train_pose", version_base="1.3")
def main(cfg: DictConfig) -> None:
    torch.set_num_threads(int(cfg.threads))
    run_dir = make_run_dir("train-pose", cfg.runs_root, cfg.run_name)
    save_config(run_dir, cfg)
    write_results(run_dir, run(cfg, run_dir))


if __name__ == "__main__":
    main()
