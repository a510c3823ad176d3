"""Scene maps: recorded views by pose, read by the dream's memory beside the episode's."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from envs.data.dataset import load_arrays
from envs.dream import DreamConfig
from envs.dream.memory import DreamMemory
from envs.data.scene_map import build_scene_map, load_scene_map, save_scene_map
from memory.scene_map import SceneMap, map_cells
from worldmodels.world_model import WorldModel


def test_one_frame_per_cell_and_heading_bin_the_first_in_frame_order():
    poses = np.array([[0.1, 0.1, 0.0], [0.2, 0.3, 0.05], [0.1, 0.1, np.pi / 2], [0.7, 0.1, 0.0], [0.2, 0.2, 0.0]])
    np.testing.assert_array_equal(map_cells(poses, 0.5, 16), [0, 2, 3])
    np.testing.assert_array_equal(map_cells(poses, 1.0, 1), [0])
    with pytest.raises(ValueError, match="cell must be > 0"):
        map_cells(poses, 0.0, 16)


def test_a_built_map_round_trips_and_refuses_another_autoencoder(tmp_path, tiny_checkpoint, tiny_dataset):
    model = WorldModel.load(tiny_checkpoint)
    arrays = load_arrays(tiny_dataset[0])
    smap = build_scene_map(model, arrays, cell=1.0, yaw_bins=8)
    assert len(smap) == len(map_cells(arrays.poses, 1.0, 8)) < len(arrays.poses)
    first = map_cells(arrays.poses, 1.0, 8)[0]
    expect = model.encode(torch.from_numpy(arrays.frames[first:first + 1]))[0]
    torch.testing.assert_close(smap.latents[0], expect, atol=1e-4, rtol=1e-4)   # normalised, as the denoiser reads
    save_scene_map(smap, tmp_path / "map.safetensors")
    back = load_scene_map(tmp_path / "map.safetensors")
    assert torch.equal(back.latents, smap.latents) and torch.equal(back.poses, smap.poses)
    load_scene_map(tmp_path / "map.safetensors", model)
    with torch.no_grad():
        next(model.autoencoder.parameters()).view(-1)[0] += 0.1
    with pytest.raises(ValueError, match="another autoencoder"):
        load_scene_map(tmp_path / "map.safetensors", model)
    with pytest.raises(FileNotFoundError, match="memworld build-map"):
        load_scene_map(tmp_path / "none.safetensors")
    with pytest.raises(ValueError, match="not a scene map"):
        load_scene_map(tiny_checkpoint)


def _map(n: int = 40, seed: int = 0) -> SceneMap:
    g = torch.Generator().manual_seed(seed)
    poses = torch.cat([torch.rand(n, 2, generator=g) * 10 - 5, torch.rand(n, 1, generator=g) * 6 - 3], 1)
    return SceneMap(torch.randn(n, 4, 16, 16, generator=g), poses, "x")


def test_the_memory_reads_the_map_entry_at_the_query_pose_when_the_episode_has_none():
    smap = _map()
    mem = DreamMemory("fov", 2, (4, 16, 16), m=4, capacity=32, exclude_recent=2, bounds=(-7, 7, -7, 7),
                      scene_map=smap, map_candidates=8)
    q = smap.poses[[5, 17]]
    read = mem.read(torch.tensor([10, 10]), q, torch.zeros(2, 4, 16, 16))
    assert read.mask.any(1).all() and (read.indices == -1).all()          # map picks are no bank slot
    d = read.rel_pose[..., :2].pow(2).sum(-1) + 2 * (1 - read.rel_pose[..., 2].cos())
    d = d.masked_fill(~read.mask, float("inf"))
    j = d.argmin(1)
    assert torch.allclose(d[torch.arange(2), j], torch.zeros(2), atol=1e-6)
    torch.testing.assert_close(read.latents[torch.arange(2), j], smap.latents[[5, 17]])
    assert read.map_indices[torch.arange(2), j].tolist() == [5, 17]
    assert ((read.map_indices >= 0) == read.mask).all()                     # every pick here is a map entry
    # without the map the same empty memory has nothing to read
    bare = DreamMemory("fov", 2, (4, 16, 16), m=4, capacity=32, exclude_recent=2, bounds=(-7, 7, -7, 7))
    assert not bare.read(torch.tensor([10, 10]), q, torch.zeros(2, 4, 16, 16)).mask.any()


def test_the_episodes_own_view_wins_over_a_map_view_of_the_same_place():
    smap = _map()
    mem = DreamMemory("fov", 1, (4, 16, 16), m=1, capacity=32, exclude_recent=2, bounds=(-7, 7, -7, 7),
                      scene_map=smap)
    q = smap.poses[[3]]
    mem.write(torch.ones(1, 4, 16, 16), q, torch.tensor([1]))
    read = mem.read(torch.tensor([10]), q, torch.zeros(1, 4, 16, 16))
    assert read.indices[0, 0] == 0 and torch.equal(read.latents[0, 0], torch.ones(4, 16, 16))


def test_a_map_needs_a_memory_that_reads_it():
    for kind in ("none", "stateful"):
        with pytest.raises(ValueError, match="scene map"):
            DreamMemory(kind, 1, (4, 16, 16), m=4, capacity=8, exclude_recent=2, bounds=(-7, 7, -7, 7),
                        scene_map=_map())


def test_training_memory_draws_map_frames_of_other_episodes_only():
    from envs.data.memory_sampler import EpisodeMemorySampler, MemorySamplerConfig

    # two episodes of 8 frames; frame 6 (episode 0) and frame 14 (episode 1) share one pose
    poses = torch.zeros(16, 3)
    poses[:, 0] = torch.arange(16, dtype=torch.float32)
    poses[14] = poses[6]
    latents = torch.arange(16, dtype=torch.float32)[:, None, None, None].expand(16, 4, 16, 16).clone()
    starts = np.array([0, 8])
    cfg = MemorySamplerConfig(m=4, window=4, kinds={"fov": 1.0}, map_share=1.0, map_candidates=4)
    sampler = EpisodeMemorySampler(cfg, context=2, map_index=np.arange(16), map_episode_start=np.repeat(starts, 8))
    targets = np.array([6])                      # context 4, 5; its episode's candidates 0 .. 3
    mem, rel, mask = sampler(targets, latents, poses, starts[[0]], np.random.default_rng(0))
    got = {int(v) for v in mem[0, mask[0], 0, 0, 0]}
    # the other episode's view of the very place; never the target itself or its context through the map
    assert 14 in got and not got & {4, 5, 6, 7}
    at_zero = rel[0, :, :2].abs().sum(-1) < 1e-6
    assert (mem[0, at_zero & mask[0], 0, 0, 0] == 14).all()
    # more candidates asked for than other episodes hold: the own episode's still never come in
    wide = MemorySamplerConfig(m=4, window=1, kinds={"fov": 1.0}, map_share=1.0, map_candidates=12)
    sampler = EpisodeMemorySampler(wide, context=2, map_index=np.arange(16), map_episode_start=np.repeat(starts, 8))
    for seed in range(5):
        mem, _, mask = sampler(targets, latents, poses, starts[[0]], np.random.default_rng(seed))
        assert not {int(v) for v in mem[0, mask[0], 0, 0, 0]} & {4, 5, 6, 7}
    with pytest.raises(ValueError, match="map_share"):
        EpisodeMemorySampler(cfg, context=2)
    with pytest.raises(ValueError, match="map_share"):
        MemorySamplerConfig(map_share=1.5)


def test_the_dream_reads_a_map_of_its_own_autoencoder_only(tmp_path, tiny_checkpoint, tiny_dataset):
    from envs.dream import DreamEnv

    model = WorldModel.load(tiny_checkpoint)
    save_scene_map(build_scene_map(model, load_arrays(tiny_dataset[0]), cell=1.0, yaw_bins=8), tmp_path / "map.safetensors")
    env = DreamEnv(checkpoint=str(tiny_checkpoint), memory="fov", scene_map=str(tmp_path / "map.safetensors"))
    env.reset(seed=0)
    assert env.step(2)[0].shape == (64, 64, 3)
    with pytest.raises(ValueError, match="needs a memory kind"):
        DreamEnv(checkpoint=str(tiny_checkpoint), memory="none", scene_map=str(tmp_path / "map.safetensors"))
    other = load_scene_map(tmp_path / "map.safetensors")
    other.autoencoder = "another"
    save_scene_map(other, tmp_path / "other.safetensors")
    with pytest.raises(ValueError, match="another autoencoder"):
        DreamEnv(checkpoint=str(tiny_checkpoint), memory="fov", scene_map=str(tmp_path / "other.safetensors"))


def test_an_agents_dream_reads_the_map_it_is_given(tmp_path, tiny_checkpoint, tiny_dataset):
    from agents.train import AgentConfig, dream_venv

    model = WorldModel.load(tiny_checkpoint)
    save_scene_map(build_scene_map(model, load_arrays(tiny_dataset[0]), cell=1.0, yaw_bins=8), tmp_path / "map.safetensors")
    dream = DreamConfig(checkpoint=str(tiny_checkpoint), scene_map=str(tmp_path / "map.safetensors"))
    venv = dream_venv(AgentConfig(n_envs=2, dream=dream))
    assert venv.venv.vec.core.memory.scene_map is not None
    venv.reset()
    obs, *_ = venv.step(np.array([2, 2]))
    assert obs.shape[0] == 2
    venv.close()


def test_the_dream_moves_map_views_decoding_each_entry_once(tmp_path, tiny_checkpoint, tiny_dataset):
    from envs.dream import DreamConfig, DreamCore
    from envs.tasks import TaskConfig
    from worldmodels.depth_training import DepthFitConfig, fit_depth_head

    arrays = load_arrays(tiny_dataset[0])
    frames = torch.from_numpy(arrays.frames[:32])
    model, _ = fit_depth_head(WorldModel.load(tiny_checkpoint), frames, torch.full((32, 64, 64), 2.0),
                              DepthFitConfig(steps=2, batch=4), progress=False)
    model.save(tmp_path / "depth.safetensors")
    smap = build_scene_map(model, arrays, cell=1.0, yaw_bins=8)
    save_scene_map(smap, tmp_path / "map.safetensors")
    cfg = DreamConfig(checkpoint=str(tmp_path / "depth.safetensors"), memory="fov", views={"turn_radius": 1.0, "move": True},
                      starts=str(tiny_dataset[0]),
                      scene_map=str(tmp_path / "map.safetensors"), task=TaskConfig("reach", goal=(1e3, 1e3)))
    core = DreamCore(cfg, 2)
    core.reset_worlds([0, 1], [0, 1], [None, None])
    for _ in range(3):
        core.step(torch.tensor([2, 0]), smap.poses[[2, 3]])      # stepped onto map poses: their entries are moved
    got = core.views.map_has_frame.nonzero()[:, 0]
    assert len(got) > 0 and core.views.map_has_depth[got].all()
    want = core.model.decode(smap.latents[got])
    assert (core.views.map_frames[got].int() - want.int()).abs().max() <= 1
    torch.testing.assert_close(core.views.map_depth[got].float(), core.model.predict_depth(want).half().float())
    seen = core.views.map_frames.clone()
    core.step(torch.tensor([2, 0]), smap.poses[[2, 3]])
    assert torch.equal(core.views.map_frames[got], seen[got])        # kept, not decoded again
