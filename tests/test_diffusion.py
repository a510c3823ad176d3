"""EDM preconditioning and samplers against a closed-form Gaussian denoiser."""

from __future__ import annotations

import math

import pytest
import torch

from worldmodels.edm import EDMLoss, EDMLossConfig, EDMPrecond
from worldmodels.sampling import get_sampler, get_sigmas_karras

MU, S = 0.7, 0.5  # data ~ N(MU, S^2) per dimension


def gaussian_denoiser(x, sigma, **_):
    """Optimal D(x; sigma) = (S^2 x + sigma^2 MU) / (S^2 + sigma^2)."""
    sigma = torch.as_tensor(sigma)
    return (S**2 * x + sigma**2 * MU) / (S**2 + sigma**2)


def exact_ode_solution(x_T, sigma_max):
    """Probability-flow ODE of a Gaussian: x(0) = MU + (x_T - MU) * S / sqrt(S^2 + sigma_max^2)."""
    return MU + (x_T - MU) * S / math.sqrt(S**2 + sigma_max**2)


@pytest.mark.parametrize("name,steps,tol", [("euler", 200, 3e-2), ("heun", 50, 1e-2), ("dpmpp_2m", 50, 1e-2)])
def test_samplers_solve_the_gaussian_ode(name, steps, tol):
    smax = 5.0
    x_T = torch.randn(2000, generator=torch.Generator().manual_seed(0)) * smax
    sigmas = get_sigmas_karras(steps, 1e-3, smax)
    out = get_sampler(name)(gaussian_denoiser, x_T.clone(), sigmas)
    assert (out - exact_ode_solution(x_T, smax)).abs().max() < tol


@pytest.mark.parametrize("name,order", [("euler", 1), ("heun", 2), ("dpmpp_2m", 2)])
def test_samplers_converge_at_their_order(name, order):
    x_T = torch.linspace(-10, 10, 101)
    err = [(get_sampler(name)(gaussian_denoiser, x_T, get_sigmas_karras(n, 1e-3, 5.0)) - exact_ode_solution(x_T, 5.0))
           .abs().max() for n in (50, 200)]
    assert err[1] < err[0] / (4**order) * 2  # 4x the steps: error / 4^order, within a factor 2


@pytest.mark.parametrize("name,steps", [("euler", 1), ("euler", 2), ("euler", 3), ("dpmpp_2m", 1), ("dpmpp_2m", 2),
                                        ("heun", 1)])
def test_few_step_samplers_give_the_right_distribution(name, steps):
    smax = 5.0
    x_T = torch.randn(20000, generator=torch.Generator().manual_seed(1)) * smax
    out = get_sampler(name)(gaussian_denoiser, x_T, get_sigmas_karras(steps, 2e-3, smax))
    assert abs(out.mean() - MU) < 0.05
    assert out.std() < S * 1.05  # never noisier than the data; one step is the posterior mean


def test_unknown_sampler_and_zero_steps():
    with pytest.raises(ValueError, match="unknown sampler"):
        get_sampler("ddim9")
    with pytest.raises(ValueError, match="at least 1"):
        get_sigmas_karras(0, 0.01, 1.0)


class _Zero(torch.nn.Module):
    def forward(self, x, c_noise, **_):
        return torch.zeros_like(x)


def test_preconditioning_identities():
    pre = EDMPrecond(_Zero(), sigma_data=0.5)
    sigma = torch.tensor([0.01, 0.5, 10.0])
    c_skip, c_out, c_in, c_noise = pre.coefficients(sigma)
    sd = 0.5
    # unit variance of the network's input and of its training target (Karras et al. App. B.6)
    torch.testing.assert_close(c_in**2 * (sd**2 + sigma**2), torch.ones(3))
    torch.testing.assert_close(c_out**2, sigma**2 * sd**2 / (sigma**2 + sd**2))
    torch.testing.assert_close((1 - c_skip) ** 2 * sd**2 + c_skip**2 * sigma**2, c_out**2)
    x = torch.randn(3, 2, 4, 4)
    torch.testing.assert_close(pre(x, sigma), c_skip[:, None, None, None] * x)


