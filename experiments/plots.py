"""Figures the commands save beside their results.json."""

from __future__ import annotations

from pathlib import Path


def plot_success_vs_real_frames(series: dict[str, list[tuple[float, float]]], path: Path) -> None:
    """Real success rate against real frames used, one line (or point) per agent: the headline plot."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for label, pts in series.items():
        xs, ys = zip(*pts) if pts else ((), ())
        one = len(pts) == 1   # an agent at a single real-frame budget: a star drawn on top of the lines
        ax.plot(xs, ys, marker="*" if one else "o", markersize=14 if one else 5, zorder=3 if one else 2, label=label)
    ax.set_xlabel("real frames used")
    ax.set_ylabel("real success rate")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
