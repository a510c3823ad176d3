"""``memworld encode-dataset dataset=<folder> checkpoint=<file>``: encode a dataset's frames once.

Writes the encoded file (``envs/encoded_dataset.py``) and results.json: frames, bytes, the rms
error of the stored latents (float16 or uint8 rounding) and the encoding time.
"""

from __future__ import annotations

import time
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig

from envs.data.dataset import load_arrays, read_metadata
from envs.dream.config import default_checkpoint
from envs.data.encoded_dataset import DTYPES, autoencoder_fingerprint, encode_arrays, save_encoded
from experiments.runs import make_run_dir, save_config, write_results
from worldmodels.train import pick_device
from worldmodels.world_model import WorldModel


def run(cfg: DictConfig, run_dir: Path, meta: dict) -> dict:
    ckpt = Path(cfg.checkpoint) if cfg.checkpoint else default_checkpoint(meta.get("source", "miniworld"))
    model = WorldModel.load(ckpt, source=meta.get("source"))
    t0 = time.perf_counter()
    arrays = load_arrays(cfg.dataset)
    device = pick_device(str(cfg.device))
    z = encode_arrays(model, arrays, str(cfg.precision), device, progress=bool(cfg.progress))
    seconds = time.perf_counter() - t0
    out = Path(cfg.out) if cfg.out else run_dir / "encoded.safetensors"
    info = save_encoded(out, arrays, z, {"source": meta.get("source"), "dataset": str(cfg.dataset),
                                         "dataset_recipe": meta.get("command"), "checkpoint": str(ckpt),
                                         "autoencoder": autoencoder_fingerprint(model)}, str(cfg.dtype))
    latent_std = float(((z - model.latent_mean[:, None, None]) / model.latent_std[:, None, None]).std())
    print(f"{len(z)} frames of {cfg.dataset} -> {out} ({info['bytes'] / 2**20:.1f} MiB, {cfg.dtype}, "
          f"rms error {info['rms_error']:.2e} of raw latents) in {seconds:.0f}s")
    return {"encoded": str(out), "frames": int(len(z)), "bytes": int(info["bytes"]), "dtype": str(cfg.dtype),
            "rms_error": info["rms_error"], "latent_std_normalised": latent_std,
            "rms_error_of_raw_std": info["rms_error"] / float(z.std()), "encode_seconds": seconds,
            "checkpoint": str(ckpt), "device": str(device)}


@hydra.main(config_path="conf", config_name="encode_dataset", version_base="1.3")
def main(cfg: DictConfig) -> None:
    if cfg.dtype not in DTYPES:
        raise ValueError(f"unknown dtype {cfg.dtype!r}: choose one of {', '.join(DTYPES)}")
    if cfg.out and not str(cfg.out).endswith(".safetensors"):
        raise ValueError(f"out must end in .safetensors (train-worldmodel tells an encoded file by it), got {cfg.out}")
    meta = read_metadata(cfg.dataset)
    if cfg.checkpoint and not Path(cfg.checkpoint).is_file():
        raise FileNotFoundError(f"no checkpoint at {cfg.checkpoint}")
    torch.set_num_threads(int(cfg.threads))
    run_dir = make_run_dir("encode-dataset", cfg.runs_root, cfg.run_name)
    save_config(run_dir, cfg)
    write_results(run_dir, run(cfg, run_dir, meta))


if __name__ == "__main__":
    main()
