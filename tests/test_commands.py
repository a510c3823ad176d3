"""Smoke runs of every command on tiny configs, and run-folder safety."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from experiments.runs import make_run_dir

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "SDL_VIDEODRIVER": "dummy", "MPLBACKEND": "Agg"}


def memworld(*args: str, cwd: Path, check: bool = True, timeout: int = 600) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "experiments.cli", *args]
    p = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p


def results_of(root: Path, prefix: str) -> dict:
    runs = sorted(root.glob(f"{prefix}-*"))
    assert runs, f"no {prefix} run under {root}"
    return json.loads((runs[-1] / "results.json").read_text())


@pytest.mark.slow
def test_collect_writes_a_dataset(tmp_path):
    memworld("collect", "env=minigrid", "episodes=2", "max_steps=20", "runs_root=" + str(tmp_path), cwd=tmp_path)
    res = results_of(tmp_path, "collect")
    assert res["episodes"] == 2 and Path(res["dataset"]).is_dir()


@pytest.mark.slow
def test_bad_arguments_fail_before_work(tmp_path, tiny_dataset):
    p = memworld("collect", "episodes=-1", "runs_root=" + str(tmp_path), cwd=tmp_path, check=False)
    assert p.returncode != 0 and "episodes and max_steps must be >= 1" in p.stderr + p.stdout
    p = memworld("collect", "nonsense_key=3", "runs_root=" + str(tmp_path), cwd=tmp_path, check=False)
    assert p.returncode != 0 and "nonsense_key" in p.stderr + p.stdout
    p = memworld("bench", "target=moon", "runs_root=" + str(tmp_path), cwd=tmp_path, check=False)
    assert p.returncode != 0 and "unknown bench target" in p.stderr + p.stdout
    ds = f"dataset={tiny_dataset[0]}"
    for bad, said in ((["model.decoder=bogus", ds], "unknown decoder 'bogus'"),
                      (["train.rollout_share=2", ds], "rollout_share"), (["dataset=nowhere"], "no dataset at nowhere"),
                      (["model.decoder=subpixel", "model.subpixel_channels=[8]", ds], "subpixel_channels"),
                      (["memory.future=8", "train.rollout_share=0.5", "train.rollout_max=8", ds],
                       "memory.future with self-forcing"),
                      ([f"init={tmp_path / 'none.safetensors'}", ds], "none.safetensors")):
        p = memworld("train-worldmodel", *bad, "runs_root=" + str(tmp_path), cwd=tmp_path, check=False)
        assert p.returncode != 0 and said in p.stderr + p.stdout
    assert not any(tmp_path.glob("train-worldmodel-*"))
    for bad, said in ((["map=[fov]"], "give dream.scene_map=<file>"), (["dream.scene_map=nowhere.safetensors", "map=[fov]"],
                                                                  "no scene map at nowhere.safetensors"),
                      (["dream.scene_map=nowhere.safetensors", "map=[stateful]"], "not ['stateful']"),
                      (["dream.source=memorymaze9", "maze.memories=[nope]"], "unknown memory kind 'nope'"),
                      (["dream.source=memorymaze9", "maze.modes=[dreaming]"], "modes are truepose")):
        p = memworld("eval-revisit", *bad, "runs_root=" + str(tmp_path), cwd=tmp_path, check=False)
        assert p.returncode != 0 and said in p.stderr + p.stdout
    p = memworld("build-map", f"dataset={tiny_dataset[0]}", "cell=0", "runs_root=" + str(tmp_path), cwd=tmp_path,
                 check=False)
    assert p.returncode != 0 and "cell must be > 0" in p.stderr + p.stdout
    p = memworld("train-agent", "dream.scene_map=nowhere.safetensors", "runs_root=" + str(tmp_path), cwd=tmp_path,
                 check=False)
    assert p.returncode != 0 and "no scene map at nowhere.safetensors" in p.stderr + p.stdout
    p = memworld("train-agent", "dream.views.move=true", "runs_root=" + str(tmp_path), cwd=tmp_path, check=False)
    assert p.returncode != 0 and "it needs views.turn_radius > 0" in p.stderr + p.stdout
    assert not any(tmp_path.glob("train-agent-*"))
    p = memworld("encode-dataset", f"dataset={tiny_dataset[0]}", "out=enc.npz", "runs_root=" + str(tmp_path),
                 cwd=tmp_path, check=False)
    assert p.returncode != 0 and "must end in .safetensors" in p.stderr + p.stdout
    assert not any(tmp_path.glob("encode-dataset-*"))
    assert not any(tmp_path.glob("eval-revisit-*")) and not any(tmp_path.glob("build-map-*"))
    p = memworld("fly", cwd=tmp_path, check=False)
    assert p.returncode == 2 and "unknown command" in p.stderr
    assert not any(tmp_path.glob("collect-*/results.json"))


TINY_MODEL = ["model.enc_channels=[8,8,16]", "model.dec_channels=[16,8,8]", "model.channels=[8,16,16]",
              "model.cond_dim=16", "model.context=2", "model.memory_m=2", "memory.window=32"]


@pytest.mark.slow
def test_train_worldmodel_then_bench_and_revisit(tmp_path, tiny_dataset):
    ds = str(tiny_dataset[0])
    root = "runs_root=" + str(tmp_path)
    memworld("train-worldmodel", f"dataset={ds}", "heldout_episodes=1", "train.ae_steps=4", "train.denoiser_steps=4",
             "train.batch=4", "tensorboard=true", "run_name=wm", root, *TINY_MODEL, "model.decoder=subpixel",
             "model.subpixel_channels=[8,8]", cwd=tmp_path)
    ck = tmp_path / "wm" / "world_model.safetensors"
    assert ck.is_file() and (tmp_path / "wm" / "world_model.starts.npz").is_file()
    assert json.loads(Path(str(ck) + ".json").read_text())["config"]["autoencoder"]["decoder"] == "subpixel"
    assert any((tmp_path / "wm" / "tb").iterdir())
    memworld("bench", "target=worldmodel", f"dream.checkpoint={ck}", f"heldout={ds}", "samples=8", "rollout_starts=2",
             "seconds=0.05", "threads=1", root, cwd=tmp_path)
    res = results_of(tmp_path, "bench-worldmodel")
    for key in ("ae_psnr", "onestep_psnr", "copy_psnr", "rollout_psnr_h16", "pose_err_h16", "sampler_table",
                "gflop_per_frame", "frames_per_s_b32", "ceiling_gflops", "onestep_psnr_exact_memory",
                "exact_memory_no_context_psnr"):
        assert key in res
    memworld("bench", "target=dream", f"dream.checkpoint={ck}", "worlds=[1,2]", "seconds=0.05", "threads=1", root,
             "clients.envs=2", "clients.steps=64", cwd=tmp_path)
    res = results_of(tmp_path, "bench-dream")
    assert res["clients_envs"] == 2 and res["ppo_single_envs_steps_per_s"] > 0 and res["ppo_batched_dream_steps_per_s"] > 0
    assert set(res["dream_steps_per_s"]) == {"1", "2"} and set(res["real_steps_per_s"]) == {"1", "2"}
    assert set(res["dream_steps_per_s_best_window"]) == {"1", "2"} and res["precision"] == "fp32"
    assert res["ceiling_gflops"] == max(res["ceiling_gflops_start"], res["ceiling_gflops_end"])
    n = str(res["achieved_at_worlds"])
    assert res["achieved_gflops"] == pytest.approx(res["dream_steps_per_s_best_window"][n] * res["gflop_per_step"])
    assert res["dream_steps_per_s_best_window"][n] == max(res["dream_steps_per_s_best_window"].values())
    memworld("bench", "target=train", f"dream.checkpoint={ck}", f"train.dataset={ds}", "train.batch=4", "seconds=0.3",
             "threads=1", root, cwd=tmp_path)
    res = results_of(tmp_path, "bench-train")
    assert set(res["steps_per_s_by_prefetch"]) == {"0", "2"} and min(res["steps_per_s_by_prefetch"].values()) > 0
    assert res["gflop_per_step"] > 0 and 0 < res["fraction_of_ceiling"] < 1 and res["device"] == "cpu"
    memworld("bench", "target=longrun", f"dream.checkpoint={ck}", "longrun_steps=200", "longrun_worlds=4",
             "longrun_episode_steps=30", "threads=1", root, cwd=tmp_path)
    res = results_of(tmp_path, "bench-longrun")
    assert res["world_steps"] == 200 and res["rss_mb_end"] > 0 and res["trimmed_rss_mb_end"] > 0
    assert res["live_tensors_end"] > 0
    memworld("build-map", f"checkpoint={ck}", f"dataset={ds}", "heldout_episodes=1", "cell=1.0", "yaw_bins=8",
             "run_name=map", root, cwd=tmp_path)
    smap = json.loads((tmp_path / "map" / "results.json").read_text())
    assert 0 < smap["entries"] < smap["from_frames"]
    memworld("eval-revisit", f"dream.checkpoint={ck}", "kinds=[turn_around,loop]", "seeds_per_kind=1", "length=10",
             f"heldout={ds}", "onestep_samples=8", "threads=1", "true_pose=[fov]", f"dream.scene_map={smap['scene_map']}",
             "map=[fov]", root, cwd=tmp_path)
    run = sorted(tmp_path.glob("eval-revisit-*"))[-1]
    res = json.loads((run / "results.json").read_text())
    # the diagnostic runs step to the real poses; runs with the map know the place from other episodes:
    # neither is ever the best kind
    assert res["fov+truepose"]["pose_err_mean"] < 1e-5 and res["fov+reuse+truepose"]["pose_err_final"] < 1e-5
    assert not res["best_memory"].endswith(("+truepose", "+map")) and "none+truepose" not in res
    assert res["best_with_map"] in ("fov+map", "fov+reuse+map") and "revisit_psnr_with_map_share_of_onestep" in res
    for kind in ("none", "recency", "fov", "embedding", "stateful"):
        assert {"revisit_psnr", "revisit_ssim", "self_psnr", "nonrevisit_psnr", "steps_per_s", "pose_err_mean"} <= set(res[kind])
    assert "onestep_psnr" in res and {"fov+reuse", "memory_cost", "denoiser_revisit_gain_db", "copy_bound_psnr"} <= set(res)
    # paired cost of the best kind and of every run that turns stored views (turn=[fov] by default), maps too
    turned = {"fov+reuse+turn", "fov+reuse+turn+map"}
    assert set(res["memory_cost_steps_per_s"]) == {"none", res["best_memory"]} | turned
    assert set(res["memory_cost_by_kind"]) == {res["best_memory"]} | turned
    assert res["memory_cost_by_kind"][res["best_memory"]] == res["memory_cost"]
    assert set(res["copy_bound_psnr_by_path"]) <= {"turn_around", "loop"} and res["copy_bound_psnr_by_path"]
    assert set(res["fov"]["revisit_psnr_by_path"]) == set(res["copy_bound_psnr_by_path"])
    # a full turn in place comes back to the context's own poses: those revisits are scored apart as exact
    assert 0 < res["fov"]["exact_revisit_frames"] <= res["fov"]["revisit_frames"]
    assert "turn_around" in res["fov"]["exact_revisit_psnr_by_path"]
    assert sum(res["fov"]["exact_revisit_frames_by_first_visit"].values()) == res["fov"]["exact_revisit_frames"]
    assert {"exact_copy_bound_psnr", "exact_revisit_gain_db", "exact_revisit_psnr_share_of_onestep"} <= set(res)
    for f in ("results.md", "psnr_vs_gap.png", "revisit.gif", "config.yaml"):
        assert (run / f).is_file()


@pytest.mark.slow
def test_interrupted_training_resumes(tmp_path, tiny_dataset):
    args = [sys.executable, "-m", "experiments.cli", "train-worldmodel", f"dataset={tiny_dataset[0]}",
            "heldout_episodes=1", "train.ae_steps=100000", "train.denoiser_steps=2", "train.checkpoint_every=5",
            "run_name=r", "runs_root=" + str(tmp_path), "progress=false", "tensorboard=false", *TINY_MODEL]
    proc = subprocess.Popen(args, cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    state = tmp_path / "r" / "train_state.pt"
    deadline = time.time() + 120
    while not state.exists() and time.time() < deadline:
        time.sleep(0.2)
    assert state.exists(), "no checkpoint appeared"
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0 and "resume from" in out
    import torch
    step = torch.load(state, weights_only=True)["ae_step"]
    assert step >= 5
    p = memworld("train-worldmodel", f"dataset={tiny_dataset[0]}", "heldout_episodes=1", f"train.ae_steps={step + 3}",
                 "train.denoiser_steps=2", "run_name=r", "runs_root=" + str(tmp_path), "progress=false",
                 "tensorboard=false", *TINY_MODEL, cwd=tmp_path)
    assert f"autoencoder step {step}" in p.stdout
    assert torch.load(state, weights_only=True)["ae_step"] == step + 3


@pytest.mark.slow
def test_train_agent_end_to_end(tmp_path, tiny_checkpoint):
    memworld("train-agent", f"dream.checkpoint={tiny_checkpoint}", "dream.compile=false", "total_timesteps=128",
             "n_envs=2", "eval_episodes=2", "dream.max_episode_steps=20", "video_every=32",
             "algo.hyperparams.n_steps=64", "algo.hyperparams.batch_size=64",
             "baseline=true", "real_frames_used=64", "progress=false", "dream.views.reuse_max_sq_dist=0.001",
             "dream.views.turn_radius=0.1",
             "runs_root=" + str(tmp_path), cwd=tmp_path)
    run = sorted(tmp_path.glob("train-agent-*"))[-1]
    res = json.loads((run / "results.json").read_text())
    assert {"real_success_rate", "real_return", "dream_return", "real_frames_used"} <= set(res)
    assert res["dream"]["views"] == {"reuse_max_sq_dist": 0.001, "turn_radius": 0.1, "turn_max_yaw": 0.8, "move": False}
    assert 0 <= res["dream_success_rate"] <= 1
    assert res["baseline_real_frames"] == res["baseline_eval_history"][-1][0] >= 64   # whole rollouts: at least the budget
    assert (run / "success_vs_real_frames.png").is_file() and (run / "baseline_policy.zip").is_file()
    assert (run / "policy.zip").is_file() and (run / "real_eval_dataset" / "data").is_dir()
    record = json.loads((run / "policy.json").read_text())   # how the policy was trained, beside it
    assert record["dream_timesteps"] == 128 and record["command"].startswith("memworld train-agent ")
    assert record["eval_history"] == res["eval_history"] and len(record["checkpoint_sha256"]) == 64
    assert list((run / "videos").glob("*.gif"))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    ea = EventAccumulator(str(run / "tb" / "dream"), size_guidance={"images": 0})
    ea.Reload()
    assert {"rollout/ep_rew_mean", "rollout/success_rate", "train/loss", "dream/sampler_steps",
            "real/success_rate", "real/forward_blocked_share"} <= set(ea.Tags()["scalars"])
    assert {"dream/imagined_rollout", "real/episode"} <= set(ea.Tags()["images"])
    from stable_baselines3 import PPO
    import numpy as np
    policy = PPO.load(run / "policy.zip")
    a, _ = policy.predict(np.zeros((64, 64, 3), np.uint8))
    assert 0 <= int(a) < 3
    p = memworld("train-agent", "algo=sac", "runs_root=" + str(tmp_path), cwd=tmp_path, check=False)
    assert p.returncode != 0 and "sac" in p.stderr + p.stdout
    before = sorted(tmp_path.glob("train-agent-*"))
    p = memworld("train-agent", "dream.precision=fp8", "runs_root=" + str(tmp_path), cwd=tmp_path, check=False)
    assert p.returncode != 0 and "precision must be" in p.stderr + p.stdout
    assert sorted(tmp_path.glob("train-agent-*")) == before      # refused before a run folder was made
    # eval-agent judges the saved policy on held-out real seeds; a missing policy is named
    memworld("eval-agent", f"policies=[{run / 'policy.zip'}]", "episodes=2", "dream.max_episode_steps=10",
             "dream.task.start_region=[1,7,-7,-1]", "run_name=ev", "runs_root=" + str(tmp_path), cwd=tmp_path)
    ev = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert ev["policies"][str(run / "policy.zip")]["real_episodes"] == 2
    memworld("eval-agent", f"policies=[{run / 'policy.zip'}]", "episodes=1", "dream.max_episode_steps=5",
             "dream_episodes=3", "dream_worlds=2", f"dream.checkpoint={tiny_checkpoint}", "dream.views.turn_radius=0.1",
             "run_name=ev-dream", "runs_root=" + str(tmp_path),
             cwd=tmp_path)
    ev = json.loads((tmp_path / "ev-dream" / "results.json").read_text())
    fig = ev["policies"][str(run / "policy.zip")]
    assert fig["dream_episodes"] == 3 and 0 <= fig["dream_success_rate"] <= 1 and ev["dream"]["memory"] == "fov"
    assert ev["dream"]["views"]["turn_radius"] == 0.1
    p = memworld("eval-agent", f"policies=[{run / 'policy.zip'}]", "dream_episodes=3", "dream.memory=telepathy",
                 "run_name=ev-bad", "runs_root=" + str(tmp_path), cwd=tmp_path, check=False)
    assert p.returncode != 0 and "unknown memory kind 'telepathy'" in p.stderr + p.stdout
    assert not (tmp_path / "ev-bad").exists()                    # refused before a run folder was made
    p = memworld("eval-agent", f"policies=[{run / 'policy.zip'}]", "dream_episodes=3", "dream.views.move=true",
                 "run_name=ev-bad", "runs_root=" + str(tmp_path), cwd=tmp_path, check=False)
    assert p.returncode != 0 and "it needs views.turn_radius > 0" in p.stderr + p.stdout and not (tmp_path / "ev-bad").exists()
    for algo in ("ppo", "recurrent_ppo"):   # algo is a config group, as in train-agent
        p = memworld("eval-agent", f"algo={algo}", "policies=[nope.zip]", "runs_root=" + str(tmp_path), cwd=tmp_path,
                     check=False)
        assert p.returncode != 0 and "policy nope.zip not found" in p.stderr + p.stdout
    p = memworld("train-agent", "dream.task.name=dance", "runs_root=" + str(tmp_path), cwd=tmp_path, check=False)
    assert p.returncode != 0 and "unknown task 'dance'" in p.stderr + p.stdout


def test_run_folders_are_never_shared(tmp_path):
    dirs = {make_run_dir("x", tmp_path) for _ in range(20)}
    assert len(dirs) == 20


@pytest.mark.parametrize("n", [2])
def test_concurrent_commands_get_their_own_folders(tmp_path, n):
    procs = [subprocess.Popen([sys.executable, "-c", "from experiments.runs import make_run_dir; "
                               f"print(make_run_dir('c', {str(tmp_path)!r}))"], env=ENV, stdout=subprocess.PIPE,
                              text=True) for _ in range(n)]
    outs = {p.communicate()[0].strip() for p in procs}
    assert len(outs) == n


@pytest.mark.slow
def test_demo_pipeline_on_a_tiny_config_and_reuse(tmp_path, tiny_checkpoint, tiny_dataset):
    args = ["demo", f"dream.checkpoint={tiny_checkpoint}", f"heldout={tiny_dataset[0]}", "collect_episodes=1",
            "worldmodel_samples=8", "revisit_seeds_per_kind=1", "agent.dream_steps=64", "agent.real_frames=64",
            "agent.envs=2", "agent.eval_every=32", "agent.eval_episodes=1", "agent.policy_episodes=2",
            "agent.max_episode_steps=10", "agent.print_every=32", "+agent.hyperparams.n_steps=16",
            "+agent.hyperparams.batch_size=32", "bench_worlds=[1,2]", "bench_seconds=0.05", "threads=1",
            "progress=false", "dream.compile=false", "runs_root=" + str(tmp_path)]
    p = memworld(*args, cwd=tmp_path)
    lines = p.stdout.strip().splitlines()
    assert lines[-1].startswith("report: ")
    # the headline last, in words and rounded figures, one line per question and one saying what it means
    head = p.stdout[p.stdout.rindex("headline:"):]
    for what in ("what the dream draws:", "what memory buys on revisits:", "what the agent achieves in the real env",
                 "dream against real speed:"):
        assert what in head
    assert "dB PSNR" in head and "real frames" in head and "steps/s" in head
    assert "[ppo in the dream] 32/64 steps" in p.stdout and "[ppo in the real env] 32/64 steps" in p.stdout
    run = tmp_path / "demo"
    res = json.loads((run / "results.json").read_text())
    assert {"onestep_psnr", "revisit_psnr_fov", "revisit_psnr_stateful", "real_success_rate", "dream_steps_per_s",
            "baseline_real_success_rate", "baseline_real_frames", "dream_agent_real_frames"} <= set(res)
    assert [h["what"].split(" (")[0] for h in res["headline"]] == [
        "what the dream draws", "what memory buys on revisits", "what the agent achieves in the real env",
        "dream against real speed"]
    # the agent stage: the policy shipped beside the checkpoint judged in the real env (trained in the dream of the
    # shipped checkpoint, not of the tiny one), a dream run and the real-env baseline, each with its learning curve
    ag = res["stages"]["agent"]
    assert ag["policy"]["real_episodes"] == 2 and ag["policy"]["same_checkpoint"] is False
    assert ag["policy"]["trained"]["dream_timesteps"] >= 200_000
    assert ag["task"]["start_region"] == [1, 7, -7, -1] and ag["max_episode_steps"] == 10
    assert [t for t, _ in ag["dream_run"]["eval_history"]] == [32, 64]
    assert [t for t, _ in ag["baseline"]["baseline_eval_history"]] == [32, 64] == [32, ag["baseline"]["baseline_real_frames"]]
    assert (run / "agent" / "success_vs_steps.png").is_file()
    page = (run / "report.html").read_text()
    assert page.count("data:image/gif;base64,") >= 1 and "data:image/png;base64," in page and "src=\"http" not in page
    assert page.index("what the dream draws") < page.index("World model (held-out")
    # an interrupted demo: drop the last stages and run again; finished stages are reused
    (run / "stages" / "throughput.json").unlink()
    p = memworld(*args, cwd=tmp_path)
    assert "collect: reusing" in p.stdout and "agent: reusing" in p.stdout and "throughput ..." in p.stdout
    assert not (run / ".lock").exists()


@pytest.mark.slow
def test_play_runs_headless(tmp_path, tiny_checkpoint):
    p = memworld("play", f"dream.checkpoint={tiny_checkpoint}", "actions=[0,1,2,2]", "side_by_side=true", cwd=tmp_path)
    assert "played 4 steps" in p.stdout


@pytest.mark.slow
def test_loop_command_runs_a_tiny_comparison(tmp_path):
    memworld("loop", "seeds=[0]", "schedule.first_frames=30", "schedule.cycle_frames=30", "schedule.cycles=1",
             "schedule.agent_steps_first=32", "n_envs=2", "eval_episodes=1", "real_frames=32", "dream.max_episode_steps=10",
             "algo.hyperparams.n_steps=16", "algo.hyperparams.batch_size=32", "worldmodel.train.ae_steps=2",
             "worldmodel.train.denoiser_steps=2", *("+worldmodel." + m for m in TINY_MODEL), "run_name=tiny",
             "runs_root=" + str(tmp_path), cwd=tmp_path)
    res = json.loads((tmp_path / "tiny" / "results.json").read_text())
    assert [c["real_frames"] for c in res["curves"]["dream"]["0"]] == [30]
    assert res["by_budget"]["real"][0]["real_frames"] == 30 and (tmp_path / "tiny" / "loop_curve.png").is_file()
    bad = memworld("loop", "worldmodel.nonsense=1", "runs_root=" + str(tmp_path), cwd=tmp_path, check=False)
    assert bad.returncode != 0 and "nonsense" in bad.stderr


@pytest.mark.slow
def test_ddp_under_torchrun(tmp_path, tiny_dataset):
    torchrun = Path(sys.executable).parent / "torchrun"
    cmd = [str(torchrun), "--nproc_per_node=2", "-m", "experiments.train_worldmodel", f"dataset={tiny_dataset[0]}",
           "heldout_episodes=1", "train.ae_steps=3", "train.denoiser_steps=3", "train.batch=4", "run_name=ddp",
           "runs_root=" + str(tmp_path), "progress=false", "tensorboard=false", *TINY_MODEL]
    p = subprocess.run(cmd, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert p.stdout.count("results: ") == 1 and (tmp_path / "ddp" / "world_model.safetensors").is_file()


def test_demo_stages_are_reused_only_for_the_same_checkpoint_and_config(tmp_path):
    from omegaconf import OmegaConf

    from experiments.demo import fingerprint, stage

    ck = tmp_path / "a.safetensors"
    ck.write_bytes(b"weights one")
    cfg = OmegaConf.create({"collect_episodes": 2, "progress": True})
    calls = []
    run = lambda key: stage(tmp_path, "collect", lambda: calls.append(key) or {"n": len(calls)}, key)
    key = fingerprint(cfg, str(ck))
    assert run(key)["n"] == 1 and run(key)["n"] == 1 and len(calls) == 1
    assert fingerprint(OmegaConf.create({"collect_episodes": 2, "progress": False}), str(ck)) == key
    ck.write_bytes(b"weights two")                       # a new checkpoint: the cached stage is stale
    assert run(fingerprint(cfg, str(ck)))["n"] == 2
    assert run(fingerprint(OmegaConf.create({"collect_episodes": 3}), str(ck)))["n"] == 3
    conf = tmp_path / "conf"                             # a command's default changed: stale too
    conf.mkdir()
    (conf / "eval_revisit.yaml").write_text("memories: [none, fov]\n")
    before = fingerprint(cfg, str(ck), conf)
    (conf / "eval_revisit.yaml").write_text("memories: [none, fov, stateful]\n")
    assert fingerprint(cfg, str(ck), conf) != before
    code = tmp_path / "code"                             # memworld's own source changed: stale as well
    (code / "memory").mkdir(parents=True)
    (code / "memory" / "retrievers.py").write_text("M = 4\n")
    before = fingerprint(cfg, str(ck), conf, code)
    assert fingerprint(cfg, str(ck), conf, code) == before
    (code / "memory" / "retrievers.py").write_text("M = 8\n")
    assert fingerprint(cfg, str(ck), conf, code) != before


@pytest.mark.slow
def test_train_decoder_swaps_in_a_subpixel_decoder_and_keeps_the_rest(tmp_path, tiny_checkpoint, tiny_dataset):
    import torch
    from safetensors.torch import load_file

    from worldmodels.world_model import WorldModel

    p = memworld("train-decoder", f"init={tiny_checkpoint}", "decoder=tv", "runs_root=" + str(tmp_path),
                 cwd=tmp_path, check=False)
    assert p.returncode != 0 and "unknown decoder 'tv'" in p.stderr + p.stdout
    memworld("train-decoder", f"init={tiny_checkpoint}", f"heldout={tiny_dataset[0]}", "heldout_frames=32",
             "heldout_episodes=1", "channels=[16,8]", "steps=20", "batch=4", "timing_rounds=1", "progress=false",
             "run_name=dec", "runs_root=" + str(tmp_path), cwd=tmp_path)
    res = json.loads((tmp_path / "dec" / "results.json").read_text())
    assert {"ae_psnr_old", "ae_psnr_new", "decode_ms_32", "gflop_per_frame", "train_minutes_total",
            "roundtrip_detail_old", "roundtrip_detail_new"} <= set(res)
    new = WorldModel.load(res["checkpoint"])
    assert new.cfg.autoencoder.decoder == "subpixel" and new.cfg.autoencoder.subpixel_channels == (16, 8)
    assert new.decode(new.encode(torch.zeros(2, 64, 64, 3, dtype=torch.uint8))).shape == (2, 64, 64, 3)
    old, got = load_file(str(tiny_checkpoint)), load_file(res["checkpoint"])
    kept = [k for k in old if not k.startswith("autoencoder.decoder.")]
    assert kept and all((old[k] == got[k]).all() for k in kept)          # encoder, denoiser, heads untouched
    assert (tmp_path / "dec" / "world_model.starts.npz").exists()


@pytest.mark.slow
def test_encode_dataset_then_a_new_denoiser_on_the_frozen_autoencoder(tmp_path, tiny_checkpoint, tiny_dataset):
    import torch
    from safetensors.torch import load_file

    from worldmodels.world_model import WorldModel

    root = "runs_root=" + str(tmp_path)
    memworld("encode-dataset", f"dataset={tiny_dataset[0]}", f"checkpoint={tiny_checkpoint}", "dtype=uint8",
             "progress=false", "run_name=enc", root, cwd=tmp_path)
    res = json.loads((tmp_path / "enc" / "results.json").read_text())
    enc = res["encoded"]
    assert res["frames"] == sum(len(e.frames) for e in tiny_dataset[1]) and res["rms_error_of_raw_std"] < 0.05
    wm = ["train.denoiser_steps=3", "train.batch=4", "heldout_episodes=1", "progress=false", "tensorboard=true",
          *TINY_MODEL, "model.channels=[8,8,24]", "model.cond_dim=24", root]
    # latents without the autoencoder that made them, or with another one, or two sources of weights
    other = WorldModel.load(tiny_checkpoint)
    with torch.no_grad():
        next(other.autoencoder.parameters()).view(-1)[0] += 0.1
    other.save(tmp_path / "other.safetensors")
    for bad, said in (([], "autoencoder_from=<checkpoint>"),
                      ([f"autoencoder_from={tmp_path / 'other.safetensors'}"], "encoded by another autoencoder"),
                      ([f"autoencoder_from={tiny_checkpoint}", f"init={tiny_checkpoint}"], "not both"),
                      ([f"autoencoder_from={tiny_checkpoint}", "model.latent_channels=3"], "model.latent_channels=4")):
        p = memworld("train-worldmodel", f"dataset={enc}", *bad, *wm, cwd=tmp_path, check=False)
        assert p.returncode != 0 and said in p.stdout + p.stderr, (bad, p.stderr[-500:])
    assert not any(tmp_path.glob("train-worldmodel-*"))
    memworld("train-worldmodel", f"dataset={enc}", f"autoencoder_from={tiny_checkpoint}", "run_name=new", *wm,
             cwd=tmp_path)
    out = tmp_path / "new" / "world_model.safetensors"
    new = WorldModel.load(out)
    assert new.cfg.denoiser.channels == (8, 8, 24) and new.meta["autoencoder_from"] == str(tiny_checkpoint)
    old, got = load_file(str(tiny_checkpoint)), load_file(str(out))
    kept = [k for k in old if k.startswith(("autoencoder.", "latent_"))]
    assert kept and all((old[k] == got[k]).all() for k in kept)        # the autoencoder and statistics, exactly
    assert new.cfg.sigma_data == WorldModel.load(tiny_checkpoint).cfg.sigma_data
    # no frames to cut starts from: the source checkpoint's start segments come along
    assert (tmp_path / "new" / "world_model.starts.npz").read_bytes() == \
        (tiny_checkpoint.parent / "tiny.starts.npz").read_bytes()
    # the same from the frames: the encoder runs in the trainer instead
    memworld("train-worldmodel", f"dataset={tiny_dataset[0]}", f"autoencoder_from={tiny_checkpoint}",
             "run_name=frames", *wm, cwd=tmp_path)
    assert WorldModel.load(tmp_path / "frames" / "world_model.safetensors").cfg.denoiser.cond_dim == 24


@pytest.mark.slow
def test_train_pose_refits_the_pose_head_with_the_previous_change_and_keeps_the_rest(tmp_path, tiny_checkpoint,
                                                                                     tiny_dataset):
    from safetensors.torch import load_file

    from worldmodels.pose_training import POSE_PARTS
    from worldmodels.world_model import WorldModel

    memworld("train-pose", f"init={tiny_checkpoint}", f"heldout={tiny_dataset[0]}", "heldout_episodes=1",
             "steps=30", "batch=16", "progress=false", "run_name=pose", "runs_root=" + str(tmp_path), cwd=tmp_path)
    res = json.loads((tmp_path / "pose" / "results.json").read_text())
    assert {"old", "new"} == set(res["heldout"]) and "pos_err_blocked" in res["heldout"]["new"]
    new = WorldModel.load(res["checkpoint"])
    assert new.cfg.heads.pose_prev and not WorldModel.load(tiny_checkpoint).cfg.heads.pose_prev
    old, got = load_file(str(tiny_checkpoint)), load_file(res["checkpoint"])
    assert any(k.startswith("heads.prev_act.") for k in got)
    kept = [k for k in old if not k.removeprefix("heads.").startswith(POSE_PARTS)]
    assert len(kept) < len(old) and all((old[k] == got[k]).all() for k in kept)   # only the pose head changed
    assert (tmp_path / "pose" / "world_model.starts.npz").exists()
    # the dream runs on it
    from envs.dream import DreamEnv
    env = DreamEnv(checkpoint=res["checkpoint"], memory="fov")
    env.reset(seed=0)
    assert env.step(2)[0].shape == (64, 64, 3)
    # a blocked head on top: the refitted pose head stays as it is
    memworld("train-pose", f"init={res['checkpoint']}", f"heldout={tiny_dataset[0]}", "heldout_episodes=1",
             "pose=false", "blocked=true", "steps=30", "batch=16", "progress=false", "run_name=blocked",
             "runs_root=" + str(tmp_path), cwd=tmp_path)
    res2 = json.loads((tmp_path / "blocked" / "results.json").read_text())
    assert "blocked_recall" in res2["heldout"]["new"] and "blocked_recall" not in res2["heldout"]["old"]
    both = WorldModel.load(res2["checkpoint"])
    assert both.cfg.heads.blocked and both.cfg.heads.pose_prev
    got2 = load_file(res2["checkpoint"])
    assert set(got2) - set(got) and all(k.startswith("heads.blocked_") for k in set(got2) - set(got))
    assert all((got[k] == got2[k]).all() for k in got)
    env = DreamEnv(checkpoint=res2["checkpoint"], memory="fov")
    env.reset(seed=0)
    assert env.step(2)[0].shape == (64, 64, 3)


@pytest.mark.slow
def test_train_depth_fits_a_depth_head_that_the_revisit_benchmark_moves_views_with(tmp_path, tiny_checkpoint):
    from safetensors.torch import load_file

    from worldmodels.world_model import WorldModel

    p = memworld("eval-revisit", f"dream.checkpoint={tiny_checkpoint}", "move=[fov]", "runs_root=" + str(tmp_path),
                 cwd=tmp_path, check=False)
    assert p.returncode != 0 and "has none (memworld train-depth)" in p.stderr + p.stdout
    memworld("train-depth", f"init={tiny_checkpoint}", "n_train=64", "n_heldout=16", "n_warp=16", "steps=5",
             "batch=8", "progress=false", "run_name=depth", "runs_root=" + str(tmp_path), cwd=tmp_path)
    res = json.loads((tmp_path / "depth" / "results.json").read_text())
    assert {"abs_rel", "rmse_log", "delta_1.25"} <= set(res["heldout"]) and res["warp"]["pairs"] > 0
    # the true depth moves a real view onto the real view at the new pose, better than a turn alone
    assert res["warp"]["true_depth_psnr"] > res["warp"]["turn_only_psnr"] + 3
    old, got = load_file(str(tiny_checkpoint)), load_file(res["checkpoint"])
    assert set(got) - set(old) and all(k.startswith("depth_net.") for k in set(got) - set(old))
    assert all((old[k] == got[k]).all() for k in old)                     # nothing else changed
    assert WorldModel.load(res["checkpoint"]).depth_net is not None
    assert (tmp_path / "depth" / "world_model.starts.npz").exists()
    memworld("eval-revisit", f"dream.checkpoint={res['checkpoint']}", "kinds=[turn_around]", "seeds_per_kind=1", "length=6",
             "memories=[none]", "reuse=[]", "turn=[]", "move=[fov]", "onestep_samples=0", "cost_repeats=0",
             "runs_root=" + str(tmp_path), cwd=tmp_path)
    assert "fov+reuse+move" in results_of(tmp_path, "eval-revisit")
