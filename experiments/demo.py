"""``memworld demo``: the main job on the shipped default checkpoint, stage by stage, into one report.

Stages (each cached as ``stages/<name>.json`` in the run folder, so an interrupted demo
started again reuses what finished): collect real episodes, world-model figures on held-out
episodes, the revisit benchmark with every memory kind, agents on "reach the red box from its room"
judged in the real env (the dream policy shipped beside the checkpoint, a short PPO run in the dream
and PPO in the real env, with their learning curves), dream throughput against the real env. Then
``report.html`` and ``results.json``; the headline, in words and rounded figures, is printed last.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from envs.dream.config import DreamConfig
from experiments.conf import dream_config
from experiments.configs import CONF, command_config
from experiments.demo_report import build_report, figures, headline
from experiments.runs import make_run_dir, save_config, write_results
from worldmodels.checkpoint import atomic_write_bytes

CODE = Path(__file__).resolve().parent.parent
PACKAGES = ("envs", "worldmodels", "memory", "geometry", "agents", "experiments")
STAGES = ("collect", "worldmodel", "revisit", "agent", "throughput")


def changed(d: dict, default: dict) -> dict:
    """The entries of ``d`` that differ from ``default``, nested dicts compared key by key."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and isinstance(default.get(k), dict):
            sub = changed(v, default[k])
            if sub:
                out[k] = sub
        elif v != default.get(k):
            out[k] = v
    return out


class RunLock:
    """One demo per run folder at a time: a lock file created exclusively; a dead owner's lock is taken over."""

    def __init__(self, run: Path):
        self.path = run / ".lock"

    def __enter__(self) -> "RunLock":
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            pid = int(self.path.read_text() or 0)
            if _alive(pid):
                raise RuntimeError(f"{self.path.parent} is in use by process {pid}; pass run_name=<another>") from None
            self.path.unlink()
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        return self

    def __exit__(self, *exc) -> None:
        self.path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def stage(run: Path, name: str, fn: Callable[[], dict], key: str = "") -> dict:
    """Run ``fn`` unless its result is cached under the same ``key``; cache it atomically.

    ``key`` fingerprints what the stage depends on (checkpoint bytes, demo config), so a
    demo rerun after the checkpoint or the config changed recomputes instead of reusing."""
    path = run / "stages" / f"{name}.json"
    if path.is_file():
        cached = json.loads(path.read_text())
        if cached.get("stage_key", "") == key:
            print(f"[demo] {name}: reusing {path}")
            return cached
        print(f"[demo] {name}: cached result is for another checkpoint, config or code; running it again")
    t0 = time.perf_counter()
    print(f"[demo] {name} ...", flush=True)
    res = fn()
    res["stage_seconds"] = time.perf_counter() - t0
    res["stage_key"] = key
    atomic_write_bytes(path, json.dumps(res, indent=2, default=_plain).encode())
    print(f"[demo] {name} done in {res['stage_seconds']:.0f} s", flush=True)
    return res


