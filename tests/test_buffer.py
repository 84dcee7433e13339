import numpy as np
import pytest
import torch

from fino.data.buffer import ACTION_CLIP, DEFAULT_CAPACITY, PackedReplay, ReplayBuffer


def _dataset(n=100, obs_dim=3, action_dim=2, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "observations": rng.normal(size=(n, obs_dim)).astype(np.float32),
        "actions": rng.uniform(-1, 1, size=(n, action_dim)).astype(np.float32),
        "rewards": np.arange(n, dtype=np.float32),  # reward = row id, to trace rows
        "next_observations": rng.normal(size=(n, obs_dim)).astype(np.float32),
        "masks": (rng.uniform(size=n) > 0.2).astype(np.float32),
    }


def _add_online(buf, start, count):
    for i in range(start, start + count):
        buf.add(np.zeros(3), np.zeros(2), float(i), np.zeros(3), terminated=False)


def test_dataset_actions_are_clipped_and_masks_become_terminated():
    data = _dataset()
    data["actions"][0] = [1.0, -1.0]
    buf = ReplayBuffer(data, capacity=200)
    stored = buf.online.data
    assert stored["actions"][:100].abs().max().item() == pytest.approx(ACTION_CLIP)
    torch.testing.assert_close(stored["terminated"][:100], torch.from_numpy(1 - data["masks"]))


def test_default_capacity_is_max_of_1_5m_and_dataset_plus_one():
    assert ReplayBuffer(_dataset(n=10)).online.capacity == DEFAULT_CAPACITY


def test_uniform_sampling_mixes_offline_and_online_in_proportion():
    buf = ReplayBuffer(_dataset(n=100), capacity=1000)
    _add_online(buf, 1000, 300)
    rewards = torch.cat([buf.sample(256).rewards for _ in range(200)])
    online_share = (rewards >= 1000).float().mean().item()
    assert online_share == pytest.approx(300 / 400, abs=0.02)


def test_a_full_buffer_overwrites_the_oldest_rows_offline_first():
    buf = ReplayBuffer(_dataset(n=100), capacity=101)
    _add_online(buf, 1000, 5)  # row 100, then rows 0..3 of the offline data
    kept = set(buf.online.data["rewards"].tolist())
    assert {0.0, 1.0, 2.0, 3.0}.isdisjoint(kept)
    assert {4.0, 99.0, 1000.0, 1004.0} <= kept
    assert len(buf) == 101


def test_balanced_sampling_takes_half_from_each_source():
    buf = ReplayBuffer(_dataset(n=100), capacity=50, balanced=True)
    assert (buf.sample(64).rewards < 1000).all()  # no online data yet: all offline
    _add_online(buf, 1000, 10)
    batch = buf.sample(64)
    assert (batch.rewards >= 1000).sum().item() == 32


def test_state_round_trip_continues_sampling_exactly():
    data = _dataset(n=100)
    buf = ReplayBuffer(data, capacity=120)
    _add_online(buf, 1000, 30)  # wraps: overwrites offline rows 0..9
    buf.sample(16)
    state = buf.state_dict()
    expected = [buf.sample(32).rewards for _ in range(3)]
    resumed = ReplayBuffer(data, capacity=120)
    resumed.load_state_dict(state)
    for want in expected:
        assert torch.equal(resumed.sample(32).rewards, want)
    _add_online(buf, 2000, 3)
    _add_online(resumed, 2000, 3)
    for key, value in buf.online.data.items():
        assert torch.equal(resumed.online.data[key], value), key


def test_bad_datasets_are_clear_errors():
    data = _dataset()
    del data["masks"]
    with pytest.raises(KeyError, match="masks"):
        ReplayBuffer(data)
    data = _dataset()
    data["rewards"] = data["rewards"][:-1]
    with pytest.raises(ValueError, match="differ in length"):
        ReplayBuffer(data)
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(_dataset(), capacity=50, balanced=True).load_state_dict(
            ReplayBuffer(_dataset(), capacity=60, balanced=True).state_dict())


@pytest.mark.parametrize(("balanced", "capacity"), [(False, None), (False, 130), (True, 40)],
                         ids=["uniform", "uniform-overwriting", "balanced"])
def test_pack_members_share_the_offline_rows_and_sample_exactly_as_their_own_buffer(
        balanced, capacity):
    data = _dataset()
    packed = PackedReplay(data, seeds=[3, 4, 5], capacity=capacity, balanced=balanced)
    singles = [ReplayBuffer(data, capacity=capacity, balanced=balanced, seed=s) for s in (3, 4, 5)]
    for step in range(60):  # past capacity 130 = 100 offline + 30 online: offline rows go
        for i, (member, single) in enumerate(zip(packed.members, singles, strict=True)):
            row = (np.full(3, 1000 * i + step), np.zeros(2), float(step), np.ones(3), False)
            member.add(*row)
            single.add(*row)
        batch = packed.sample(16)
        for i, single in enumerate(singles):
            expected = single.sample(16)
            for key in ("observations", "actions", "rewards", "next_observations",
                        "terminated"):
                assert torch.equal(getattr(batch, key)[i], getattr(expected, key)), (step, key)
    assert batch.observations.shape == (3, 16, 3)


def test_a_pack_holds_one_copy_of_the_offline_arrays():
    packed = PackedReplay(_dataset(n=1000), seeds=range(8))
    pointers = {m.shared["observations"].data_ptr() for m in packed.members}
    assert len(pointers) == 1
    assert all(m.online.size == 0 for m in packed.members)
