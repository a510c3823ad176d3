"""The dream env: checkers, vector == single, autoreset, errors, SB3, bounded memory."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import envs  # noqa: F401
from envs.dream import DreamConfig, DreamEnv, DreamVectorEnv
from envs.dream.sb3 import DreamSB3VecEnv
from worldmodels.checkpoint import CheckpointError


def test_checkers_pass(tiny_checkpoint):
    env = gym.make("memworld/MemoryRooms-Dream-v0", checkpoint=str(tiny_checkpoint), memory="fov",
                   max_episode_steps=20).unwrapped
    check_env(env, skip_render_check=True)
    sb3_check_env(env, warn=False)


@pytest.mark.parametrize("memory", ["none", "recency", "fov", "embedding", "stateful"])
def test_same_seed_same_dream(tiny_checkpoint, memory):
    def roll():
        env = DreamEnv(checkpoint=str(tiny_checkpoint), memory=memory)
        obs, info = env.reset(seed=11)
        out = [obs]
        for a in [0, 1, 2, 2, 0, 2, 1, 2]:
            out.append(env.step(a)[0])
        return np.stack(out), info

    (a, _), (b, _) = roll(), roll()
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.uint8 and a.shape == (9, 64, 64, 3)


def test_vector_matches_single_worlds(tiny_checkpoint):
    n, steps = 3, 6
    actions = np.random.default_rng(0).integers(0, 3, (steps, n))
    never_ends = {"task": {"name": "reach", "goal": (1e3, 1e3)}}   # no autoreset mid-comparison
    vec = DreamVectorEnv(num_envs=n, checkpoint=str(tiny_checkpoint), memory="fov", **never_ends)
    vobs = [vec.reset(seed=5)[0]]
    for a in actions:
        vobs.append(vec.step(a)[0])
    vobs = np.stack(vobs)
    for i in range(n):
        env = DreamEnv(checkpoint=str(tiny_checkpoint), memory="fov", **never_ends)
        sobs = [env.reset(seed=5 + i)[0]] + [env.step(a)[0] for a in actions[:, i]]
        diff = np.abs(np.stack(sobs).astype(int) - vobs[:, i].astype(int))
        # batched convolutions may round differently from batch-1 ones; frames agree to a grey level
        assert diff.max() <= 2 and diff.mean() < 0.05


def test_make_vec_uses_the_batched_core(tiny_checkpoint):
    vec = gym.make_vec("memworld/MemoryRooms-Dream-v0", num_envs=2, vectorization_mode="vector_entry_point",
                       checkpoint=str(tiny_checkpoint))
    obs, info = vec.reset(seed=0)
    assert obs.shape == (2, 64, 64, 3) and info["pose"].shape == (2, 3)


def test_autoreset_same_step(tiny_checkpoint):
    vec = DreamVectorEnv(num_envs=2, checkpoint=str(tiny_checkpoint), max_episode_steps=3,
                         task={"name": "reach", "goal": (1e3, 1e3)})
    vec.reset(seed=0)
    for t in range(2):
        obs, rew, term, trunc, info = vec.step(np.array([2, 2]))
        assert not (term | trunc).any() and "final_obs" not in info
    obs, rew, term, trunc, info = vec.step(np.array([2, 2]))
    assert trunc.all() and not term.any()
    assert info["_final_obs"].all() and info["final_obs"][0].shape == (64, 64, 3)
    assert info["final_info"]["pose"].shape == (2, 3)
    # obs is the first frame of the next episode: the last real frame of a start segment
    starts = vec.core.starts.frames[:, -1]
    assert all(any(np.array_equal(obs[i], s) for s in starts) for i in range(2))
    assert (vec.core.t == 0).all()


def test_bad_actions_and_checkpoints(tiny_checkpoint, tmp_path):
    env = DreamEnv(checkpoint=str(tiny_checkpoint))
    env.reset(seed=0)
    with pytest.raises(ValueError, match="outside the action space"):
        env.step(5)
    with pytest.raises(CheckpointError, match="does not exist"):
        DreamEnv(checkpoint=str(tmp_path / "missing.safetensors"))
    with pytest.raises(CheckpointError, match="trained on source 'miniworld', not 'minigrid'"):
        DreamEnv(source="minigrid", checkpoint=str(tiny_checkpoint))
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(tiny_checkpoint.read_bytes()[:500])
    with pytest.raises(CheckpointError, match="corrupt"):
        DreamEnv(checkpoint=str(bad))
    with pytest.raises(ValueError, match="unknown memory kind"):
        DreamEnv(checkpoint=str(tiny_checkpoint), memory="hippocampus")
    with pytest.raises(ValueError, match="sampler_steps must be >= 1"):
        DreamEnv(checkpoint=str(tiny_checkpoint), sampler_steps=0)
    with pytest.raises(ValueError, match="contrast_keep"):
        DreamEnv(checkpoint=str(tiny_checkpoint), contrast_keep=1.5)
    with pytest.raises(ValueError, match="unknown sampler"):
        DreamEnv(checkpoint=str(tiny_checkpoint), sampler="magic")
    with pytest.raises(ValueError, match="unknown task"):
        DreamEnv(checkpoint=str(tiny_checkpoint), task="dance")


def test_reset_from_a_given_context(tiny_checkpoint, tiny_dataset):
    _, eps = tiny_dataset
    ep = eps[0]
    ctx = {"frames": ep.frames[:2], "actions": ep.actions[:2], "poses": ep.poses[:2]}
    env = DreamEnv(checkpoint=str(tiny_checkpoint))
    obs, info = env.reset(seed=0, options={"context": ctx})
    np.testing.assert_array_equal(obs, ep.frames[1])
    np.testing.assert_array_equal(info["pose"], ep.poses[1])


def test_contrast_keep_holds_each_drawn_latents_spread_to_the_frame_before(tiny_checkpoint):
    from envs.dream.core import DreamCore

    core = DreamCore(DreamConfig(checkpoint=str(tiny_checkpoint), memory="none", contrast_keep=1.0), 4)
    core.reset_worlds(list(range(4)), list(range(4)), [None] * 4)
    for t in range(6):
        before = core.ctx[:, -1].std((-2, -1))
        core.step(torch.tensor([2, 0, 1, 2]))
        # a move the heads call blocked repeats the frame, whose spread is the same
        assert (core.ctx[:, -1].std((-2, -1)) >= before * (1 - 1e-4)).all()


def test_a_long_context_goes_whole_into_memory_and_its_last_frames_are_the_context(tiny_checkpoint, tiny_dataset):
    from envs.dream.core import DreamCore

    ep = tiny_dataset[1][0]
    ctx = {"frames": ep.frames[:7], "actions": np.r_[0, ep.actions[:6]], "poses": ep.poses[:7]}
    core = DreamCore(DreamConfig(checkpoint=str(tiny_checkpoint), memory="fov", memory_capacity=8), 1)
    core.reset_worlds([0], [0], [ctx])
    assert core.memory.store.used() == 7
    torch.testing.assert_close(core.ctx[0], core.model.encode(torch.from_numpy(ep.frames[5:7])))
    torch.testing.assert_close(core.memory.store.latents[0, :7], core.model.encode(torch.from_numpy(ep.frames[:7])))
    np.testing.assert_array_equal(core.frames[0].numpy(), ep.frames[6])
    with pytest.raises(ValueError, match="raise memory_capacity"):
        core.reset_worlds([0], [0], [{k: np.concatenate([v, v[:2]]) for k, v in ctx.items()}])
    with pytest.raises(ValueError, match="L >= 2"):
        core.reset_worlds([0], [0], [{k: v[:1] for k, v in ctx.items()}])


def test_reuse_finds_the_view_stored_at_the_pose_even_when_the_read_left_it_out(tiny_checkpoint, tiny_dataset):
    from envs.dream.core import DreamCore

    ep = tiny_dataset[1][0]
    ctx = {"frames": ep.frames[:7], "actions": np.r_[0, ep.actions[:6]], "poses": ep.poses[:7]}
    core = DreamCore(DreamConfig(checkpoint=str(tiny_checkpoint), memory="recency",
                                 views={"reuse_max_sq_dist": 0.001}), 1)
    core.reset_worlds([0], [0], [ctx])
    out = core.step(torch.tensor([0]), true_pose=torch.from_numpy(ep.poses[:1]))
    assert 0 not in out["memory_indices"][0].tolist()          # recency read the latest frames, not the first
    expected = core.model.decode(core.memory.store.latents[0, :1])[0]
    np.testing.assert_array_equal(out["frames"][0].numpy(), expected.numpy())


def test_sb3_adapter_trains_ppo(tiny_checkpoint):
    from stable_baselines3 import PPO

    venv = DreamSB3VecEnv(num_envs=2, checkpoint=str(tiny_checkpoint), max_episode_steps=40)
    model = PPO("CnnPolicy", venv, n_steps=128, batch_size=64, n_epochs=1, verbose=0, seed=0,
                policy_kwargs={"normalize_images": True})
    model.learn(256)
    obs = venv.reset()
    assert obs.shape == (2, 64, 64, 3)
    assert venv.get_attr("num_envs") == [2, 2]


def test_sb3_adapter_sets_terminal_observation(tiny_checkpoint):
    venv = DreamSB3VecEnv(num_envs=2, checkpoint=str(tiny_checkpoint), max_episode_steps=2)
    venv.reset()
    for _ in range(2):
        obs, rew, done, infos = venv.step(np.array([0, 1]))
    assert done.all()
    assert infos[0]["terminal_observation"].shape == (64, 64, 3)
    assert infos[0]["TimeLimit.truncated"] in (True, False)


def test_make_vec_env_gets_the_batched_dream(tiny_checkpoint):
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import VecMonitor

    from envs.dream.sb3 import batched_dream

    kw = {"checkpoint": str(tiny_checkpoint), "memory": "fov"}
    venv = make_vec_env("memworld/MemoryRooms-Dream-v0", n_envs=3, seed=5, vec_env_cls=batched_dream,
                        env_kwargs={**kw, "max_episode_steps": 3})     # gym.make's TimeLimit: the dream's own limit
    assert isinstance(venv, VecMonitor) and venv.num_envs == 3 and venv.venv.vec.core.n == 3
    assert venv.venv.vec.core.cfg.memory == "fov" and venv.venv.vec.core.cfg.max_episode_steps == 3
    direct = DreamSB3VecEnv(num_envs=3, max_episode_steps=3, **kw)
    direct.seed(5)
    a, b = venv.reset(), direct.reset()
    np.testing.assert_array_equal(a, b)                 # the same batched dream as built by hand
    for _ in range(3):
        a, _, done, infos = venv.step(np.array([2, 0, 1]))
        b, *_ = direct.step(np.array([2, 0, 1]))
        np.testing.assert_array_equal(a, b)
    assert done.all() and "episode" in infos[0]         # episode statistics, as Monitor gives them
    with pytest.raises(TypeError, match="drop the wrappers"):
        make_vec_env("memworld/MemoryRooms-Dream-v0", n_envs=2, vec_env_cls=batched_dream, env_kwargs=kw,
                     wrapper_class=gym.wrappers.GrayscaleObservation)
    with pytest.raises(TypeError, match="dream envs"):
        batched_dream([lambda: Monitor(gym.make("CartPole-v1"))])


def test_long_run_memory_is_bounded(tiny_checkpoint):
    env = DreamVectorEnv(num_envs=4, checkpoint=str(tiny_checkpoint), memory="fov", memory_capacity=64,
                         max_episode_steps=10_000)
    env.reset(seed=0)
    nbytes = env.core.memory.store.nbytes()
    tensors_before = None
    for t in range(2_500):  # 4 worlds x 2,500 steps = 10,000 world-steps
        env.step(np.array([t % 3, 2, 2, 0]))
        if t == 100:
            tensors_before = _count_tensors()
    assert env.core.memory.store.nbytes() == nbytes
    assert _count_tensors() <= tensors_before + 5


def _count_tensors() -> int:
    from envs.benchmarks.throughput import live_tensors
    return live_tensors()


def test_recorded_dream_replays_bit_exactly(tiny_checkpoint, tmp_path):
    from envs.data.dataset import read_episodes, read_metadata
    from envs.data.recording import DreamRecorder, replay

    env = DreamRecorder(DreamEnv(checkpoint=str(tiny_checkpoint), memory="fov", max_episode_steps=12))
    rng = np.random.default_rng(0)
    for seed in (3, 4):
        env.reset(seed=seed)
        for _ in range(12):
            _, _, term, trunc, _ = env.step(int(rng.integers(0, 3)))
            if term or trunc:
                break
    path = env.save(tmp_path / "dream_rec")
    meta = read_metadata(path)
    dream = meta["dream_config"]
    assert meta["episode_seeds"] == [3, 4] and dream["sampler_steps"] == 1 and dream["checkpoint"]
    eps = read_episodes(path)
    assert eps[1].extra["memory_indices"].shape == (len(eps[1].frames), 2)
    for i in range(2):
        np.testing.assert_array_equal(replay(path, i), eps[i].frames)


def test_a_bf16_dream_with_reuse_from_dataset_starts_in_a_region_replays_bit_exactly(tiny_checkpoint, tiny_dataset, tmp_path):
    from envs.data.dataset import read_episodes, read_metadata
    from envs.data.recording import DreamRecorder, replay

    region = (-20.0, 20.0, -20.0, 20.0)
    env = DreamRecorder(DreamEnv(checkpoint=str(tiny_checkpoint), starts=str(tiny_dataset[0]), starts_count=5,
                                 precision="bf16", views={"reuse_max_sq_dist": 0.05},
                                 task={"name": "reach", "start_region": region},
                                 max_episode_steps=6))
    env.reset(seed=11)
    for a in (2, 0, 2, 1):
        env.step(a)
    path = env.save(tmp_path / "rec")
    meta = read_metadata(path)
    dream = meta["dream_config"]
    assert dream["precision"] == "bf16" and dream["starts_count"] == 5
    assert dream["task"]["start_region"] == list(region)
    assert dream["views"]["reuse_max_sq_dist"] == 0.05
    np.testing.assert_array_equal(replay(path, 0), read_episodes(path)[0].frames)


def test_start_region_limits_dream_and_real_starts(tiny_checkpoint):
    from envs.data.starts import StartSegments
    from envs.tasks import RealTaskWrapper, TaskConfig, in_region
    from envs.sources import make_source

    starts = StartSegments.load(StartSegments.path_beside(tiny_checkpoint))
    x, y, _ = starts.poses[0, -1]
    region = (float(x) - 0.01, float(x) + 0.01, float(y) - 0.01, float(y) + 0.01)
    vec = DreamVectorEnv(num_envs=3, checkpoint=str(tiny_checkpoint), task={"name": "reach", "start_region": region})
    _, info = vec.reset(seed=5)
    assert in_region(np.asarray(info["pose"])[:, :2], region).all()
    with pytest.raises(ValueError, match="start segments starts inside"):
        DreamEnv(checkpoint=str(tiny_checkpoint), task={"name": "reach", "start_region": (50, 51, 50, 51)})
    with pytest.raises(ValueError, match="start_region must be"):
        TaskConfig("reach", start_region=(1, 0, 0, 1))

    room = (1.0, 7.0, -7.0, -1.0)   # the red box's room
    env = RealTaskWrapper(make_source("miniworld", max_episode_steps=20), TaskConfig("reach", start_region=room),
                          "miniworld")
    poses = [env.reset(seed=s)[1]["pose"] for s in range(6)]
    assert all(in_region(p, room) for p in poses)
    np.testing.assert_array_equal(env.reset(seed=3)[1]["pose"], poses[3])
    env.close()


def test_dream_starts_drawn_from_a_dataset_end_inside_the_region(tiny_checkpoint, tiny_dataset):
    from envs.data.dataset import load_arrays
    from envs.data.starts import StartSegments
    from envs.tasks import in_region

    arrays = load_arrays(tiny_dataset[0])
    x, y = np.median(arrays.poses[:, 0]), np.median(arrays.poses[:, 1])
    region = (-20.0, float(x), -20.0, float(y))         # about a quarter of the dataset's poses
    segs = StartSegments.load(tiny_dataset[0], k=2, n=5, region=region)
    assert segs.frames.shape == (5, 2, 64, 64, 3) and in_region(segs.poses[:, -1], region).all()
    # each segment is a real run of the dataset: its frames and poses sit consecutively in one episode
    assert any(np.array_equal(arrays.frames[i:i + 2], segs.frames[0]) and np.array_equal(arrays.poses[i:i + 2], segs.poses[0])
               and np.array_equal(arrays.actions[i - 1:i + 1], segs.actions[0]) for i in range(1, len(arrays.frames) - 1))

    vec = DreamVectorEnv(num_envs=3, checkpoint=str(tiny_checkpoint), starts=str(tiny_dataset[0]), starts_count=7,
                         task={"name": "reach", "start_region": region})
    in_all = len(StartSegments.load(tiny_dataset[0], k=2, n=10**6, region=region).frames)
    assert len(vec.core.starts.frames) == min(7, in_all) and in_all > 1
    _, info = vec.reset(seed=1)
    assert in_region(np.asarray(info["pose"])[:, :2], region).all()
    with pytest.raises(ValueError, match="ends inside"):
        StartSegments.load(tiny_dataset[0], k=2, region=(50.0, 51.0, 50.0, 51.0))
    with pytest.raises(ValueError, match="starts_count"):
        DreamEnv(checkpoint=str(tiny_checkpoint), starts=str(tiny_dataset[0]), starts_count=0)


def test_bf16_dream_stays_close_to_fp32_and_a_bad_precision_is_refused(tiny_checkpoint):
    frames = {}
    for precision in ("fp32", "bf16"):
        vec = DreamVectorEnv(num_envs=2, checkpoint=str(tiny_checkpoint), precision=precision)
        seen = set()
        for part in (vec.core.model.denoiser, vec.core.model.autoencoder.decoder):
            conv = next(m for m in part.modules() if isinstance(m, torch.nn.Conv2d))
            conv.register_forward_hook(lambda mod, inp, out: seen.add(out.dtype))
        vec.reset(seed=3)
        frames[precision] = np.stack([vec.step(np.array([2, 0]))[0] for _ in range(4)])
        assert seen == {torch.bfloat16 if precision == "bf16" else torch.float32}
        assert frames[precision].dtype == np.uint8 and vec.core.ctx.dtype == torch.float32
    assert np.abs(frames["bf16"].astype(int) - frames["fp32"]).mean() < 8
    with pytest.raises(ValueError, match="precision must be"):
        DreamEnv(checkpoint=str(tiny_checkpoint), precision="fp8")


def test_homing_pays_on_return_and_its_shaping_telescopes():
    import torch

    from envs.tasks import Task, TaskConfig

    task = Task(TaskConfig("homing", leave=3.0, radius=1.5, shaping=0.1), 1, "miniworld", max_steps=100)
    task.reset(torch.ones(1, dtype=torch.bool), torch.zeros(1, 3))
    xs = [0.5, 1.5, 2.5, 3.5, 2.5, 1.4]   # out past `leave`, then back inside `radius`
    total, done = 0.0, []
    for t, x in enumerate(xs, 1):
        r, d = task.step(torch.tensor([[x, 0.0, 0.0]]), torch.tensor([t]), torch.zeros(1), torch.zeros(1))
        total += float(r[0])
        done.append(bool(d[0]))
    assert done == [False] * 5 + [True]
    bonus = 1.0 - 0.2 * len(xs) / 100
    # potential d before leaving, 2 * leave - d after: the shaping sums to 0.1 * (6 - 1.4)
    assert total == pytest.approx(bonus + 0.1 * (6.0 - 1.4), abs=1e-5)
    # close to the start without having left first pays nothing
    task.reset(torch.ones(1, dtype=torch.bool), torch.zeros(1, 3))
    r, d = task.step(torch.tensor([[0.2, 0.0, 0.0]]), torch.tensor([1]), torch.zeros(1), torch.zeros(1))
    assert not bool(d[0]) and float(r[0]) == pytest.approx(0.02, abs=1e-6)


def test_homing_cue_marks_what_the_agent_sees_only_after_it_has_left(tiny_checkpoint):
    import torch

    from envs.tasks import CUE_ROWS, Task, TaskConfig

    task = Task(TaskConfig("homing", leave=1.0, cue=True), 2, "miniworld", max_steps=100)
    task.reset(torch.ones(2, dtype=torch.bool), torch.zeros(2, 3))
    frames = torch.zeros(2, 64, 64, 3, dtype=torch.uint8)
    task.step(torch.tensor([[0.5, 0, 0], [2.0, 0, 0]]), torch.tensor([1, 1]), torch.zeros(2), torch.zeros(2))
    seen = task.observe(frames.clone())
    assert (seen[0] == 0).all()                                # world 0 has not left: untouched
    assert (seen[1, :CUE_ROWS] == 255).all() and (seen[1, CUE_ROWS:] == 0).all()
    task.reset(torch.tensor([False, True]), torch.zeros(2, 3))   # a new episode starts unmarked
    assert (task.observe(frames.clone()) == 0).all()
    # without cue (the default) nothing is drawn; in the dream, the cue reaches the observation
    plain = Task(TaskConfig("homing", leave=1.0), 1, "miniworld", max_steps=100)
    plain.reset(torch.ones(1, dtype=torch.bool), torch.zeros(1, 3))
    plain.step(torch.tensor([[2.0, 0, 0]]), torch.tensor([1]), torch.zeros(1), torch.zeros(1))
    assert (plain.observe(frames[:1].clone()) == 0).all()
    env = DreamEnv(checkpoint=str(tiny_checkpoint), memory="none",
                   task={"name": "homing", "leave": 1.5, "radius": 0.5, "cue": True})
    env.core.model.heads.pose_delta = lambda z, a, *_: torch.tensor([[1.0, 0.0, 0.0]]).expand(len(a), 3)
    env.reset(seed=0)
    first, *_ = env.step(2)                                     # 1.0 away: not yet left
    second, *_ = env.step(2)                                    # 2.0 away: left
    assert not (first[:CUE_ROWS] == 255).all() and (second[:CUE_ROWS] == 255).all()


def test_the_real_env_shows_the_same_homing_cue():
    import gymnasium as gym

    from envs.tasks import CUE_ROWS, RealTaskWrapper, TaskConfig

    class Walker(gym.Env):   # moves 1.0 along x per step and shows a black frame
        observation_space = gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)
        action_space = gym.spaces.Discrete(3)

        def reset(self, *, seed=None, options=None):
            self.x = 0.0
            return np.zeros((64, 64, 3), np.uint8), {"pose": np.array([0.0, 0.0, 0.0])}

        def step(self, action):
            self.x += 1.0
            return np.zeros((64, 64, 3), np.uint8), 0.0, False, False, {"pose": np.array([self.x, 0.0, 0.0])}

    env = RealTaskWrapper(Walker(), TaskConfig("homing", leave=1.5, radius=0.5, cue=True), "miniworld")
    env.reset(seed=0)
    assert (env.step(0)[0] == 0).all()
    obs = env.step(0)[0]
    assert (obs[:CUE_ROWS] == 255).all() and (obs[CUE_ROWS:] == 0).all()


def test_a_blocked_move_keeps_the_pose_and_shows_the_same_view(tiny_checkpoint):
    env = DreamEnv(checkpoint=str(tiny_checkpoint), memory="fov")
    heads = env.core.model.heads
    heads.cfg.blocked = True
    heads.blocked_logit = lambda z, a, z_prev, a_prev: torch.where(a == 2, 5.0, -5.0)   # every forward is blocked
    env.reset(seed=0)
    pose, last = env.core.pose.clone(), env.core.ctx[0, -1].clone()
    _, _, _, _, info = env.step(2)
    assert torch.equal(env.core.pose, pose) and torch.equal(env.core.ctx[0, -1], last)
    env.step(0)                                                 # a turn is not blocked
    assert env.core.pose[0, 2] != pose[0, 2] and not torch.equal(env.core.ctx[0, -1], last)


def test_reuse_gives_back_the_stored_view_when_the_dream_returns_to_a_pose(tiny_checkpoint):
    # turning a full circle returns to the pose of the last context frame: with reuse on, that frame comes back
    vec = DreamVectorEnv(num_envs=1, checkpoint=str(tiny_checkpoint), memory="fov", views={"reuse_max_sq_dist": 0.05})
    heads = vec.core.model.heads
    turn = 2 * np.pi / 8

    def exact_turns(z, a, *_):   # a pose head that turns exactly 1/8 of a circle per left (0) and never moves
        return torch.stack([torch.zeros(len(a)), torch.zeros(len(a)), torch.where(a == 0, turn, 0.0)], 1)

    heads.pose_delta = exact_turns
    obs, _ = vec.reset(seed=0)
    first = vec.core.ctx[0, -1].clone()
    for _ in range(8):
        vec.step(np.array([0]))
    assert torch.equal(vec.core.ctx[0, -1], first)
    with pytest.raises(ValueError, match="reuse_max_sq_dist"):
        DreamEnv(checkpoint=str(tiny_checkpoint), views={"reuse_max_sq_dist": -1.0})
    with pytest.raises(TypeError, match="unknown stored-view option"):
        DreamEnv(checkpoint=str(tiny_checkpoint), views={"reuse_tol": 0.1})


def test_the_dream_turns_a_stored_view_of_the_same_place_to_the_new_heading(tiny_checkpoint, tiny_dataset):
    import math

    import torch

    from envs.dream import DreamCore
    from envs.tasks import TaskConfig
    from memory.reprojection import rotate_view

    class NoStarts:
        def pick(self, rng):
            raise AssertionError("the test gives a context")

    ep = tiny_dataset[1][0]
    here = np.asarray(ep.poses[0], np.float32)
    ctx = {"frames": np.repeat(ep.frames[:1], 2, 0), "actions": np.zeros(2, np.int64), "poses": np.stack([here, here])}
    away = here.copy()
    away[:2] -= 3 * np.array([math.cos(here[2]), math.sin(here[2])], np.float32)   # behind, looking away
    away[2] += math.pi
    turned = here.copy()
    turned[2] += math.radians(15)
    shown = {}
    for tol in (0.0, 0.1):
        cfg = DreamConfig(checkpoint=str(tiny_checkpoint), memory="fov", views={"turn_radius": tol}, max_episode_steps=100,
                          task=TaskConfig("reach", goal=(1e3, 1e3)))
        core = DreamCore(cfg, 1, starts=NoStarts())
        core.reset_worlds([0], [0], [ctx])
        for pose in (away, away, away, turned):
            out = core.step(torch.tensor([2]), torch.from_numpy(pose)[None])
        shown[tol] = out["frames"][0].numpy()
        if tol:
            stored = core.model.decode(core.model.encode(torch.from_numpy(ep.frames[0])[None]))
            want, ok = rotate_view(stored.permute(0, 3, 1, 2).float(), torch.tensor([math.radians(15)]))
            want = want[0].permute(1, 2, 0).round().clamp(0, 255).byte().numpy()
            m = ok[0].numpy()          # up to 1 level apart: the dream decodes with its own channels-last copy
            np.testing.assert_allclose(shown[tol][m].astype(int), want[m].astype(int), atol=1)
            assert core.views.slot_frames.shape[1] == core.memory.capacity
    assert not np.array_equal(shown[0.0], shown[0.1])
    with pytest.raises(ValueError, match="turn_radius"):
        DreamConfig(views={"turn_radius": -1.0})


def test_the_dream_moves_a_stored_view_to_the_new_pose_by_its_depth(tiny_checkpoint, tiny_dataset, tmp_path):
    import math

    import torch

    from envs.dream import DreamCore
    from envs.tasks import TaskConfig
    from geometry import relative_pose
    from memory.reprojection import move_view
    from worldmodels.depth_training import DepthFitConfig, fit_depth_head
    from worldmodels.world_model import WorldModel

    class NoStarts:
        def pick(self, rng):
            raise AssertionError("the test gives a context")

    ep = tiny_dataset[1][0]
    frames = torch.from_numpy(np.stack(ep.frames))
    model, _ = fit_depth_head(WorldModel.load(tiny_checkpoint), frames, torch.full((len(frames), 64, 64), 2.0),
                              DepthFitConfig(steps=3, batch=4), progress=False)
    ckpt = tmp_path / "with_depth.safetensors"
    model.save(ckpt)
    here = np.asarray(ep.poses[0], np.float32)
    ctx = {"frames": np.repeat(ep.frames[:1], 2, 0), "actions": np.zeros(2, np.int64), "poses": np.stack([here, here])}
    away = here.copy()
    away[:2] -= 3 * np.array([math.cos(here[2]), math.sin(here[2])], np.float32)
    away[2] += math.pi
    moved = here.copy()       # 0.3 ahead of where the view was stored, turned by 15 degrees
    moved[:2] += 0.3 * np.array([math.cos(here[2]), math.sin(here[2])], np.float32)
    moved[2] += math.radians(15)
    task = TaskConfig("reach", goal=(1e3, 1e3))
    with pytest.raises(ValueError, match="depth head"):
        DreamCore(DreamConfig(checkpoint=str(tiny_checkpoint), views={"turn_radius": 0.5, "move": True}, task=task), 1,
                  starts=NoStarts())
    with pytest.raises(ValueError, match="turn_radius > 0"):
        DreamConfig(views={"move": True})
    core = DreamCore(DreamConfig(checkpoint=str(ckpt), memory="fov", views={"turn_radius": 0.5, "move": True},
                                 max_episode_steps=100,
                                 task=task), 1, starts=NoStarts())
    core.reset_worlds([0], [0], [ctx])
    assert not core.views.slot_has_depth.any()
    for pose in (away, away, away, moved):
        out = core.step(torch.tensor([2]), torch.from_numpy(pose)[None])
    shown = out["frames"][0].numpy()
    assert core.views.slot_has_depth[0].sum() >= 1        # the moved view's depth is kept for the next time
    stored = core.model.decode(core.model.encode(frames[:1]))
    rel = relative_pose(torch.from_numpy(here), torch.from_numpy(moved))[None]
    want, ok = move_view(stored.permute(0, 3, 1, 2).float(), core.model.predict_depth(stored), rel)
    want, m = want[0].permute(1, 2, 0).round().clamp(0, 255).byte().numpy(), ok[0].numpy()
    assert m.mean() > 0.3
    np.testing.assert_allclose(shown[m].astype(int), want[m].astype(int), atol=1)


def test_a_recording_with_every_dream_option_on_replays_bit_exactly(tiny_checkpoint, tiny_dataset, tmp_path):
    from envs.data.dataset import read_episodes, read_metadata
    from envs.data.recording import DreamRecorder, replay
    from envs.data.scene_map import build_scene_map, save_scene_map
    from envs.data.dataset import load_arrays
    from worldmodels.depth_training import DepthFitConfig, fit_depth_head
    from worldmodels.world_model import WorldModel

    frames = torch.from_numpy(np.stack(tiny_dataset[1][0].frames))
    model, _ = fit_depth_head(WorldModel.load(tiny_checkpoint), frames, torch.full((len(frames), 64, 64), 2.0),
                              DepthFitConfig(steps=2, batch=4), progress=False)
    ckpt = tmp_path / "depth.safetensors"
    model.save(ckpt)
    save_scene_map(build_scene_map(model, load_arrays(tiny_dataset[0]), cell=1.0, yaw_bins=8), tmp_path / "map.safetensors")
    cfg = DreamConfig(checkpoint=str(ckpt), starts=str(tiny_dataset[0]), starts_count=6, memory="fov",
                      memory_capacity=48, scene_map=str(tmp_path / "map.safetensors"), map_candidates=4,
                      views={"reuse_max_sq_dist": 0.05, "turn_radius": 1.0, "turn_max_yaw": 0.9, "move": True},
                      sampler="heun", sampler_steps=2, max_episode_steps=9, precision="bf16",
                      task={"name": "homing", "leave": 0.2, "radius": 0.1, "shaping": 0.5, "cue": True})
    env = DreamRecorder(DreamEnv(config=cfg))
    rng = np.random.default_rng(0)
    for seed in (5, 6):
        env.reset(seed=seed)
        for _ in range(9):
            if any(env.step(int(rng.integers(0, 3)))[2:4]):
                break
    views = env.unwrapped.core.views        # the options were in play, not only switched on
    assert views.map_has_frame.any() and views.map_has_depth.any() and views.slot_has_depth.any()
    path = env.save(tmp_path / "rec")
    stored = DreamConfig.from_dict(read_metadata(path)["dream_config"])
    assert stored == dataclasses.replace(cfg, checkpoint=str(ckpt))          # every option, whole
    eps = read_episodes(path)
    assert any((e.frames[:, :3] == 255).all(axis=(1, 2, 3)).any() for e in eps)     # the homing cue showed
    for i in range(2):
        np.testing.assert_array_equal(replay(path, i), eps[i].frames)


def test_gymnasium_record_video_writes_the_dream(tiny_checkpoint, tmp_path):
    from gymnasium.wrappers import RecordVideo

    env = RecordVideo(gym.make("memworld/MemoryRooms-Dream-v0", checkpoint=str(tiny_checkpoint), render_mode="rgb_array"),
                      str(tmp_path), episode_trigger=lambda e: True, disable_logger=True)
    env.reset(seed=0)
    for _ in range(5):
        env.step(2)
    env.close()
    videos = list(tmp_path.glob("*.mp4"))
    assert len(videos) == 1 and videos[0].stat().st_size > 0


def test_every_registered_id_makes_or_says_what_is_missing():
    from gymnasium.envs.registration import registry

    ids = [i for i in registry if i.startswith("memworld/")]
    assert {"memworld/MemoryRooms-v0", "memworld/MemoryRooms-Dream-v0"} <= set(ids)
    for env_id in ids:
        try:
            env = gym.make(env_id)
        except (FileNotFoundError, ImportError) as exc:     # no shipped checkpoint, or an optional extra
            assert "memworld train-worldmodel" in str(exc) or "pip install" in str(exc), (env_id, exc)
            continue
        obs, _ = env.reset(seed=0)
        assert obs.shape == (64, 64, 3) and env.step(env.action_space.sample())[0].shape == (64, 64, 3)
        env.close()
