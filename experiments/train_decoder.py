"""``memworld train-decoder``: replace a world model's decoder by a new one fitted on its frozen encoder.

Writes the new checkpoint (start segments copied beside it) and results.json: reconstruction PSNR on
held-out frames with the old and the new decoder, and the decoders' speed on 32 latents measured in
turns (inference copies, as the dream runs them).
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from envs.data.dataset import load_arrays
from envs.dream.config import default_checkpoint
from envs.data.starts import StartSegments
from experiments.runs import make_run_dir, save_config, write_results
from worldmodels.decoder_training import DecoderTrainConfig, retrain_decoder
from worldmodels.evaluation import evaluate_autoencoder
from worldmodels.flops import call_rates, count_flops
from worldmodels.inference import inference_copy
from worldmodels.metrics import frame_detail
from worldmodels.world_model import WorldModel


def decode_ms(models: dict[str, WorldModel], rounds: int, batch: int = 32) -> dict[str, float]:
    """Milliseconds to decode ``batch`` latents with each model's inference copy, best of ``rounds`` turns."""
    fast = {k: inference_copy(m) for k, m in models.items()}
    z = torch.randn(batch, next(iter(models.values())).cfg.autoencoder.latent_channels, 16, 16)
    best = {k: 0.0 for k in fast}
    for _ in range(rounds):
        for k, m in fast.items():
            best[k] = max(best[k], call_rates(lambda m=m: m.decode(z), 1.0)[1])
    return {k: 1000 / v for k, v in best.items()}


@torch.no_grad()
def roundtrip_detail(model: WorldModel, frames: np.ndarray, chunk: int = 256) -> float:
    """Median detail (``frame_detail``) of ``frames (N, 64, 64, 3)`` uint8 after an autoencoder round trip, as a
    share of theirs: how much texture the decoder can draw at best."""
    rt = np.concatenate([model.decode(model.encode(torch.from_numpy(frames[i:i + chunk]))).numpy()
                         for i in range(0, len(frames), chunk)])
    return float(np.median(frame_detail(rt)) / np.median(frame_detail(frames)))


def run(cfg: DictConfig, run_dir: Path) -> dict:
    keys = {f.name for f in dataclasses.fields(DecoderTrainConfig)}
    train_cfg = DecoderTrainConfig(**{k: tuple(v) if k == "channels" else v
                                      for k, v in OmegaConf.to_container(cfg).items() if k in keys})
    init = Path(cfg.init) if cfg.init else default_checkpoint(cfg.source)
    model = WorldModel.load(init, source=cfg.source)
    dataset = cfg.dataset or model.meta.get("dataset")
    if not dataset or not Path(dataset).exists():
        raise FileNotFoundError(f"training frames {dataset!r} not found: give dataset=<folder> "
                                f"(the checkpoint names {model.meta.get('dataset')!r})")
    arrays = load_arrays(dataset)
    train = arrays.split(int(cfg.heldout_episodes))[0] if cfg.heldout_episodes else arrays
    print(f"{init}: fitting a {cfg.decoder} decoder on {len(train.frames)} frames of {dataset}")
    new, seconds = retrain_decoder(model, train.frames, train_cfg, progress=bool(cfg.progress),
                                   actions=train.actions, window_starts=train.window_starts(model.context + 1))
    minutes = seconds / 60
    out = Path(cfg.out) if cfg.out else run_dir / "world_model.safetensors"
    total = float(model.meta.get("train_minutes_total", model.meta.get("train_minutes") or 0.0)) + minutes
    new.save(out, train_minutes_total=total, decoder_train_minutes=minutes, decoder_retrained_from=str(init),
             decoder_command="memworld train-decoder " + " ".join(sys.argv[1:]))
    starts = StartSegments.path_beside(init)
    if starts.exists():
        shutil.copyfile(starts, StartSegments.path_beside(out))
    res = {"checkpoint": str(out), "decoder": cfg.decoder, "decoder_train_minutes": minutes,
           "train_minutes_total": total, "train_frames": int(len(train.frames))}
    z = torch.zeros(1, model.cfg.autoencoder.latent_channels, 16, 16)
    res["gflop_per_frame"] = {k: count_flops(lambda m=m: m.autoencoder.decoder(z)) / 1e9
                              for k, m in (("old", model), ("new", new))}
    if cfg.heldout and Path(cfg.heldout).exists():
        frames = load_arrays(cfg.heldout).frames
        pick = np.random.default_rng(0).choice(len(frames), min(int(cfg.heldout_frames), len(frames)), replace=False)
        frames = frames[np.sort(pick)]
        res["ae_psnr_old"] = evaluate_autoencoder(model, frames)["ae_psnr"]
        res["ae_psnr_new"] = evaluate_autoencoder(new, frames)["ae_psnr"]
        res["roundtrip_detail_old"], res["roundtrip_detail_new"] = (roundtrip_detail(m, frames) for m in (model, new))
        print(f"held-out reconstruction: old {res['ae_psnr_old']:.2f} dB, new {res['ae_psnr_new']:.2f} dB; detail "
              f"x real old {res['roundtrip_detail_old']:.3f}, new {res['roundtrip_detail_new']:.3f}")
    res["decode_ms_32"] = decode_ms({"old": model, "new": new}, int(cfg.timing_rounds))
    print(f"decoding 32 frames: old {res['decode_ms_32']['old']:.1f} ms, new {res['decode_ms_32']['new']:.1f} ms")
    return res


@hydra.main(config_path="conf", config_name="train_decoder", version_base="1.3")
def main(cfg: DictConfig) -> None:
    torch.set_num_threads(int(cfg.threads))
    run_dir = make_run_dir("train-decoder", cfg.runs_root, cfg.run_name)
    save_config(run_dir, cfg)
    write_results(run_dir, run(cfg, run_dir))


if __name__ == "__main__":
    main()
