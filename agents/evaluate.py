"""Judge a policy in the real source env (return, success, episode length; the episodes kept) or in the
dream (the same figures, from a batch of dream worlds)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from envs.data.collection import FORWARD
from envs.data.dataset import Episode
from envs.dream.config import DreamConfig
from envs.sources import make_source
from envs.tasks import RealTaskWrapper, TaskConfig
from geometry import BLOCKED_BELOW


@dataclass
class RealEvaluation:
    """Figures and the recorded episodes of one evaluation."""

    returns: np.ndarray
    successes: np.ndarray
    lengths: np.ndarray
    episodes: list[Episode]

    def figures(self) -> dict[str, float]:
        moves = np.concatenate([np.empty(0), *(forward_moves(e.actions, e.poses) for e in self.episodes)])
        return {"real_return": float(self.returns.mean()), "real_success_rate": float(self.successes.mean()),
                "real_episode_length": float(self.lengths.mean()), "real_episodes": len(self.returns),
                "real_forward_blocked_share": blocked_share(moves)}


def forward_moves(actions: np.ndarray, poses: np.ndarray) -> np.ndarray:
    """How far each forward action moved the agent: ``actions (T,)``, ``poses (T+1, 3)`` -> ``(F,)`` units."""
    step = np.linalg.norm(np.diff(np.asarray(poses)[:, :2], axis=0), axis=1)
    return step[np.asarray(actions) == FORWARD]


def blocked_share(moves: np.ndarray) -> float | None:
    """Share of forward moves that left the position unchanged (a wall in the real env; in the dream, a pose
    head that saw one): a policy that pushes into walls shows here, and a dream that lets it pass shows
    as a lower share than the real env's for the same policy. ``None`` without a forward move (a NaN
    would make results.json invalid JSON)."""
    return float((moves < BLOCKED_BELOW).mean()) if len(moves) else None


def make_real_env(source: str, task: TaskConfig, max_episode_steps: int = 300):
    """The real source with the task's reward and termination."""
    return RealTaskWrapper(make_source(source, max_episode_steps=max_episode_steps), task, source)


def evaluate_real(policy, source: str, task: TaskConfig, episodes: int, seed: int, max_episode_steps: int = 300,
                  deterministic: bool = False) -> RealEvaluation:
    """Run ``policy.predict`` (an SB3 model) for ``episodes`` real episodes, seeds ``seed + i``."""
    env = make_real_env(source, task, max_episode_steps)
    rets, succ, lens, eps = [], [], [], []
    for i in range(episodes):
        obs, info = env.reset(seed=seed + i)
        frames, poses, acts, rews, terms, truncs = [obs], [info["pose"]], [], [], [], []
        done, success = False, False
        state, first = None, np.ones(1, dtype=bool)   # a recurrent policy's memory starts fresh each episode
        while not done:
            a, state = policy.predict(obs, state=state, episode_start=first, deterministic=deterministic)
            first = np.zeros(1, dtype=bool)
            obs, r, term, trunc, info = env.step(int(a))
            frames.append(obs), poses.append(info["pose"]), acts.append(int(a))
            rews.append(r), terms.append(term), truncs.append(trunc)
            success |= bool(info.get("is_success", False))
            done = term or trunc
        rets.append(sum(rews)), succ.append(success), lens.append(len(acts))
        eps.append(Episode(np.stack(frames), np.stack(poses).astype(np.float32), np.array(acts), np.array(rews),
                           np.array(terms), np.array(truncs), seed=seed + i))
    env.close()
    return RealEvaluation(np.array(rets), np.array(succ, float), np.array(lens), eps)


def check_dream_evaluation(dream: DreamConfig) -> None:
    """Refuse what ``evaluate_dream`` cannot judge, before any episode runs: a task whose termination is no
    success (the dream's own options were checked when its config was built)."""
    if not dream.task.pose_defined:
        raise ValueError(f"a dream evaluation needs a pose-defined task (reach, homing), not {dream.task.name!r}: "
                         "its termination is no success")


def evaluate_dream(policy, dream: DreamConfig, episodes: int, seed: int, deterministic: bool = False,
                   worlds: int = 16) -> dict[str, float]:
    """Run ``policy.predict`` in ``worlds`` worlds of the dream ``dream`` until ``episodes`` episodes are done,
    world i contributing its first ``(episodes + i) // worlds`` (as SB3's ``evaluate_policy`` does: counting
    whichever episodes end first would favour the short, successful ones). Success is termination by the task
    (reach/homing: arrival)."""
    from envs.dream import DreamVectorEnv

    check_dream_evaluation(dream)
    worlds = max(1, min(worlds, episodes))
    vec = DreamVectorEnv(num_envs=worlds, source=dream.source, config=dream)
    target = np.array([(episodes + i) // worlds for i in range(worlds)])
    count = np.zeros(worlds, int)
    rets, succ, lens, moves = [], [], [], []
    ep_ret, ep_len = np.zeros(worlds), np.zeros(worlds, int)
    obs, info = vec.reset(seed=seed)
    state, first = None, np.ones(worlds, dtype=bool)
    while (count < target).any():
        a, state = policy.predict(obs, state=state, episode_start=first, deterministic=deterministic)
        a = np.asarray(a).reshape(-1)
        before = info["pose"]
        obs, r, term, trunc, info = vec.step(a)
        after = info["pose"].copy()
        if "final_info" in info:     # a world that ended was reset: its move is to the pose it ended at
            ended = info["_final_info"]
            after[ended] = info["final_info"]["pose"][ended]
        counted = (a == FORWARD) & (count < target)
        moves.append(np.linalg.norm(after[counted, :2] - before[counted, :2], axis=1))
        ep_ret += r
        ep_len += 1
        first = term | trunc
        for i in np.flatnonzero(first):
            if count[i] < target[i]:
                rets.append(ep_ret[i]), succ.append(bool(term[i])), lens.append(ep_len[i])
                count[i] += 1
            ep_ret[i], ep_len[i] = 0.0, 0
    return {"dream_return": float(np.mean(rets)), "dream_success_rate": float(np.mean(succ)),
            "dream_episode_length": float(np.mean(lens)), "dream_episodes": len(rets),
            "dream_forward_blocked_share": blocked_share(np.concatenate([np.empty(0), *moves]))}
