"""A pack of N members is N single agents: same losses, gradients, parameters, actions, entropy
and β per member for the same batches and draws (to float rounding), whatever shares the pack."""

import io

import pytest
import torch

from fino.algo import AgentConfig, FinoAgent
from fino.algo.agent import AgentPack, Batch, UpdateNoise
from fino.algo.packing import PackError

from .conftest import SMALL, random_batch

TOL = dict(rtol=1e-5, atol=1e-6)
# Parameters after Adam steps: where a gradient sums to nearly zero, float32 rounding of the
# sum (~1e-10 absolute, different for baddbmm and addmm) is not small beside Adam's eps (1e-8),
# so an element may move by a few percent of a step (lr 3e-4) differently: measured 1.7e-5 in
# 1 of 8,192 elements after 3 updates. A third of a step still catches any real difference.
PARAM_TOL = dict(rtol=1e-5, atol=1e-4)
FQL = dict(noise_scale=0.0, num_candidates=1)


def _configs(n, **common):
    return [AgentConfig(**{**SMALL, **common}) for _ in range(n)]


def _member(noise: UpdateNoise, i: int) -> UpdateNoise:
    return UpdateNoise(*(t[i:i + 1] for t in noise.__dict__.values()))


def _rows(pack: AgentPack, net: str, i: int) -> list[torch.Tensor]:
    return [pack._member_rows(p, i) for p in getattr(pack, net).parameters()]


def _assert_member_equals_single(pack: AgentPack, i: int, single: FinoAgent) -> None:
    for net in ("bc_flow", "onestep", "critic", "target_critic"):
        for p, q in zip(_rows(pack, net, i), getattr(single, net).parameters(), strict=True):
            torch.testing.assert_close(p, q, **PARAM_TOL)


@pytest.mark.parametrize("algo", [{}, FQL], ids=["fino", "fql"])
def test_pack_updates_equal_single_agents_for_the_same_batches_and_draws(algo):
    seeds = [3, 7, 11]
    configs = _configs(3, **algo)
    pack = AgentPack(6, 3, configs, seeds=seeds)
    singles = [FinoAgent(6, 3, c, seed=s) for c, s in zip(configs, seeds, strict=True)]
    for step in range(4):
        batches = [random_batch(n=32, seed=10 * step + i) for i in range(3)]
        metrics = pack.update(Batch.stack(batches))  # draws from each member's own stream
        for i, (agent, batch) in enumerate(zip(singles, batches, strict=True)):
            torch.testing.assert_close(metrics[i], agent.update(batch), **TOL)
    for i, agent in enumerate(singles):
        _assert_member_equals_single(pack, i, agent)
        assert torch.equal(pack.generators[i].get_state(), agent.generator.get_state())


def test_pack_gradients_are_each_members_own_loss_gradients():
    seeds = [0, 5]
    pack = AgentPack(6, 3, _configs(2), seeds=seeds)
    singles = [FinoAgent(6, 3, _configs(1)[0], seed=s) for s in seeds]
    batches = [random_batch(n=16, seed=i) for i in range(2)]
    noise = pack.draw_update_noise(16)
    total, _ = pack.losses(Batch.stack(batches), noise)
    total.backward()
    for i, agent in enumerate(singles):
        packed_batch = Batch.stack([batches[i]])
        loss, _ = agent.losses(packed_batch, _member(noise, i))
        loss.backward()
        for net in ("bc_flow", "onestep", "critic"):
            for p, q in zip(getattr(pack, net).parameters(), getattr(agent, net).parameters(),
                            strict=True):
                torch.testing.assert_close(pack._member_rows(p.grad, i), q.grad, **TOL)


