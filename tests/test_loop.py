"""The agent in the loop from a small real budget: a tiny loop end to end, the real-frame counter against the written
datasets, a world model that starts from fresh weights, and resuming where an interrupted loop stopped."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

TINY = {"model": {"enc_channels": [8, 8, 16], "dec_channels": [16, 8, 8], "channels": [8, 16, 16], "cond_dim": 16,
                  "context": 2, "memory_m": 2},
        "memory": {"window": 32},
        "train": {"ae_steps": 4, "ae_batch": 4, "denoiser_steps": 4, "batch": 4, "checkpoint_every": 100}}


def tiny_loop_config(seeds=(0,), arms=("dream", "real"), **schedule):
    from experiments.configs import command_config, loop_config

    sched = {"first_frames": 40, "cycle_frames": 20, "cycles": 2, "refit_steps": 3, "agent_steps_first": 64,
             "agent_steps": 32, **schedule}
    cfg = command_config("loop", worldmodel=TINY, schedule=sched, seeds=list(seeds), arms=list(arms), n_envs=2,
                         eval_episodes=2, real_frames=64,
                         dream={"max_episode_steps": 12},
                         algo={"hyperparams": {"n_steps": 16, "batch_size": 32, "n_epochs": 1}})
    return loop_config(cfg)


def test_record_frames_is_exact_and_cut_episodes_end_truncated():
    from agents.loop_data import record_frames, scripted_actor
    from envs.tasks import TaskConfig

    task = TaskConfig("reach", start_region=(1, 7, -7, -1))
    eps = record_frames("miniworld", task, scripted_actor("random", 3), 25, seed=5, max_steps=10)
    assert sum(len(e.frames) for e in eps) == 25
    assert [e.seed for e in eps] == list(range(5, 5 + len(eps)))
    assert all(e.terminations[-1] or e.truncations[-1] for e in eps)
    assert all(len(e.frames) == len(e.actions) + 1 for e in eps)


def test_loop_config_refuses_bad_options():
    with pytest.raises(ValueError, match="multiple of cycle_frames"):
        tiny_loop_config(first_frames=30)
    with pytest.raises(ValueError, match="arms"):
        tiny_loop_config(arms=("dream", "imagined"))
    with pytest.raises(ValueError, match="distinct"):
        tiny_loop_config(seeds=(1, 1))
    with pytest.raises(ValueError, match="multiple of n_envs"):
        tiny_loop_config(first_frames=21, cycle_frames=21)
    from experiments.configs import command_config, loop_config
    with pytest.raises(ValueError, match="model, memory and train blocks"):
        loop_config(command_config("loop", worldmodel={**TINY, "init": "checkpoints/memoryrooms.safetensors"}))
    good = tiny_loop_config()
    with pytest.raises(ValueError, match="from scratch"):
        dataclasses.replace(good, worldmodel=dataclasses.replace(good.worldmodel, init="other.safetensors"))
    with pytest.raises(ValueError, match="its own real frames"):
        dataclasses.replace(good, agent=dataclasses.replace(
            good.agent, dream=dataclasses.replace(good.agent.dream, starts="data/memoryrooms-revisit-200")))
    with pytest.raises(ValueError, match="pose-defined"):
        loop_config(command_config("loop", dream={"task": {"name": "learned"}}))


@pytest.mark.slow
def test_tiny_loop_end_to_end_counts_frames_starts_fresh_and_resumes(tmp_path, monkeypatch):
    import agents.loop as loop
    from envs.data.dataset import read_episodes
    from worldmodels.checkpoint import load_tensors, weights_fingerprint
    from worldmodels.world_model import WorldModel

    cfg = tiny_loop_config()
    run = tmp_path / "loop"
    # interrupt the first run in cycle 1's agent training: cycle 0 is complete, cycle 1 has collected and refitted
    real_train, collected, fitted = loop.train, [], []
    real_collect, real_fit = loop._collect, loop.train_world_model

    def count_collect(cfg_, seed, cycle, cdir, prev):
        collected.append(cycle)
        return real_collect(cfg_, seed, cycle, cdir, prev)

    def count_fit(t, r):
        fitted.append(t.dataset)
        return real_fit(t, r)

    def interrupted(acfg, cdir, where, **kw):
        if cdir.name == "cycle1":
            raise KeyboardInterrupt("stopped by the test")
        return real_train(acfg, cdir, where, **kw)

    monkeypatch.setattr(loop, "_collect", count_collect)
    monkeypatch.setattr(loop, "train_world_model", count_fit)
    monkeypatch.setattr(loop, "train", interrupted)
    with pytest.raises(KeyboardInterrupt):
        loop.run_loop(cfg, run)
    assert collected == [0, 1] and len(fitted) == 2
    monkeypatch.setattr(loop, "train", real_train)
    res = loop.run_loop(cfg, run)
    assert collected == [0, 1] and len(fitted) == 2        # nothing recorded or fitted twice

    dream = res["curves"]["dream"]["0"]
    assert [c["cycle"] for c in dream] == [0, 1]
    # the counter is the frames of the written datasets, and the schedule's budgets exactly
    for c in dream:
        truth = sum(len(e.frames) for j in range(c["cycle"] + 1)
                    for e in read_episodes(run / "seed0" / "dream" / f"cycle{j}" / "collected"))
        assert c["real_frames"] == truth
    assert [c["real_frames"] for c in dream] == [c["budget"] for c in dream] == [40, 60]
    assert sum(len(e.frames) for e in read_episodes(run / "seed0" / "dream" / "cycle1" / "real_all")) == 60
    # cycle 0's world model started from the weights a fresh model of its config draws, cycle 1's refits it
    c0 = run / "seed0" / "dream" / "cycle0" / "world_model.safetensors"
    model0 = WorldModel.load(c0)
    torch.manual_seed(0)
    fresh = WorldModel(model0.cfg)
    assert model0.meta["fresh_weights_sha256"] == weights_fingerprint(fresh)
    assert model0.meta["finetuned_from"] is None and model0.meta["autoencoder_from"] is None
    meta1 = load_tensors(run / "seed0" / "dream" / "cycle1" / "world_model.safetensors")[1]
    assert meta1["finetuned_from"] == str(c0) and meta1["real_frames"] == 60
    # the real arm is judged every cycle_frames real frames on the same held-out seeds
    real = res["curves"]["real"]["0"]
    assert [r["real_frames"] for r in real][:3] == [20, 40, 60]
    assert res["by_budget"]["dream"][0]["seeds"] == 1 and "targets" in res
    for f in ("loop_curve.png", "loop_table.md"):
        assert (run / f).is_file()
    assert list((run / "tb").glob("events.out.tfevents.*"))
    assert np.isfinite([c["real_success_rate"] for c in dream]).all()
    json.dumps(res)


def test_targets_compare_each_budget_with_the_real_arm_at_it_or_after():
    from agents.loop_report import by_budget, targets

    def rows(points):
        return by_budget({0: [{"budget": b, "real_frames": b, "real_success_rate": s, "real_return": s}
                              for b, s in points]})

    real = rows([(2000, 0.2), (4000, 0.5), (8000, 0.9), (10000, 0.96)])
    t = targets(rows([(2000, 0.5), (4000, 0.95), (6000, 0.97)]), real)
    assert t["dream_frames_to_0.95"] == 4000 and t["real_frames_to_0.95"] == 10000 and t["half_the_frames"]
    assert [c["real"] for c in t["compared_budgets"]] == [0.2, 0.5, 0.9]     # 6000: the real arm's 8000
    assert t["dream_at_least_real_everywhere"]
    assert not targets(rows([(2000, 0.1), (4000, 0.95)]), real)["dream_at_least_real_everywhere"]
    assert not targets(rows([(2000, 0.5), (6000, 0.95)]), real)["half_the_frames"]   # 6000 > 10000 / 2
    # a collection a frame short of its budget stays in its budget's row
    two = by_budget({0: [{"budget": 2000, "real_frames": 1999, "real_success_rate": 1.0, "real_return": 1.0}],
                     1: [{"budget": 2000, "real_frames": 2000, "real_success_rate": 0.0, "real_return": 0.0}]})
    assert len(two) == 1 and two[0]["seeds"] == 2 and two[0]["success_mean"] == 0.5
