"""``memworld train-worldmodel dataset=<folder>``: train and save a ``WorldModel``.

Resume an interrupted run by giving the same ``run_name``. Works under
``torchrun --nproc_per_node=N -m experiments.train_worldmodel ...`` (rank 0 writes).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from envs.data.dataset import load_arrays, read_metadata
from envs.data.encoded_dataset import autoencoder_fingerprint, is_encoded, load_encoded, read_encoded_meta
from envs.data.memory_sampler import EpisodeMemorySampler, MemorySamplerConfig
from memory.scene_map import map_cells
from envs.data.starts import StartSegments
from experiments.runs import make_run_dir, save_config, write_results
from worldmodels.autoencoder import AutoencoderConfig
from worldmodels.edm import EDMLossConfig
from worldmodels.heads import HeadsConfig
from worldmodels.train import TrainConfig, Trainer
from worldmodels.unet import DenoiserConfig
from worldmodels.world_model import SamplerConfig, WorldModelConfig


def build_model_config(m: DictConfig, source: str, n_actions: int) -> WorldModelConfig:
    """Typed ``WorldModelConfig`` from the ``model`` block."""
    lc = int(m.latent_channels)
    if lc < 1 or int(m.context) < 1:
        raise ValueError(f"model.latent_channels and model.context must be >= 1, got {lc} and {m.context}")
    return WorldModelConfig(
        source=source, n_actions=n_actions,
        autoencoder=AutoencoderConfig(lc, tuple(m.enc_channels), tuple(m.dec_channels), str(m.decoder),
                                      tuple(m.subpixel_channels)),
        denoiser=DenoiserConfig(lc, int(m.context), n_actions, tuple(m.channels), int(m.cond_dim), bool(m.memory),
                                memory_pos=bool(m.memory_pos), memory_stack=bool(m.memory_stack)),
        heads=HeadsConfig(lc, n_actions, blocked=bool(m.get("blocked_head", False))),
        loss=EDMLossConfig(float(m.p_mean), float(m.p_std), str(m.loss_weighting), float(m.context_aug_max),
                           float(m.context_drop), float(m.focus_share)),
        sampler=SamplerConfig(str(m.sampler), int(m.sampler_steps)),
        memory_m=int(m.memory_m))


def log_rollout_video(writer, model, arrays, step: int, horizon: int = 16, n: int = 4) -> None:
    """Tensorboard video ``worldmodel/rollout``: real frames beside open-loop dream frames, same actions."""
    import numpy as np

    from agents.video import add_video
    from worldmodels.evaluation import rollout

    starts = arrays.window_starts(model.context + horizon)
    if len(starts) == 0:
        return
    pick = np.random.default_rng(0).choice(starts, min(n, len(starts)), replace=False)
    gen, _ = rollout(model, arrays.frames, arrays.actions, arrays.poses, pick, horizon)
    real = arrays.frames[pick[:, None] + model.context + np.arange(horizon)]
    video = np.concatenate([np.concatenate([real[i], gen[i]], axis=2) for i in range(len(pick))], axis=1)
    add_video(writer, "worldmodel/rollout_real_vs_dream", video, step)


def write_starts(out: Path, arrays, k: int, seed: int, source_checkpoint: str | None, same_data: bool = True) -> None:
    """Start segments beside ``out``: cut from ``arrays``' frames, or, for latents without frames, the
    file beside ``source_checkpoint`` (the same held-out frames when it was trained on the same dataset)."""
    if arrays.frames is not None:
        StartSegments.from_arrays(arrays, k, 64, seed=seed).save(StartSegments.path_beside(out))
        return
    src = StartSegments.path_beside(Path(source_checkpoint)) if source_checkpoint else None
    if src is None or not src.exists():
        print(f"no frames to cut start segments from and none beside {source_checkpoint}: "
              f"the dream of {out} needs its dataset for resets")
        return
    if not same_data:
        print(f"warning: start segments copied from {source_checkpoint}, which was trained on other data")
    shutil.copyfile(src, StartSegments.path_beside(out))


def build_configs(dcfg: DictConfig):
    """(dataset metadata, model config, checkpoint to fine-tune or None, checkpoint whose autoencoder to
    reuse or None, train config), checked: a missing dataset or checkpoint or a bad value fails here,
    before a run folder is made."""
    encoded = is_encoded(dcfg.dataset)
    meta = read_encoded_meta(dcfg.dataset) if encoded else read_metadata(dcfg.dataset)
    init = ae_from = None
    model_cfg = build_model_config(dcfg.model, meta.get("source", "unknown"), int(meta["n_actions"]))
    if dcfg.init and dcfg.autoencoder_from:
        raise ValueError("give init (fine-tune a whole model) or autoencoder_from (a new denoiser on its "
                         "autoencoder), not both")
    if dcfg.autoencoder_from:
        from worldmodels.world_model import WorldModel
        ae_from = WorldModel.load(dcfg.autoencoder_from, source=meta.get("source"))
        lc = ae_from.cfg.autoencoder.latent_channels
        if lc != model_cfg.denoiser.latent_channels:
            raise ValueError(f"{dcfg.autoencoder_from} makes {lc}-channel latents: set model.latent_channels={lc}")
        model_cfg.autoencoder = ae_from.cfg.autoencoder
    if dcfg.init:
        # fine-tune: architecture from the checkpoint, autoencoder frozen; the loss and the memory parts
        # a fine-tune may add (position code, stacked memory) from this config
        from worldmodels.world_model import WorldModel
        init = WorldModel.load(dcfg.init, source=meta.get("source"))
        wanted, model_cfg = model_cfg, init.cfg
        if wanted.heads.blocked and not model_cfg.heads.blocked:
            raise ValueError(f"a fine-tune keeps the heads of {dcfg.init}, which has no blocked head: add one with "
                             f"memworld train-pose pose=false blocked=true init={dcfg.init}")
        model_cfg.loss = wanted.loss
        model_cfg.denoiser.memory_pos = model_cfg.denoiser.memory and wanted.denoiser.memory_pos
        model_cfg.denoiser.memory_stack = model_cfg.denoiser.memory and wanted.denoiser.memory_stack
    train_cfg = TrainConfig(**OmegaConf.to_container(dcfg.train), heldout_episodes=int(dcfg.heldout_episodes))
    frozen = init or ae_from
    if frozen is not None:
        train_cfg.ae_steps = 0
    if encoded:
        if frozen is None:
            raise ValueError(f"{dcfg.dataset} holds latents, not frames: give the checkpoint that encoded it "
                             f"as autoencoder_from=<checkpoint> (or init=<checkpoint> to fine-tune)")
        if autoencoder_fingerprint(frozen) != meta.get("autoencoder"):
            raise ValueError(f"{dcfg.dataset} was encoded by another autoencoder ({meta.get('checkpoint')}) than "
                             f"that of {dcfg.init or dcfg.autoencoder_from}")
    return meta, model_cfg, init, ae_from, train_cfg


def run_train(dcfg: DictConfig, run: Path, configs=None) -> dict:
    """Train in ``run``; ``configs``: what ``build_configs(dcfg)`` returned, if it was called already."""
    meta, model_cfg, init, ae_from, train_cfg = configs or build_configs(dcfg)
    t0 = time.perf_counter()
    latents = None
    if is_encoded(dcfg.dataset):
        enc = load_encoded(dcfg.dataset)
        arrays, latents = enc.arrays, enc.latents
    else:
        arrays = load_arrays(dcfg.dataset)
    train, heldout = arrays.split(dcfg.heldout_episodes) if dcfg.heldout_episodes else (arrays, None)
    if latents is not None:
        latents = latents[: len(train.poses)]
    print(f"dataset {dcfg.dataset}: {len(train.poses)} training frames in {len(train.starts)} episodes "
          f"(loaded in {time.perf_counter() - t0:.0f}s)")
    mem_fn = None
    if model_cfg.denoiser.memory:
        mcfg = MemorySamplerConfig(model_cfg.memory_m, int(dcfg.memory.window), dict(dcfg.memory.kinds),
                                   float(dcfg.memory.map_share), int(dcfg.memory.map_candidates))
        map_index = map_start = None
        if mcfg.map_share > 0:    # the frames memworld build-map would keep from this training set
            map_index = map_cells(train.poses, float(dcfg.memory.map_cell), int(dcfg.memory.map_yaw_bins))
            map_start = train.starts[train.episode_of(map_index)]
        mem_fn = EpisodeMemorySampler(mcfg, model_cfg.denoiser.context, map_index, map_start)
    writer = None
    if dcfg.tensorboard:
        from torch.utils.tensorboard import SummaryWriter
        writer = SummaryWriter(str(run / "tb"))
    command = "memworld train-worldmodel " + " ".join(sys.argv[1:])
    trainer = Trainer(model_cfg, train_cfg, train, heldout, run, memory_fn=mem_fn, writer=writer,
                      meta={"command": command, "dataset": str(dcfg.dataset),
                            "dataset_recipe": meta.get("command") or meta.get("dataset_recipe"),   # a folder's, an encoded file's
                            "real_frames": int(len(arrays.poses)), "finetuned_from": dcfg.init,
                            "autoencoder_from": dcfg.autoencoder_from},
                      progress=dcfg.progress, init=init, autoencoder=ae_from, latents=latents)
    model = trainer.fit()
    out = Path(dcfg.out) if dcfg.out else run / "world_model.safetensors"
    if trainer.dist.main:
        model.save(out)
        src = init or ae_from
        write_starts(out, heldout if heldout is not None else train, model.context, train_cfg.seed,
                     dcfg.init or dcfg.autoencoder_from,
                     same_data=src is None or src.meta.get("dataset") == meta.get("dataset", str(dcfg.dataset)))
    if writer is not None:
        if trainer.dist.main and arrays.frames is not None:
            log_rollout_video(writer, model, heldout if heldout is not None else train, trainer.den_step)
        writer.close()
    return {"checkpoint": str(out), "train_minutes": trainer.seconds / 60,
            "train_minutes_total": model.meta["train_minutes_total"], "ae_steps": trainer.ae_step,
            "denoiser_steps": trainer.den_step, "sigma_data": model.cfg.sigma_data}


@hydra.main(config_path="conf", config_name="train_worldmodel", version_base="1.3")
def main(dcfg: DictConfig) -> None:
    rank0 = int(os.environ.get("RANK", "0")) == 0   # under torchrun only rank 0 writes
    if not rank0 and not dcfg.run_name:
        raise ValueError("under torchrun give run_name=<name> so that every rank uses the same run folder")
    configs = build_configs(dcfg)
    run = make_run_dir("train-worldmodel", dcfg.runs_root, dcfg.run_name)
    if rank0:
        save_config(run, dcfg)
    res = run_train(dcfg, run, configs)
    if rank0:
        write_results(run, res)


if __name__ == "__main__":
    main()
