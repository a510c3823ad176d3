"""Figures of the revisit benchmark: PSNR against steps since the last visit, a GIF of real | no memory | best
memory, and the markdown tables of ``results.md``."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def plot_gaps(gaps: dict[str, list[tuple[int, float]]], path: Path,
              bins: tuple[int, ...] = (5, 10, 20, 30, 45, 70)) -> None:
    """Revisit PSNR by steps since the last visit, one line per dream run (pairs from ``score``), in ``bins``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    bins = np.asarray(bins)
    for kind, pairs in gaps.items():
        g = np.array([x for x, _ in pairs])
        v = np.array([y for _, y in pairs])
        centers, means = [], []
        for lo, hi in zip(bins[:-1], bins[1:]):
            sel = (g >= lo) & (g < hi)
            if sel.any():
                centers.append((lo + hi) / 2), means.append(np.minimum(v[sel], 100).mean())
        ax.plot(centers, means, marker="o", label=kind)
    ax.set_xlabel("steps since last visit")
    ax.set_ylabel("PSNR vs real view (dB)")
    ax.set_title("Revisit PSNR by memory kind")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_gif(real: np.ndarray, none: np.ndarray, best: np.ndarray, path: Path) -> None:
    """Three ``(T, 64, 64, 3)`` clips side by side as one animated GIF."""
    import imageio.v2 as imageio

    frames = [np.concatenate([r, n, b], axis=1) for r, n, b in zip(real, none, best)]
    imageio.mimsave(path, frames, duration=0.12, loop=0)


def markdown_table(res: dict) -> str:
    """The benchmark's results as markdown tables: per run, by path kind, by first visit, memory cost."""
    rows = ["| memory | revisit PSNR | revisit SSIM | self PSNR | non-revisit PSNR | exact revisit PSNR | steps/s | "
            "pose error (mean / final) |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for kind, r in res.items():
        if isinstance(r, dict) and "revisit_psnr" in r:
            rows.append(f"| {kind} | {r['revisit_psnr']:.2f} | {r['revisit_ssim']:.3f} | {r['self_psnr']:.2f} | "
                        f"{r['nonrevisit_psnr']:.2f} | {r.get('exact_revisit_psnr', float('nan')):.2f} | "
                        f"{r['steps_per_s']:.0f} | "
                        f"{r['pose_err_mean']:.3f} / {r['pose_err_final']:.3f} |")
    kinds = list(res.get("copy_bound_psnr_by_path", {}))
    if kinds:       # where the revisit PSNR is lost, and how close a perfect copy would get there
        rows += ["", "| revisit PSNR by path | " + " | ".join(kinds) + " |", "| --- |" + " --- |" * len(kinds)]
        for kind, r in res.items():
            if isinstance(r, dict) and "revisit_psnr_by_path" in r:
                rows.append(f"| {kind} | " + " | ".join(f"{r['revisit_psnr_by_path'].get(k, float('nan')):.2f}"
                                                          for k in kinds) + " |")
        rows.append("| copy bound | " + " | ".join(f"{res['copy_bound_psnr_by_path'][k]:.2f}" for k in kinds) + " |")
    groups = [g for g in ("context", "dream") if any(g in r.get("exact_revisit_frames_by_first_visit", {})
                                                     for r in res.values() if isinstance(r, dict))]
    if groups:      # back at the same pose: a place whose real view is in memory, or one the dream drew itself
        rows += ["", "| same pose, first seen in | " + " | ".join(groups) + " |", "| --- |" + " --- |" * len(groups)]
        for kind, r in res.items():
            if isinstance(r, dict) and "exact_revisit_psnr_by_first_visit" in r:
                rows.append(f"| {kind} | " + " | ".join(
                    f"{r['exact_revisit_psnr_by_first_visit'].get(g, float('nan')):.2f} "
                    f"({r['exact_revisit_frames_by_first_visit'].get(g, 0)})" for g in groups) + " |")
    if res.get("memory_cost_by_kind"):     # steps/s measured in turns against the memoryless dream
        rows += ["", "| memory | paired steps/s | cost |", "| --- | --- | --- |"]
        sps = res["memory_cost_steps_per_s"]
        rows += [f"| {m} | {sps[m]:.0f} | {c:.1%} |" for m, c in res["memory_cost_by_kind"].items()]
    return "\n".join(rows) + "\n"
