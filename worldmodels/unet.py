"""Denoiser backbone: a small U-Net on latents, conditioned on context, actions and memory.

Inputs (all batched by ``B``): the scaled noisy latent ``(B, C, H, W)``, ``c_noise (B,)``,
context latents ``(B, K, C, H, W)`` stacked on channels, context actions ``(B, K)``
embedded into adaptive group norm with the noise level and the context-augmentation
level ``(B,)``, and optional memory latents ``(B, M, C, H, W)`` with poses relative to
the target pose ``(B, M, 3)`` and a validity mask ``(B, M)``, read by cross-attention at
the middle resolution; the memory frame nearest the target pose is also stacked on the
input planes. With ``M = 0`` (or an all-false mask) it is a plain next-frame model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from geometry import nearest_pose


@dataclass
class DenoiserConfig:
    """Backbone size and conditioning."""

    latent_channels: int = 4
    context: int = 4                      # K context frames and actions
    n_actions: int = 3
    channels: tuple[int, ...] = (40, 80, 160)  # at 16x16, 8x8, 4x4
    cond_dim: int = 192
    memory: bool = True                   # build the memory cross-attention
    memory_heads: int = 4
    memory_pos: bool = True               # 2D position code on queries and memory tokens (spatial copy)
    memory_stack: bool = True             # also stack the nearest-pose memory frame on the input channels


class FourierEmbedding(nn.Module):
    """Random Fourier features of a scalar (as in EDM's ``FourierEmbedding``)."""

    def __init__(self, dim: int, scale: float = 4.0):
        super().__init__()
        self.register_buffer("freqs", torch.randn(dim // 2) * scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = 2 * math.pi * x[:, None] * self.freqs[None]
        return torch.cat([f.cos(), f.sin()], dim=1)


class AdaResBlock(nn.Module):
    """Residual block whose group norms are scaled and shifted by the conditioning vector."""

    def __init__(self, c_in: int, c_out: int, cond_dim: int):
        super().__init__()
        self.norm1, self.norm2 = nn.GroupNorm(8, c_in), nn.GroupNorm(8, c_out)
        self.conv1, self.conv2 = nn.Conv2d(c_in, c_out, 3, padding=1), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.ada1, self.ada2 = nn.Linear(cond_dim, 2 * c_in), nn.Linear(cond_dim, 2 * c_out)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        nn.init.zeros_(self.conv2.weight), nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        s1, b1 = self.ada1(cond)[:, :, None, None].chunk(2, dim=1)
        h = self.conv1(F.silu(self.norm1(x) * (1 + s1) + b1))
        s2, b2 = self.ada2(cond)[:, :, None, None].chunk(2, dim=1)
        h = self.conv2(F.silu(self.norm2(h) * (1 + s2) + b2))
        return self.skip(x) + h


def sincos_2d(h: int, w: int, dim: int, device: torch.device | None = None) -> torch.Tensor:
    """Fixed 2D sine-cosine position code ``(h*w, dim)`` (ViT/MAE style): half the channels for rows, half for columns."""
    q = dim // 4
    freqs = 1.0 / (100.0 ** (torch.arange(q, device=device, dtype=torch.float32) / max(q, 1)))
    ys, xs = torch.meshgrid(torch.arange(h, device=device, dtype=torch.float32),
                            torch.arange(w, device=device, dtype=torch.float32), indexing="ij")
    parts = [f(c.reshape(-1, 1) * freqs[None]) for c in (ys, xs) for f in (torch.sin, torch.cos)]
    code = torch.cat(parts, 1)
    return F.pad(code, (0, dim - code.shape[1]))


class MemoryCrossAttention(nn.Module):
    """Feature map tokens attend to memory-frame tokens tagged with their relative pose.

    With ``pos=True`` queries and memory tokens share a 2D position code, so a memory frame
    taken at the target pose can be copied place by place (without it, attention could
    only match by content, and a revisit's stored frame went unused)."""

    def __init__(self, channels: int, latent_channels: int, heads: int, pos: bool = True):
        super().__init__()
        self.heads = heads
        self.pos = nn.Linear(channels, channels) if pos else None
        self.mem_in = nn.Sequential(nn.Conv2d(latent_channels, channels, 3, stride=2, padding=1), nn.SiLU(),
                                    nn.Conv2d(channels, channels, 3, padding=1))
        self.pose_mlp = nn.Sequential(nn.Linear(4, channels), nn.SiLU(), nn.Linear(channels, channels))
        self.norm = nn.GroupNorm(8, channels)
        self.q, self.kv = nn.Linear(channels, channels), nn.Linear(channels, 2 * channels)
        self.out = nn.Linear(channels, channels)
        nn.init.zeros_(self.out.weight), nn.init.zeros_(self.out.bias)

    def forward(self, h: torch.Tensor, mem: torch.Tensor, rel_pose: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, c, hh, ww = h.shape
        m = mem.shape[1]
        tok = self.mem_in(mem.flatten(0, 1))                      # (B*M, c, hh, ww)
        pose_feat = torch.stack([rel_pose[..., 0], rel_pose[..., 1],
                                 rel_pose[..., 2].cos(), rel_pose[..., 2].sin()], -1)
        tok = tok.flatten(2).transpose(1, 2).reshape(b, m, hh * ww, c) + self.pose_mlp(pose_feat)[:, :, None]
        hq = self.norm(h).flatten(2).transpose(1, 2)              # (B, hh*ww, c)
        if self.pos is not None:
            code = self.pos(sincos_2d(hh, ww, c, h.device).to(h.dtype))
            tok, hq = tok + code, hq + code
        kv = self.kv(tok.reshape(b, m * hh * ww, c))
        q = self.q(hq)
        k, v = kv.chunk(2, dim=-1)
        split = lambda t: t.reshape(b, -1, self.heads, c // self.heads).transpose(1, 2)
        key_mask = mask[:, :, None].expand(b, m, hh * ww).reshape(b, 1, 1, m * hh * ww)
        any_valid = mask.any(dim=1)
        # A world with no valid memory attends to a dummy key and its output is zeroed below.
        key_mask = key_mask | ~any_valid[:, None, None, None]
        a = F.scaled_dot_product_attention(split(q), split(k), split(v), attn_mask=key_mask)
        a = self.out(a.transpose(1, 2).reshape(b, hh * ww, c)) * any_valid[:, None, None].to(h.dtype)
        return h + a.transpose(1, 2).reshape(b, c, hh, ww)


#: channels the nearest memory frame adds to the stem besides its latent: dx, dy, cos dyaw, sin dyaw, valid
NEAREST_POSE_CHANNELS = 5


def nearest_memory(memory: torch.Tensor, rel_pose: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The valid memory frame closest in pose to the target, as input planes ``(B, C + 5, H, W)``.

    ``memory (B, M, C, H, W)``, ``rel_pose (B, M, 3)``, ``mask (B, M)``. At full resolution a
    stored view of the same place can be copied by convolutions alone, which attention at
    half resolution did poorly (an exact stored target gave 25 dB with the context removed)."""
    b, _, c, h, w = memory.shape
    _, j = nearest_pose(rel_pose, mask)
    ar = torch.arange(b, device=memory.device)
    ok = mask.any(1).to(memory.dtype)
    p = rel_pose[ar, j]
    feats = torch.stack([p[:, 0], p[:, 1], p[:, 2].cos(), p[:, 2].sin(), torch.ones_like(ok)], 1) * ok[:, None]
    lat = memory[ar, j] * ok[:, None, None, None]
    return torch.cat([lat, feats[:, :, None, None].expand(b, NEAREST_POSE_CHANNELS, h, w)], 1)


class DenoiserUNet(nn.Module):
    """Three-level U-Net on latents: ``F(c_in * x, c_noise, cond) -> (B, C, H, W)``."""

    def __init__(self, cfg: DenoiserConfig):
        super().__init__()
        self.cfg = cfg
        c0, c1, c2 = cfg.channels
        lc, k, d = cfg.latent_channels, cfg.context, cfg.cond_dim
        self.noise_emb, self.aug_emb = FourierEmbedding(d), FourierEmbedding(d)
        self.act_emb = nn.Embedding(cfg.n_actions, 32)
        self.cond_mlp = nn.Sequential(nn.Linear(2 * d + 32 * k, d), nn.SiLU(), nn.Linear(d, d))
        self.stack = cfg.memory and cfg.memory_stack
        self.stem = nn.Conv2d(lc * (k + 1) + (lc + NEAREST_POSE_CHANNELS if self.stack else 0), c0, 3, padding=1)
        self.enc0, self.enc1, self.enc2 = AdaResBlock(c0, c0, d), AdaResBlock(c1, c1, d), AdaResBlock(c2, c2, d)
        self.down0, self.down1 = nn.Conv2d(c0, c1, 3, stride=2, padding=1), nn.Conv2d(c1, c2, 3, stride=2, padding=1)
        self.mid = AdaResBlock(c2, c2, d)
        self.up1, self.up0 = nn.Conv2d(c2, c1, 3, padding=1), nn.Conv2d(c1, c0, 3, padding=1)
        self.dec1, self.dec0 = AdaResBlock(2 * c1, c1, d), AdaResBlock(2 * c0, c0, d)
        self.memory = MemoryCrossAttention(c1, lc, cfg.memory_heads, cfg.memory_pos) if cfg.memory else None
        self.out = nn.Sequential(nn.GroupNorm(8, c0), nn.SiLU(), nn.Conv2d(c0, lc, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight), nn.init.zeros_(self.out[-1].bias)

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor, context: torch.Tensor, actions: torch.Tensor,
                aug: torch.Tensor | None = None, memory: torch.Tensor | None = None,
                memory_pose: torch.Tensor | None = None, memory_mask: torch.Tensor | None = None) -> torch.Tensor:
        b, k, c, h, w = context.shape
        aug = torch.zeros(b, device=x.device) if aug is None else aug
        cond = torch.cat([self.noise_emb(c_noise), self.aug_emb(aug), self.act_emb(actions).reshape(b, -1)], 1)
        cond = self.cond_mlp(cond)
        has_memory = self.memory is not None and memory is not None and memory.shape[1] > 0
        if has_memory:
            mask = torch.ones(memory.shape[:2], dtype=torch.bool, device=x.device) if memory_mask is None else memory_mask
        planes = [x, context.reshape(b, k * c, h, w)]
        if self.stack:
            planes.append(nearest_memory(memory, memory_pose, mask) if has_memory
                          else x.new_zeros(b, c + NEAREST_POSE_CHANNELS, h, w))
        h0 = self.enc0(self.stem(torch.cat(planes, 1)), cond)
        h1 = self.enc1(self.down0(h0), cond)
        if has_memory:
            h1 = self.memory(h1, memory, memory_pose, mask)
        h2 = self.mid(self.enc2(self.down1(h1), cond), cond)
        u1 = self.up1(F.interpolate(h2, scale_factor=2.0, mode="nearest"))
        d1 = self.dec1(torch.cat([u1, h1], 1), cond)
        u0 = self.up0(F.interpolate(d1, scale_factor=2.0, mode="nearest"))
        return self.out(self.dec0(torch.cat([u0, h0], 1), cond))
