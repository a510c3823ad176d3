"""Does the dream stay a world? N worlds under a wandering policy for many steps, the real env under the same
actions beside it; per horizon bucket, the dream's frames against the real frames of the same bucket:

- detail (per-frame mean absolute horizontal gradient) and contrast (per-frame pixel std), medians;
- the share of collapsed frames: flatter (in std, and apart in gradient) than the real 1st percentile;
- a Fréchet distance between dream and real frames in *our own encoder's* features (the world model's latents
  average-pooled to 2x2, 16 numbers a frame, few enough for the ~100-1,000 frames of a bucket; no downloaded
  weights, so it is not FID and not comparable with published FIDs), beside the same distance between two
  halves of the real worlds, its noise floor;
- the ceiling of a dream drawn through this decoder: the detail of the real frames' own autoencoder round trip,
  as a share of theirs (no latent the denoiser draws decodes sharper than the decoder can; 2026-12-07 the
  shipped decoder keeps 0.78 of the real detail, so a 0.8x target asks more than the latents hold).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from envs.dream.config import DreamConfig
from envs.tasks import TaskConfig
from worldmodels.metrics import frame_contrast, frame_detail, frechet_distance
from worldmodels.world_model import WorldModel


@dataclass
class LongRolloutConfig:
    """Worlds, steps, the wandering policy's action probabilities and the horizon buckets."""

    worlds: int = 16
    steps: int = 1000
    action_probs: tuple[float, ...] = (0.25, 0.25, 0.5)      # left, right, forward
    buckets: tuple[int, ...] = (0, 10, 30, 100, 300, 1000)  # edges: [0, 10), [10, 30), ...
    strip_steps: tuple[int, ...] = (0, 10, 30, 100, 300, 1000)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.worlds < 2 or self.steps < 1:
            raise ValueError(f"worlds must be >= 2 (the real noise floor splits them) and steps >= 1, "
                             f"got {self.worlds} and {self.steps}")
        if abs(sum(self.action_probs) - 1) > 1e-6 or min(self.action_probs) < 0:
            raise ValueError(f"action_probs must be a distribution, got {self.action_probs}")
        if list(self.buckets) != sorted(set(self.buckets)) or self.buckets[0] != 0:
            raise ValueError(f"buckets must be increasing edges from 0, got {self.buckets}")


@dataclass
class Rollouts:
    """Per-frame measures of ``T+1`` frames in each of ``N`` worlds: ``detail``, ``contrast`` ``(N, T+1)``,
    encoder ``features (N, T+1, D)``, and the frames at the strip steps ``strip (N, S, 64, 64, 3)``; for real frames,
    ``roundtrip_detail (N, T+1)``, the detail of their autoencoder round trip (None for dream frames)."""

    detail: np.ndarray
    contrast: np.ndarray
    features: np.ndarray
    strip: np.ndarray
    steps_per_s: float
    roundtrip_detail: np.ndarray | None = None


def wandering_actions(cfg: LongRolloutConfig, n_actions: int) -> np.ndarray:
    """``(T, N)`` actions drawn i.i.d. with ``cfg.action_probs`` (the rest of the action space never drawn)."""
    p = np.zeros(n_actions)
    p[: len(cfg.action_probs)] = cfg.action_probs
    return np.random.default_rng(cfg.seed).choice(n_actions, size=(cfg.steps, cfg.worlds), p=p)


class _Recorder:
    """Keeps the per-frame measures (and the strip frames) of a stream of batches ``(N, 64, 64, 3)``."""

    def __init__(self, model: WorldModel, strip_steps: tuple[int, ...], roundtrip: bool = False):
        self.model, self.strip_steps, self.roundtrip = model, strip_steps, roundtrip
        self.detail, self.contrast, self.features, self.strip, self.rt_detail = [], [], [], [], []

    def add(self, t: int, frames: np.ndarray) -> None:
        self.detail.append(frame_detail(frames))
        self.contrast.append(frame_contrast(frames))
        z = encode(self.model, frames)
        self.features.append(F.adaptive_avg_pool2d(z, 2).flatten(1).numpy())
        if self.roundtrip:
            self.rt_detail.append(frame_detail(self.model.decode(z)))
        if t in self.strip_steps:
            self.strip.append(frames.copy())

    def done(self, seconds: float, n_steps: int) -> Rollouts:
        return Rollouts(np.stack(self.detail, 1), np.stack(self.contrast, 1), np.stack(self.features, 1),
                        np.stack(self.strip, 1), n_steps / max(seconds, 1e-9),
                        np.stack(self.rt_detail, 1) if self.roundtrip else None)


@torch.no_grad()
def encode(model: WorldModel, frames: np.ndarray) -> torch.Tensor:
    """The model's normalised latents ``(N, C, 16, 16)`` of ``frames (N, 64, 64, 3)``; the bench's features are
    these average-pooled to 2x2 (``4 C`` numbers a frame)."""
    return model.encode(torch.from_numpy(np.ascontiguousarray(frames)))


