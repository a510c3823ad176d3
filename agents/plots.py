"""The agents' headline plots: real success rate against steps or real frames, one line (or star) per agent, or
mean lines with min-max bands over seeds."""

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
    _finish(fig, ax, path, xlabel)


def plot_success_bands(rows: dict[str, list[dict]], path: Path, level: float | None = None) -> None:
    """Real success against real frames: per series a mean line and a min-max band (``rows[label]``: dicts with
    ``real_frames``, ``success_mean``, ``success_min``, ``success_max``), a dashed line at ``level``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.8))
    for label, rs in rows.items():
        x = [r["real_frames"] for r in rs]
        line, = ax.plot(x, [r["success_mean"] for r in rs], marker="o", label=label)
        ax.fill_between(x, [r["success_min"] for r in rs], [r["success_max"] for r in rs], alpha=0.2,
                        color=line.get_color())
    if level is not None:
        ax.axhline(level, color="grey", lw=0.8, ls="--")
    _finish(fig, ax, path, "real frames used")


def _finish(fig, ax, path: Path, xlabel: str) -> None:
    import matplotlib.pyplot as plt

    ax.set_xlabel(xlabel)
    ax.set_ylabel("real success rate")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
