"""Numeric precision of forward passes: bf16 autocast where the device runs it natively."""

from __future__ import annotations

import torch

PRECISIONS = ("fp32", "bf16", "auto")


def check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be fp32, bf16 or auto, got {precision!r}")


def bf16_supported(device: torch.device) -> bool:
    """Whether ``device`` runs bfloat16 convolutions and matmuls natively (CUDA, or a CPU with AVX512-BF16/AMX)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        try:   # a private op: absent from some builds, where fp32 is the safe answer
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    return False


def uses_bf16(precision: str, device: torch.device) -> bool:
    """Whether ``precision`` (``fp32 | bf16 | auto``) means bf16 on ``device``."""
    check_precision(precision)
    return precision == "bf16" or (precision == "auto" and bf16_supported(device))


def autocast_for(precision: str, device: torch.device):
    """Autocast context for ``precision`` (``auto``: bf16 where the device runs it natively, else fp32)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=uses_bf16(precision, device))
