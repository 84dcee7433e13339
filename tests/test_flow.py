import math

import pytest
import torch

from fino.algo.flow import euler_sample, exp_noise_std, flow_matching_pair, paper_added_variance


def test_exp_schedule_sigma_at_t_1_half_0():
    t = torch.tensor([1.0, 0.5, 0.0])
    eta = 0.1
    torch.testing.assert_close(
        exp_noise_std(t, eta),
        torch.tensor([eta, eta * math.exp(-5.0), eta * math.exp(-10.0)]),
        rtol=1e-6, atol=0.0)


def _draws(n=8, d=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, d, generator=g), torch.rand(n, d, generator=g) * 2 - 1,
            torch.rand(n, 1, generator=g), torch.randn(n, d, generator=g))


def test_exp_schedule_adds_sigma_t_eps_to_the_input_and_keeps_the_target():
    x0, x1, t, eps = _draws()
    x_t, target = flow_matching_pair(x0, x1, t, eps, 0.3, "exp")
    plain = (1 - t) * x0 + t * x1
    torch.testing.assert_close(x_t - plain, 0.3 * torch.exp(10 * (t - 1)) * eps)
    torch.testing.assert_close(target, x1 - x0)


@pytest.mark.parametrize("schedule", ["exp", "paper", "none"])
def test_eta_zero_is_plain_flow_matching(schedule):
    x0, x1, t, eps = _draws()
    x_t, target = flow_matching_pair(x0, x1, t, eps, 0.0, schedule)
    assert torch.equal(x_t, (1 - t) * x0 + t * x1)
    assert torch.equal(target, x1 - x0)


def test_none_schedule_ignores_noise_scale():
    x0, x1, t, eps = _draws()
    x_t, _target = flow_matching_pair(x0, x1, t, eps, 0.5, "none")
    assert torch.equal(x_t, (1 - t) * x0 + t * x1)


@pytest.mark.parametrize("eta", [0.1, 0.4])
def test_paper_form_added_variance_and_target(eta):
    n = 400_000
    g = torch.Generator().manual_seed(1)
    x1 = torch.full((n, 1), 0.7, dtype=torch.float64)
    x0 = torch.randn(n, 1, generator=g, dtype=torch.float64)
    for tv in (0.25, 0.5, 0.9, 1.0):
        t = torch.full((n, 1), tv, dtype=torch.float64)
        x_t, target = flow_matching_pair(x0, x1, t, torch.zeros_like(x0), eta, "paper")
        added = x_t.var() - (1 - tv) ** 2
        expected = 2 * eta * tv + (eta**2 - 2 * eta) * tv**2
        assert added.item() == pytest.approx(expected, abs=0.01)
        assert paper_added_variance(t[:1], eta).item() == pytest.approx(expected, rel=1e-12)
        assert x_t.mean().item() == pytest.approx(tv * 0.7, abs=0.01)
        torch.testing.assert_close(target, x1 - (1 - eta) * x0)


def test_paper_form_target_is_the_velocity_of_its_path():
    # A valid flow: the regression target is d/dt of the conditional path.
    x0, x1, t, eps = _draws(seed=3)
    x0, x1, t = x0.double(), x1.double(), t.double() * 0.9
    h = 1e-6
    a, target = flow_matching_pair(x0, x1, t, eps.double(), 0.2, "paper")
    b, _ = flow_matching_pair(x0, x1, t + h, eps.double(), 0.2, "paper")
    torch.testing.assert_close((b - a) / h, target, rtol=1e-5, atol=1e-5)


def test_paper_form_ends_at_data_plus_eta_squared_variance():
    x0, x1, _, eps = _draws(n=200_000, d=1, seed=4)
    x1 = torch.zeros_like(x1)
    x_t, _ = flow_matching_pair(x0, x1, torch.ones(len(x0), 1), eps, 0.3, "paper")
    assert x_t.var().item() == pytest.approx(0.09, rel=0.02)


def test_euler_sample_integrates_ten_steps_at_times_i_over_n_and_clips():
    z = torch.full((4, 2), 0.1)
    obs = torch.zeros(4, 1)
    # v = t: sum_i (i/N)/N = (N-1)/(2N)
    out = euler_sample(lambda s, x, t: t.expand_as(x), obs, z, 10)
    torch.testing.assert_close(out, torch.full((4, 2), 0.1 + 9 / 20))
    # v = -x: x_N = z (1 - 1/N)^N
    out = euler_sample(lambda s, x, t: -x, obs, z, 10)
    torch.testing.assert_close(out, z * 0.9**10)
    # clipping to [-1, 1]
    out = euler_sample(lambda s, x, t: torch.full_like(x, 5.0), obs, z, 10)
    assert torch.equal(out, torch.ones_like(z))

