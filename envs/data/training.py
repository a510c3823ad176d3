"""Training a world model on recorded play: the data side (frames or latents, the held-out split, the memory each
target is trained with, start segments beside the checkpoint) joined to ``worldmodels``' ``Trainer``.

``memworld train-worldmodel``, the demo's retrain and the agent in the loop (``memworld loop``) call
``train_world_model``."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envs.data.dataset import FrameArrays, load_arrays, read_metadata
from envs.data.encoded_dataset import autoencoder_fingerprint, is_encoded, load_encoded, read_encoded_meta
from envs.data.memory_sampler import EpisodeMemorySampler, MemorySamplerConfig
from envs.data.starts import StartSegments
from memory.scene_map import map_cells
from worldmodels.train import TrainConfig, Trainer
from worldmodels.world_model import WorldModel, WorldModelConfig


@dataclass
class MemoryDraws:
    """How training draws each target's memory: retrievers by probability over a window of the episode, and in
    ``map_share`` of batches also the nearest frames of a scene map of other episodes (``map_cell`` squares,
    ``map_yaw_bins`` headings, as ``memworld build-map`` makes it)."""

    window: int
    kinds: dict[str, float]
    map_share: float
    map_candidates: int
    map_cell: float
    map_yaw_bins: int
    future: int = 0       # fov also draws from this many frames after the target (MemorySamplerConfig.future)


@dataclass
class WorldModelTraining:
    """One run: the dataset (a Minari folder, or an encoded file with the checkpoint that encoded it as
    ``autoencoder_from``), the model, its training, its memory draws; ``init`` fine-tunes a whole checkpoint
    instead (autoencoder frozen), ``autoencoder_from`` trains a new denoiser on a checkpoint's frozen autoencoder."""

    dataset: str
    model: WorldModelConfig
    train: TrainConfig
    memory: MemoryDraws
    heldout_episodes: int = 8
    init: str | None = None
    autoencoder_from: str | None = None
    out: str | None = None              # default: <run>/world_model.safetensors
    tensorboard: bool = True
    progress: bool = True
    command: str = ""                   # recorded in the checkpoint

    def __post_init__(self) -> None:
        k, t = self.model.denoiser.context, self.train
        if self.memory.future > 0 and t.rollout_share > 0 and t.rollout_max > k:
            # self-forcing asks memory for t = g - r + j; a view later than t + K could be the real target g
            raise ValueError(f"memory.future with self-forcing needs train.rollout_max <= the context ({k}), got "
                             f"{t.rollout_max}: later views would hand over the frame to predict")


def dataset_metadata(path: str | Path) -> dict[str, Any]:
    """memworld's metadata of a dataset folder or an encoded dataset file (a missing one fails by name)."""
    return read_encoded_meta(path) if is_encoded(path) else read_metadata(path)


@dataclass
class Prepared:
    """What ``prepare`` loaded and checked: the dataset's metadata, the model config that trains (a fine-tune's is
    its checkpoint's), the checkpoint fine-tuned or whose autoencoder is reused, and the training config."""

    meta: dict[str, Any]
    model: WorldModelConfig
    init: WorldModel | None
    autoencoder: WorldModel | None
    train: TrainConfig


def prepare(t: WorldModelTraining) -> Prepared:
    """Load and check everything ``t`` names: a missing dataset or checkpoint, or a bad combination, fails here,
    before a run folder is made."""
    encoded = is_encoded(t.dataset)
    meta = dataset_metadata(t.dataset)
    model_cfg, init, ae_from, train_cfg = t.model, None, None, t.train
    if t.init and t.autoencoder_from:
        raise ValueError("give init (fine-tune a whole model) or autoencoder_from (a new denoiser on its "
                         "autoencoder), not both")
    if t.autoencoder_from:
        ae_from = WorldModel.load(t.autoencoder_from, source=meta.get("source"))
        lc = ae_from.cfg.autoencoder.latent_channels
        if lc != model_cfg.denoiser.latent_channels:
            raise ValueError(f"{t.autoencoder_from} makes {lc}-channel latents: set model.latent_channels={lc}")
        model_cfg.autoencoder = ae_from.cfg.autoencoder
    if t.init:
        # fine-tune: architecture from the checkpoint, autoencoder frozen; the loss and the memory parts
        # a fine-tune may add (position code, stacked memory) from this config
        init = WorldModel.load(t.init, source=meta.get("source"))
        wanted, model_cfg = model_cfg, init.cfg
        if wanted.heads.blocked and not model_cfg.heads.blocked:
            raise ValueError(f"a fine-tune keeps the heads of {t.init}, which has no blocked head: add one with "
                             f"memworld train-pose pose=false blocked=true init={t.init}")
        model_cfg.loss = wanted.loss
        model_cfg.denoiser.memory_pos = model_cfg.denoiser.memory and wanted.denoiser.memory_pos
        model_cfg.denoiser.memory_stack = model_cfg.denoiser.memory and wanted.denoiser.memory_stack
    frozen = init or ae_from
    if frozen is not None:
        train_cfg.ae_steps = 0
    if encoded:
        if frozen is None:
            raise ValueError(f"{t.dataset} holds latents, not frames: give the checkpoint that encoded it "
                             f"as autoencoder_from=<checkpoint> (or init=<checkpoint> to fine-tune)")
        if autoencoder_fingerprint(frozen) != meta.get("autoencoder"):
            raise ValueError(f"{t.dataset} was encoded by another autoencoder ({meta.get('checkpoint')}) than "
                             f"that of {t.init or t.autoencoder_from}")
    return Prepared(meta, model_cfg, init, ae_from, train_cfg)


