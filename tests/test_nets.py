import torch

from fino.algo.nets import MLP, EnsembleCritic, gelu_tanh


def test_gelu_tanh_is_the_tanh_approximate_gelu():
    x = torch.linspace(-12, 12, 200_001, dtype=torch.float64)
    expected = torch.nn.functional.gelu(x, approximate="tanh")
    torch.testing.assert_close(gelu_tanh(x), expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gelu_tanh(x.float()), expected.float(), rtol=1e-6, atol=1e-6)
    small = x[::100]  # the fused-op path for small inputs
    torch.testing.assert_close(gelu_tanh(small), expected[::100], rtol=1e-12, atol=1e-12)


def test_ensemble_critic_equals_two_independent_mlps():
    critic = EnsembleCritic(4, 2, (16, 16), ensemble_size=2, layer_norm=True)
    obs, act = torch.randn(5, 4), torch.randn(5, 2)
    q = critic(obs, act)
    assert q.shape == (2, 5)
    for k in range(2):
        x = torch.cat([obs, act], -1)
        for i in range(2):
            x = gelu_tanh(x @ critic.weights[i][k] + critic.biases[i][k])
            x = torch.nn.functional.layer_norm(x, (16,), eps=1e-6)
            x = x * critic.ln_weights[i][k] + critic.ln_biases[i][k]
        expected = (x @ critic.weights[2][k] + critic.biases[2][k]).squeeze(-1)
        torch.testing.assert_close(q[k], expected)
    assert not torch.equal(q[0], q[1])  # members are initialised independently


def test_detached_critic_passes_gradients_to_inputs_not_parameters():
    critic = EnsembleCritic(4, 2, (16,))
    act = torch.randn(3, 2, requires_grad=True)
    critic(torch.randn(3, 4), act, detach_params=True).sum().backward()
    assert act.grad is not None and act.grad.abs().sum() > 0
    assert all(p.grad is None for p in critic.parameters())


def test_mlp_init_is_glorot_uniform_with_zero_bias():
    mlp = MLP(300, (500,), 10)
    w = mlp.net[0].weight
    limit = (6 / (300 + 500)) ** 0.5
    assert w.abs().max() <= limit and w.abs().max() > 0.95 * limit
    assert abs(w.std().item() - limit / 3**0.5) < 0.02 * limit
    assert torch.count_nonzero(mlp.net[0].bias) == 0
