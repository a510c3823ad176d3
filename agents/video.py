"""Tensorboard videos without moviepy: frames -> animated GIF -> an image summary (what
tensorboard's own ``add_video`` writes)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np


def gif_bytes(frames: np.ndarray, fps: int = 10) -> bytes:
    """``frames (T, H, W, 3)`` uint8 -> GIF bytes."""
    import imageio.v2 as imageio

    buf = io.BytesIO()
    imageio.mimsave(buf, list(frames), format="GIF", duration=1 / fps, loop=0)
    return buf.getvalue()


def add_video(writer, tag: str, frames: np.ndarray, step: int, fps: int = 10) -> None:
    """Write ``frames (T, H, W, 3)`` as a tensorboard video (GIF image summary) with a ``SummaryWriter``."""
    from tensorboard.compat.proto.summary_pb2 import Summary

    t, h, w, c = frames.shape
    image = Summary.Image(height=h, width=w, colorspace=c, encoded_image_string=gif_bytes(frames, fps))
    writer.file_writer.add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)


def save_gif(frames: np.ndarray, path: str | Path, fps: int = 10) -> None:
    from worldmodels.checkpoint import atomic_write_bytes

    atomic_write_bytes(path, gif_bytes(frames, fps))
