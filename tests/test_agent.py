import io

import pytest
import torch

from fino import metric_keys
from fino.algo import FinoAgent
from fino.algo.agent import (
    Batch,
    NonFiniteLoss,
    UpdateNoise,
    aggregate_q,
    gumbel_argmax,
    selection_logits,
)

from .conftest import random_batch, small_agent


def mu(agent: FinoAgent, obs: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """The one-step policy of a single agent, without the member axis."""
    with torch.no_grad():
        return agent.onestep(obs[None], z[None])[0]


def critic(agent: FinoAgent, obs: torch.Tensor, actions: torch.Tensor, target: bool = False
           ) -> torch.Tensor:
    """Q-values (E, …) of a single agent."""
    net = agent.target_critic if target else agent.critic
    return net(obs[None], actions[None])[0]


def _fork(agent: FinoAgent) -> torch.Generator:
    """A copy of the agent's RNG, to replay its draws by hand."""
    g = torch.Generator()
    g.set_state(agent.generator.get_state())
    return g


# ---- acting ------------------------------------------------------------------------------------

@pytest.mark.parametrize("greedy", [True, False])
def test_fql_acts_as_a_plain_one_step_sample_from_the_same_z(greedy):
    agent = small_agent(noise_scale=0.0, num_candidates=1)
    assert agent.config.is_fql
    obs = torch.randn(5, 6)
    g = _fork(agent)
    z = torch.randn(5, 1, 3, generator=g)
    expected = mu(agent, obs.unsqueeze(1), z).clamp(-1, 1)[:, 0]
    torch.testing.assert_close(agent.act(obs, greedy=greedy), expected)


def test_greedy_is_the_argmax_q_candidate():
    agent = small_agent(num_candidates=4, q_agg="min")
    obs = torch.randn(7, 6)
    g = _fork(agent)
    z = torch.randn(7, 4, 3, generator=g)
    obs_k = obs.unsqueeze(1).expand(-1, 4, -1)
    with torch.no_grad():
        cands = mu(agent, obs_k, z).clamp(-1, 1)
        q = critic(agent, obs_k, cands).min(dim=0).values
    expected = cands[torch.arange(7), q.argmax(dim=1)]
    torch.testing.assert_close(agent.act(obs, greedy=True), expected)


def test_act_accepts_one_observation_and_returns_one_action():
    agent = small_agent()
    assert agent.act(torch.randn(6)).shape == (3,)
    assert agent.act(torch.randn(2, 6), greedy=True).shape == (2, 3)


def test_selection_logits_are_beta_q_over_mean_abs_q():
    q = torch.tensor([[1.0, -2.0, 3.0]])
    torch.testing.assert_close(selection_logits(q, 4.0), 4.0 * q / 2.0)


def test_selection_logits_normalise_by_the_mean_abs_q_of_the_whole_call_per_member():
    # Reference: logits = q / jnp.abs(q).mean() * beta over every state and candidate of one
    # call, not per state. Member 0: mean |q| over both states = (1+2+3+6)/4 = 3; member 1: 1.
    q = torch.tensor([[[[1.0, -2.0], [3.0, 6.0]]], [[[1.0, 1.0], [-1.0, 1.0]]]])  # (2,1,2,2)
    beta = torch.tensor([2.0, 5.0])
    expected = torch.stack([2.0 * q[0] / 3.0, 5.0 * q[1] / 1.0])
    torch.testing.assert_close(selection_logits(q, beta), expected)


@pytest.mark.parametrize("beta", [0.0, 1.0, 3.0])
def test_exploring_selection_frequencies_match_the_softmax(beta):
    n = 200_000
    q = torch.tensor([1.0, 2.0, 3.0, 0.5]).expand(n, 4)
    u = torch.rand(n, 4, generator=torch.Generator().manual_seed(0))
    chosen = gumbel_argmax(selection_logits(q, beta), u)
    freq = torch.bincount(chosen, minlength=4).double() / n
    p = torch.softmax(beta * q[0].double() / q[0].abs().mean(), dim=0)
    if beta == 0.0:
        torch.testing.assert_close(p, torch.full((4,), 0.25, dtype=torch.float64))
    tolerance = 5 * torch.sqrt(p * (1 - p) / n)  # 5 standard errors
    assert torch.all((freq - p).abs() < tolerance), (freq, p)


def test_exploring_act_draws_among_candidates_by_beta_q_over_mean_abs_q():
    agent = small_agent(num_candidates=5)
    agent.beta.fill_(2.5)
    obs = torch.randn(64, 6)
    g = _fork(agent)
    z, u = torch.randn(64, 5, 3, generator=g), torch.rand(64, 5, generator=g)
    obs_k = obs.unsqueeze(1).expand(-1, 5, -1)
    with torch.no_grad():
        cands = mu(agent, obs_k, z).clamp(-1, 1)
        q = critic(agent, obs_k, cands).mean(dim=0)
    # The reference's normaliser: the mean |q| over all 64 states and 5 candidates of the call.
    index = gumbel_argmax(2.5 * q / q.abs().mean(), u)
    torch.testing.assert_close(agent.act(obs), cands[torch.arange(64), index])


def test_action_noise_exploration_adds_gaussian_noise_to_the_greedy_candidate():
    agent = small_agent(num_candidates=1, exploration="action_noise", action_noise_std=0.05)
    obs = torch.randn(8, 6)
    g = _fork(agent)
    z, noise = torch.randn(8, 1, 3, generator=g), torch.randn(8, 3, generator=g)
    with torch.no_grad():
        base = mu(agent, obs.unsqueeze(1), z).clamp(-1, 1)[:, 0]
    torch.testing.assert_close(agent.act(obs), (base + 0.05 * noise).clamp(-1, 1))
    assert agent.act(obs, greedy=True).shape == base.shape


def test_exploration_none_keeps_one_plain_sample_even_with_k_candidates():
    agent = small_agent(num_candidates=4, exploration="none")
    obs = torch.randn(3, 6)
    g = _fork(agent)
    z = torch.randn(3, 1, 3, generator=g)
    expected = mu(agent, obs.unsqueeze(1), z).clamp(-1, 1)[:, 0]
    torch.testing.assert_close(agent.act(obs), expected)


# ---- critic ------------------------------------------------------------------------------------

def packed(batch: Batch) -> Batch:
    """A single agent's batch with the member axis (what `losses` takes)."""
    return Batch(*(t.unsqueeze(0) for t in batch.__dict__.values()))


def one(noise: UpdateNoise) -> UpdateNoise:
    """A pack-of-one's draws without the member axis."""
    return UpdateNoise(*(t[0] for t in noise.__dict__.values()))


@pytest.mark.parametrize("q_agg", ["mean", "min"])
def test_critic_loss_is_the_mean_over_critics_and_batch_with_mask_one_minus_terminated(q_agg):
    agent = small_agent(q_agg=q_agg, discount=0.9)
    batch = random_batch(n=16)
    noise = agent.draw_update_noise(16)
    with torch.no_grad():
        _, info = agent.losses(packed(batch), noise)
        a_next = mu(agent, batch.next_observations, one(noise).z_next).clamp(-1, 1)
        next_qs = critic(agent, batch.next_observations, a_next, target=True)
        next_q = next_qs.mean(0) if q_agg == "mean" else next_qs.min(0).values
        y = batch.rewards + 0.9 * (1 - batch.terminated) * next_q
        qs = critic(agent, batch.observations, batch.actions)
        # The reference's jnp.square(q - target_q).mean(): over both critics and the batch.
        loss = (((qs[0] - y) ** 2).sum() + ((qs[1] - y) ** 2).sum()) / (2 * 16)
    assert info["critic/loss"][0].item() == pytest.approx(loss.item(), rel=1e-5)
    assert info["critic/target_q_mean"][0].item() == pytest.approx(y.mean().item(), rel=1e-5)


def test_terminated_transitions_do_not_bootstrap():
    agent = small_agent()
    b = random_batch(n=16)
    b = type(b)(b.observations, b.actions, b.rewards, b.next_observations, torch.ones(16))
    _, info = agent.losses(packed(b), agent.draw_update_noise(16))
    assert info["critic/target_q_mean"][0].item() == pytest.approx(b.rewards.mean().item(),
                                                                   rel=1e-6)


def test_aggregate_q_mean_and_min_over_the_ensemble_axis():
    qs = torch.tensor([[[1.0, 5.0], [3.0, 2.0]]])  # (P=1, E=2, B=2)
    assert aggregate_q(qs, "mean").tolist() == [[2.0, 3.5]]
    assert aggregate_q(qs, "min").tolist() == [[1.0, 2.0]]


def test_q_term_does_not_update_the_critic():
    agent = small_agent(alpha=0.5)
    batch = random_batch(n=16)
    noise = agent.draw_update_noise(16)
    total, _metrics = agent.losses(packed(batch), noise)
    critic_params = list(agent.critic.parameters())
    g_total = torch.autograd.grad(total, critic_params)
    qs = critic(agent, batch.observations, batch.actions)
    with torch.no_grad():
        a_next = mu(agent, batch.next_observations, one(noise).z_next).clamp(-1, 1)
        y = batch.rewards + 0.99 * (1 - batch.terminated) * critic(
            agent, batch.next_observations, a_next, target=True).mean(0)
    g_critic = torch.autograd.grad((qs - y).square().mean(), critic_params)
    for a, b in zip(g_total, g_critic, strict=True):
        torch.testing.assert_close(a, b)


def test_actor_losses_match_the_spec_for_the_same_draws():
    agent = small_agent(alpha=7.0, noise_scale=0.3)
    batch = random_batch(n=16)
    noise = agent.draw_update_noise(16)
    _, info = agent.losses(packed(batch), noise)
    n = one(noise)
    with torch.no_grad():
        t, x0, x1 = n.t, n.x0, batch.actions
        x_t = (1 - t) * x0 + t * x1 + 0.3 * torch.exp(10 * (t - 1)) * n.eps
        bc = (agent.bc_flow(batch.observations[None], x_t[None], t[None])[0]
              - (x1 - x0)).square().mean()
        target = agent.sample_flow(batch.observations, n.z)
        actions = mu(agent, batch.observations, n.z)
        distill = (actions - target).square().mean()
        q = critic(agent, batch.observations, actions.clamp(-1, 1)).mean(0).mean()
    keys = ("actor/bc_flow_loss", "actor/distill_loss", "actor/q_loss", "actor/loss")
    got = {k: info[k][0].item() for k in keys}
    assert got["actor/bc_flow_loss"] == pytest.approx(bc.item(), rel=1e-5)
    assert got["actor/distill_loss"] == pytest.approx(distill.item(), rel=1e-5)
    assert got["actor/q_loss"] == pytest.approx(-q.item(), rel=1e-5)
    assert got["actor/loss"] == pytest.approx(bc.item() + 7.0 * distill.item() - q.item(),
                                              rel=1e-5)


def test_eta_zero_gives_the_plain_flow_matching_loss_for_the_same_draws():
    plain = small_agent(noise_scale=0.0)
    noisy = small_agent(noise_scale=0.0, noise_schedule="paper")
    batch = random_batch(n=16)
    noise = plain.draw_update_noise(16)
    n = one(noise)
    with torch.no_grad():
        t, x0, x1 = n.t, n.x0, batch.actions
        expected = (plain.bc_flow(batch.observations[None], ((1 - t) * x0 + t * x1)[None],
                                  t[None])[0] - (x1 - x0)).square().mean()
    for agent in (plain, noisy):
        _, info = agent.losses(packed(batch), noise)
        assert info["actor/bc_flow_loss"][0].item() == pytest.approx(expected.item(), rel=1e-6)


def test_update_metrics_are_the_losses_info_under_their_names():
    agent = small_agent()
    batch = random_batch(n=16)
    noise = agent.draw_update_noise(16)
    critic_loss, critic_info = agent.critic_loss(packed(batch), noise)
    actor_loss, actor_info = agent.actor_loss(packed(batch), noise)
    assert all(k.startswith("critic/") for k in critic_info)
    assert all(k.startswith("actor/") for k in actor_info)
    assert critic_info["critic/loss"].item() == pytest.approx(critic_loss.item())
    assert actor_info["actor/loss"].item() == pytest.approx(actor_loss.item())
    info = agent.info(agent.update(batch, noise))
    assert tuple(info) == agent.info_keys == (*critic_info, *actor_info)
    # The loss keys other modules read (plots, the demo) are among those the agent makes.
    assert {metric_keys.CRITIC_LOSS, metric_keys.ACTOR_LOSS, metric_keys.ACTOR_BC_FLOW_LOSS,
            metric_keys.ACTOR_DISTILL_LOSS, metric_keys.ACTOR_Q_LOSS,
            metric_keys.ACTOR_NOISE_SCALE} <= set(info)
    for key, value in {**critic_info, **actor_info}.items():
        assert info[key] == pytest.approx(value.item(), rel=1e-6), key


def test_soft_target_update_moves_target_toward_the_critic_before_the_step():
    # Reference: target ← τ θ + (1 − τ) θ̄ with θ the critic *before* this update's Adam step.
    agent = small_agent(tau=0.25)
    before_target = [p.clone() for p in agent.target_critic.parameters()]
    before_online = [p.detach().clone() for p in agent.critic.parameters()]
    agent.update(random_batch(n=16))
    for old, new, online, moved in zip(before_target, agent.target_critic.parameters(),
                                       before_online, agent.critic.parameters(), strict=True):
        torch.testing.assert_close(new, old + 0.25 * (online - old))
        assert not torch.equal(online, moved)  # the critic did step


def test_a_non_finite_loss_is_recorded_on_the_device_and_raised_when_checked():
    agent = small_agent()
    good = random_batch(n=16)
    bad = type(good)(good.observations, good.actions, good.rewards * float("nan"),
                     good.next_observations, good.terminated)
    agent.update(good)
    agent.check_finite()  # nothing to report yet
    metrics = agent.update(bad)  # no exception here: the update reads nothing back
    agent.update(good)
    assert agent.nonfinite_members() == {0: 1}
    expected = r"member 0 \(seed 0\) first at update 1.*critic/loss=nan"
    with pytest.raises(NonFiniteLoss, match=expected):
        agent.check_finite(metrics)


# ---- β -----------------------------------------------------------------------------------------

def test_beta_rises_when_entropy_above_target():
    agent = small_agent(beta_init=10.0, beta_lr=0.1)  # target -3
    assert agent.update_beta(-1.0) == pytest.approx(10.2)


def test_beta_falls_when_entropy_below_target():
    agent = small_agent(beta_init=10.0, beta_lr=0.1)
    assert agent.update_beta(-8.0) == pytest.approx(9.5)


def test_beta_never_goes_below_zero():
    agent = small_agent(beta_init=0.3, beta_lr=0.1)
    assert agent.update_beta(-100.0) == 0.0
    assert agent.update_beta(-100.0) == 0.0


# ---- checkpoints and devices -------------------------------------------------------------------

def test_checkpoint_round_trip_continues_exactly():
    batches = [random_batch(n=32, seed=i) for i in range(6)]
    obs = torch.randn(4, 6)
    a = small_agent(seed=3)
    for b in batches[:3]:
        a.update(b)
        a.act(obs)
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    for b in batches[3:]:
        a.update(b)
    expected_action = a.act(obs)

    resumed = small_agent(seed=99)
    buf.seek(0)
    resumed.load_state_dict(torch.load(buf, weights_only=True))
    for b in batches[3:]:
        resumed.update(b)
    for net in ("bc_flow", "onestep", "critic", "target_critic"):
        for p, q in zip(getattr(a, net).parameters(), getattr(resumed, net).parameters(),
                        strict=True):
            assert torch.equal(p, q), net
    assert torch.equal(resumed.act(obs), expected_action)
    assert resumed.num_updates == a.num_updates == 6


def test_loading_a_checkpoint_with_another_config_is_refused():
    state = small_agent().state_dict()
    with pytest.raises(ValueError, match="noise_scale"):
        small_agent(noise_scale=0.3).load_state_dict(state)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA present: nothing to refuse")
def test_asking_for_cuda_without_it_is_a_clear_error():
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        FinoAgent(6, 3, device="cuda")


def test_auto_device_is_cuda_when_present_else_cpu():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert FinoAgent(6, 3, device="auto").device.type == expected


def test_compiled_update_matches_eager():
    eager, compiled = small_agent(seed=5), FinoAgent(6, 3, small_agent().config, seed=5,
                                                    compile=True)
    for i in range(3):
        batch = random_batch(n=32, seed=i)
        noise = eager.draw_update_noise(32)
        compiled.generator.set_state(eager.generator.get_state())
        info_e = eager.info(eager.update(batch, noise))
        info_c = compiled.info(compiled.update(batch, noise))
        for key in info_e:
            assert info_c[key] == pytest.approx(info_e[key], rel=1e-4, abs=1e-6), key
    for p, q in zip(eager.critic.parameters(), compiled.critic.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)


def test_compiled_acting_matches_eager():
    eager, compiled = small_agent(seed=2), FinoAgent(6, 3, small_agent().config, seed=2,
                                                    compile=True)
    obs = torch.randn(4, 6)
    for greedy in (True, False):
        torch.testing.assert_close(compiled.act(obs, greedy=greedy),
                                   eager.act(obs, greedy=greedy), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(compiled.sample_exploration_actions(obs, 5),
                               eager.sample_exploration_actions(obs, 5), rtol=1e-5, atol=1e-6)
