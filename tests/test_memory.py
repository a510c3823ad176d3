"""Pose geometry, banks, retrievers and stateful memory."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from geometry import compose, relative_pose
from memory import MemoryBank, StatefulGridMemory, fov_overlap, retrieve


def test_fov_overlap_extremes():
    p = torch.tensor([1.0, 2.0, 0.3])
    assert fov_overlap(p, p).item() == 1.0
    assert fov_overlap(p, p + torch.tensor([0, 0, math.pi])).item() == 0.0
    assert 0 < fov_overlap(p, p + torch.tensor([0, 0, 0.4])).item() < 1


def test_compose_and_relative_pose_are_inverse():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(10, 3, generator=g)
    d = torch.randn(10, 3, generator=g)
    b = compose(a, d)
    rel = relative_pose(b, a)
    torch.testing.assert_close(rel[:, :2], d[:, :2], atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.remainder(rel[:, 2] - d[:, 2] + math.pi, 2 * math.pi) - math.pi,
                               torch.zeros(10), atol=1e-5, rtol=0)


def _bank_with_plant(kind_latent=False):
    g = torch.Generator().manual_seed(1)
    bank = MemoryBank(2, 20, (4, 4, 4))
    for t in range(20):
        pose = torch.tensor([[5.0 + t, 5.0, math.pi]] * 2)            # distractors far away, facing away
        bank.write(torch.randn(2, 4, 4, 4, generator=g), pose, torch.full((2,), t))
    query = torch.tensor([[0.0, 0.0, 0.0]] * 2)
    latent = torch.randn(2, 4, 4, 4, generator=g)
    bank.latents[:, 7] = latent if kind_latent else bank.latents[:, 7]
    bank.poses[:, 7] = query[0]
    return bank, query, latent


def test_fov_retrieval_picks_the_planted_frame():
    bank, query, latent = _bank_with_plant()
    r = retrieve("fov", now=torch.tensor([30, 30]), query_pose=query, query_latent=latent, latents=bank.latents,
                 poses=bank.poses, steps=bank.steps, valid=bank.valid, m=3, exclude_recent=4)
    assert (r.indices[:, 0] == 7).all() and r.mask[:, 0].all()


def test_embedding_retrieval_picks_the_planted_frame():
    bank, query, latent = _bank_with_plant(kind_latent=True)
    r = retrieve("embedding", now=torch.tensor([30, 30]), query_pose=query, query_latent=latent,
                 latents=bank.latents, poses=bank.poses, steps=bank.steps, valid=bank.valid, m=2)
    assert (r.indices[:, 0] == 7).all()


def test_recency_excludes_the_context():
    bank, query, latent = _bank_with_plant()
    r = retrieve("recency", now=torch.tensor([19, 19]), query_pose=query, query_latent=latent, latents=bank.latents,
                 poses=bank.poses, steps=bank.steps, valid=bank.valid, m=2, exclude_recent=4)
    # generating step 19 from the context 15..18: memory starts at 14
    assert bank.steps[0, r.indices[0]].tolist() == [14, 13]


def test_masked_reset_clears_one_world_only():
    bank = MemoryBank(3, 5, (2,))
    bank.write(torch.ones(3, 2), torch.zeros(3, 3), torch.zeros(3, dtype=torch.long))
    bank.reset(torch.tensor([False, True, False]))
    assert bank.valid[:, 0].tolist() == [True, False, True]


def test_bank_is_bounded():
    bank = MemoryBank(1, 4, (2,))
    before = bank.nbytes()
    for t in range(50):
        bank.write(torch.ones(1, 2), torch.zeros(1, 3), torch.tensor([t]))
    assert bank.nbytes() == before and bank.valid.sum() == 4 and bank.steps.max() == 49


def test_stateful_memory_size_is_constant_over_10000_steps():
    mem = StatefulGridMemory(2, (4, 4, 4), bounds=(-7, 7, -7, 7), cell=2.0, n_headings=8)
    size = mem.nbytes()
    pose = torch.zeros(2, 3)
    for t in range(10_000):
        pose = compose(pose, torch.tensor([[0.3, 0.0, 0.26]] * 2)).clamp(-7, 7)
        mem.write(torch.zeros(2, 4, 4, 4), pose, torch.full((2,), t))
    assert mem.nbytes() == size
    assert mem.valid.sum(1).max() <= mem.capacity
    r = mem.read(torch.full((2,), 10_000), pose, m=3)
    assert r.mask.any()


def test_a_revisit_is_a_near_pose_held_more_than_k_steps_earlier():
    from envs.data.revisit import RevisitPath

    frames = np.zeros((9, 64, 64, 3), np.uint8)
    # k = 2: frame t revisits frame s only if s < t - 2. Frame 2 returns to frame 0 (too recent), frame 4 to
    # frame 1 (just old enough), frame 5 turns away at frame 1's place (not the same view), frame 7 to frame 0
    poses = np.array([[0, 0, 0], [1, 0, 0], [0, 0, 0.1], [3, 0, 0], [1, 0.2, 0], [1, 0, 2.0], [5, 0, 0], [0, 0, 0],
                      [9, 9, 0]], np.float32)
    path = RevisitPath("out_and_back", 0, 2, frames, poses, np.zeros(8, np.int64))
    assert path.revisit_of().tolist() == [-1, -1, -1, -1, 1, -1, -1, 0, -1]


def test_standing_against_a_wall_is_not_a_return():
    from envs.data.revisit import RevisitPath

    # k = 2: frames 1-5 push into a wall at (1, 0), then the agent walks off and comes back at frame 8
    poses = np.array([[0, 0, 0]] + [[1, 0, 0]] * 5 + [[2, 0, 0], [3, 0, 0], [1, 0, 0]], np.float32)
    path = RevisitPath("loop", 0, 2, np.zeros((9, 64, 64, 3), np.uint8), poses, np.zeros(8, np.int64))
    assert path.revisit_of().tolist() == [-1] * 8 + [1]
    assert path.revisit_of(0.05, 0.05).tolist() == [-1] * 8 + [1]


def test_exact_revisits_are_only_the_returns_to_the_same_pose_and_are_scored_apart():
    from envs.data.revisit import RevisitPath
    from envs.benchmarks.revisit_scores import score

    # k = 2: frame 4 returns near frame 1 (0.2 units off), frame 5 to frame 0's very pose (in the context),
    # frame 6 to frame 2's (first seen in the dream); frames 2, 3 are away
    poses = np.array([[0, 0, 0], [1, 0, 0], [3, 0, 0], [4, 0, 0], [1.2, 0, 0], [0, 0, 1e-4], [3, 0, 0]], np.float32)
    truth = np.zeros((7, 64, 64, 3), np.uint8)
    path = RevisitPath("loop", 0, 2, truth, poses, np.zeros(6, np.int64))
    assert path.revisit_of().tolist() == [-1, -1, -1, -1, 1, 0, 2]
    dreamed = truth[None].copy()
    dreamed[0, 4] = 10                                    # the near revisit is off by 10, so is the return to frame 2
    dreamed[0, 6] = 10
    off = 10 * np.log10(255**2 / 100)
    res, _ = score([path], dreamed)
    assert res["revisit_frames"] == 3 and res["exact_revisit_frames"] == 2
    assert res["exact_revisit_psnr"] == pytest.approx((100.0 + off) / 2, abs=1e-3)
    assert res["exact_revisit_psnr_by_first_visit"] == pytest.approx({"context": 100.0, "dream": off}, abs=1e-3)
    assert res["exact_revisit_frames_by_first_visit"] == {"context": 1, "dream": 1}
    # the dream drew frame 2 exactly and came back to it off by 10
    assert res["exact_dream_place_first_psnr"] == pytest.approx(100.0)
    assert res["exact_dream_place_self_psnr"] == pytest.approx(off, abs=1e-3)
    assert res["revisit_psnr"] == pytest.approx((100.0 + 2 * off) / 3, abs=1e-3)
    # no return to the same pose: no exact figures, only their count
    path.poses[5, :2] = 0.3
    path.poses[6, :2] = 3.3
    res, _ = score([path], dreamed)
    assert res["exact_revisit_frames"] == 0 and "exact_revisit_psnr" not in res


@pytest.mark.parametrize("tol", [0.05, None, [0.05], [0.0, 0.05], [0.7, 0.05], ["a", 0.1]])
def test_a_bad_exact_tolerance_is_refused_by_name(tol):
    from envs.benchmarks.revisit_scores import exact_tolerance

    with pytest.raises(ValueError, match="exact_tol"):
        exact_tolerance(tol)
    assert exact_tolerance([0.05, 0.05]) == (0.05, 0.05)


def test_the_copy_bound_copies_the_nearest_earlier_view_through_the_reconstruction():
    from envs.data.revisit import RevisitPath
    from envs.benchmarks.revisit_scores import copy_bound_psnr

    # k = 2: only frame 5 is a revisit; frames 0 (earliest, 0.35 away) and 1 (nearest, 0.05 away) qualify
    poses = np.array([[0, 0, 0], [0.4, 0, 0], [5, 0, 0], [6, 0, 0], [7, 0, 0], [0.35, 0, 0]], np.float32)
    frames = np.zeros((6, 64, 64, 3), np.uint8)
    frames[0], frames[1], frames[5] = 200, 10, 20
    path = RevisitPath("out_and_back", 0, 2, frames, poses, np.zeros(5, np.int64))
    assert path.revisit_of().tolist() == [-1, -1, -1, -1, -1, 0]
    # frame 1 copied as is: MSE 100 -> 28.13 dB (the earliest, frame 0, would give 180^2)
    assert copy_bound_psnr([path], lambda f: f) == pytest.approx(10 * np.log10(255**2 / 100), abs=1e-3)
    # the reconstruction is what is scored: a round trip that brightens by 10 makes the copy exact
    assert copy_bound_psnr([path], lambda f: f + 10) == pytest.approx(100.0)
    # per path kind: a second path of another kind, whose revisit is copied exactly
    other = RevisitPath("loop", 1, 2, frames.copy(), poses, np.zeros(5, np.int64))
    other.frames[1] = 20
    total, by_path = copy_bound_psnr([path, other], lambda f: f, by_path=True)
    assert by_path == pytest.approx({"out_and_back": 10 * np.log10(255**2 / 100), "loop": 100.0}, abs=1e-3)
    assert total == pytest.approx((by_path["out_and_back"] + 100.0) / 2, abs=1e-3)
    # only the returns to the same pose: frame 5 is 0.05 from frame 1, not within 0.01
    assert copy_bound_psnr([path], lambda f: f, tol=(0.06, 0.05)) == pytest.approx(10 * np.log10(255**2 / 100), abs=1e-3)
    with pytest.raises(ValueError, match="no revisit"):
        copy_bound_psnr([path], lambda f: f, tol=(0.01, 0.05))


def test_a_view_stored_at_the_same_pose_is_reused_and_others_are_not():
    from envs.dream.memory import MemoryRead, reuse_stored_view

    z = torch.zeros(3, 4, 2, 2)
    stored = torch.stack([torch.full((4, 2, 2), float(v)) for v in (1, 2)])[None].repeat(3, 1, 1, 1, 1)  # (3, 2, ...)
    rel = torch.tensor([[[0.5, 0.0, 0.0], [0.01, 0.0, 0.01]],     # world 0: entry 1 is at (nearly) the same pose
                        [[0.5, 0.0, 0.0], [0.3, 0.0, 0.0]],       # world 1: nothing near
                        [[0.0, 0.0, 0.0], [0.3, 0.0, 0.0]]])      # world 2: entry 0 near, but not a valid read
    mask = torch.tensor([[True, True], [True, True], [False, True]])
    read = MemoryRead(stored, rel, mask, torch.zeros(3, 2, dtype=torch.long))
    out, hit = reuse_stored_view(z, read, tol=0.001)
    assert hit.tolist() == [True, False, False]
    assert torch.equal(out[0], stored[0, 1]) and torch.equal(out[1:], z[1:])
    assert not reuse_stored_view(z, read, tol=0.0)[1].any()
    assert not reuse_stored_view(z, MemoryRead(None, None, None, torch.zeros(3, 2, dtype=torch.long)), 0.001)[1].any()


def test_pose_drift_measures_the_dream_pose_against_the_real_one_after_the_context():
    from envs.data.revisit import RevisitPath
    from envs.benchmarks.revisit_scores import pose_drift

    real = np.zeros((6, 3), np.float32)
    real[:, 0] = np.arange(6) * 0.15                      # walks forward; k = 2 context frames
    paths = [RevisitPath("walk", s, 2, np.zeros((6, 64, 64, 3), np.uint8), real, np.full(5, 2)) for s in (0, 1)]
    dream = np.stack([real, real]).copy()
    dream[1, 2:, 1] = [0.1, 0.2, 0.3, 0.4]                # the second dream slides sideways after the context
    dream[0, :2, 0] = 9.0                                 # context poses are not scored
    res = pose_drift(paths, dream)
    assert res["pose_err_mean"] == pytest.approx((0.1 + 0.2 + 0.3 + 0.4) / 8)
    assert res["pose_err_final"] == pytest.approx(0.2) and res["paths_off_by_0.2"] == 0.5
    assert res["blocked_steps_real"] == 0.0 and res["blocked_steps_dream"] == 0.0
    real[4:, 0] = real[3, 0]                              # both real walks hit a wall at frame 3: 4 of 8 steps blocked
    dream[1, 3:] = dream[1, 2]                            # the second dream stops from step 2: 3 of 8
    res = pose_drift(paths, dream)
    assert res["blocked_steps_real"] == pytest.approx(4 / 8) and res["blocked_steps_dream"] == pytest.approx(3 / 8)


@pytest.mark.parametrize("kind", ["recency", "fov", "embedding"])
def test_the_dream_memory_reads_only_the_written_prefix_and_picks_what_a_full_read_picks(kind):
    import torch

    from envs.dream.memory import DreamMemory
    from geometry import relative_pose
    from memory import retrieve

    g = torch.Generator().manual_seed(0)
    mem = DreamMemory(kind, 3, (4, 16, 16), m=4, capacity=64, exclude_recent=2, bounds=(-7, 7, -7, 7))
    for t in range(40):                                   # worlds 1 and 2 restart at steps 10 and 25
        if t in (10, 25):
            mem.reset(torch.tensor([False, t == 10, t == 25]))
        pose = torch.rand(3, 3, generator=g) * torch.tensor([6.0, 6.0, 6.28]) - torch.tensor([3.0, 3.0, 3.14])
        mem.write(torch.randn(3, 4, 16, 16, generator=g), pose, torch.full((3,), t))
    assert mem.store.used() == 40 < mem.store.capacity
    now, q = torch.full((3,), 40), torch.tensor([[0.0, 0.0, 0.5], [1.0, -1.0, 2.0], [-2.0, 0.5, -1.0]])
    ql = torch.randn(3, 4, 16, 16, generator=g)
    got = mem.read(now, q, ql)
    s = mem.store
    full = retrieve(kind, now=now, query_pose=q, query_latent=ql, latents=s.latents, poses=s.poses, steps=s.steps,
                    valid=s.valid, m=4, exclude_recent=2)
    assert torch.equal(got.indices, full.indices.masked_fill(~full.mask, -1)) and got.mask.any()
    lat, poses = full.gather(s.latents, s.poses)
    assert torch.equal(got.rel_pose, relative_pose(poses, q[:, None]) * full.mask[..., None])
    mem.write(ql, q, now)
    since = mem.steps_since_visit(now, q)
    mem._overlap = None                                   # the same without the read's cached overlaps
    assert torch.equal(since, mem.steps_since_visit(now, q))


def test_a_turned_view_is_the_real_view_at_the_new_heading_where_the_two_overlap():
    from envs.sources import make_source
    from memory.reprojection import rotate_view
    from worldmodels.metrics import psnr

    env = make_source("miniworld")
    env.reset(seed=3)
    here = env.pose()
    src = torch.from_numpy(env.render_at(here)).permute(2, 0, 1)[None].float()
    for turn in (math.radians(15), -math.radians(15), math.radians(30)):
        there = here.copy()
        there[2] += turn
        truth = env.render_at(there)
        w, ok = rotate_view(src, torch.tensor([turn]))
        w, ok = w[0].permute(1, 2, 0).round().clamp(0, 255).byte().numpy(), ok[0].numpy()
        assert 0.4 < ok.mean() < 0.8            # a 15-30 degree turn of a 60-degree view keeps about half to 3/4
        assert psnr(w[ok][None], truth[ok][None]) > 32
        assert psnr(w[ok][None], truth[ok][None]) > psnr(env.render_at(here)[ok][None], truth[ok][None]) + 8
        wrong, _ = rotate_view(src, torch.tensor([-turn]))   # the other way round is not the view
        assert psnr(wrong[0].permute(1, 2, 0).round().clamp(0, 255).byte().numpy()[ok][None], truth[ok][None]) < 25
    env.close()
    same, ok = rotate_view(src, torch.zeros(1))
    assert ok.all() and torch.allclose(same, src, atol=1e-3)


def test_turned_views_are_painted_best_first_and_only_where_used():
    from memory.reprojection import lay_turned_views

    base = torch.zeros(2, 1, 8, 8)
    views = torch.stack([torch.full((1, 8, 8), 1.0), torch.full((1, 8, 8), 2.0)])[None].repeat(2, 1, 1, 1, 1)
    use = torch.tensor([[True, True], [False, True]])
    out, share = lay_turned_views(base, views, torch.zeros(2, 2), use)
    assert (out[0] == 1).all() and (out[1] == 2).all() and share.tolist() == [1.0, 1.0]
    out, share = lay_turned_views(base, views, torch.tensor([[0.5, 0.0], [0.5, 0.5]]),
                                  torch.tensor([[True, True], [False, False]]))
    assert (out[1] == 0).all() and share[1] == 0
    assert (out[0] == 2).any() and (out[0] == 1).any()        # the second view fills what the turned first cannot see


def test_only_views_of_the_same_place_under_a_modest_turn_are_turnable():
    from envs.dream.memory import MemoryRead, turnable_views

    rel = torch.tensor([[[0.02, 0.0, 0.5], [0.3, 0.0, 0.1], [0.0, 0.01, 0.2], [0.0, 0.0, 1.2]]])
    read = MemoryRead(torch.zeros(1, 4, 2, 2, 2), rel, torch.ones(1, 4, dtype=torch.bool), torch.zeros(1, 4, dtype=torch.long))
    use, order = turnable_views(read, pos_tol=0.1, max_yaw=0.8)
    assert use.tolist() == [[True, False, True, False]]        # too far away; too large a turn
    assert order[0, :2].tolist() == [2, 0]                     # the smaller turn first
    assert not turnable_views(read, pos_tol=0.0, max_yaw=0.8)[0].any()


def test_a_moved_view_is_the_real_view_at_the_new_pose_where_it_sees():
    from envs.sources import make_source
    from geometry import relative_pose
    from memory.reprojection import move_view, rotate_view
    from worldmodels.metrics import psnr

    env = make_source("miniworld")
    env.reset(seed=3)
    here = env.pose()
    src = torch.from_numpy(env.render_at(here)).permute(2, 0, 1)[None].float()
    depth = torch.from_numpy(env.depth_at(here))[None]
    assert depth.shape == (1, 64, 64) and (depth > 0).all()

    def shown(w, ok):
        return w[0].permute(1, 2, 0).round().clamp(0, 255).byte().numpy(), ok[0].numpy()

    c, s = math.cos(here[2]), math.sin(here[2])
    for fwd, left, turn in ((0.4, 0.0, 0.0), (0.3, 0.2, math.radians(10)), (-0.3, -0.1, -math.radians(15))):
        there = np.array([here[0] + c * fwd - s * left, here[1] + s * fwd + c * left, here[2] + turn], np.float32)
        truth = env.render_at(there)
        rel = relative_pose(torch.from_numpy(here), torch.from_numpy(there))[None]
        w, ok = shown(*move_view(src, depth, rel))
        assert ok.mean() > 0.4
        assert psnr(w[ok][None], truth[ok][None]) > 30
        assert psnr(w[ok][None], truth[ok][None]) > psnr(env.render_at(here)[ok][None], truth[ok][None]) + 6
        wrong, wok = shown(*move_view(src, depth, -rel))              # the move the other way is not the view
        both = ok & wok
        assert psnr(wrong[both][None], truth[both][None]) < psnr(w[both][None], truth[both][None]) - 5
    env.close()
    # a turn on the spot needs no depth: moving by a pure turn with any depth is turning
    turn = torch.tensor([[0.0, 0.0, -0.3]])
    moved, ok_m = move_view(src, torch.full((1, 64, 64), 3.0), turn)
    turned, ok_t = rotate_view(src, torch.tensor([0.3]))
    both = ok_m & ok_t
    diff = (moved - turned).abs().permute(0, 2, 3, 1)[both]
    assert both.float().mean() > 0.5 and diff.mean() < 1.0


def test_moved_views_are_painted_only_where_valid_and_used():
    from memory.reprojection import lay_moved_views

    base = torch.zeros(1, 1, 8, 8)
    views = torch.stack([torch.full((1, 8, 8), 1.0), torch.full((1, 8, 8), 2.0)])[None]
    depth = torch.full((1, 2, 8, 8), 2.0)
    still = torch.zeros(1, 2, 3)
    out, share = lay_moved_views(base, views, depth, still, torch.tensor([[True, True]]))
    assert (out == 1).all() and share.item() == 1.0                 # not moved: the first view whole
    out, share = lay_moved_views(base, views, depth, still, torch.tensor([[False, False]]))
    assert (out == 0).all() and share.item() == 0.0
    # stored a unit ahead, nearer the wall: it sees the middle of the view now, not its rim
    out, share = lay_moved_views(base, views, depth, torch.tensor([[[1.0, 0.0, 0.0]] * 2]), torch.tensor([[True, True]]))
    assert 0.3 < share.item() < 0.7 and (out[0, 0, 3:5, 3:5] == 1).all() and (out[0, 0, 0] == 0).all()
    # stored a unit behind: it saw all of it
    out, share = lay_moved_views(base, views, depth, torch.tensor([[[-1.0, 0.0, 0.0]] * 2]), torch.tensor([[True, True]]))
    assert share.item() == 1.0 and (out == 1).all()


def test_training_memory_draws_later_views_within_the_episode_only():
    from envs.data.memory_sampler import EpisodeMemorySampler, MemorySamplerConfig

    # two episodes, frames 0..11 and 12..19, every frame at one pose (each sees the others' view)
    poses = torch.zeros(20, 3)
    latents = torch.arange(20, dtype=torch.float32)[:, None, None, None].expand(20, 4, 16, 16).clone()
    ends = np.array([12, 20])
    cfg = MemorySamplerConfig(m=4, window=1, kinds={"fov": 1.0}, future=6)
    sampler = EpisodeMemorySampler(cfg, context=2, episode_ends=ends)
    # target 2: no frame before its context; later ones from 5 on (a context-long gap after it)
    mem, _, mask = sampler(np.array([2]), latents, poses, np.array([0]), np.random.default_rng(0))
    got = {int(v) for v in mem[0, mask[0], 0, 0, 0]}
    assert got and got <= set(range(5, 11))
    # target 8: the one past frame of the window (5) and 11, never the next episode's 12..
    mem, _, mask = sampler(np.array([8]), latents, poses, np.array([0]), np.random.default_rng(0))
    assert {int(v) for v in mem[0, mask[0], 0, 0, 0]} == {5, 11}
    # target 12, the second episode's first frame: only its own later frames 15..19
    mem, _, mask = sampler(np.array([12]), latents, poses, np.array([12]), np.random.default_rng(0))
    got = {int(v) for v in mem[0, mask[0], 0, 0, 0]}
    assert got and got <= set(range(15, 20))
    # without future, target 2 has no memory at all
    past = EpisodeMemorySampler(MemorySamplerConfig(m=4, window=1, kinds={"fov": 1.0}), context=2)
    assert not past(np.array([2]), latents, poses, np.array([0]), np.random.default_rng(0))[2].any()
    with pytest.raises(ValueError, match="episode_ends"):
        EpisodeMemorySampler(cfg, context=2)
    with pytest.raises(ValueError, match="future"):
        MemorySamplerConfig(future=-1)
