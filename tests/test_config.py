import pytest

from fino.algo import AgentConfig, ConfigError, default_num_candidates


@pytest.mark.parametrize(("d", "k"), [(2, 1), (5, 3), (8, 4), (21, 10), (30, 10)])
def test_default_num_candidates_is_min_10_ceil_half_d(d, k):
    assert default_num_candidates(d) == k
    assert AgentConfig().resolved(d).num_candidates == k


def test_entropy_target_defaults_to_minus_action_dim():
    assert AgentConfig().resolved(21).entropy_target == -21.0
    assert AgentConfig(entropy_target=-3.5).resolved(21).entropy_target == -3.5


def test_defaults_are_the_specs():
    c = AgentConfig()
    assert c.actor_hidden_dims == c.value_hidden_dims == (512, 512, 512, 512)
    assert (c.lr, c.batch_size, c.discount, c.tau, c.flow_steps) == (3e-4, 256, 0.99, 0.005, 10)
    assert (c.noise_scale, c.noise_schedule, c.beta_init, c.beta_lr) == (0.1, "exp", 10.0, 0.1)
    assert (c.entropy_samples, c.entropy_states, c.gmm_components) == (200, 256, 3)
    assert (c.value_layer_norm, c.actor_layer_norm, c.q_agg) == (True, False, "mean")


@pytest.mark.parametrize(
    ("field", "value"),
    [("noise_scale", -0.1), ("noise_scale", 1.5), ("q_agg", "max"), ("num_candidates", 0),
     ("batch_size", 0), ("discount", 1.2), ("tau", 0.0), ("flow_steps", 2.5),
     ("exploration", "boltzmann"), ("noise_schedule", "cosine"), ("lr", float("nan")),
     ("actor_hidden_dims", ()), ("gmm_components", 0)],
)
def test_invalid_values_raise_an_error_naming_the_field(field, value):
    with pytest.raises(ConfigError, match=field):
        AgentConfig(**{field: value})


def test_from_dict_rejects_unknown_keys_and_lists_known_ones():
    with pytest.raises(ConfigError, match=r"noise_scal.*known"):
        AgentConfig.from_dict({"noise_scal": 0.2})
    assert AgentConfig.from_dict({"noise_scale": 0.2}).noise_scale == 0.2


def test_fql_is_noise_zero_and_one_candidate():
    assert AgentConfig(noise_scale=0.0, num_candidates=1).is_fql
    assert not AgentConfig(noise_scale=0.1, num_candidates=1).is_fql
    assert not AgentConfig(noise_scale=0.0, num_candidates=3).is_fql