def test_members_may_differ_in_scalar_settings_and_still_equal_their_single_agents():
    configs = [AgentConfig(**SMALL, noise_scale=0.0, alpha=3.0, discount=0.9, tau=0.1),
               AgentConfig(**SMALL, noise_scale=0.4, alpha=30.0, discount=0.995, tau=0.005,
                           action_noise_std=0.3)]
    pack = AgentPack(6, 3, configs, seeds=[1, 2])
    singles = [FinoAgent(6, 3, c, seed=s) for c, s in zip(configs, [1, 2], strict=True)]
    for step in range(3):
        batches = [random_batch(n=32, seed=step * 7 + i) for i in range(2)]
        metrics = pack.update(Batch.stack(batches))
        for i, agent in enumerate(singles):
            torch.testing.assert_close(metrics[i], agent.update(batches[i]), **TOL)
    for i, agent in enumerate(singles):
        _assert_member_equals_single(pack, i, agent)


def test_a_members_result_does_not_depend_on_who_shares_its_pack():
    config = _configs(1)[0]
    a = AgentPack(6, 3, config, seeds=[4, 9])
    b = AgentPack(6, 3, config, seeds=[9, 1, 2])
    for step in range(3):
        shared = random_batch(n=32, seed=100 + step)
        a.update(Batch.stack([random_batch(n=32, seed=step), shared]))
        b.update(Batch.stack([shared, random_batch(n=32, seed=50 + step),
                              random_batch(n=32, seed=60 + step)]))
    for net in ("bc_flow", "onestep", "critic", "target_critic"):
        for p, q in zip(_rows(a, net, 1), _rows(b, net, 0), strict=True):
            torch.testing.assert_close(p, q, **TOL)


@pytest.mark.parametrize("greedy", [True, False])
def test_pack_acting_equals_single_agents(greedy):
    seeds = [0, 1, 2]
    config = _configs(1, num_candidates=4)[0]
    pack = AgentPack(6, 3, config, seeds=seeds)
    singles = [FinoAgent(6, 3, config, seed=s) for s in seeds]
    pack.beta.copy_(torch.tensor([0.5, 3.0, 12.0]))
    for agent, beta in zip(singles, (0.5, 3.0, 12.0), strict=True):
        agent.beta.fill_(beta)
    obs = torch.randn(3, 7, 6)
    evals = [torch.Generator().manual_seed(40 + i) for i in range(3)]
    actions = pack.act(obs, greedy=greedy, generators=evals)
    for i, agent in enumerate(singles):
        expected = agent.act(obs[i], greedy=greedy,
                             generator=torch.Generator().manual_seed(40 + i))
        torch.testing.assert_close(actions[i], expected, **TOL)


def test_pack_entropy_and_beta_equal_single_agents():
    seeds = [0, 1]
    configs = [AgentConfig(**SMALL, entropy_states=16, entropy_samples=40, beta_lr=0.1),
               AgentConfig(**SMALL, entropy_states=16, entropy_samples=40, beta_lr=0.5)]
    pack = AgentPack(6, 4, configs, seeds=seeds)
    singles = [FinoAgent(6, 4, c, seed=s) for c, s in zip(configs, seeds, strict=True)]
    obs = torch.randn(2, 16, 6)
    entropy = pack.estimate_entropy(obs, [torch.Generator().manual_seed(i) for i in range(2)])
    for i, agent in enumerate(singles):
        expected = agent.estimate_entropy(obs[i], torch.Generator().manual_seed(i))
        assert entropy[i].item() == pytest.approx(expected, rel=1e-5)
    betas = pack.update_beta(entropy)
    for i, agent in enumerate(singles):
        assert betas[i].item() == pytest.approx(agent.update_beta(entropy[i].item()), rel=1e-6)
    # β ← max(0, β + β_lr (H − H̄)), H̄ = −d = −4, per member's own β_lr
    for i, lr in enumerate((0.1, 0.5)):
        assert betas[i].item() == pytest.approx(max(0.0, 10 + lr * (entropy[i].item() + 4)),
                                                rel=1e-6)


