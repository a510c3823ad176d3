"""Encoded datasets: latents in place of frames, tied to the autoencoder that made them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from envs.data.dataset import DatasetError, load_arrays
from envs.data.encoded_dataset import autoencoder_fingerprint, encode_arrays, load_encoded, save_encoded
from worldmodels.world_model import WorldModel


@pytest.mark.parametrize("dtype, tol", [("float16", 2e-3), ("uint8", 0.6)])
def test_an_encoded_file_round_trips_latents_and_every_array(tmp_path, tiny_checkpoint, tiny_dataset, dtype, tol):
    model = WorldModel.load(tiny_checkpoint)
    arrays = load_arrays(tiny_dataset[0])
    z = encode_arrays(model, arrays)
    info = save_encoded(tmp_path / "enc.safetensors", arrays, z, {"autoencoder": autoencoder_fingerprint(model)}, dtype)
    enc = load_encoded(tmp_path / "enc.safetensors")
    assert enc.arrays.frames is None and enc.latents.shape == z.shape
    err = (enc.latents - z).abs().max().item()
    step = float((z.amax() - z.amin()) / 255)
    assert err <= (tol * step if dtype == "uint8" else tol * float(z.abs().max()))   # half a step, or fp16 rounding
    assert info["rms_error"] == pytest.approx(float((enc.latents - z).pow(2).mean().sqrt()), rel=1e-3)
    for k in ("poses", "actions", "rewards", "terminations", "starts", "lengths"):
        np.testing.assert_array_equal(getattr(enc.arrays, k), getattr(arrays, k))
    assert enc.meta["autoencoder"] == autoencoder_fingerprint(model) and enc.meta["dtype"] == dtype
    train, held = enc.arrays.split(1)                                 # splits like a dataset with frames
    assert train.frames is None and len(train.poses) + len(held.poses) == len(z)


def test_the_fingerprint_tells_encoders_and_statistics_apart_but_not_decoders(tiny_checkpoint):
    a, b = WorldModel.load(tiny_checkpoint), WorldModel.load(tiny_checkpoint)
    assert autoencoder_fingerprint(a) == autoencoder_fingerprint(b)
    with torch.no_grad():
        next(b.autoencoder.decoder.parameters()).view(-1)[0] += 1.0      # a new decoder encodes alike
        assert autoencoder_fingerprint(a) == autoencoder_fingerprint(b)
        b.latent_std[0] += 1e-3                                          # normalises otherwise
        assert autoencoder_fingerprint(a) != autoencoder_fingerprint(b)
        b.latent_std[0] -= 1e-3
        next(b.autoencoder.encoder.parameters()).view(-1)[0] += 1e-6
    assert autoencoder_fingerprint(a) != autoencoder_fingerprint(b)


def test_given_latents_need_their_autoencoder_and_one_per_frame(tmp_path, tiny_dataset):
    from conftest import tiny_model_config
    from worldmodels.train import TrainConfig, Trainer

    arrays = load_arrays(tiny_dataset[0])
    z = torch.zeros(len(arrays.poses), 4, 16, 16)
    with pytest.raises(ValueError, match="pass init or autoencoder"):
        Trainer(tiny_model_config(), TrainConfig(ae_steps=0), arrays, None, tmp_path, progress=False, latents=z)


def test_bad_files_fail_clearly_and_a_refused_write_leaves_nothing(tmp_path, tiny_checkpoint, tiny_dataset):
    with pytest.raises(DatasetError, match="no encoded dataset"):
        load_encoded(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(DatasetError, match="junk.safetensors"):
        load_encoded(tmp_path / "junk.safetensors")
    model = WorldModel.load(tiny_checkpoint)
    model.save(tmp_path / "model.safetensors")
    with pytest.raises(DatasetError, match="not an encoded dataset"):
        load_encoded(tmp_path / "model.safetensors")
    arrays = load_arrays(tiny_dataset[0])
    z = torch.zeros(len(arrays.poses) - 1, 4, 16, 16)
    with pytest.raises(ValueError, match="latents for"):
        save_encoded(tmp_path / "short.safetensors", arrays, z, {})
    with pytest.raises(ValueError, match="unknown dtype"):
        save_encoded(tmp_path / "bf.safetensors", arrays, torch.zeros(len(arrays.poses), 4, 16, 16), {}, "bfloat16")
    assert not list(tmp_path.glob("short*")) and not list(tmp_path.glob("bf*"))
