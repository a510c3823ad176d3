"""The Memory Maze source keeps the contract: exact true views, seeded layouts, poses through datasets,
parallel collection equal to serial, both env checkers. Every reset recompiles MuJoCo (~4 s, ~8 s with a
new seed), so the tests share one env where they can."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401  (registers the ids)
from envs import REAL_IDS
from envs.sources import PoseOutsideMapError, make_source


def _load_or_skip():
    try:
        env = make_source("memorymaze9", max_episode_steps=200)
        env.seed3 = (env.reset(seed=3)[0], env.maze_layout.copy())  # the first frame and layout of seed 3
    except ImportError as exc:  # the package (or MuJoCo's EGL) is not installed
        pytest.skip(f"Memory Maze cannot load here: {exc}")
    except Exception as exc:  # noqa: BLE001  (no GL: MuJoCo raises its own errors)
        if "gl" in str(exc).lower() or "egl" in str(exc).lower() or "render" in str(exc).lower():
            pytest.skip(f"MuJoCo cannot render here (MUJOCO_GL=egl needs Mesa's EGL): {exc}")
        raise
    return env


@pytest.fixture(scope="module")
def maze():
    env = _load_or_skip()
    yield env
    env.close()


def test_render_at_equals_the_envs_frame_at_its_pose(maze):
    rng = np.random.default_rng(0)
    obs, info = maze.reset(seed=3)
    np.testing.assert_array_equal(maze.render_at(info["pose"]), obs)   # at rest: bit-exact
    diffs = []
    for a in rng.integers(0, 6, 30):
        obs, _, _, _, info = maze.step(a)
        d = maze.physics.data
        before = [d.qpos.copy(), d.qvel.copy(), d.qacc_warmstart.copy()]
        view = maze.render_at(info["pose"])
        for x, y in zip(before, [d.qpos, d.qvel, d.qacc_warmstart]):   # the state is restored
            np.testing.assert_array_equal(x, y)
        assert view.shape == (64, 64, 3) and view.dtype == np.uint8
        np.testing.assert_array_equal(view[:2], obs[:2])                  # the target-colour border, as the env draws it
        np.testing.assert_array_equal(view[:, -2:], obs[:, -2:])
        diffs.append(np.abs(view.astype(int) - obs.astype(int)).mean())
    # the pose omits only the ball's height bob: measured <= 0.004 grey levels mean per frame
    assert max(diffs) < 0.05, diffs
    raw = maze.render_at(info["pose"], border=False)
    assert not np.array_equal(raw[:2], obs[:2])
    with pytest.raises(PoseOutsideMapError):
        maze.render_at(np.array([-1.0, 4.0, 0.0]))
    ys, xs = np.nonzero(maze.maze_layout == 0)
    with pytest.raises(PoseOutsideMapError):
        maze.render_at(np.array([xs[0] + 0.5, ys[0] + 0.5, 0.0]))


def test_pose_convention_and_turns_per_circle(maze):
    obs, info = maze.reset()  # the next layout of seed 3's stream
    p0 = info["pose"]
    assert info["pose"].dtype == np.float32 and -math.pi < p0[2] <= math.pi
    assert maze.maze_layout[int(p0[1]), int(p0[0])] == 1
    yaws = [p0[2]]
    for _ in range(maze.turns_per_circle):
        yaws.append(maze.step(2)[4]["pose"][2])                     # 2 = left: yaw grows
    steps = np.degrees([(b - a + math.pi) % (2 * math.pi) - math.pi for a, b in zip(yaws[:-1], yaws[1:])])
    assert (steps > 0).all() and abs(steps.sum() - 360) < 10, steps
    p1 = maze.step(0)[4]["pose"]                                      # noop: the hinge settles
    for _ in range(4):
        _, _, _, _, info = maze.step(1)                                  # forward moves along (cos yaw, sin yaw)
    move = info["pose"][:2] - p1[:2]
    if np.linalg.norm(move) > 0.3:                                       # not blocked by a wall
        assert np.dot(move / np.linalg.norm(move), [math.cos(p1[2]), math.sin(p1[2])]) > 0.9


def test_a_seed_is_a_layout(maze):
    first, layout = maze.seed3
    b, _ = maze.reset(seed=4)
    assert not np.array_equal(first, b) and not np.array_equal(layout, maze.maze_layout)
    a, _ = maze.reset(seed=3)
    np.testing.assert_array_equal(a, first)
    np.testing.assert_array_equal(maze.maze_layout, layout)


def test_parallel_collection_equals_serial_and_the_dataset_keeps_poses(maze, tmp_path):  # maze: skips without MuJoCo
    from envs.data.collection import collect_parallel
    from envs.data.dataset import read_episodes, write_dataset

    serial, n = collect_parallel("memorymaze9", "revisit", [0, 1], max_steps=12, workers=1, progress=False)
    parallel, n2 = collect_parallel("memorymaze9", "revisit", [0, 1], max_steps=12, workers=2, progress=False)
    assert n == n2 == 6
    for s, p in zip(serial, parallel):
        assert s.seed == p.seed
        np.testing.assert_array_equal(s.frames, p.frames)
        np.testing.assert_array_equal(s.poses, p.poses)
        np.testing.assert_array_equal(s.actions, p.actions)
    write_dataset(tmp_path / "mm", parallel, n_actions=n, metadata={"source": "memorymaze9"})
    for e, r in zip(parallel, read_episodes(tmp_path / "mm")):
        np.testing.assert_array_equal(e.frames, r.frames)
        np.testing.assert_array_equal(e.poses, r.poses)
        assert r.poses.dtype == np.float32 and e.actions.max() < 6


def test_maze_revisit_policy_covers_and_returns(maze):
    from envs.data.collection import record

    ep = record(maze, "revisit", seed=3, max_steps=200)
    cells = [(int(x), int(y)) for x, y, _ in ep.poses]
    free = int(maze.maze_layout.sum())
    assert len(set(cells)) >= 0.2 * free                # 200 steps of 1,000 (~0.25 cells a step) cover a fifth
    assert len(set(ep.actions.tolist())) >= 4


def test_env_checkers_pass(maze):
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = gym.make(REAL_IDS["memorymaze9"], max_episode_steps=20).unwrapped
    check_env(env, skip_render_check=True)
    sb3_check_env(env, warn=False)
    env.close()


def _tiny_maze_model(path):
    """An untrained tiny world model of the maze (6 actions): enough for the trials' plumbing and its ground truth."""
    import dataclasses

    from conftest import tiny_model_config
    from worldmodels.world_model import WorldModel

    cfg = tiny_model_config()
    cfg = dataclasses.replace(cfg, source="memorymaze9", n_actions=6,
                              denoiser=dataclasses.replace(cfg.denoiser, n_actions=6),
                              heads=dataclasses.replace(cfg.heads, n_actions=6))
    model = WorldModel(cfg)
    model.save(path)
    return model


