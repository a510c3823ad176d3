"""Train SB3 agents inside the dream (or, for the baseline, in the real env) and judge them in the real env."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import os

from sb3_contrib import RecurrentPPO
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import configure
from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor

from agents.callbacks import DreamStatsCallback, ProgressLines, RealEvalCallback, next_multiple
from envs.dream.config import DreamConfig
from envs.dream.sb3 import DreamSB3VecEnv

ALGOS: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "a2c": A2C, "dqn": DQN, "recurrent_ppo": RecurrentPPO}
# a recurrent policy keeps an LSTM state across steps: the agent's own memory (homing needs one)
POLICIES = {"recurrent_ppo": "CnnLstmPolicy"}


@dataclass
class AgentConfig:
    """One agent run: algorithm, budget, the dream it trains in (whose task, source and episode length the real
    env shares), evaluation."""

    algo: str = "ppo"
    total_timesteps: int = 20_000
    n_envs: int = 16
    dream: DreamConfig = field(default_factory=DreamConfig)
    eval_freq: int = 0              # 0: evaluate only at the end
    eval_episodes: int = 20
    eval_seed: int = 800_000        # real evaluation seeds (held out from collection)
    video_every: int = 0
    checkpoint_every: int = 0       # save a resumable policy every N steps (0: only on interruption and at the end)
    seed: int = 0
    hyperparams: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.dream, dict):
            self.dream = DreamConfig.from_dict(self.dream)
        if self.algo not in ALGOS:
            raise ValueError(f"unknown algorithm {self.algo!r}; choose one of {sorted(ALGOS)}")
        if self.dream.scene_map and not Path(self.dream.scene_map).is_file():
            raise FileNotFoundError(f"no scene map at {self.dream.scene_map}: make one with memworld build-map")
        for k in ("total_timesteps", "n_envs", "eval_episodes"):
            if getattr(self, k) < 1:
                raise ValueError(f"{k} must be >= 1, got {getattr(self, k)}")


def make_agent(cfg: AgentConfig, venv, tb_dir: Path | None) -> BaseAlgorithm:
    algo = ALGOS[cfg.algo]
    hp = dict(cfg.hyperparams)
    model = algo(POLICIES.get(cfg.algo, "CnnPolicy"), venv, seed=cfg.seed, verbose=0, **hp)
    formats = ["csv"] + (["tensorboard"] if tb_dir is not None else [])
    model.set_logger(configure(str(tb_dir) if tb_dir else None, formats))
    return model


def dream_venv(cfg: AgentConfig) -> VecMonitor:
    """The batched dream as an SB3 VecEnv, with episode statistics (``rollout/``)."""
    venv = DreamSB3VecEnv(num_envs=cfg.n_envs, source=cfg.dream.source, config=cfg.dream, render_memory=True,
                          render_mode="rgb_array")
    return VecMonitor(venv)


def real_venv(cfg: AgentConfig) -> VecMonitor:
    """The real source with the same task, for the baseline trained on real frames."""
    from agents.evaluate import make_real_env

    d = cfg.dream
    fns = [lambda: make_real_env(d.source, d.task, d.max_episode_steps) for _ in range(cfg.n_envs)]
    return VecMonitor(DummyVecEnv(fns))


class ResumeCheckpoint(BaseCallback):
    """Every ``every`` steps, write the policy (with its optimizer and step count) atomically to ``path``."""

    def __init__(self, path: Path, every: int):
        super().__init__()
        self.path, self.every, self._next = path, every, every

    def _on_training_start(self) -> None:
        self._next = next_multiple(self.num_timesteps, self.every)

    def _on_step(self) -> bool:
        if self.every and self.num_timesteps >= self._next:
            self._next += self.every
            save_atomic(self.model, self.path)
        return True


def save_atomic(model: BaseAlgorithm, path: Path) -> None:
    """``model.save`` to a temporary name, then rename: a kill never leaves a half-written zip."""
    tmp = path.with_name(path.name + ".tmp.zip")
    model.save(tmp)
    os.replace(tmp, path)


def train(cfg: AgentConfig, run: Path, where: str = "dream", progress: bool = True,
          print_every: int = 0) -> tuple[BaseAlgorithm, RealEvalCallback]:
    """Train in ``where`` (``dream`` or ``real``); the callback holds the real-env evaluations. ``progress``: a
    progress bar; ``print_every``: also a printed line every that many steps (0: none).

    Resumes from ``<run>/<where>_resume.zip`` when it exists (step count and optimizer continue;
    DQN's replay buffer starts empty again)."""
    if where not in ("dream", "real"):
        raise ValueError(f"where must be dream or real, got {where!r}")
    venv = dream_venv(cfg) if where == "dream" else real_venv(cfg)
    tb = run / "tb" / where
    resume = run / f"{where}_resume.zip"
    if resume.exists():
        model = ALGOS[cfg.algo].load(resume, env=venv)
        model.set_logger(configure(str(tb), ["csv", "tensorboard"]))
        print(f"resumed {where} training from {resume} at step {model.num_timesteps}")
    else:
        model = make_agent(cfg, venv, tb)
    videos = run / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    history = run / f"{where}_eval_history.json"
    if not resume.exists():
        history.unlink(missing_ok=True)     # a fresh start: no evaluations from an earlier attempt
    real_cb = RealEvalCallback(cfg.dream.source, cfg.dream.task, cfg.eval_freq, cfg.eval_episodes, cfg.eval_seed,
                               cfg.dream.max_episode_steps, video_dir=videos, history_path=history)
    callbacks = [real_cb]
    if where == "dream":
        callbacks.append(DreamStatsCallback(cfg.video_every, video_dir=videos))
    callbacks.append(ResumeCheckpoint(resume, cfg.checkpoint_every))
    if print_every:
        label = f"{cfg.algo} in the {'dream' if where == 'dream' else 'real env'}"
        callbacks.append(ProgressLines(print_every, cfg.total_timesteps, label, real_cb))
    remaining = max(0, cfg.total_timesteps - model.num_timesteps)
    try:
        model.learn(remaining, callback=callbacks, progress_bar=progress, reset_num_timesteps=not resume.exists())
    except KeyboardInterrupt:
        save_atomic(model, resume)
        raise KeyboardInterrupt(f"agent training stopped; rerun with the same run_name to resume from {resume}") from None
    save_atomic(model, resume)
    return model, real_cb


def load_policy(path: str | Path, algo: str) -> BaseAlgorithm:
    """An SB3 policy zip; a missing file or another algorithm's zip gives one clear error."""
    if algo not in ALGOS:
        raise ValueError(f"unknown algorithm {algo!r}; choose one of {sorted(ALGOS)}")
    if not Path(path).is_file():
        raise FileNotFoundError(f"policy {path} not found")
    try:
        return ALGOS[algo].load(path, device="cpu")
    except Exception as exc:
        raise ValueError(f"policy {path} could not be loaded as {algo}: {exc}") from exc
