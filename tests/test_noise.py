"""Counter-based noise: a world's noise is a function of its seed and step alone, and standard normal."""

from __future__ import annotations

import torch

from worldmodels.noise import counter_normal

SHAPE = (4, 16, 16)


def test_a_rows_noise_depends_on_its_seed_and_counter_alone():
    seeds, steps = torch.arange(10, 42), torch.arange(32) % 5
    z = counter_normal(seeds, steps, SHAPE)
    assert z.shape == (32, *SHAPE) and z.dtype == torch.float32
    assert torch.equal(z, counter_normal(seeds, steps, SHAPE))                       # deterministic
    alone = counter_normal(seeds[7:8], steps[7:8], SHAPE)
    shuffled = counter_normal(seeds.flip(0), steps.flip(0), SHAPE)
    assert torch.equal(alone[0], z[7]) and torch.equal(shuffled.flip(0), z)          # not on N or the batch order
    assert not torch.equal(counter_normal(seeds, steps + 1, SHAPE), z)               # a new step, new noise
    assert not torch.equal(z[0], z[1])


def test_counter_noise_is_standard_normal_and_uncorrelated():
    n = 2048
    z = counter_normal(torch.arange(n), torch.zeros(n, dtype=torch.long), SHAPE).flatten(1)
    assert abs(float(z.mean())) < 0.01 and abs(float(z.std()) - 1) < 0.01
    assert abs(float((z**4).mean()) - 3) < 0.05                                        # Gaussian tails, not uniform
    assert abs(float((z.abs() > 1.96).float().mean()) - 0.05) < 0.003
    nxt = counter_normal(torch.arange(n), torch.ones(n, dtype=torch.long), SHAPE).flatten(1)
    for a, b in ((z[:-1], z[1:]), (z, nxt), (z[:, :512], z[:, 512:])):               # neighbours, steps, halves
        assert abs(float(torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1])) < 0.01


def test_large_seeds_and_counters_are_taken_modulo_two_to_the_32():
    big = counter_normal(torch.tensor([2**32 + 5]), torch.tensor([2**33 + 1]), SHAPE)
    small = counter_normal(torch.tensor([5]), torch.tensor([1]), SHAPE)
    assert torch.equal(big, small) and torch.isfinite(big).all()
