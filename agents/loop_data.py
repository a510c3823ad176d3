"""Real frames on a budget: episodes recorded in the real env (the task's starts and episode length) until exactly
``frames`` observations were seen, by a collection policy or by an SB3 agent."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from agents.evaluate import make_real_env
from envs.data.collection import make_policy, run_episode
from envs.data.dataset import Episode
from envs.tasks import TaskConfig

#: (observation, info) -> action
Actor = Callable[[np.ndarray, dict], int]

#: every loop seed records from its own range of reset seeds, far from those of the collections (1000+), the
#: judges (900000+) and training's evaluations (800000+)
COLLECTION_SEED_BASE = 2_000_000
MAX_EPISODES_PER_COLLECTION = 1000


def collection_seed(seed: int, cycle: int) -> int:
    """The first reset seed of cycle ``cycle``'s collection in loop seed ``seed``; its episodes count up from it."""
    if seed < 0 or cycle < 0:
        raise ValueError(f"seed and cycle must be >= 0, got {seed} and {cycle}")
    return COLLECTION_SEED_BASE + 100_000 * seed + MAX_EPISODES_PER_COLLECTION * cycle


def cut(ep: Episode, frames: int) -> Episode:
    """The first ``frames`` observations of ``ep`` (``frames - 1`` steps), the last step marked truncated."""
    t = frames - 1
    if t < 1 or t > len(ep):
        raise ValueError(f"cannot cut an episode of {len(ep) + 1} frames to {frames}")
    trunc = ep.truncations[:t].copy()
    if not ep.terminations[t - 1]:
        trunc[-1] = True
    return Episode(ep.frames[: t + 1], ep.poses[: t + 1], ep.actions[:t], ep.rewards[:t], ep.terminations[:t], trunc,
                   ep.seed, {k: v[: t + 1] for k, v in ep.extra.items()})


def record_frames(source: str, task: TaskConfig, act_for: Callable[[object], Actor], frames: int, seed: int,
                  max_steps: int) -> list[Episode]:
    """Episodes of the actor ``act_for(env)`` makes in the real ``source`` with ``task`` (its starts, rewards and
    terminations), reset seeds ``seed + i``, until ``frames`` observations (resets included) were recorded; the last
    episode is cut there, so the budget is exact (or one frame under, where one frame alone was left).
    ``act_for`` is called once per episode."""
    if frames < 2:
        raise ValueError(f"a collection needs at least 2 frames (one step), got {frames}")
    env = make_real_env(source, task, max_steps)
    episodes, n = [], 0
    try:
        while frames - n >= 2:     # an episode holds two frames at least; a single frame left stays unrecorded
            if len(episodes) >= MAX_EPISODES_PER_COLLECTION:
                raise RuntimeError(f"{frames} frames took more than {MAX_EPISODES_PER_COLLECTION} episodes")
            ep = run_episode(env, act_for(env), seed + len(episodes), max_steps, sees=True)
            take = min(len(ep.frames), frames - n)
            if frames - n - take == 1 and take >= 3:
                take -= 1       # leave two frames, not one: the next episode takes them
            if take < len(ep.frames):
                ep = cut(ep, take)
            episodes.append(ep)
            n += len(ep.frames)
    finally:
        env.close()
    return episodes


def scripted_actor(name: str, seed: int) -> Callable[[object], Actor]:
    """The collection policy ``name`` (``revisit`` or ``random``), one random stream from ``default_rng(seed)``
    across episodes, as ``memworld collect`` records."""
    rng = np.random.default_rng(seed)
    policy = None

    def act_for(env) -> Actor:
        nonlocal policy
        if policy is None:
            policy = make_policy(name, rng, env.env)   # the task wrapper's source: the policy reads its geometry
        if hasattr(policy, "new_episode"):
            policy.new_episode()
        return lambda obs, info: int(policy(info))
    return act_for


def agent_actor(model) -> Callable[[object], Actor]:
    """An SB3 policy sampling its actions (as in training, so that it explores), its recurrent state (if any)
    fresh each episode."""
    def act_for(env) -> Actor:
        state, first = None, np.ones(1, dtype=bool)

        def act(obs, info) -> int:
            nonlocal state, first
            a, state = model.predict(obs, state=state, episode_start=first, deterministic=False)
            first = np.zeros(1, dtype=bool)
            return int(a)
        return act
    return act_for
