"""The loop's figures over seeds: real success and return against real frames per arm (mean, min-max), the
targets, one markdown table and tensorboard scalars under ``loop/`` (the plot: ``agents.plots``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

TARGET_SUCCESS = 0.95


def by_budget(curves: dict[int, list[dict]]) -> list[dict]:
    """Per real-frame budget (the schedule's; a collection may end a frame short of it), over the seeds that reached
    it: mean, min and max of real success and return, and the mean of the real frames actually used."""
    budgets = sorted({r["budget"] for c in curves.values() for r in c})
    rows = []
    for b in budgets:
        recs = [r for c in curves.values() for r in c if r["budget"] == b]
        succ = np.array([r["real_success_rate"] for r in recs])
        ret = np.array([r["real_return"] for r in recs])
        rows.append({"real_frames": int(b), "real_frames_used": float(np.mean([r["real_frames"] for r in recs])),
                     "seeds": len(recs), "success_mean": float(succ.mean()),
                     "success_min": float(succ.min()), "success_max": float(succ.max()),
                     "return_mean": float(ret.mean()), "return_min": float(ret.min()), "return_max": float(ret.max())})
    return rows


def first_reaching(rows: list[dict], level: float = TARGET_SUCCESS) -> int | None:
    """The smallest budget whose mean success is at least ``level`` (None: never)."""
    return next((r["real_frames"] for r in rows if r["success_mean"] >= level), None)


def targets(dream: list[dict], real: list[dict]) -> dict:
    """The issue's two targets: the dream arm reaches 0.95 on at most half the real arm's frames for 0.95; at every
    budget up to the real arm's 0.95 point the dream arm's mean is at least the real arm's. A dream budget is matched
    to the real arm's judgement at the same budget, or else the first after it (more real frames for the real arm:
    the conservative side). Budgets past the dream arm's last are not compared (it has no figure there);
    ``half_the_frames`` is false when the real arm never reaches 0.95."""
    d95, r95 = first_reaching(dream), first_reaching(real)
    half = d95 is not None and r95 is not None and d95 <= r95 / 2
    pairs = []
    for d in dream:
        after = [r for r in real if r["real_frames"] >= d["real_frames"]]
        if after and (r95 is None or d["real_frames"] <= r95):
            pairs.append((d["real_frames"], d["success_mean"], after[0]["success_mean"]))
    return {"dream_frames_to_0.95": d95, "real_frames_to_0.95": r95, "half_the_frames": bool(half),
            "dream_at_least_real_everywhere": bool(pairs) and all(a >= b for _, a, b in pairs),
            "compared_budgets": [{"real_frames": f, "dream": a, "real": b} for f, a, b in pairs]}


def markdown(rows: dict[str, list[dict]], seconds: dict[str, float]) -> str:
    """One table: per arm and budget, success and return (mean, min-max over seeds), and the arm's wall-clock."""
    out = ["| arm | real frames | seeds | real success: mean (min-max) | real return: mean (min-max) |",
           "| --- | --- | --- | --- | --- |"]
    for arm, rs in rows.items():
        for r in rs:
            out.append(f"| {arm} | {r['real_frames']:,} | {r['seeds']} | {r['success_mean']:.2f} "
                       f"({r['success_min']:.2f}-{r['success_max']:.2f}) | {r['return_mean']:.3f} "
                       f"({r['return_min']:.3f}-{r['return_max']:.3f}) |")
    out.append("")
    out.append("Wall-clock per seed (mean): " + ", ".join(f"{a} {s / 60:.1f} min" for a, s in seconds.items()))
    return "\n".join(out)


def log_tensorboard(curves: dict[str, dict[int, list[dict]]], rows: dict[str, list[dict]], logdir: Path) -> None:
    """``loop/<arm>/success`` and ``loop/<arm>/return`` per seed and their means, the step being real frames."""
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(logdir)) as w:
        for arm, per_seed in curves.items():
            for seed, curve in per_seed.items():
                for r in curve:
                    w.add_scalar(f"loop/{arm}/success_seed{seed}", r["real_success_rate"], r["real_frames"])
                    w.add_scalar(f"loop/{arm}/return_seed{seed}", r["real_return"], r["real_frames"])
            for r in rows[arm]:
                w.add_scalar(f"loop/{arm}/success_mean", r["success_mean"], r["real_frames"])
                w.add_scalar(f"loop/{arm}/return_mean", r["return_mean"], r["real_frames"])