def test_edm_loss_is_lowest_for_the_optimal_denoiser():
    class Denoiser(torch.nn.Module):
        def __init__(self, shift):
            super().__init__()
            self.shift = shift

        def forward(self, x, sigma, **_):
            return gaussian_denoiser(x, sigma[:, None, None, None]) + self.shift

    g = torch.Generator().manual_seed(0)
    x = MU + S * torch.randn(4096, 1, 2, 2, generator=g)
    loss = lambda shift: EDMLoss(EDMLossConfig(), S)(Denoiser(shift), x, generator=torch.Generator().manual_seed(1))[0]
    assert loss(0.0) < loss(0.05) and loss(0.0) < loss(-0.05)
    with pytest.raises(ValueError, match="weighting"):
        EDMLossConfig(weighting="nope")


@pytest.mark.parametrize("name", ["euler", "heun", "dpmpp_2m"])
def test_one_step_is_the_posterior_mean(name):
    x_T = torch.randn(100, generator=torch.Generator().manual_seed(2)) * 5.0
    out = get_sampler(name)(gaussian_denoiser, x_T, get_sigmas_karras(1, 2e-3, 5.0))
    torch.testing.assert_close(out, gaussian_denoiser(x_T, 5.0))


def test_two_step_heun_jumps_too_far():
    """Heun's correction over sigma_max -> sigma_min (the 2-step Karras schedule) averages in the noisy
    start: a known failure of few-step Heun, visible in the sampler table of `bench target=worldmodel`."""
    x_T = torch.randn(20000, generator=torch.Generator().manual_seed(1)) * 5.0
    out = get_sampler("heun")(gaussian_denoiser, x_T, get_sigmas_karras(2, 2e-3, 5.0))
    assert out.std() > 2 * S


def test_focus_share_trains_that_share_at_the_one_step_level():
    seen = []

    def denoiser(x, sigma, **_):
        seen.append(sigma)
        return x

    x = torch.zeros(4000, 1, 2, 2)
    EDMLoss(EDMLossConfig(focus_share=0.5), 1.0, focus_sigma=5.0)(denoiser, x, generator=torch.Generator().manual_seed(0))
    at_focus = (seen[0] == 5.0).float().mean().item()
    assert 0.45 < at_focus < 0.55
    seen.clear()
    EDMLoss(EDMLossConfig(), 1.0, focus_sigma=5.0)(denoiser, x, generator=torch.Generator().manual_seed(0))
    assert (seen[0] == 5.0).sum().item() == 0
    with pytest.raises(ValueError, match="focus_share"):
        EDMLossConfig(focus_share=-0.1)


def test_keep_contrast_raises_only_spreads_under_the_floor():
    from worldmodels.contrast import keep_contrast

    g = torch.Generator().manual_seed(0)
    prev = torch.randn(2, 4, 16, 16, generator=g) * 2.0
    flat = torch.randn(2, 4, 16, 16, generator=g) * 0.5 + 3.0       # a quarter of prev's spread, mean 3
    kept = keep_contrast(flat, prev, 0.9)
    assert torch.allclose(kept.std((-2, -1)), 0.9 * prev.std((-2, -1)), rtol=1e-4)
    assert torch.allclose(kept.mean((-2, -1)), flat.mean((-2, -1)), atol=1e-5)          # the mean is never moved
    assert torch.allclose((kept - kept.mean((-2, -1), keepdim=True)) / kept.std((-2, -1), keepdim=True),
                          (flat - flat.mean((-2, -1), keepdim=True)) / flat.std((-2, -1), keepdim=True), atol=1e-4)
    sharp = torch.randn(2, 4, 16, 16, generator=g) * 3.0             # above the floor: untouched
    assert torch.equal(keep_contrast(sharp, prev, 0.9), sharp)
    assert torch.equal(keep_contrast(flat, prev, 0.0), flat)
