"""The demo's front door: the headline in plain words and rounded figures (what the dream draws, what memory buys
on revisits, what the agent achieves in the real env against the baseline, dream against real speed), each with one
line saying what it means; then the report with the raw figures below."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def revisit_entries(rv: dict) -> list[str]:
    """The memory kinds eval-revisit scored (``fov+reuse`` included), in its order."""
    return [m for m, v in rv.items() if isinstance(v, dict) and "revisit_psnr" in v]


def _by_worlds(d: dict) -> dict[int, float | None]:
    """Steps/s by number of worlds; a cached stage's JSON has the numbers as strings."""
    return {int(n): v for n, v in d.items()}


def _arms(ag: dict) -> tuple[dict | None, dict | None, dict | None]:
    return ag.get("policy"), ag.get("dream_run"), ag.get("baseline")


def figures(res: dict) -> dict[str, Any]:
    """The demo's figures, raw and flat (results.json; every stage's own figures go below them)."""
    rv, ag, th, wm = res["revisit"], res["agent"], res["throughput"], res["worldmodel"]
    mems = revisit_entries(rv)
    policy, dream_run, baseline = _arms(ag)
    return {"onestep_psnr": wm["onestep_psnr"], "copy_psnr": wm["copy_psnr"], "ae_psnr": wm["ae_psnr"],
            **{f"revisit_psnr_{m}": rv[m]["revisit_psnr"] for m in mems},
            **{f"exact_revisit_psnr_{m}": rv[m]["exact_revisit_psnr"] for m in mems if "exact_revisit_psnr" in rv[m]},
            "best_memory": rv["best_memory"], "revisit_gain_db": rv["revisit_gain_db"],
            "real_success_rate": ag["real_success_rate"],
            "shipped_policy_real_success_rate": policy and policy["real_success_rate"],
            "shipped_policy_dream_steps": policy and (policy["trained"] or {}).get("dream_timesteps"),
            "demo_dream_run_real_success_rate": dream_run and dream_run["real_success_rate"],
            "demo_dream_run_dream_steps": dream_run and dream_run["dream_timesteps"],
            "baseline_real_success_rate": baseline and baseline["baseline_real_success_rate"],
            "baseline_real_frames": baseline and baseline["baseline_real_frames"],
            "dream_agent_real_frames": ag["real_frames_of_world_model"],
            "dream_steps_per_s": th["dream_steps_per_s"], "real_steps_per_s": th["real_steps_per_s"],
            "stage_seconds": {k: res[k]["stage_seconds"] for k in ("collect", "worldmodel", "revisit", "agent",
                                                                   "throughput") if k in res}}


def headline(res: dict) -> list[dict[str, str]]:
    """Four lines, each ``{"what", "figure", "meaning"}``, in plain words and rounded figures."""
    rv, ag, th, wm = res["revisit"], res["agent"], res["throughput"], res["worldmodel"]
    gain = wm["onestep_psnr"] - wm["copy_psnr"]
    lines = [{"what": "what the dream draws",
              "figure": f"the next frame at {wm['onestep_psnr']:.1f} dB PSNR, against {wm['copy_psnr']:.1f} dB for "
                        f"repeating the last frame ({gain:+.1f} dB)",
              "meaning": ("it predicts what an action changes, not only what was there (PSNR: closeness to the real "
                          "frame, higher is closer)") if gain > 0 else
                         "it is no better than repeating the last frame: the model has not learnt the scene"}]
    best, none = rv["best_memory"], "none" if "none" in rv else revisit_entries(rv)[0]
    lines.append({"what": "what memory buys on revisits",
                  "figure": f"revisited places at {rv[best]['revisit_psnr']:.1f} dB with memory ({best}), "
                            f"{rv[none]['revisit_psnr']:.1f} dB without ({rv['revisit_gain_db']:+.1f} dB)",
                  "meaning": "coming back to a place, the dream with memory draws it as it was; without memory it "
                             "makes the place up again"})
    lines.append(_agent_line(ag))
    dream, real = _by_worlds(th["dream_steps_per_s"]), _by_worlds(th["real_steps_per_s"])
    n = max(dream, key=dream.get)
    ratio = dream[n] / real[n] if real.get(n) else None
    lines.append({"what": "dream against real speed",
                  "figure": f"{dream[n]:.0f} dream steps/s with {n} worlds at once, real MiniWorld "
                            + (f"{real[n]:.0f} steps/s" if real.get(n) else "not measured"),
                  "meaning": (f"the dream steps {ratio:.1f}x as fast as the real simulator (one network call moves "
                              f"all {n} worlds)") if ratio else "the real simulator was not timed"})
    return lines


