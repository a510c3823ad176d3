"""``memworld demo``: the main job on the shipped default checkpoint, stage by stage, into one report.

Stages (each cached as ``stages/<name>.json`` in the run folder, so an interrupted demo
started again reuses what finished): collect real episodes, world-model figures on held-out
episodes, the revisit benchmark with every memory kind, PPO trained in the dream and judged
in the real env, dream throughput against the real env. Then ``report.html`` and
``results.json``; the headline figures and the report's path are printed last.
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
from experiments.runs import make_run_dir, save_config, write_results
from worldmodels.checkpoint import atomic_write_bytes

CONF = Path(__file__).parent / "conf"
CODE = Path(__file__).resolve().parent.parent
PACKAGES = ("envs", "worldmodels", "memory", "geometry", "agents", "experiments")
STAGES = ("collect", "worldmodel", "revisit", "agent", "throughput")


def command_config(name: str, **overrides: Any) -> DictConfig:
    """A command's yaml config (without Hydra's own keys) with ``overrides`` merged in."""
    cfg = OmegaConf.load(CONF / f"{name}.yaml")
    defaults = cfg.pop("defaults", [])
    cfg.pop("hydra", None)
    if {"dream": "base"} in defaults:     # the dream group's option is DreamConfig itself
        cfg = OmegaConf.merge({"dream": OmegaConf.structured(DreamConfig)}, cfg)
    if name == "train_agent":
        cfg.algo = OmegaConf.load(CONF / "algo" / "ppo.yaml")
    return OmegaConf.merge(cfg, overrides)


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
    print(f"[demo] {name} ...")
    res = fn()
    res["stage_seconds"] = time.perf_counter() - t0
    res["stage_key"] = key
    atomic_write_bytes(path, json.dumps(res, indent=2, default=_plain).encode())
    return res


def fingerprint(cfg: DictConfig, checkpoint: str | None, conf_dir: Path = CONF, code_root: Path | None = CODE) -> str:
    """sha256 of the demo config (without keys that do not change results), the commands' yaml configs
    the stages compose (a changed default, e.g. a new memory kind in eval_revisit.yaml, makes a cached
    stage stale), the source of memworld's packages (a fixed metric or sampler makes it stale too; any
    edit, a comment included, reruns the demo: stale figures would be worse; ``code_root=None`` leaves the
    code out) and the checkpoint's bytes."""
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
    if checkpoint is not None and Path(checkpoint).is_file():
        with open(checkpoint, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def _plain(x: Any) -> Any:
    try:
        return x.item()
    except AttributeError:
        return str(x)


def run_demo(cfg: DictConfig, run: Path) -> dict:
    from experiments.bench import bench_dream, bench_worldmodel
    from experiments.collect import CollectConfig, run_collect
    from experiments.eval_revisit import run_eval
    from experiments.train_agent import run_agent

    base = dream_config(cfg.dream)
    source, checkpoint = base.source, base.checkpoint
    if cfg.retrain:
        # keyed on the configs alone: an hour of training is not redone for a code edit (fresh=true redoes it)
        checkpoint = stage(run, "retrain", lambda: retrain(cfg, run), fingerprint(cfg, None, code_root=None))["checkpoint"]
    if checkpoint is None:
        checkpoint = str(base.checkpoint_path())
    # what the demo sets of the dream, over each command's own dream (the agent's task stays train_agent.yaml's)
    dream = {**changed(OmegaConf.to_container(cfg.dream), OmegaConf.to_container(OmegaConf.structured(DreamConfig))),
             "checkpoint": checkpoint}

    def collect():
        out = run / "real_episodes"
        shutil.rmtree(out, ignore_errors=True)  # an interrupted earlier try left no finished stage
        return run_collect(CollectConfig(env=source, policy="revisit", episodes=cfg.collect_episodes, seed=600_000,
                                         out=str(out), progress=cfg.progress), run)

    def worldmodel():
        from worldmodels.world_model import WorldModel
        model = WorldModel.load(checkpoint, source=source)
        bcfg = command_config("bench", target="worldmodel", dream=dream,
                              heldout=cfg.heldout, heldout_episodes=cfg.heldout_episodes,
                              samples=cfg.worldmodel_samples, seconds=1.0)
        return bench_worldmodel(bcfg, model)

    def revisit():
        out = run / "revisit"
        out.mkdir(exist_ok=True)
        rcfg = command_config("eval_revisit", dream={**dream, "compile": False}, heldout=cfg.heldout,
                              seeds_per_kind=cfg.revisit_seeds_per_kind, onestep_samples=0)
        return run_eval(rcfg, out)

    def agent():
        out = run / "agent"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        acfg = command_config("train_agent", dream=dream,
                              total_timesteps=cfg.agent_timesteps, n_envs=cfg.agent_envs,
                              eval_episodes=cfg.agent_eval_episodes, progress=cfg.progress,
                              eval_freq=max(1, cfg.agent_timesteps // 4))
        return run_agent(acfg, out)

    def throughput():
        dcfg = command_config("bench", target="dream", dream=dream,
                              worlds=list(cfg.bench_worlds), seconds=cfg.bench_seconds)
        return bench_dream(dcfg)

    results = {"checkpoint": checkpoint}
    fns = {"collect": collect, "worldmodel": worldmodel, "revisit": revisit, "agent": agent, "throughput": throughput}
    key = fingerprint(cfg, checkpoint)
    for name in STAGES:
        results[name] = stage(run, name, fns[name], key)
    return results


def retrain(cfg: DictConfig, run: Path) -> dict:
    """Collect the default dataset and train the default world model from scratch."""
    from experiments.collect import CollectConfig, run_collect
    from experiments.train_worldmodel import run_train

    tcfg = command_config("train_worldmodel", run_name=None, runs_root=str(run))
    steps = tcfg.train.ae_steps, tcfg.train.denoiser_steps
    print(f"[demo] retrain: collecting 200 episodes (~4 min) and training {steps[0]} autoencoder + {steps[1]} "
          f"denoiser steps: about 45-60 minutes on 2 CPU cores, minutes on a GPU")
    data = run / "train_dataset"
    if not data.exists():
        run_collect(CollectConfig(env=cfg.dream.source, policy="revisit", episodes=200, seed=1000, out=str(data)), run)
    tcfg.dataset = str(data)
    wm = run / "worldmodel"
    wm.mkdir(exist_ok=True)
    return run_train(tcfg, wm)


def revisit_entries(rv: dict) -> list[str]:
    """The memory kinds eval-revisit scored (``fov+reuse`` included), in its order."""
    return [m for m, v in rv.items() if isinstance(v, dict) and "revisit_psnr" in v]


def headline(res: dict) -> dict:
    rv, ag, th, wm = res["revisit"], res["agent"], res["throughput"], res["worldmodel"]
    mems = revisit_entries(rv)
    return {"onestep_psnr": wm["onestep_psnr"], "copy_psnr": wm["copy_psnr"], "ae_psnr": wm["ae_psnr"],
            **{f"revisit_psnr_{m}": rv[m]["revisit_psnr"] for m in mems},
            **{f"exact_revisit_psnr_{m}": rv[m]["exact_revisit_psnr"] for m in mems if "exact_revisit_psnr" in rv[m]},
            "best_memory": rv["best_memory"], "real_success_rate": ag["real_success_rate"],
            "dream_steps_per_s": th["dream_steps_per_s"], "real_steps_per_s": th["real_steps_per_s"]}


def build_report(run: Path, res: dict) -> Path:
    from experiments.report import image, table, write_report

    wm, rv, ag, th = res["worldmodel"], res["revisit"], res["agent"], res["throughput"]
    mems = revisit_entries(rv)
    wm_rows = [[k, wm[k]] for k in ("ae_psnr", "ae_psnr_pooled", "onestep_psnr", "copy_psnr", "onestep_sharpness",
                                    "rollout_psnr_h1", "rollout_psnr_h4", "rollout_psnr_h16", "pose_err_h16",
                                    "gflop_per_frame", "frames_per_s_b32", "train_minutes") if k in wm]
    samp = [[k, v["psnr"], v["sharpness"], v["frames_per_s"]] for k, v in wm.get("sampler_table", {}).items()]
    rv_rows = [[m, rv[m]["revisit_psnr"], rv[m]["revisit_ssim"], rv[m]["self_psnr"], rv[m]["nonrevisit_psnr"],
                rv[m].get("exact_revisit_psnr", float("nan")), rv[m]["steps_per_s"]] for m in mems]
    th_rows = [[n, th["dream_steps_per_s"][n], th["real_steps_per_s"][n]] for n in th["dream_steps_per_s"]]
    videos = sorted((run / "agent" / "videos").glob("*.gif")) if (run / "agent" / "videos").exists() else []
    curve = [[t, f["real_success_rate"], f["real_return"]] for t, f in ag.get("eval_history", [])]
    sections = [
        ("World model (held-out real episodes)", table(wm_rows, ["figure", "value"]) +
         table(samp, ["sampler_steps", "PSNR", "sharpness", "frames/s"])),
        ("Revisits: real | dream without memory | dream with the best memory",
         image(run / "revisit" / "revisit.gif", 384) + image(run / "revisit" / "psnr_vs_gap.png") +
         table(rv_rows, ["memory", "revisit PSNR", "revisit SSIM", "self PSNR", "non-revisit PSNR",
                         "revisit PSNR, same pose", "steps/s"])),
        ("Agent trained in the dream, judged in the real env",
         table([[k, ag[k]] for k in ("algo", "task", "dream_timesteps", "real_success_rate", "real_return",
                                     "dream_return", "real_frames_used")], ["figure", "value"]) +
         table(curve, ["dream steps", "real success", "real return"]) +
         "".join(image(v, 256, v.name) for v in videos[-2:])),
        ("Throughput (steps/s, same run)", table(th_rows, ["worlds", "dream", "real"]) +
         table([[k, th[k]] for k in ("gflop_per_step", "achieved_gflops", "ceiling_gflops", "rss_mb_start",
                                     "rss_mb_end")], ["figure", "value"])),
    ]
    return write_report(run / "report.html", "memworld demo report", sections, headline(res))


@hydra.main(config_path="conf", config_name="demo", version_base="1.3")
def main(cfg: DictConfig) -> None:
    torch.set_num_threads(int(cfg.threads))
    run = make_run_dir("demo", cfg.runs_root, cfg.run_name)
    if cfg.fresh and run.exists():
        for p in run.iterdir():
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    with RunLock(run):
        save_config(run, cfg)
        res = run_demo(cfg, run)
        report = build_report(run, res)
        write_results(run, {**headline(res), "report": str(report), "stages": {k: res[k] for k in STAGES}})
        print("\nheadline:")
        for k, v in headline(res).items():
            print(f"  {k}: {v}")
        print(f"report: {report.resolve()}")


if __name__ == "__main__":
    main()
