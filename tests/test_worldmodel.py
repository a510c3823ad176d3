"""World model: shapes, save/load, bad checkpoints, training lowers the loss, resume, NaN guard."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import tiny_model_config

from envs.data.dataset import load_arrays
from worldmodels.checkpoint import CheckpointError, load_tensors, save_tensors
from worldmodels.train import TrainConfig, Trainer
from worldmodels.training_state import TrainingDiverged
from worldmodels.world_model import WorldModel


def test_shapes_and_dtypes_through_every_part():
    m = WorldModel(tiny_model_config()).eval()
    ctx = torch.randint(0, 256, (3, 2, 64, 64, 3), dtype=torch.uint8)
    acts = torch.randint(0, 3, (3, 2))
    z = m.encode(ctx)
    assert z.shape == (3, 2, 4, 16, 16)
    assert m.decode(z).shape == (3, 2, 64, 64, 3) and m.decode(z).dtype == torch.uint8
    mem = {"frames": torch.randint(0, 256, (3, 2, 64, 64, 3), dtype=torch.uint8), "rel_pose": torch.randn(3, 2, 3),
           "mask": torch.tensor([[True, False], [False, False], [True, True]])}
    frame, reward, done, dpose = m.predict_next(ctx, acts, memory=mem)
    assert frame.shape == (3, 64, 64, 3) and frame.dtype == torch.uint8
    assert reward.shape == (3,) and done.dtype == torch.bool and dpose.shape == (3, 3)


def test_decoded_frames_are_valid_uint8_even_from_nan():
    m = WorldModel(tiny_model_config())
    out = m.decode(torch.full((1, 4, 16, 16), float("nan")))
    assert out.dtype == torch.uint8


def test_save_load_round_trip_is_identical(tmp_path):
    torch.manual_seed(0)
    m = WorldModel(tiny_model_config()).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    path = tmp_path / "m.safetensors"
    m.save(path, command="test")
    m2 = WorldModel.load(path, source="miniworld")
    ctx = torch.randint(0, 256, (2, 2, 64, 64, 3), dtype=torch.uint8)
    acts = torch.randint(0, 3, (2, 2))
    a = m.predict_next(ctx, acts, generator=torch.Generator().manual_seed(1))
    b = m2.predict_next(ctx, acts, generator=torch.Generator().manual_seed(1))
    for x, y in zip(a, b):
        assert torch.equal(x, y)
    assert json.loads((tmp_path / "m.safetensors.json").read_text())["command"] == "test"


def test_bad_checkpoints_name_the_problem(tmp_path):
    m = WorldModel(tiny_model_config())
    path = tmp_path / "m.safetensors"
    m.save(path)
    with pytest.raises(CheckpointError, match="does not exist"):
        WorldModel.load(tmp_path / "nope.safetensors")
    trunc = tmp_path / "trunc.safetensors"
    trunc.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(CheckpointError, match="corrupt"):
        WorldModel.load(trunc)
    with pytest.raises(CheckpointError, match="not 'minigrid'"):
        WorldModel.load(path, source="minigrid")
    tensors, meta = load_tensors(path)
    old = tmp_path / "old.safetensors"
    save_tensors(old, tensors, {**meta, "format_version": 0})
    with pytest.raises(CheckpointError, match="format version 0"):
        WorldModel.load(old)


def _trainer(arrays, run, **kw):
    cfg = TrainConfig(**{"ae_steps": 30, "ae_batch": 8, "denoiser_steps": 30, "batch": 8, "checkpoint_every": 10,
                         "log_every": 5, **kw})
    return Trainer(tiny_model_config(), cfg, arrays, None, run, progress=False)


def test_training_lowers_the_loss_and_resumes(tmp_path, tiny_dataset):
    arrays = load_arrays(tiny_dataset[0])
    tr = _trainer(arrays, tmp_path, ae_steps=40, denoiser_steps=0)
    x = torch.from_numpy(arrays.frames[:32])

    def ae_mse():
        from worldmodels.autoencoder import to_unit
        with torch.no_grad():
            return torch.nn.functional.mse_loss(tr.model.autoencoder(to_unit(x))[0], to_unit(x)).item()

    before = ae_mse()
    tr.fit()
    assert ae_mse() < before * 0.7
    # resume: a new trainer in the same folder continues the step counters and optimizer state
    tr2 = _trainer(arrays, tmp_path, ae_steps=50, denoiser_steps=10)
    assert tr2.ae_step == 40 and tr2.opt_ae.state_dict()["state"]
    tr2.fit()
    assert tr2.ae_step == 50 and tr2.den_step == 10
    tr3 = _trainer(arrays, tmp_path, ae_steps=50, denoiser_steps=20)
    assert tr3.den_step == 10
    torch.testing.assert_close(next(tr3.ema.shadow.parameters()), next(tr2.ema.shadow.parameters()))


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, tiny_dataset):
    arrays = load_arrays(tiny_dataset[0])
    tr = _trainer(arrays, tmp_path, ae_steps=10, denoiser_steps=0)
    tr.fit()
    good = (tmp_path / "train_state.pt").read_bytes()
    tr2 = _trainer(arrays, tmp_path, ae_steps=20, denoiser_steps=0)
    with torch.no_grad():
        next(tr2.model.autoencoder.parameters()).fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match="NaN|nan"):
        tr2.fit()
    assert (tmp_path / "train_state.pt").read_bytes() == good


def test_negative_sizes_are_refused():
    with pytest.raises(ValueError, match="ae_steps must be >= 0"):
        TrainConfig(ae_steps=-1)
    with pytest.raises(ValueError, match="batch must be >= 1"):
        TrainConfig(batch=0)
    with pytest.raises(ValueError, match="precision must be"):
        TrainConfig(precision="fp16")


def test_bf16_training_learns_and_keeps_fp32_weights(tmp_path, tiny_dataset):
    arrays = load_arrays(tiny_dataset[0])
    tr = _trainer(arrays, tmp_path, ae_steps=40, denoiser_steps=10, precision="bf16")
    x = torch.from_numpy(arrays.frames[:32])

    def ae_mse():
        from worldmodels.autoencoder import to_unit
        with torch.no_grad():
            return torch.nn.functional.mse_loss(tr.model.autoencoder(to_unit(x))[0], to_unit(x)).item()

    before = ae_mse()
    model = tr.fit()
    assert ae_mse() < before * 0.7
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert tr.latents.dtype == torch.float32 and model.meta["train_minutes"] > 0


def test_self_forcing_ends_the_context_in_the_ema_models_own_frames(tmp_path, tiny_dataset):
    import numpy as np

    arrays = load_arrays(tiny_dataset[0])
    tr = _trainer(arrays, tmp_path, ae_steps=0, denoiser_steps=3, rollout_share=1.0, rollout_max=3)
    tr.fit()
    with torch.no_grad():       # a 3-step model barely reads its context: give it weights that do
        for p in tr.ema.shadow.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    model = tr.final_model()
    k = tr.model.context
    g = tr._window_starts[::7][:6] + k
    assert (arrays.episode_of(g - k - 3) == arrays.episode_of(g)).all()   # room to generate 3 frames from real ones
    real = tr.latents[torch.from_numpy(g[:, None] - k + np.arange(k))]
    torch.manual_seed(1)
    own = tr.own_context(g, 1)
    assert own.shape == real.shape and torch.equal(own[:, :-1], real[:, :-1])
    win = g[:, None] - 1 - k + np.arange(k)                               # what the dream saw one step earlier

    def sampled(acts):
        torch.manual_seed(1)
        return model.sample_next(tr.latents[torch.from_numpy(win)], torch.from_numpy(acts).long())

    torch.testing.assert_close(own[:, -1], sampled(arrays.actions[win]))
    assert not torch.allclose(own[:, -1], sampled(arrays.actions[win - 1]), atol=1e-3)   # the actions matter
    assert not torch.allclose(own[:, -1], real[:, -1], atol=1e-3)
    for r in (k, k + 1):                                                  # the whole context is the model's own
        assert not torch.isclose(tr.own_context(g, r), real, atol=1e-3).all(dim=(2, 3, 4)).any()
    for bad, match in (({"rollout_share": 1.5}, "rollout_share"), ({"rollout_max": 0}, "rollout_max")):
        with pytest.raises(ValueError, match=match):
            TrainConfig(**bad)
    with pytest.raises(ValueError, match="lower train.rollout_max"):     # longer than any episode
        _trainer(arrays, tmp_path / "long", ae_steps=0, rollout_share=0.5, rollout_max=1000).fit()


def test_a_fine_tune_counts_the_minutes_of_the_checkpoint_it_starts_from(tmp_path, tiny_dataset):
    old = WorldModel(tiny_model_config())
    old.meta = {"train_minutes": 3.0, "train_minutes_total": 7.5}
    tr = Trainer(tiny_model_config(), TrainConfig(ae_steps=0, denoiser_steps=2, batch=4), load_arrays(tiny_dataset[0]),
                 None, tmp_path, progress=False, init=old)
    meta = tr.fit().meta
    assert meta["train_minutes_total"] == pytest.approx(7.5 + meta["train_minutes"])


def test_training_with_a_blocked_head_fits_it_and_saves_it(tmp_path, tiny_dataset):
    cfg = tiny_model_config()
    cfg.heads.blocked = True
    arrays = load_arrays(tiny_dataset[0])
    tr = Trainer(cfg, TrainConfig(ae_steps=0, denoiser_steps=3, batch=4), arrays, None, tmp_path, progress=False)
    before = {k: v.clone() for k, v in tr.model.heads.state_dict().items() if k.startswith("blocked_")}
    model = tr.fit()
    from geometry import stalled
    _, _, _, _, h = tr.batch(64)
    assert h["z_prev"] is not None
    assert torch.equal(h["blocked"].bool(), torch.from_numpy(stalled(h["dpose"].cpu().numpy())))
    after = model.heads.state_dict()
    assert before and all(not torch.equal(v, after[k]) for k, v in before.items() if k.endswith("weight"))
    model.save(tmp_path / "b.safetensors")
    assert WorldModel.load(tmp_path / "b.safetensors").cfg.heads.blocked


def test_checkpoints_from_before_the_memory_position_code_still_load(tmp_path):
    cfg = tiny_model_config()
    cfg.denoiser.memory_pos = False
    m = WorldModel(cfg)
    path = tmp_path / "legacy.safetensors"
    m.save(path)
    tensors, meta = load_tensors(path)
    del meta["config"]["denoiser"]["memory_pos"]          # what a version-1 file written before it holds
    save_tensors(path, tensors, meta)
    loaded = WorldModel.load(path)
    assert loaded.cfg.denoiser.memory_pos is False
    assert not any(".memory.pos." in k for k in loaded.state_dict())


def test_fine_tuning_adds_the_memory_position_code_and_keeps_every_other_weight(tmp_path, tiny_dataset):
    cfg = tiny_model_config()
    cfg.denoiser.memory_pos = False
    old = WorldModel(cfg)
    new_cfg = tiny_model_config()
    tr = Trainer(new_cfg, TrainConfig(ae_steps=0, denoiser_steps=0), load_arrays(tiny_dataset[0]), None, tmp_path,
                 progress=False, init=old)
    state = tr.model.state_dict()
    assert any(".memory.pos." in k for k in state)
    for k, v in old.state_dict().items():
        if k.endswith("stem.weight"):   # grown by the stacked memory planes, which start at zero
            assert torch.equal(state[k][:, : v.shape[1]], v) and not state[k][:, v.shape[1]:].any()
        else:
            assert torch.equal(state[k], v), k
    # a checkpoint that lacks other weights is refused by name
    broken = {k: v for k, v in old.state_dict().items() if "heads" not in k}
    with pytest.raises(ValueError, match="does not fit"):
        from worldmodels.train import _load_adding
        _load_adding(WorldModel(new_cfg), broken)


def test_dropped_context_is_noise_and_announced():
    from worldmodels.edm import DROPPED_CONTEXT_AUG, EDMLossConfig, drop_context

    ctx = torch.ones(4, 2, 4, 16, 16)
    aug = torch.full((4,), 0.1)
    drop = torch.tensor([True, False, True, False])
    out, aug2 = drop_context(ctx, aug, drop, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out[~drop], ctx[~drop]) and not torch.equal(out[drop], ctx[drop])
    assert abs(out[drop].std().item() - 1.0) < 0.1
    torch.testing.assert_close(aug2, torch.tensor([DROPPED_CONTEXT_AUG, 0.1, DROPPED_CONTEXT_AUG, 0.1]))
    with pytest.raises(ValueError, match="context_drop"):
        EDMLossConfig(context_drop=1.5)


def _copy_loss(pos: bool, steps: int = 300) -> float:
    """Train a memory attention to reproduce its memory frame place by place; final MSE (target variance 0.25)."""
    from worldmodels.unet import MemoryCrossAttention

    torch.manual_seed(0)
    att, head = MemoryCrossAttention(16, 4, 2, pos=pos), torch.nn.Conv2d(16, 4, 1)
    opt = torch.optim.Adam([*att.parameters(), *head.parameters()], lr=3e-3)
    for _ in range(steps):
        mem = torch.randn(16, 1, 4, 8, 8)
        target = torch.nn.functional.avg_pool2d(mem[:, 0], 2)
        out = head(att(torch.zeros(16, 16, 4, 4), mem, torch.zeros(16, 1, 3), torch.ones(16, 1, dtype=torch.bool)))
        loss = torch.nn.functional.mse_loss(out, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return loss.item()


def test_memory_attention_can_copy_a_stored_view_only_with_the_position_code():
    # the reason for the code: a revisit's stored frame must be copied place by place
    assert _copy_loss(pos=True) < 0.05
    assert _copy_loss(pos=False) > 0.15


def test_stacked_memory_is_the_nearest_valid_pose_and_zero_without_memory():
    from worldmodels.unet import NEAREST_POSE_CHANNELS, nearest_memory

    mem = torch.arange(3.0)[None, :, None, None, None].expand(1, 3, 4, 2, 2).clone()   # frame j is all j
    rel = torch.tensor([[[0.0, 0.1, 0.0], [2.0, 0.0, 0.0], [0.0, 0.0, 0.05]]])
    planes = nearest_memory(mem, rel, torch.tensor([[False, True, True]]))
    assert planes.shape == (1, 4 + NEAREST_POSE_CHANNELS, 2, 2)
    assert (planes[0, :4] == 2).all()                      # the invalid frame 0 is nearer but ignored
    assert planes[0, 4 + NEAREST_POSE_CHANNELS - 1].eq(1).all()
    assert not nearest_memory(mem, rel, torch.zeros(1, 3, dtype=torch.bool)).any()


def test_fine_tuning_a_model_without_stacked_memory_starts_from_the_same_function(tmp_path, tiny_dataset):
    old_cfg = tiny_model_config()
    old_cfg.denoiser.memory_stack = False
    torch.manual_seed(0)
    old = WorldModel(old_cfg).eval()
    with torch.no_grad():
        for p in old.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    tr = Trainer(tiny_model_config(), TrainConfig(ae_steps=0, denoiser_steps=0), load_arrays(tiny_dataset[0]), None,
                 tmp_path, progress=False, init=old)
    new = tr.model.eval()
    x, ctx = torch.randn(2, 4, 16, 16), torch.randn(2, 2, 4, 16, 16)
    cond = dict(context=ctx, actions=torch.zeros(2, 2, dtype=torch.long), memory=torch.randn(2, 2, 4, 16, 16),
                memory_pose=torch.randn(2, 2, 3), memory_mask=torch.ones(2, 2, dtype=torch.bool))
    with torch.no_grad():
        torch.testing.assert_close(new.denoiser(x, torch.ones(2), **cond), old.denoiser(x, torch.ones(2), **cond))


def test_configs_without_a_decoder_key_build_the_upsample_decoder_and_subpixel_decodes_full_frames():
    from worldmodels.autoencoder import Decoder, SubpixelDecoder
    from worldmodels.world_model import WorldModelConfig

    old = WorldModelConfig.from_dict({"autoencoder": {"latent_channels": 4, "dec_channels": [8, 8, 8]}})
    assert old.autoencoder.decoder == "upsample"
    assert isinstance(WorldModel(old).autoencoder.decoder, Decoder)
    new = WorldModelConfig.from_dict({"autoencoder": {"decoder": "subpixel", "subpixel_channels": [16, 8]}})
    dec = WorldModel(new).autoencoder.decoder
    assert isinstance(dec, SubpixelDecoder) and dec(torch.zeros(2, 4, 16, 16)).shape == (2, 3, 64, 64)
    with pytest.raises(ValueError, match="unknown decoder"):
        WorldModelConfig.from_dict({"autoencoder": {"decoder": "bilinear"}})


def test_a_pose_prev_head_learns_what_one_frame_cannot_show():
    # two steps from the same frame with the same action: after a move (the frame changed) the agent moves
    # again; after a blocked move (it did not) it is blocked again. Only a head that sees the change can tell.
    import numpy as np

    from worldmodels.heads import HeadsConfig
    from worldmodels.pose_training import PoseFitConfig, Transitions, fit_pose_head, pose_errors
    from worldmodels.world_model import WorldModel, WorldModelConfig

    torch.manual_seed(0)
    model = WorldModel(WorldModelConfig(heads=HeadsConfig(channels=8, hidden=32))).eval()
    a, b = torch.randn(2, 4, 16, 16)
    z = torch.stack([a, b, b])            # frame 1 came from a move (it changed), frame 2 from a blocked one
    data = Transitions(z, t=np.array([1, 2] * 8), action=np.full(16, 2), prev_action=np.full(16, 2),
                       dpose=np.array([[0.15, 0, 0], [0, 0, 0]] * 8, np.float32),
                       prev_dpose=np.array([[0.15, 0, 0], [0, 0, 0]] * 8, np.float32))
    assert data.blocked.tolist() == [False, True] * 8
    plain, _ = fit_pose_head(model, data, PoseFitConfig(steps=300, batch=16, lr=3e-3, pose_prev=False), progress=False)
    prev, _ = fit_pose_head(model, data, PoseFitConfig(steps=300, batch=16, lr=3e-3), progress=False)
    assert pose_errors(plain, data)["pos_err"] > 0.06      # one frame: at best the middle (0.075 off)
    errs = pose_errors(prev, data)
    assert errs["pos_err_blocked"] < 0.02 and errs["pos_err_free_forward"] < 0.02
    assert not model.cfg.heads.pose_prev and prev.cfg.heads.pose_prev       # the given model is left as it was
    with pytest.raises(ValueError, match="previous latent"):
        prev.heads.pose_delta(z[:1], torch.tensor([2]))
    ctx, acts = z[None, :3], torch.tensor([[0, 2, 2]])      # move_from_context reads the last two of the context
    assert torch.equal(prev.heads.move_from_context(ctx, acts)[0],
                       prev.heads.pose_delta(z[2:3], torch.tensor([2]), z[1:2], torch.tensor([2])))


def test_a_blocked_head_learns_to_stop_a_move_into_a_wall_and_leaves_the_rest_alone():
    # the same data as above: the frame that came from a blocked move is blocked again
    import numpy as np

    from worldmodels.heads import HeadsConfig
    from worldmodels.pose_training import PoseFitConfig, Transitions, fit_pose_head, pose_errors
    from worldmodels.world_model import WorldModel, WorldModelConfig

    torch.manual_seed(0)
    model = WorldModel(WorldModelConfig(heads=HeadsConfig(channels=8, hidden=32))).eval()
    a, b = torch.randn(2, 4, 16, 16)
    z = torch.stack([a, b, b])
    data = Transitions(z, t=np.array([1, 2] * 8), action=np.full(16, 2), prev_action=np.full(16, 2),
                       dpose=np.array([[0.15, 0, 0], [0, 0, 0]] * 8, np.float32),
                       prev_dpose=np.array([[0.15, 0, 0], [0, 0, 0]] * 8, np.float32))
    with pytest.raises(ValueError, match="blocked head"):
        model.heads.blocked_logit(z[1:2], torch.tensor([2]), z[:1], torch.tensor([2]))
    fit = PoseFitConfig(steps=200, batch=16, lr=3e-3, pose=False, blocked=True)
    new, _ = fit_pose_head(model, data, fit, progress=False)
    assert new.cfg.heads.blocked and not new.cfg.heads.pose_prev and not model.cfg.heads.blocked
    old_sd, new_sd = model.heads.state_dict(), new.heads.state_dict()
    assert all(torch.equal(v, new_sd[k]) for k, v in old_sd.items())          # the other heads bit for bit
    errs = pose_errors(new, data)
    assert (errs["blocked_recall"], errs["free_forward_stopped"], errs["blocked_precision"]) == (1.0, 0.0, 1.0)
    assert errs["pos_err_blocked"] == 0.0 and "blocked_recall" not in pose_errors(model, data)
    assert errs["blocked_recall_repeat_push"] == 1.0 and errs["blocked_recall_first_push"] is None
    ctx, acts = z[None].expand(2, 3, 4, 16, 16).clone(), torch.tensor([[2, 2, 2], [2, 2, 2]])
    ctx[1, 1] = a                                              # world 1's last frame came from a move
    delta, blocked = new.heads.move_from_context(ctx, acts)
    assert blocked.tolist() == [True, False] and (delta[0] == 0).all() and delta[1, 0] != 0
    with pytest.raises(ValueError, match="nothing to fit"):
        PoseFitConfig(pose=False, blocked=False)
    from worldmodels.unet import DenoiserConfig
    with pytest.raises(ValueError, match="context of at least 2"):
        WorldModelConfig(denoiser=DenoiserConfig(context=1), heads=HeadsConfig(blocked=True))


def test_a_blocked_move_repeats_the_frame_and_keeps_the_pose_in_predict_next_and_rollout(tiny_dataset):
    import numpy as np

    from worldmodels.evaluation import rollout

    torch.manual_seed(0)
    cfg = tiny_model_config()
    cfg.heads.blocked = True
    model = WorldModel(cfg).eval()
    model.heads.blocked_logit = lambda z, a, z_prev, a_prev: torch.where(a == 2, 5.0, -5.0)   # forward is blocked
    arrays = load_arrays(tiny_dataset[0])
    ctx = torch.from_numpy(arrays.frames[:2][None])
    frame, _, _, dpose = model.predict_next(ctx, torch.tensor([[0, 2]]))
    # the last frame encoded in the same batch as predict_next encodes it: convolution kernels may round a
    # batch of one differently, enough to move a pixel by one level
    assert torch.equal(frame, model.decode(model.encode(ctx)[:, -1])) and (dpose == 0).all()
    frame, _, _, dpose = model.predict_next(ctx, torch.tensor([[2, 0]]))      # a turn goes on
    assert dpose[0, 2] != 0
    actions = np.full(len(arrays.frames), 2)
    frames, poses = rollout(model, arrays.frames, actions, arrays.poses, np.array([0]), horizon=3)
    assert (poses == arrays.poses[1]).all() and (frames == frames[:, :1]).all()


def test_dreamed_latents_are_the_models_own_prediction_where_the_dream_would_generate_one(tiny_dataset):
    import numpy as np

    from worldmodels.pose_training import PoseFitConfig, dreamed_latents, fit_pose_head, transitions

    torch.manual_seed(0)
    cfg = tiny_model_config()
    model = WorldModel(cfg).eval()
    a = load_arrays(tiny_dataset[0])
    episode = a.episode_of(np.arange(len(a.frames)))
    data = transitions(model, a.frames, a.actions, a.poses, episode)
    data.prev_dpose[3] = 0.0                                   # pretend step 3 came after a blocked one
    got = dreamed_latents(model, data, a.actions, episode)
    k = model.context
    first = np.array([np.flatnonzero(episode == episode[t])[0] for t in data.t])
    real = data.z[torch.from_numpy(data.t)]
    kept = (data.t - first < k) | data.after_blocked
    assert got.shape == real.shape and kept[3] and (~kept).any()
    assert torch.equal(got[torch.from_numpy(kept)], real[torch.from_numpy(kept)])
    gen = np.flatnonzero(~kept)
    assert len(gen) <= 256                                     # one chunk: the same noise as below
    win = data.t[gen, None] - k + np.arange(k)
    want = model.sample_next(data.z[torch.from_numpy(win)], torch.from_numpy(a.actions[win].astype(np.int64)),
                             generator=torch.Generator().manual_seed(0))
    assert torch.equal(got[torch.from_numpy(gen)], want) and not torch.equal(want, real[torch.from_numpy(gen)])
    new, _ = fit_pose_head(model, data, PoseFitConfig(steps=5, batch=8, pose=False, blocked=True, dreamed=0.5),
                           progress=False, dreamed=got)
    assert new.cfg.heads.blocked
    with pytest.raises(ValueError, match="dreamed"):
        PoseFitConfig(dreamed=1.5)


def test_pose_change_is_what_integrate_pose_undoes():
    import numpy as np

    from geometry import compose as integrate_pose, pose_change

    rng = np.random.default_rng(0)
    p0 = rng.uniform(-3, 3, (50, 3)).astype(np.float32)
    delta = (rng.normal(size=(50, 3)) * 0.2).astype(np.float32)
    p1 = integrate_pose(torch.from_numpy(p0), torch.from_numpy(delta)).numpy()
    assert np.abs(pose_change(p0, p1) - delta).max() < 1e-5


def test_a_depth_head_learns_a_depth_that_follows_the_picture_and_saves_with_the_model(tmp_path):
    from worldmodels.depth_training import DepthFitConfig, evaluate_depth, fit_depth_head

    m = WorldModel(tiny_model_config()).eval()
    frames = torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8)
    with pytest.raises(ValueError, match="no depth head"):
        m.predict_depth(frames)
    # a toy scene whose depth is its brightness: the head must read it from the picture
    g = torch.Generator().manual_seed(0)
    level = torch.rand(64, 1, 1, 1, generator=g)
    frames = (level * 255).round().byte().expand(64, 64, 64, 3).contiguous()
    depth = (0.5 + 4 * level[..., 0]).expand(64, 64, 64).contiguous()
    with pytest.raises(ValueError, match="must match"):
        fit_depth_head(m, frames[:3], depth[:2], DepthFitConfig(steps=1))
    new, _ = fit_depth_head(m, frames, depth, DepthFitConfig(steps=150, batch=16, lr=5e-3), progress=False)
    assert m.depth_net is None and new.depth_net is not None            # the model it starts from is left as it was
    err = evaluate_depth(new, frames, depth)
    assert err["abs_rel"] < 0.15 and err["delta_1.25"] > 0.8
    assert new.predict_depth(frames[:2]).shape == (2, 64, 64)
    new.save(tmp_path / "d.safetensors")
    back = WorldModel.load(tmp_path / "d.safetensors")
    assert torch.equal(back.predict_depth(frames[:4]), new.predict_depth(frames[:4]))
    torch.testing.assert_close(back.decode(back.encode(frames[:2])), m.decode(m.encode(frames[:2])), rtol=0, atol=0)


def test_reward_figures_score_an_oracle_head_and_a_blind_one(tiny_checkpoint, tiny_dataset):
    from envs.data.dataset import load_arrays
    from worldmodels.evaluation import reward_figures
    from worldmodels.world_model import WorldModel

    model, arr = WorldModel.load(tiny_checkpoint), load_arrays(tiny_dataset[0])
    index = arr.window_starts(2)
    rewards = (arr.actions == 2).astype(np.float32)           # "rewarded" = moved forward
    model.heads.reward_done = lambda z, a, z_next: ((a == 2).float(), torch.zeros(len(a)))
    got = reward_figures(model, arr.frames, arr.actions, rewards, index, batch=7)
    assert got["reward_steps"] == int(rewards[index].sum()) > 0
    assert got["reward_recall"] == 1.0 and got["reward_false_positive_rate"] == 0.0
    assert got["reward_pred_on_rewarded"] == 1.0 and got["reward_pred_on_rest"] == 0.0
    model.heads.reward_done = lambda z, a, z_next: (torch.zeros(len(a)), torch.zeros(len(a)))
    assert reward_figures(model, arr.frames, arr.actions, rewards, index)["reward_recall"] == 0.0


def test_prefetched_batches_are_the_synchronous_ones(tmp_path, tiny_dataset):
    from envs.data.memory_sampler import EpisodeMemorySampler, MemorySamplerConfig

    arrays = load_arrays(tiny_dataset[0])
    weights = []
    for depth in (0, 2):
        torch.manual_seed(0)
        cfg = TrainConfig(ae_steps=3, ae_batch=8, denoiser_steps=6, batch=8, checkpoint_every=10, prefetch=depth)
        mem = EpisodeMemorySampler(MemorySamplerConfig(m=2, window=32), 2)       # numpy retrieval, as trained
        tr = Trainer(tiny_model_config(), cfg, arrays, None, tmp_path / f"prefetch{depth}", memory_fn=mem,
                     progress=False)
        model = tr.fit()
        weights.append(model.state_dict())
    for k, v in weights[0].items():      # the same batches, in the same order: the same weights, bit for bit
        assert torch.equal(v, weights[1][k]), k


def test_a_prefetcher_raises_the_error_of_the_batch_it_could_not_make():
    from worldmodels.prefetch import Prefetcher

    made = iter([1, 2])
    with Prefetcher(lambda: next(made), depth=2) as p:
        assert [p.next(), p.next()] == [1, 2]
        with pytest.raises(StopIteration):
            p.next()
    with pytest.raises(ValueError, match="depth"):
        Prefetcher(lambda: 0, depth=0)