def fingerprint(cfg: DictConfig, checkpoint: str | None, conf_dir: Path = CONF, code_root: Path | None = CODE,
                files: tuple[str | None, ...] = ()) -> str:
    """sha256 of the demo config (without keys that do not change results), the commands' yaml configs
    the stages compose (a changed default, e.g. a new memory kind in eval_revisit.yaml, makes a cached
    stage stale), the source of memworld's packages (a fixed metric or sampler makes it stale too; any
    edit, a comment included, reruns the demo: stale figures would be worse; ``code_root=None`` leaves the
    code out), the checkpoint's bytes and those of ``files`` (the shipped policy)."""
    import hashlib

    h = hashlib.sha256()
    keep = {k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items()
            if k not in ("fresh", "progress", "runs_root", "run_name", "threads")}
    h.update(json.dumps(keep, sort_keys=True, default=str).encode())
    for path in sorted(conf_dir.rglob("*.yaml")):
        h.update(str(path.relative_to(conf_dir)).encode() + path.read_bytes())
    for pkg in PACKAGES if code_root is not None else ():
        for path in sorted((code_root / pkg).rglob("*.py")):
            if path.is_file():          # not an editor's dangling lock link
                h.update(str(path.relative_to(code_root)).encode() + path.read_bytes())
    for f in (checkpoint, *files):
        if f is not None and Path(f).is_file():
            with open(f, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
    return h.hexdigest()


def _plain(x: Any) -> Any:
    try:
        return x.item()
    except AttributeError:
        return str(x)


def run_demo(cfg: DictConfig, run: Path) -> dict:
    from agents.compare import Comparison, compare
    from envs.benchmarks.revisit import revisit_benchmark
    from envs.benchmarks.throughput import dream_throughput
    from envs.benchmarks.worldmodel import heldout_arrays, worldmodel_figures
    from envs.data.collection import CollectConfig, collect_dataset
    from experiments.configs import agent_config, revisit_config

    base = dream_config(cfg.dream)
    source, checkpoint = base.source, base.checkpoint
    if cfg.retrain:
        # keyed on the configs alone: an hour of training is not redone for a code edit (fresh=true redoes it)
        checkpoint = stage(run, "retrain", lambda: retrain(cfg, run), fingerprint(cfg, None, code_root=None))["checkpoint"]
    if checkpoint is None:
        checkpoint = str(base.checkpoint_path())
    # what the demo sets of the dream, over each command's own dream
    dream = {**changed(OmegaConf.to_container(cfg.dream), OmegaConf.to_container(OmegaConf.structured(DreamConfig))),
             "checkpoint": checkpoint}

    def collect():
        out = run / "real_episodes"
        shutil.rmtree(out, ignore_errors=True)  # an interrupted earlier try left no finished stage
        return collect_dataset(CollectConfig(env=source, policy="revisit", episodes=cfg.collect_episodes, seed=600_000,
                                             out=str(out), progress=cfg.progress), run)

    def worldmodel():
        from worldmodels.world_model import WorldModel

        bench = command_config("bench")
        model = WorldModel.load(checkpoint, source=source)
        arr = heldout_arrays(cfg.heldout, source, cfg.heldout_episodes)
        return worldmodel_figures(model, arr, cfg.worldmodel_samples, bench.rollout_starts, seconds=1.0)

    def revisit():
        out = run / "revisit"
        out.mkdir(exist_ok=True)
        rcfg = command_config("eval_revisit", dream={**dream, "compile": False}, heldout=cfg.heldout,
                              seeds_per_kind=cfg.revisit_seeds_per_kind, onestep_samples=0)
        return revisit_benchmark(revisit_config(rcfg), dream_config(rcfg.dream), out)

    def agent():
        out = run / "agent"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        a = cfg.agent
        acfg = command_config("train_agent", dream={**dream, "task": OmegaConf.to_container(a.task),
                                                    "max_episode_steps": a.max_episode_steps},
                              algo={"hyperparams": OmegaConf.to_container(a.hyperparams)},
                              total_timesteps=max(1, a.dream_steps), n_envs=a.envs, eval_freq=a.eval_every,
                              eval_episodes=a.eval_episodes, video_every=0, checkpoint_every=0)
        return compare(Comparison(agent_config(acfg), policy, a.policy_episodes, dream_steps=a.dream_steps,
                                  real_frames=a.real_frames, print_every=a.print_every), out)

    def throughput():
        return dream_throughput(dream_config(command_config("bench", dream=dream).dream), list(cfg.bench_worlds),
                                cfg.bench_seconds)

    results = {"checkpoint": checkpoint}
    policy = shipped(cfg.agent.policy)
    fns = {"collect": collect, "worldmodel": worldmodel, "revisit": revisit, "agent": agent, "throughput": throughput}
    key = fingerprint(cfg, checkpoint, files=(policy,))
    for name in STAGES:
        results[name] = stage(run, name, fns[name], key)
    return results


def shipped(path: str | None) -> str | None:
    """A file named relative to the working directory or, failing that, to the project (``checkpoints/...``)."""
    if path is None or Path(path).exists() or Path(path).is_absolute():
        return path
    return str(CODE / path) if (CODE / path).exists() else path


def retrain(cfg: DictConfig, run: Path) -> dict:
    """Collect the default dataset and train the default world model from scratch."""
    from envs.data.collection import CollectConfig, collect_dataset
    from envs.data.training import train_world_model
    from experiments.configs import worldmodel_training

    data = run / "train_dataset"
    if not data.exists():
        print("[demo] retrain: collecting 200 episodes (~4 min)")
        collect_dataset(CollectConfig(env=cfg.dream.source, policy="revisit", episodes=200, seed=1000, out=str(data)),
                        run)
    training = worldmodel_training(command_config("train_worldmodel", dataset=str(data)),
                                  command=f"memworld train-worldmodel dataset={data} (memworld demo retrain=true)")
    print(f"[demo] retrain: {training.train.ae_steps} autoencoder + {training.train.denoiser_steps} denoiser steps: "
          f"about 45-60 minutes on 2 CPU cores, minutes on a GPU")
    wm = run / "worldmodel"
    wm.mkdir(exist_ok=True)
    return train_world_model(training, wm)


@hydra.main(config_path="conf", config_name="demo", version_base="1.3")
def main(cfg: DictConfig) -> None:
    torch.set_num_threads(int(cfg.threads))
    run = make_run_dir("demo", cfg.runs_root, cfg.run_name)
    if cfg.fresh and run.exists():
        for p in run.iterdir():
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    with RunLock(run):
        save_config(run, cfg)
        t0 = time.perf_counter()
        res = run_demo(cfg, run)
        report = build_report(run, res)
        lines = headline(res)
        write_results(run, {**figures(res), "headline": lines, "report": str(report),
                            "wall_seconds": time.perf_counter() - t0, "stages": {k: res[k] for k in STAGES}})
        print("\nheadline:")
        for line in lines:
            print(f"  {line['what']}: {line['figure']}\n      {line['meaning']}")
        print(f"report: {report.resolve()}")


if __name__ == "__main__":
    main()
