"""The patch critic, its losses, and decoder refits with it (tiny model, a few steps)."""

import dataclasses

import numpy as np
import pytest
import torch

from worldmodels.decoder_training import DecoderTrainConfig, retrain_decoder
from worldmodels.discriminator import PatchDiscriminator, adaptive_weight, hinge_d_loss
from worldmodels.world_model import WorldModel


def test_patch_critic_scores_8x8_patches():
    assert PatchDiscriminator()(torch.zeros(2, 3, 64, 64)).shape == (2, 1, 8, 8)


def test_hinge_loss_ground_truth():
    sure = hinge_d_loss(torch.full((4,), 2.0), torch.full((4,), -2.0))
    blind = hinge_d_loss(torch.zeros(4), torch.zeros(4))
    fooled = hinge_d_loss(torch.full((4,), -1.0), torch.full((4,), 1.0))
    assert sure.item() == 0.0 and blind.item() == 1.0 and fooled.item() == 2.0


def test_adaptive_weight_balances_gradients():
    w = torch.randn(5, requires_grad=True)
    rec = (w ** 2).sum()
    gen = 4.0 * rec                           # the same gradient direction, 4x as large
    assert adaptive_weight(rec, gen, w, scale=0.5).item() == pytest.approx(0.5 / 4, rel=1e-3)


@pytest.fixture(scope="module")
def tiny(tiny_checkpoint, tiny_dataset):
    model = WorldModel.load(tiny_checkpoint)
    frames = np.concatenate([e.frames for e in tiny_dataset[1]])[:64]
    return model, frames


def test_from_current_starts_at_the_models_decoder(tiny):
    model, frames = tiny
    ae = model.cfg.autoencoder
    cfg = DecoderTrainConfig(decoder=ae.decoder, channels=tuple(ae.subpixel_channels), steps=1, batch=2,
                             lr=1e-12, from_current=True, precision="fp32")
    new, _ = retrain_decoder(model, frames, cfg, progress=False)
    z = torch.randn(3, ae.latent_channels, 16, 16)
    with torch.no_grad():
        assert torch.allclose(new.autoencoder.decode(z), model.autoencoder.decode(z), atol=1e-5)


def test_from_current_refuses_another_decoder(tiny):
    model, frames = tiny
    other = "upsample" if model.cfg.autoencoder.decoder == "subpixel" else "subpixel"
    with pytest.raises(ValueError, match="from_current"):
        retrain_decoder(model, frames, DecoderTrainConfig(decoder=other, steps=1, from_current=True), progress=False)


def test_adversarial_refit_moves_only_the_decoder_and_differs_from_mse_alone(tiny):
    model, frames = tiny
    ae = model.cfg.autoencoder

    def refit(weight):
        cfg = DecoderTrainConfig(decoder=ae.decoder, steps=8, batch=4, adversarial=weight, from_current=True,
                                 precision="fp32")
        return retrain_decoder(model, frames, cfg, progress=False)[0]

    new, plain = refit(0.5), refit(0.0)
    old_sd, new_sd = model.state_dict(), new.state_dict()
    moved = [k for k in old_sd if not torch.equal(old_sd[k], new_sd[k])]
    assert moved and all(k.startswith("autoencoder.decoder.") for k in moved)
    z = torch.randn(2, ae.latent_channels, 16, 16)
    with torch.no_grad():
        assert torch.isfinite(new.autoencoder.decode(z)).all()
        # the same batches, so the critic's term (from step 2 of 8) is what tells the two apart
        assert not torch.allclose(new.autoencoder.decode(z), plain.autoencoder.decode(z))


def test_negative_adversarial_weight_is_refused():
    with pytest.raises(ValueError, match="adversarial"):
        DecoderTrainConfig(adversarial=-1.0)


def test_one_step_estimates_follow_a_real_context(tiny, tiny_dataset):
    from envs.data.dataset import load_arrays
    from worldmodels.autoencoder import encode_raw
    from worldmodels.decoder_training import one_step_latents

    model, _ = tiny
    arrays = load_arrays(tiny_dataset[0])
    k = model.context
    z = encode_raw(model.autoencoder, arrays.frames)
    torch.manual_seed(3)
    idx, est = one_step_latents(model, z, arrays.actions, arrays.window_starts(k + 1), 20, np.random.default_rng(0))
    assert est.shape == (20, *z.shape[1:]) and torch.isfinite(est).all()
    # the same draw through the model's own frame-level path: normalised context in, raw latents out
    win = idx[:, None] - k + np.arange(k)
    torch.manual_seed(3)
    with torch.no_grad():
        ref = model.sample_next(model.encode(torch.from_numpy(arrays.frames[win])), torch.from_numpy(arrays.actions[win]))
        raw = ref * model.latent_std[:, None, None] + model.latent_mean[:, None, None]
    assert torch.allclose(est, raw, atol=1e-4)
    ep = arrays.episode_of(idx)
    assert (arrays.episode_of(idx - k) == ep).all() and len(set(idx.tolist())) == 20   # K real frames before each


def test_denoised_share_needs_the_episodes_and_refits(tiny, tiny_dataset):
    from envs.data.dataset import load_arrays

    model, _ = tiny
    arrays = load_arrays(tiny_dataset[0])
    ae = model.cfg.autoencoder
    cfg = DecoderTrainConfig(decoder=ae.decoder, steps=4, batch=4, denoised_share=0.5, denoised_frames=16,
                             from_current=True, precision="fp32")
    with pytest.raises(ValueError, match="window_starts"):
        retrain_decoder(model, arrays.frames, cfg, progress=False)
    episodes = {"actions": arrays.actions, "window_starts": arrays.window_starts(model.context + 1)}
    new, _ = retrain_decoder(model, arrays.frames, cfg, progress=False, **episodes)
    plain, _ = retrain_decoder(model, arrays.frames, dataclasses.replace(cfg, denoised_share=0.0), progress=False,
                               **episodes)
    z = torch.randn(2, ae.latent_channels, 16, 16)
    with torch.no_grad():     # the same frames drawn; only the latents half of them decode from differ
        assert not torch.allclose(new.autoencoder.decode(z), plain.autoencoder.decode(z))
    with pytest.raises(ValueError, match="denoised_share"):
        DecoderTrainConfig(denoised_share=1.5)
    with pytest.raises(ValueError, match="denoised_frames"):
        DecoderTrainConfig(denoised_frames=0)
