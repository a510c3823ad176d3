"""Real sources keep one contract: spaces, poses, determinism, render_at, clear errors."""

from __future__ import annotations

import importlib.util

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import envs  # noqa: F401  (registers the ids)
from envs import REAL_IDS
from envs.sources import PoseOutsideMapError, make_source

SOURCES = ["miniworld", "minigrid"]


@pytest.mark.parametrize("name", SOURCES)
def test_checkers_pass(name):
    env = gym.make(REAL_IDS[name]).unwrapped
    check_env(env, skip_render_check=True)
    sb3_check_env(env, warn=False)
    env.close()


@pytest.mark.parametrize("name", SOURCES)
def test_contract_and_determinism(name):
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 3, 40)

    def roll():
        env = make_source(name)
        obs, info = env.reset(seed=5)
        out = [(obs, info["pose"])]
        for a in actions:
            obs, r, term, trunc, info = env.step(a)
            out.append((obs, info["pose"]))
            assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8
            assert info["pose"].dtype == np.float32 and info["pose"].shape == (3,)
            assert -np.pi < info["pose"][2] <= np.pi
        env.close()
        return out

    a, b = roll(), roll()
    for (oa, pa), (ob, pb) in zip(a, b):
        np.testing.assert_array_equal(oa, ob)
        np.testing.assert_array_equal(pa, pb)


@pytest.mark.parametrize("name", SOURCES)
def test_render_at_matches_a_revisited_pose(name):
    env = make_source(name)
    obs0, info = env.reset(seed=3)
    pose0 = info["pose"].copy()
    for a in [0] * env.turns_per_circle + [2, 2, 2, 1, 1]:  # wander off
        env.step(a)
    np.testing.assert_array_equal(env.render_at(pose0), obs0)
    obs, _, _, _, info = env.step(0)
    np.testing.assert_array_equal(env.render_at(info["pose"]), obs)
    env.close()


@pytest.mark.parametrize("name", SOURCES)
def test_bad_input_is_one_clear_error(name):
    env = make_source(name)
    env.reset(seed=0)
    with pytest.raises(PoseOutsideMapError, match="outside"):
        env.render_at(np.array([1000.0, 1000.0, 0.0], np.float32))
    with pytest.raises(ValueError, match="outside the action space"):
        env.step(7)
    env.close()


def test_unknown_source_names_the_choices():
    with pytest.raises(ValueError, match="unknown source 'doom2'.*miniworld"):
        make_source("doom2")


@pytest.mark.skipif(importlib.util.find_spec("vizdoom") is None, reason="ViZDoom extra not installed")
def test_vizdoom_contract():
    env = make_source("vizdoom")
    check_env(env, skip_render_check=True)
    obs0, info = env.reset(seed=0)
    for a in [0] * env.turns_per_circle:
        env.step(a)
    assert np.abs(env.render_at(info["pose"]).astype(int) - obs0.astype(int)).mean() < 8
    env.close()
