"""Typed configs from the commands' Hydra configs. Each command's parsing lives here once, so that the command and
the demo (which runs the work of several commands) build the same dataclasses from the same YAML; below
``experiments`` nothing sees a ``DictConfig``."""

from __future__ import annotations

import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from agents.loop import LoopConfig, LoopSchedule
from agents.train import AgentConfig
from envs.benchmarks.maze_memory import MazeMemoryConfig
from envs.benchmarks.revisit import RevisitConfig
from envs.data.collection import CollectConfig
from envs.data.training import MemoryDraws, WorldModelTraining, dataset_metadata
from envs.dream.config import DreamConfig
from experiments.conf import dream_config
from worldmodels.train import TrainConfig
from worldmodels.world_model import WorldModelConfig

CONF = Path(__file__).parent / "conf"

#: train-agent's own keys that are AgentConfig fields (the rest of AgentConfig: algo group, dream group)
AGENT_KEYS = ("total_timesteps", "n_envs", "eval_freq", "eval_episodes", "eval_seed", "video_every", "checkpoint_every",
              "seed")


def command_config(name: str, **overrides: Any) -> DictConfig:
    """A command's yaml config (without Hydra's own keys; the dream group as DreamConfig, the algo group as
    ``ppo``) with ``overrides`` merged in."""
    cfg = OmegaConf.load(CONF / f"{name}.yaml")
    defaults = cfg.pop("defaults", [])
    cfg.pop("hydra", None)
    if {"dream": "base"} in defaults:     # the dream group's option is DreamConfig itself
        cfg = OmegaConf.merge({"dream": OmegaConf.structured(DreamConfig)}, cfg)
    if {"algo": "ppo"} in defaults:
        cfg.algo = OmegaConf.load(CONF / "algo" / "ppo.yaml")
    return OmegaConf.merge(cfg, overrides)


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


def _fields_of(cls: type, cfg: DictConfig, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    return {f.name: _plain(cfg[f.name]) for f in fields(cls) if f.name in cfg and f.name not in skip}


def revisit_config(cfg: DictConfig) -> RevisitConfig:
    """eval-revisit's paths and dreams (its ``dream`` group is the base every run starts from)."""
    return RevisitConfig(**_fields_of(RevisitConfig, cfg))


def maze_memory_config(cfg: DictConfig) -> MazeMemoryConfig:
    """eval-revisit's Memory Maze protocols (its ``maze`` group), used when the dream's source is a maze."""
    return MazeMemoryConfig(**_fields_of(MazeMemoryConfig, cfg.maze))


def agent_config(cfg: DictConfig) -> AgentConfig:
    """The ``AgentConfig`` of a train-agent config: its keys, the ``algo`` group and the whole ``dream`` group."""
    return AgentConfig(algo=cfg.algo.name, hyperparams=_plain(cfg.algo.hyperparams), dream=dream_config(cfg.dream),
                       **{k: cfg[k] for k in AGENT_KEYS if k in cfg})


def loop_config(cfg: DictConfig) -> LoopConfig:
    """The loop's comparison: its agent (train-agent's keys, algo and dream groups), its ``worldmodel`` block over
    train-worldmodel's config (the model the first cycle trains from scratch), its schedule, seeds and arms."""
    from envs.sources import make_source

    agent = agent_config(cfg)
    env = make_source(agent.dream.source, max_episode_steps=2)
    n_actions = int(env.action_space.n)
    env.close()
    unknown = set(cfg.worldmodel) - {"model", "memory", "train"}
    if unknown:
        raise ValueError(f"worldmodel takes model, memory and train blocks (as train-worldmodel), not {sorted(unknown)}")
    wcfg = command_config("train_worldmodel", **_plain(cfg.worldmodel), dataset="(recorded by the loop)",
                          heldout_episodes=0, progress=False)
    wm = worldmodel_training(wcfg, "memworld loop " + " ".join(sys.argv[1:]), (agent.dream.source, n_actions))
    return LoopConfig(agent=agent, worldmodel=wm, schedule=LoopSchedule(**_plain(cfg.schedule)),
                      seeds=tuple(_plain(cfg.seeds)), arms=tuple(_plain(cfg.arms)), real_frames=int(cfg.real_frames))


def collect_config(cfg: DictConfig) -> CollectConfig:
    """collect's recording options (``runs_root`` is the command's own)."""
    return CollectConfig(**_fields_of(CollectConfig, cfg))


def model_config(m: DictConfig, source: str, n_actions: int) -> WorldModelConfig:
    """Typed ``WorldModelConfig`` from train-worldmodel's ``model`` block."""
    from worldmodels.autoencoder import AutoencoderConfig
    from worldmodels.edm import EDMLossConfig
    from worldmodels.heads import HeadsConfig
    from worldmodels.unet import DenoiserConfig
    from worldmodels.world_model import SamplerConfig

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


def worldmodel_training(cfg: DictConfig, command: str | None = None,
                        source_actions: tuple[str, int] | None = None) -> WorldModelTraining:
    """train-worldmodel's run: the dataset's metadata (a missing dataset fails here) gives the model's source and
    action count, unless ``source_actions`` gives them (a dataset yet to be recorded); ``command`` (default: this
    process's command line) is recorded in the checkpoint."""
    if source_actions is None:
        meta = dataset_metadata(cfg.dataset)
        source_actions = (meta.get("source", "unknown"), int(meta["n_actions"]))
    mem = cfg.memory
    return WorldModelTraining(
        dataset=str(cfg.dataset), model=model_config(cfg.model, *source_actions),
        train=TrainConfig(**_plain(cfg.train), heldout_episodes=int(cfg.heldout_episodes)),
        memory=MemoryDraws(int(mem.window), dict(_plain(mem.kinds)), float(mem.map_share), int(mem.map_candidates),
                           float(mem.map_cell), int(mem.map_yaw_bins), int(mem.future)),
        heldout_episodes=int(cfg.heldout_episodes), init=cfg.init, autoencoder_from=cfg.autoencoder_from,
        out=cfg.out, tensorboard=bool(cfg.tensorboard), progress=bool(cfg.progress),
        command=command or "memworld train-worldmodel " + " ".join(sys.argv[1:]))