def _agent_line(ag: dict) -> dict[str, str]:
    policy, dream_run, baseline = _arms(ag)
    task = "reach the red box" + (" from its room" if ag["task"].get("start_region") else "")
    parts, real_frames = [], ag["real_frames_of_world_model"]
    if policy:
        steps = (policy["trained"] or {}).get("dream_timesteps")
        trained = f" ({steps:,} dream steps, shipped)" if steps else ""
        parts.append(f"PPO trained only in the dream{trained}: {policy['real_success_rate']:.0%} of "
                     f"{policy['real_episodes']} real episodes")
    if dream_run:
        who = "this demo's short run" if policy else "PPO trained only in the dream"
        parts.append(f"{who}, {dream_run['dream_timesteps']:,} dream steps: {dream_run['real_success_rate']:.0%}")
    if baseline:
        parts.append(f"PPO in the real env, {baseline['baseline_real_frames']:,} real frames: "
                     f"{baseline['baseline_real_success_rate']:.0%}")
    frames = f"{real_frames:,}" if real_frames else "an unknown number of"
    meaning = (f"success = {task} within {ag['max_episode_steps']} steps; the dream agents used no real frame of their "
               f"own, only the {frames} real frames the world model learnt from")
    if baseline:
        meaning += f", the baseline {baseline['baseline_real_frames']:,} of its own"
    return {"what": f"what the agent achieves in the real env ({task})", "figure": "; ".join(parts) or "no agent ran",
            "meaning": meaning}


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
    dream, real = _by_worlds(th["dream_steps_per_s"]), _by_worlds(th["real_steps_per_s"])
    th_rows = [[n, dream[n], real[n]] for n in dream]
    policy, dream_run, baseline = _arms(ag)
    wm_frames = ag["real_frames_of_world_model"]
    arms = []
    if policy:
        tr = policy["trained"] or {}
        arms.append([f"{ag['algo']} in the dream, shipped ({Path(policy['path']).name})", wm_frames,
                     tr.get("dream_timesteps"), policy["real_success_rate"], policy["real_return"],
                     policy["real_episodes"]])
    if dream_run:
        last = dream_run["eval_history"][-1][1] if dream_run["eval_history"] else {}
        arms.append([f"{ag['algo']} in the dream, this demo", wm_frames, dream_run["dream_timesteps"],
                     dream_run["real_success_rate"], dream_run["real_return"], last.get("real_episodes")])
    if baseline:
        last = baseline["baseline_eval_history"][-1][1] if baseline["baseline_eval_history"] else {}
        arms.append([f"{ag['algo']} in the real env (baseline)", baseline["baseline_real_frames"], 0,
                     baseline["baseline_real_success_rate"], baseline["baseline_real_return"], last.get("real_episodes")])
    curves = [[name, t, f["real_success_rate"]] for name, hist in
              (("dream, this demo (dream steps)", dream_run and dream_run["eval_history"]),
               ("real env (real frames)", baseline and baseline["baseline_eval_history"])) for t, f in hist or []]
    stages = [[k, res[k]["stage_seconds"]] for k in ("collect", "worldmodel", "revisit", "agent", "throughput")]
    sections = [
        ("World model (held-out real episodes)", table(wm_rows, ["figure", "value"]) +
         table(samp, ["sampler_steps", "PSNR", "sharpness", "frames/s"])),
        ("Revisits: real | dream without memory | dream with the best memory",
         image(run / "revisit" / "revisit.gif", 384) + image(run / "revisit" / "psnr_vs_gap.png") +
         table(rv_rows, ["memory", "revisit PSNR", "revisit SSIM", "self PSNR", "non-revisit PSNR",
                         "revisit PSNR, same pose", "steps/s"])),
        (f"Agents on '{ag['task']['name']}' (start region {ag['task'].get('start_region')}), judged in the real env",
         table(arms, ["agent", "real frames (world model's, or its own)", "dream steps", "real success",
                      "real return", "real episodes"]) +
         image(run / "agent" / "success_vs_steps.png") +
         table(curves, ["learning curve", "steps", "real success"])),
        ("Throughput (steps/s, same run)", table(th_rows, ["worlds", "dream", "real"]) +
         table([[k, th[k]] for k in ("gflop_per_step", "achieved_gflops", "ceiling_gflops", "rss_mb_start",
                                     "rss_mb_end")], ["figure", "value"])),
        ("Time per stage (seconds)", table(stages, ["stage", "seconds"])),
    ]
    return write_report(run / "report.html", "memworld demo report", sections, headline(res), figures(res))
