"""SB3 callbacks: real-env evaluation (``real/``), dream statistics and imagined-rollout videos (``dream/``)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import TensorBoardOutputFormat

from agents.evaluate import evaluate_real
from agents.video import add_video, save_gif
from envs.tasks import TaskConfig
from worldmodels.checkpoint import atomic_write_bytes


def _tb_writer(logger):
    for fmt in logger.output_formats:
        if isinstance(fmt, TensorBoardOutputFormat):
            return fmt.writer
    return None


class DreamStatsCallback(BaseCallback):
    """Logs ``dream/imagined_return``, ``dream/steps_since_visit``, ``dream/sampler_steps`` and, every
    ``video_every`` steps, a video of world 0 (dream frame beside the retrieved memory frames)."""

    def __init__(self, video_every: int = 0, video_length: int = 64, video_dir: Path | None = None):
        super().__init__()
        self.video_every, self.video_length, self.video_dir = video_every, video_length, video_dir
        self._returns, self._ep_ret, self._gaps, self._frames = [], None, [], []
        self._next_video = video_every

    def _on_training_start(self) -> None:
        self._next_video = next_multiple(self.num_timesteps, self.video_every)

    def _on_step(self) -> bool:
        infos, rewards, dones = self.locals["infos"], self.locals["rewards"], self.locals["dones"]
        if self._ep_ret is None:
            self._ep_ret = np.zeros(len(rewards))
        self._ep_ret += rewards
        for i, d in enumerate(dones):
            if d:
                self._returns.append(self._ep_ret[i])
                self._ep_ret[i] = 0
        self._gaps += [int(x["steps_since_visit"]) for x in infos if int(x.get("steps_since_visit", -1)) >= 0]
        if self.video_every and self.num_timesteps >= self._next_video:
            from envs.dream.gym_env import _render_side_by_side
            core = _find_core(self.training_env)
            if core is not None:
                self._frames.append(_render_side_by_side(core, 0))
                if len(self._frames) >= self.video_length:
                    self._flush_video()
        return True

    def _flush_video(self) -> None:
        frames = np.stack(self._frames)
        writer = _tb_writer(self.logger)
        if writer is not None:
            add_video(writer, "dream/imagined_rollout", frames, self.num_timesteps)
        if self.video_dir is not None:
            save_gif(frames, self.video_dir / f"dream_{self.num_timesteps}.gif")
        self._frames, self._next_video = [], self.num_timesteps + self.video_every

    def _on_training_end(self) -> None:
        if self._frames:  # a video cut short by the end of training is still written
            self._flush_video()

    def _on_rollout_end(self) -> None:
        if self._returns:
            self.logger.record("dream/imagined_return", float(np.mean(self._returns[-50:])))
        if self._gaps:
            self.logger.record("dream/steps_since_visit", float(np.mean(self._gaps)))
            self._gaps = []
        core = _find_core(self.training_env)
        if core is not None:
            self.logger.record("dream/sampler_steps", core.sampler.steps)


def _find_core(venv):
    while venv is not None:
        if hasattr(venv, "vec") and hasattr(venv.vec, "core"):
            return venv.vec.core
        venv = getattr(venv, "venv", None)
    return None


def next_multiple(step: int, every: int) -> int:
    """The first multiple of ``every`` above ``step``: where a periodic callback fires next, also
    after a resume (counting from ``every`` again would fire on every step until it caught up)."""
    return (step // every + 1) * every if every else 0


class RealEvalCallback(BaseCallback):
    """Every ``eval_freq`` steps, act in the real env: logs ``real/return``, ``real/success_rate``,
    ``real/episode_length`` and a video of the first episode.

    With ``history_path`` the evaluations so far are kept in that JSON file and read back when a
    resumed run makes the callback again, so results and plots cover the whole run."""

    def __init__(self, source: str, task: TaskConfig, eval_freq: int, episodes: int, seed: int,
                 max_episode_steps: int, video_dir: Path | None = None, history_path: Path | None = None):
        super().__init__()
        self.source, self.task, self.eval_freq, self.episodes = source, task, eval_freq, episodes
        self.seed, self.max_steps, self.video_dir = seed, max_episode_steps, video_dir
        self.history_path = history_path
        self.history: list[tuple[int, dict]] = []
        if history_path is not None and history_path.exists():
            self.history = [(int(t), dict(f)) for t, f in json.loads(history_path.read_text())]
        self.last = None
        self._next = eval_freq

    def _on_training_start(self) -> None:
        self._next = next_multiple(self.num_timesteps, self.eval_freq)
        # evaluations after the resumed policy's step were of a policy the run lost: they are made again
        self.history = [(t, f) for t, f in self.history if t <= self.num_timesteps]

    def _on_step(self) -> bool:
        if self.eval_freq and self.num_timesteps >= self._next:
            self._next += self.eval_freq
            self.evaluate()
        return True

    def evaluate(self) -> dict:
        ev = evaluate_real(self.model, self.source, self.task, self.episodes, self.seed, self.max_steps)
        self.last = ev
        fig = ev.figures()
        self.logger.record("real/return", fig["real_return"])
        self.logger.record("real/success_rate", fig["real_success_rate"])
        self.logger.record("real/episode_length", fig["real_episode_length"])
        if fig["real_forward_blocked_share"] is not None:
            self.logger.record("real/forward_blocked_share", fig["real_forward_blocked_share"])
        writer = _tb_writer(self.logger)
        frames = ev.episodes[0].frames
        if writer is not None:
            add_video(writer, "real/episode", frames, self.num_timesteps)
        if self.video_dir is not None:
            save_gif(frames, self.video_dir / f"real_{self.num_timesteps}.gif")
        if self.history and self.history[-1][0] == self.num_timesteps:
            self.history.pop()                  # evaluated again at the same step (the final one): keep the latest
        self.history.append((self.num_timesteps, fig))
        if self.history_path is not None:
            atomic_write_bytes(self.history_path, json.dumps(self.history).encode())
        self.logger.dump(self.num_timesteps)
        return fig


class ProgressLines(BaseCallback):
    """Every ``every`` steps, one printed line: steps done of ``total``, steps/s, time left, and the latest real
    evaluation of ``real`` (for logs and pipes, where a progress bar shows nothing until it ends)."""

    def __init__(self, every: int, total: int, label: str, real: RealEvalCallback | None = None):
        super().__init__()
        self.every, self.total, self.label, self.real = every, total, label, real
        self._next, self._t0, self._start = every, 0.0, 0

    def _on_training_start(self) -> None:
        self._next = next_multiple(self.num_timesteps, self.every)
        self._t0, self._start = time.perf_counter(), self.num_timesteps

    def _on_step(self) -> bool:
        if self.every and self.num_timesteps >= self._next:
            self._next = next_multiple(self.num_timesteps, self.every)
            rate = (self.num_timesteps - self._start) / max(time.perf_counter() - self._t0, 1e-9)
            left = (self.total - self.num_timesteps) / max(rate, 1e-9)
            line = f"[{self.label}] {self.num_timesteps:,}/{self.total:,} steps, {rate:.0f} steps/s, {left:.0f} s left"
            if self.real is not None and self.real.history:
                t, fig = self.real.history[-1]
                line += f"; real success {fig['real_success_rate']:.2f} at {t:,}"
            print(line, flush=True)
        return True