def test_trials_walk_the_context_back_and_go_on_at_random(maze):
    from envs.data.maze_trials import MIRRORED, real_trials

    retrieval, reasoning = real_trials(maze, 5, retrieval=(12, 10), reasoning=(16, 6))
    assert retrieval.context_frames.shape == (12, 64, 64, 3) and retrieval.truth.shape == (10, 64, 64, 3)
    np.testing.assert_array_equal(retrieval.poses, retrieval.context_poses[10:0:-1])      # from the one before last
    # the true view at a pose walked back is the frame seen there (but for the ball's bob)
    assert np.abs(retrieval.truth.astype(int) - retrieval.context_frames[10:0:-1]).mean() < 1.0
    assert set(retrieval.actions) <= set(MIRRORED.tolist())
    np.testing.assert_array_equal(reasoning.context_frames[:12], retrieval.context_frames)
    assert reasoning.truth.shape == (6, 64, 64, 3) and reasoning.poses.shape == (6, 3)
    assert (retrieval.last_seen() > 0).all()        # every place walked back to was seen in the context
    with pytest.raises(ValueError, match="walks its context back"):
        real_trials(maze, 5, retrieval=(12, 12), reasoning=(16, 6))
    with pytest.raises(ValueError, match="does not fit a Memory Maze episode"):
        real_trials(maze, 5, retrieval=(12, 10), reasoning=(900, 224))


