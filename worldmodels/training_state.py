"""Training state on disk: atomic torch checkpoints for resume, EMA, NaN guard, stop signals."""

from __future__ import annotations

import copy
import io
import math
import signal
from pathlib import Path
from typing import Any

import torch
from torch import nn

from worldmodels.checkpoint import CheckpointError, atomic_write_bytes


class TrainingDiverged(RuntimeError):
    """The loss became NaN or inf; the last good checkpoint is kept."""


def check_finite(loss: torch.Tensor, what: str, step: int) -> None:
    if not math.isfinite(float(loss.detach())):
        raise TrainingDiverged(f"{what} loss is {float(loss.detach())} at step {step}; stopped, last good checkpoint kept")


def save_state(path: str | Path, state: dict[str, Any]) -> None:
    """``torch.save`` to a temporary file, fsync, rename."""
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_state(path: str | Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"training state {path} is corrupt: {exc}") from exc


class EMA:
    """Exponential moving average of a module's parameters (used for sampling)."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.shadow = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for s, p in zip(self.shadow.parameters(), model.parameters()):
            s.lerp_(p.detach(), 1 - self.decay)
        for s, b in zip(self.shadow.buffers(), model.buffers()):
            s.copy_(b)


class StopFlag:
    """Set by SIGINT/SIGTERM so the loop can checkpoint and leave cleanly."""

    def __init__(self):
        self.stop = False
        self._old = {}

    def __enter__(self) -> StopFlag:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not in the main thread
                pass
        return self

    def _handle(self, signum, frame) -> None:
        self.stop = True

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
