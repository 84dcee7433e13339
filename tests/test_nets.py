import torch

from fino.algo.nets import EnsembleCritic, OneStepPolicy, PackedMLP, gelu_tanh


def _gens(*seeds):
    return [torch.Generator().manual_seed(s) for s in seeds]


def test_gelu_tanh_is_the_tanh_approximate_gelu():
    x = torch.linspace(-12, 12, 200_001, dtype=torch.float64)
    expected = torch.nn.functional.gelu(x, approximate="tanh")
    torch.testing.assert_close(gelu_tanh(x), expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gelu_tanh(x.float()), expected.float(), rtol=1e-6, atol=1e-6)
    small = x[::100]  # the fused-op path for small inputs
    torch.testing.assert_close(gelu_tanh(small), expected[::100], rtol=1e-12, atol=1e-12)


def test_ensemble_critic_equals_independent_mlps_per_member_and_ensemble_member():
    critic = EnsembleCritic(4, 2, (16, 16), generators=_gens(0, 1, 2), ensemble_size=2,
                            layer_norm=True)
    obs, act = torch.randn(3, 5, 4), torch.randn(3, 5, 2)
    q = critic(obs, act)
    assert q.shape == (3, 2, 5)
    mlp = critic.mlp
    for member in range(3):
        for k in range(2):
            lane = 2 * member + k
            x = torch.cat([obs[member], act[member]], -1)
            for i in range(2):
                x = gelu_tanh(x @ mlp.weights[i][lane] + mlp.biases[i][lane])
                x = torch.nn.functional.layer_norm(x, (16,), eps=1e-6)
                x = x * mlp.ln_weights[i][lane] + mlp.ln_biases[i][lane]
            expected = (x @ mlp.weights[2][lane] + mlp.biases[2][lane]).squeeze(-1)
            torch.testing.assert_close(q[member, k], expected)
    assert not torch.equal(q[0, 0], q[0, 1])  # ensemble members are initialised independently
    assert not torch.equal(q[0], q[1])  # so are pack members


def test_a_members_initial_weights_do_not_depend_on_its_pack():
    alone = OneStepPolicy(6, 3, (32, 32), generators=_gens(7))
    packed = OneStepPolicy(6, 3, (32, 32), generators=_gens(1, 7, 2))
    for a, p in zip(alone.parameters(), packed.parameters(), strict=True):
        assert torch.equal(a[0], p[1])
    critic_alone = EnsembleCritic(6, 3, (32,), generators=_gens(7))
    critic_packed = EnsembleCritic(6, 3, (32,), generators=_gens(1, 7))
    for a, p in zip(critic_alone.parameters(), critic_packed.parameters(), strict=True):
        assert torch.equal(a, p[2:4])


def test_detached_critic_passes_gradients_to_inputs_not_parameters():
    critic = EnsembleCritic(4, 2, (16,), generators=_gens(0))
    act = torch.randn(1, 3, 2, requires_grad=True)
    critic(torch.randn(1, 3, 4), act, detach_params=True).sum().backward()
    assert act.grad is not None and act.grad.abs().sum() > 0
    assert all(p.grad is None for p in critic.parameters())


def test_mlp_init_is_glorot_uniform_with_zero_bias():
    mlp = PackedMLP(300, (500,), 10, generators=_gens(0))
    w = mlp.weights[0]
    assert w.shape == (1, 300, 500)
    limit = (6 / (300 + 500)) ** 0.5
    assert w.abs().max() <= limit and w.abs().max() > 0.95 * limit
    assert abs(w.std().item() - limit / 3**0.5) < 0.02 * limit
    assert torch.count_nonzero(mlp.biases[0]) == 0