def test_retrieval_with_views_reused_at_the_true_poses_scores_the_autoencoders_round_trip(maze, tmp_path):
    """Ground truth for the scorer and the whole pipeline: a memory that pastes the stored view at the true pose
    gives exactly the autoencoder's round trip of the frame seen there."""
    import torch

    from envs.benchmarks.maze_memory import (MazeMemoryConfig, dream_trials, maze_memory_benchmark, score_trials)
    from envs.data.maze_trials import load_trials, real_trials, save_trials
    from envs.dream import DreamConfig, StoredViewsConfig
    from worldmodels.metrics import psnr

    model = _tiny_maze_model(tmp_path / "maze.safetensors")
    trials = [real_trials(maze, s, retrieval=(10, 8), reasoning=(10, 4))[0] for s in (6, 7)]
    dream = DreamConfig(source="memorymaze9", checkpoint=str(tmp_path / "maze.safetensors"), memory="fov",
                        views=StoredViewsConfig(reuse_max_sq_dist=0.001))
    gen, _ = dream_trials(model, trials, dream, true_pose=True)
    back = np.stack([t.context_frames[8:0:-1] for t in trials])
    round_trip = model.decode(model.encode(torch.from_numpy(back))).numpy()
    # the first step back goes to a frame still in the denoiser's context (K = 2), which memory does not read
    assert np.abs(gen[:, 1:].astype(int) - round_trip[:, 1:]).mean() < 0.5
    round_trip[:, 0] = gen[:, 0]
    got, gaps = score_trials(trials, gen)
    truth = np.stack([t.truth for t in trials])
    assert got["psnr"] == pytest.approx(psnr(round_trip.reshape(-1, 64, 64, 3), truth.reshape(-1, 64, 64, 3)), abs=0.2)
    assert score_trials(trials, truth)[0]["psnr"] == 100.0 and len(gaps) == 16
    recoloured = truth.copy()
    recoloured[:, :, :2] = 255 - recoloured[:, :, :2]            # another target's colour in the top border rows
    moved = score_trials(trials, recoloured)[0]
    assert moved["psnr_inside_border"] == 100.0 and moved["psnr"] < 40
    save_trials(tmp_path / "t.npz", trials)
    again = load_trials(tmp_path / "t.npz")
    assert [(t.protocol, t.seed) for t in again] == [("retrieval", 6), ("retrieval", 7)]
    np.testing.assert_array_equal(again[1].truth, trials[1].truth)
    (tmp_path / "bad.npz").write_bytes(b"not a trials file")
    with pytest.raises(ValueError, match="not a trials file"):
        load_trials(tmp_path / "bad.npz")
    cfg = MazeMemoryConfig(episodes=1, first_seed=8, retrieval=(8, 6), reasoning=(10, 4), memories=["none", "fov"],
                           trials=str(tmp_path / "trials.npz"), workers=1)
    res = maze_memory_benchmark(cfg, dream, tmp_path)
    assert set(res["protocols"]) == {"retrieval/truepose", "reasoning/truepose", "reasoning/actions"}
    assert (tmp_path / "trials.npz").exists() and (tmp_path / "retrieval.gif").exists()
    assert res["model"]["gflop_per_frame"] > 0 and "published" in (tmp_path / "results.md").read_text()
    with pytest.raises(ValueError, match="unknown memory kind"):
        MazeMemoryConfig(memories=["nope"])
    with pytest.raises(ValueError, match="holds other trials"):          # a stale trials file is not reused
        maze_memory_benchmark(MazeMemoryConfig(episodes=1, first_seed=8, retrieval=(8, 5), reasoning=(10, 4),
                                               trials=str(tmp_path / "trials.npz")), dream, tmp_path)


def test_eval_revisit_refuses_path_keys_with_a_maze_dream():
    from experiments.configs import command_config
    from experiments.eval_revisit import refuse_path_keys

    refuse_path_keys(command_config("eval_revisit", maze={"episodes": 2}))       # maze keys: fine
    with pytest.raises(ValueError, match=r"\['seeds_per_kind', 'memories'\]"):
        refuse_path_keys(command_config("eval_revisit", seeds_per_kind=1, memories=["fov"]))
