"""The agents' headline plot: real success rate against steps or real frames, one line (or star) per agent."""

from __future__ import annotations

from pathlib import Path


def plot_success_vs_real_frames(series: dict[str, list[tuple[float, float]]], path: Path,
                                xlabel: str = "real frames used") -> None:
    """Real success rate against ``xlabel`` (real frames used by default), one line per agent; an agent at a single
    point (a dream agent at its world model's real-frame budget) is a star drawn on top of the lines."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for label, pts in series.items():
        xs, ys = zip(*pts) if pts else ((), ())
        one = len(pts) == 1
        ax.plot(xs, ys, marker="*" if one else "o", markersize=14 if one else 5, zorder=3 if one else 2, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("real success rate")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
