"""The long-rollout bench's measures on ground truth, and a tiny long rollout end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from envs.benchmarks.long_rollouts import (LongRolloutConfig, Rollouts, bucket_figures, dream_rollouts,
                                           real_rollouts, strip_image, wandering_actions)
from worldmodels.metrics import frame_contrast, frame_detail, frechet_distance


def _rollouts(frames: np.ndarray) -> Rollouts:
    """Measures of ``frames (N, T+1, 64, 64, 3)``, with features that are the frames pooled to 4x4 grey."""
    grey = torch.from_numpy(frames).float().mean(-1)
    feats = F.adaptive_avg_pool2d(grey.flatten(0, 1)[:, None], 4).reshape(*frames.shape[:2], 16).numpy()
    return Rollouts(frame_detail(frames), frame_contrast(frames), feats, frames[:, :2], 0.0)


def _textured(n: int, t: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (n, t, 16, 16, 3)).astype(np.uint8)
    return base.repeat(4, 2).repeat(4, 3)          # blocky texture: edges every 4 pixels


def test_real_frames_score_as_real_and_blur_and_flat_frames_do_not():
    real = _rollouts(_textured(8, 31, 0))
    same = bucket_figures(_rollouts(_textured(8, 31, 0)), real, (0, 10, 30))
    for b in same.values():
        assert b["detail_ratio"] == pytest.approx(1.0) and b["collapsed_share_std"] == b["real_collapsed_share_std"]
        assert b["frechet_encoder"] == pytest.approx(0.0, abs=1e-6)
    frames = _textured(8, 31, 0)
    blurred = F.avg_pool2d(torch.from_numpy(frames).float().flatten(0, 1).permute(0, 3, 1, 2), 5, 1, 2)
    blurred = blurred.permute(0, 2, 3, 1).round().byte().reshape(frames.shape).numpy()
    blur = bucket_figures(_rollouts(blurred), real, (0, 10, 30))
    assert all(b["detail_ratio"] < 0.8 for b in blur.values())
    flat = np.full_like(frames, 128)
    flat[:, :10] = frames[:, :10]                  # sharp for ten steps, then grey
    got = bucket_figures(_rollouts(flat), real, (0, 10, 30))
    assert got["0-10"]["collapsed_share_std"] == same["0-10"]["collapsed_share_std"]
    assert got["10-30"]["collapsed_share_std"] == 1.0
    assert got["10-30"]["collapsed_share_grad"] == 1.0 and got["10-30"]["frechet_encoder"] > got["0-10"]["frechet_encoder"]


def test_the_frechet_distance_matches_the_closed_form_of_two_gaussians():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(20000, 4)), rng.normal(size=(20000, 4))
    assert frechet_distance(a, b + 2.0) == pytest.approx(16.0, rel=0.02)       # |mu|^2 = 4 dims x 2^2
    assert frechet_distance(a, 3.0 * b) == pytest.approx(16.0, rel=0.03)       # tr(1 + 9 - 2*3) per dim
    with pytest.raises(ValueError, match="features must be"):
        frechet_distance(a, b[:, :3])


def test_a_tiny_long_rollout_runs_end_to_end(tiny_checkpoint):
    from envs.dream import DreamConfig
    from worldmodels.world_model import WorldModel

    cfg = LongRolloutConfig(worlds=2, steps=12, buckets=(0, 10, 30), strip_steps=(0, 10))
    model = WorldModel.load(tiny_checkpoint)
    actions = wandering_actions(cfg, 3)
    assert actions.shape == (12, 2) and set(np.unique(actions)) <= {0, 1, 2}
    dream = dream_rollouts(DreamConfig(checkpoint=str(tiny_checkpoint)), cfg, actions, model)
    real = real_rollouts("miniworld", cfg, actions, model)
    assert dream.detail.shape == real.detail.shape == (2, 13) and dream.features.shape[:2] == (2, 13)
    assert dream.roundtrip_detail is None and real.roundtrip_detail.shape == (2, 13)
    figs = bucket_figures(dream, real, cfg.buckets)
    assert 0 < figs["0-10"]["roundtrip_detail_ratio"] < 10
    assert set(figs) == {"0-10", "10-30"} and figs["0-10"]["frames"] == 20 and figs["10-30"]["frames"] == 6
    assert strip_image(dream, real).shape == (2 * 2 * 64, 2 * 64, 3)
    with pytest.raises(ValueError, match="action_probs"):
        LongRolloutConfig(action_probs=(0.5, 0.6))


@pytest.mark.slow
def test_the_rollouts_bench_command_writes_figures_and_strips(tmp_path, tiny_checkpoint):
    import json
    import os
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "experiments.cli", "bench", "target=rollouts", f"dream.checkpoint={tiny_checkpoint}",
           "rollouts.run.worlds=2", "rollouts.run.steps=12", "rollouts.run.buckets=[0,10,30]",
           "rollouts.run.strip_steps=[0,10]", "threads=1", f"runs_root={tmp_path}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    p = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    run = next(tmp_path.glob("bench-rollouts-*"))
    res = json.loads((run / "results.json").read_text())
    assert set(res["kinds"]) == {"fov", "none"} and set(res["kinds"]["fov"]["buckets"]) == {"0-10", "10-30"}
    assert (run / "strip_fov.png").is_file() and (run / "strip_none.png").is_file()
    assert "collapsed" in p.stdout
