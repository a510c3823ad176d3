"""A patch discriminator and the hinge losses of adversarial decoder training.

Pixel MSE alone makes a decoder draw the mean of the textures a latent allows, so fine wall and floor texture
comes out smoothed; a patch discriminator penalises exactly that (Esser et al. 2021, "Taming Transformers",
VQGAN: PatchGAN critic, hinge loss, adaptive weight).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PatchDiscriminator(nn.Module):
    """``(B, 3, 64, 64)`` in [-1, 1] -> patch logits ``(B, 1, 8, 8)``, each seeing a 38-pixel patch."""

    def __init__(self, channels: tuple[int, ...] = (32, 64, 128)):
        super().__init__()
        layers, c_in = [], 3
        for i, c in enumerate(channels):
            layers += [nn.Conv2d(c_in, c, 4, stride=2, padding=1)]
            if i:
                layers += [nn.GroupNorm(min(8, c), c)]
            layers += [nn.LeakyReLU(0.2)]
            c_in = c
        layers += [nn.Conv2d(c_in, 1, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def hinge_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """The critic's hinge loss: real patches above +1, fakes below -1."""
    return 0.5 * (F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean())


def adaptive_weight(rec_loss: torch.Tensor, gen_loss: torch.Tensor, last: torch.Tensor,
                    scale: float, cap: float = 1e4) -> torch.Tensor:
    """VQGAN's balance: ``scale * |grad rec| / |grad gen|`` at the decoder's last weight ``last``, so the
    adversarial term pulls as hard as ``scale`` times the reconstruction term whatever their magnitudes."""
    g_rec = torch.autograd.grad(rec_loss, last, retain_graph=True)[0]
    g_gen = torch.autograd.grad(gen_loss, last, retain_graph=True)[0]
    return (scale * g_rec.norm() / (g_gen.norm() + 1e-4)).clamp(0.0, cap).detach()