def test_members_that_differ_in_a_shape_or_code_path_setting_are_refused_by_name():
    with pytest.raises(PackError, match="'num_candidates'"):
        AgentPack(6, 3, [AgentConfig(**SMALL), AgentConfig(**SMALL, num_candidates=1)],
                  seeds=[0, 1])
    with pytest.raises(PackError, match="'value_hidden_dims'"):
        AgentPack(6, 3, [AgentConfig(**SMALL), AgentConfig(**{**SMALL,
                                                               "value_hidden_dims": (32,)})],
                  seeds=[0, 1])


def test_a_diverged_member_is_named_and_leaves_the_others_untouched():
    config = _configs(1)[0]
    pack = AgentPack(6, 3, config, seeds=[0, 1, 2])
    alone = FinoAgent(6, 3, config, seed=2)
    for step in range(3):
        batches = [random_batch(n=16, seed=step * 3 + i) for i in range(3)]
        if step == 1:
            b = batches[1]
            batches[1] = Batch(b.observations, b.actions, b.rewards * float("nan"),
                               b.next_observations, b.terminated)
        pack.update(Batch.stack(batches))
        alone.update(batches[2])
    assert pack.nonfinite_members() == {1: 1}
    _assert_member_equals_single(pack, 2, alone)
    assert all(torch.isfinite(p).all() for p in _rows(pack, "critic", 0))


def test_a_members_state_resumes_alone_and_continues_exactly():
    config = _configs(1)[0]
    pack = AgentPack(6, 3, config, seeds=[5, 6])
    for step in range(2):
        pack.update(Batch.stack([random_batch(n=16, seed=step * 2 + i) for i in range(2)]))
    buffer = io.BytesIO()
    torch.save(pack.member_state(1), buffer)
    buffer.seek(0)
    alone = FinoAgent(6, 3, config, seed=123)
    alone.load_state_dict(torch.load(buffer, weights_only=True))
    for step in range(2, 4):
        batches = [random_batch(n=16, seed=step * 2 + i) for i in range(2)]
        metrics = pack.update(Batch.stack(batches))
        torch.testing.assert_close(alone.update(batches[1]), metrics[1], **TOL)
    _assert_member_equals_single(pack, 1, alone)


def test_a_state_written_before_packs_is_refused_with_a_message():
    with pytest.raises(ValueError, match="before packs"):
        FinoAgent(6, 3, _configs(1)[0]).load_state_dict({"obs_dim": 6, "action_dim": 3})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")
def test_cuda_graph_updates_equal_the_plain_updates():
    config = _configs(1)[0]
    graphed = AgentPack(6, 3, config, seeds=[0, 1], device="cuda", cuda_graphs=True)
    plain = AgentPack(6, 3, config, seeds=[0, 1], device="cuda", cuda_graphs=False)
    for step in range(5):
        batch = Batch.stack([random_batch(n=32, seed=step * 2 + i) for i in range(2)])
        torch.testing.assert_close(graphed.update(batch).clone(), plain.update(batch), **TOL)
    for net in ("bc_flow", "onestep", "critic", "target_critic"):
        for p, q in zip(getattr(graphed, net).parameters(), getattr(plain, net).parameters(),
                        strict=True):
            torch.testing.assert_close(p, q, **TOL)
    assert graphed.num_updates == plain.num_updates == 5


def test_a_pack_too_large_for_memory_is_refused_with_the_estimate_before_allocating():
    with pytest.raises(MemoryError, match=r"a pack of 1000000 members needs about [\d.]+ GiB"):
        AgentPack(40, 5, AgentConfig(), seeds=range(1_000_000))


def test_the_memory_estimate_matches_the_measured_h200_figures_within_15_percent():
    from fino.algo.packing import estimate_pack_bytes

    # The update's device memory at the paper size: 32 members 2.5 GiB, 128 members 9.7 GiB.
    for members, measured in ((32, 2.5), (128, 9.7)):
        estimate = estimate_pack_bytes(40, 5, AgentConfig(), members) / 2**30
        assert measured <= estimate <= 1.15 * measured, (members, estimate)
