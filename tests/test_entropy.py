"""Entropy of the exploring policy (spec §4) through the agent: real policy samples."""

import pytest
import torch

from fino.algo.gmm import gmm_entropy_batched, gmm_entropy_sklearn

from .conftest import small_agent


@pytest.fixture(scope="module")
def policy_samples():
    agent = small_agent(obs_dim=6, action_dim=4, num_candidates=3)
    obs = torch.randn(48, 6, generator=torch.Generator().manual_seed(0))
    return agent.sample_exploration_actions(obs, 200)


def test_exploration_samples_have_one_row_per_state_and_sample(policy_samples):
    assert policy_samples.shape == (48, 200, 4)
    assert policy_samples.abs().max() <= 1.0


def test_batched_entropy_agrees_with_sklearn_on_real_policy_samples(policy_samples):
    batched = gmm_entropy_batched(policy_samples, 3).mean().item()
    reference = float(gmm_entropy_sklearn(policy_samples, 3).mean())
    assert batched == pytest.approx(reference, rel=0.05)


@pytest.mark.parametrize("estimator", ["batched", "sklearn"])
def test_estimate_entropy_uses_entropy_states_and_both_estimators_agree(estimator):
    obs = torch.randn(64, 6, generator=torch.Generator().manual_seed(1))
    agent = small_agent(obs_dim=6, action_dim=4, entropy_states=16, entropy_samples=100,
                        entropy_estimator=estimator)
    other = small_agent(obs_dim=6, action_dim=4, entropy_states=16, entropy_samples=100,
                        entropy_estimator="sklearn" if estimator == "batched" else "batched")
    assert agent.estimate_entropy(obs) == pytest.approx(other.estimate_entropy(obs), rel=0.05)


def test_beta_zero_samples_like_a_plain_one_step_policy():
    """A uniform pick among iid candidates is a plain sample: same entropy as `none`."""
    obs = torch.randn(32, 6, generator=torch.Generator().manual_seed(2))
    guided = small_agent(obs_dim=6, action_dim=4, num_candidates=8, entropy_states=32,
                         beta_init=0.0)
    plain = small_agent(obs_dim=6, action_dim=4, exploration="none", entropy_states=32)
    assert guided.estimate_entropy(obs) == pytest.approx(plain.estimate_entropy(obs), rel=0.03)