def dream_rollouts(dream: DreamConfig, cfg: LongRolloutConfig, actions: np.ndarray, model: WorldModel) -> Rollouts:
    """The dream ``dream`` (its task replaced by one that never ends an episode) stepped with ``actions (T, N)``;
    world i starts from the start segment its seed ``cfg.seed + i`` picks."""
    from envs.dream import DreamVectorEnv

    never_ends = dataclasses.replace(dream, task=TaskConfig("reach", goal=(1e6, 1e6)), max_episode_steps=cfg.steps + 1)
    vec = DreamVectorEnv(num_envs=cfg.worlds, config=never_ends, source=dream.source)
    obs, _ = vec.reset(seed=cfg.seed)
    rec = _Recorder(model, cfg.strip_steps)
    rec.add(0, obs)
    t0 = time.perf_counter()
    for t in range(cfg.steps):
        obs, *_ = vec.step(actions[t])
        rec.add(t + 1, obs)
    return rec.done(time.perf_counter() - t0, cfg.steps * cfg.worlds)


def real_rollouts(source: str, cfg: LongRolloutConfig, actions: np.ndarray, model: WorldModel) -> Rollouts:
    """The real source under the same ``actions (T, N)``, world i reset with seed ``cfg.seed + i`` (and again,
    with the next seed, should its episode end)."""
    from envs.sources import make_source

    envs = [make_source(source, max_episode_steps=cfg.steps + 1) for _ in range(cfg.worlds)]
    obs = np.stack([e.reset(seed=cfg.seed + i)[0] for i, e in enumerate(envs)])
    rec = _Recorder(model, cfg.strip_steps, roundtrip=True)
    rec.add(0, obs)
    t0 = time.perf_counter()
    for t in range(cfg.steps):
        for i, e in enumerate(envs):
            obs[i], _, term, trunc, _ = e.step(int(actions[t, i]))
            if term or trunc:
                obs[i] = e.reset(seed=cfg.seed + 1000 * (t + 1) + i)[0]
        rec.add(t + 1, obs)
    seconds = time.perf_counter() - t0
    for e in envs:
        e.close()
    return rec.done(seconds, cfg.steps * cfg.worlds)


def bucket_figures(dream: Rollouts, real: Rollouts, buckets: tuple[int, ...]) -> dict[str, dict[str, float]]:
    """Per bucket ``"a-b"`` (steps a <= t < b, the last one including its end): medians of detail and contrast,
    their ratio dream/real, the share of collapsed dream frames (and of real ones, which is ~1% by construction),
    and the Fréchet distance in encoder features with its real-vs-real floor."""
    real_std_p1, real_grad_p1 = np.percentile(real.contrast, 1), np.percentile(real.detail, 1)
    t_max = dream.detail.shape[1] - 1
    out = {}
    for k, (a, b) in enumerate(zip(buckets[:-1], buckets[1:])):
        if a > t_max:
            break
        b = min(b, t_max)
        sl = slice(a, b + 1 if k == len(buckets) - 2 or b == t_max else b)
        dd, dc, rd, rc = dream.detail[:, sl], dream.contrast[:, sl], real.detail[:, sl], real.contrast[:, sl]
        half = real.features.shape[0] // 2
        feats = lambda r: r.features[:, sl].reshape(-1, r.features.shape[-1])
        out[f"{a}-{buckets[k + 1]}"] = {
            "frames": int(dd.size),
            "dream_detail_median": float(np.median(dd)), "real_detail_median": float(np.median(rd)),
            "detail_ratio": float(np.median(dd) / max(np.median(rd), 1e-9)),
            "roundtrip_detail_ratio": (float(np.median(real.roundtrip_detail[:, sl]) / max(np.median(rd), 1e-9))
                                       if real.roundtrip_detail is not None else float("nan")),
            "dream_contrast_median": float(np.median(dc)), "real_contrast_median": float(np.median(rc)),
            "collapsed_share_std": float((dc < real_std_p1).mean()),
            "collapsed_share_grad": float((dd < real_grad_p1).mean()),
            "real_collapsed_share_std": float((rc < real_std_p1).mean()),
            "frechet_encoder": frechet_distance(feats(dream), feats(real)),
            "frechet_encoder_real_halves": frechet_distance(real.features[:half, sl].reshape(-1, real.features.shape[-1]),
                                                            real.features[half:, sl].reshape(-1, real.features.shape[-1])),
        }
    return out


def strip_image(dream: Rollouts, real: Rollouts, worlds: int = 4) -> np.ndarray:
    """One picture: for the first ``worlds`` worlds a row of dream frames at the strip steps over a row of the
    real ones, ``(2 * worlds * 64, S * 64, 3)`` uint8."""
    rows = []
    for i in range(min(worlds, len(dream.strip))):
        rows += [np.concatenate(list(dream.strip[i]), 1), np.concatenate(list(real.strip[i]), 1)]
    return np.concatenate(rows, 0)
