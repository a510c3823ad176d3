"""The agents package: training in the dream (resumable, recurrent policies), judging in the real env and in the
dream, and the one description of a dream shared by every command that runs one."""

from __future__ import annotations

from unittest.mock import patch

import numpy as np
import pytest
import torch

import envs  # noqa: F401
from envs.dream import DreamConfig


def _with_pose_head(init, pose_delta):
    """A DreamCore.__init__ whose model's pose head is replaced by ``pose_delta``."""
    def wrapped(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.model.heads.pose_delta = pose_delta
    return wrapped


def test_agent_training_resumes(tiny_checkpoint, tmp_path):
    from agents.train import AgentConfig, train
    from envs.tasks import TaskConfig

    cfg = AgentConfig(dream=DreamConfig(task=TaskConfig("reach"), checkpoint=str(tiny_checkpoint), max_episode_steps=5),
                      total_timesteps=64, n_envs=2, eval_episodes=1, eval_freq=32, checkpoint_every=32,
                      hyperparams={"n_steps": 32, "batch_size": 32, "n_epochs": 1})
    model, cb = train(cfg, tmp_path, "dream", progress=False)
    assert (tmp_path / "dream_resume.zip").is_file() and model.num_timesteps == 64
    assert [t for t, _ in cb.history] == [32, 64]
    cfg.total_timesteps = 192
    model2, cb2 = train(cfg, tmp_path, "dream", progress=False)
    assert model2.num_timesteps == 192
    # the evaluation before the resume is kept, and the resumed run evaluates once per period, not on every step
    assert [t for t, _ in cb2.history] == [32, 64, 96, 128, 160, 192]


def test_recurrent_policy_trains_in_the_dream_and_keeps_its_state_in_the_real_env(tiny_checkpoint, tmp_path):
    from agents.evaluate import evaluate_real
    from agents.train import AgentConfig, train
    from envs.tasks import TaskConfig

    cfg = AgentConfig(algo="recurrent_ppo", total_timesteps=64, n_envs=2, eval_episodes=1,
                      dream=DreamConfig(task=TaskConfig("homing"), checkpoint=str(tiny_checkpoint), max_episode_steps=20),
                      hyperparams={"n_steps": 32, "batch_size": 32, "n_epochs": 1})
    model, cb = train(cfg, tmp_path, "dream", progress=False)
    assert type(model).__name__ == "RecurrentPPO" and model.num_timesteps == 64

    class Spy:   # records what evaluate_real hands a policy: the state must flow from step to step
        def __init__(self):
            self.calls = []

        def predict(self, obs, state=None, episode_start=None, deterministic=False):
            self.calls.append((state, bool(episode_start[0])))
            return 2, len(self.calls)

    spy = Spy()
    res = evaluate_real(spy, "miniworld", TaskConfig("homing"), 2, seed=0, max_episode_steps=5)
    assert spy.calls[0] == (None, True) and spy.calls[1] == (1, False) and spy.calls[5] == (None, True)
    # every action was forward: the share of them that a wall stopped is what the recorded poses say
    moves = np.concatenate([np.linalg.norm(np.diff(e.poses[:, :2], axis=0), axis=1) for e in res.episodes])
    assert len(moves) == 10 and res.figures()["real_forward_blocked_share"] == pytest.approx((moves < 0.01).mean())


def test_the_blocked_share_counts_forward_moves_that_did_not_move():
    from agents.evaluate import blocked_share, forward_moves

    poses = np.array([[0, 0, 0], [0.15, 0, 0], [0.15, 0, 0], [0.15, 0, 0.3], [0.15, 0.005, 0.3]], np.float32)
    moves = forward_moves(np.array([2, 2, 0, 2]), poses)      # moved, blocked, (a turn), blocked
    assert moves == pytest.approx([0.15, 0.0, 0.005]) and blocked_share(moves) == pytest.approx(2 / 3)
    assert blocked_share(forward_moves(np.array([0, 1]), poses[:3])) is None      # no forward move: no share


def test_evaluate_dream_counts_each_worlds_first_episodes_and_reads_success_from_termination(tiny_checkpoint):
    from agents.evaluate import evaluate_dream
    from envs.tasks import TaskConfig

    class Forward:
        def predict(self, obs, state=None, episode_start=None, deterministic=False):
            return np.full(len(obs), 2), None

    def dream(task: TaskConfig) -> DreamConfig:
        return DreamConfig(checkpoint=str(tiny_checkpoint), memory="none", task=task, max_episode_steps=4)

    near = evaluate_dream(Forward(), dream(TaskConfig("reach", radius=1e3)), 5, seed=0, worlds=2)
    assert {k: v for k, v in near.items() if k != "dream_forward_blocked_share"} == {
        "dream_return": pytest.approx(1 - 0.2 / 4), "dream_success_rate": 1.0, "dream_episode_length": 1.0,
        "dream_episodes": 5}
    assert 0.0 <= near["dream_forward_blocked_share"] <= 1.0
    # every episode ends (and its world is reset) after one step: the move counted is to the pose it ended
    # at, not to the next start, so a pose head that never moves gives 1.0 and one that always moves 0.0
    from envs.dream import core as dream_core
    for delta, share in ((0.0, 1.0), (0.15, 0.0)):
        fixed = lambda z, a, *_, d=delta: torch.tensor([[d, 0.0, 0.0]]).expand(len(z), 3)
        with patch.object(dream_core.DreamCore, "__init__", _with_pose_head(dream_core.DreamCore.__init__, fixed)):
            got = evaluate_dream(Forward(), dream(TaskConfig("reach", radius=1e3)), 5, seed=0, worlds=2)
        assert got["dream_forward_blocked_share"] == share
    far = evaluate_dream(Forward(), dream(TaskConfig("reach", goal=(1e3, 1e3), radius=1.0)), 3, seed=0, worlds=2)
    assert far["dream_success_rate"] == 0.0 and far["dream_episode_length"] == 4.0 and far["dream_episodes"] == 3
    with pytest.raises(ValueError, match="pose-defined task"):
        evaluate_dream(Forward(), dream(TaskConfig("learned")), 2, seed=0)




#: where a command's dream deliberately differs from DreamConfig's defaults (and why)
DELIBERATE = {
    # agents train and are judged on reach (the red box), in episodes of 200 steps, shaped; compiled for speed
    "train_agent": {"task": {"name": "reach", "shaping": 0.1}, "max_episode_steps": 200, "compile": True},
    "eval_agent": {"task": {"name": "reach", "shaping": 0.1}, "max_episode_steps": 200},
    "demo": {"compile": True},
    "eval_revisit": {},       # each run then sets its memory kind, stored views, and a task that never ends a path
    "bench": {},
    "play": {},
}


def _composed_dream(command: str) -> DreamConfig:
    from hydra import compose, initialize_config_module

    from experiments.conf import dream_config

    with initialize_config_module("experiments.conf", version_base="1.3"):
        return dream_config(compose(config_name=command).dream)


@pytest.mark.parametrize("command", sorted(DELIBERATE))
def test_each_dream_option_has_one_default(command):
    import dataclasses

    import gymnasium as gym

    from envs.tasks import TaskConfig

    want = DELIBERATE[command]
    expected = dataclasses.replace(DreamConfig(), **{k: v for k, v in want.items() if k != "task"},
                                   **({"task": TaskConfig(**want["task"])} if "task" in want else {}))
    assert _composed_dream(command) == expected
    if command == "train_agent":     # what the agent is judged on is what it trained on
        assert _composed_dream("eval_agent").task == expected.task
        assert _composed_dream("eval_agent").max_episode_steps == expected.max_episode_steps
        from agents.train import AgentConfig
        assert AgentConfig().dream == DreamConfig()
        assert gym.make("memworld/MemoryRooms-Dream-v0").unwrapped.core.cfg == DreamConfig()


def test_an_unknown_dream_option_is_one_clear_error():
    import gymnasium as gym

    with pytest.raises(TypeError, match=r"unknown dream option\(s\) \['reuse_tol'\]"):
        gym.make("memworld/MemoryRooms-Dream-v0", reuse_tol=0.1)
    with pytest.raises(TypeError, match="unknown stored-view option"):
        DreamConfig.from_kwargs(views={"turn_tol": 0.1})