#: called after training with (tensorboard writer, model, held-out or training arrays, denoiser step)
AfterFit = Callable[[Any, WorldModel, FrameArrays, int], None]


def train_world_model(t: WorldModelTraining, run: Path, prepared: Prepared | None = None,
                      after_fit: AfterFit | None = None) -> dict:
    """Train in ``run`` (resumable: the same folder continues), save the checkpoint and its start segments (rank 0
    only under torchrun) and return the figures; ``prepared``: what ``prepare(t)`` returned, if it ran already."""
    p = prepared or prepare(t)
    t0 = time.perf_counter()
    latents = None
    if is_encoded(t.dataset):
        enc = load_encoded(t.dataset)
        arrays, latents = enc.arrays, enc.latents
    else:
        arrays = load_arrays(t.dataset)
    train, heldout = arrays.split(t.heldout_episodes) if t.heldout_episodes else (arrays, None)
    if latents is not None:
        latents = latents[: len(train.poses)]
    print(f"dataset {t.dataset}: {len(train.poses)} training frames in {len(train.starts)} episodes "
          f"(loaded in {time.perf_counter() - t0:.0f}s)")
    mem_fn = None
    if p.model.denoiser.memory:
        d = t.memory
        mcfg = MemorySamplerConfig(p.model.memory_m, d.window, dict(d.kinds), d.map_share, d.map_candidates, d.future)
        map_index = map_start = None
        if mcfg.map_share > 0:    # the frames memworld build-map would keep from this training set
            map_index = map_cells(train.poses, d.map_cell, d.map_yaw_bins)
            map_start = train.starts[train.episode_of(map_index)]
        mem_fn = EpisodeMemorySampler(mcfg, p.model.denoiser.context, map_index, map_start,
                                      episode_ends=train.starts + train.lengths)
    writer = None
    if t.tensorboard:
        from torch.utils.tensorboard import SummaryWriter
        writer = SummaryWriter(str(run / "tb"))
    trainer = Trainer(p.model, p.train, train, heldout, run, memory_fn=mem_fn, writer=writer,
                      meta={"command": t.command, "dataset": str(t.dataset),
                            # the recipe of a dataset folder, or of an encoded file
                            "dataset_recipe": p.meta.get("command") or p.meta.get("dataset_recipe"),
                            "real_frames": int(len(arrays.poses)), "finetuned_from": t.init,
                            "autoencoder_from": t.autoencoder_from},
                      progress=t.progress, init=p.init, autoencoder=p.autoencoder, latents=latents)
    model = trainer.fit()
    out = Path(t.out) if t.out else run / "world_model.safetensors"
    if trainer.dist.main:
        model.save(out)
        src = p.init or p.autoencoder
        write_starts(out, heldout if heldout is not None else train, model.context, p.train.seed,
                     t.init or t.autoencoder_from,
                     same_data=src is None or src.meta.get("dataset") == p.meta.get("dataset", str(t.dataset)))
    if writer is not None:
        if trainer.dist.main and arrays.frames is not None and after_fit is not None:
            after_fit(writer, model, heldout if heldout is not None else train, trainer.den_step)
        writer.close()
    return {"checkpoint": str(out), "train_minutes": trainer.seconds / 60,
            "train_minutes_total": model.meta["train_minutes_total"], "ae_steps": trainer.ae_step,
            "denoiser_steps": trainer.den_step, "sigma_data": model.cfg.sigma_data}


def write_starts(out: Path, arrays: FrameArrays, k: int, seed: int, source_checkpoint: str | None,
                 same_data: bool = True) -> None:
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
