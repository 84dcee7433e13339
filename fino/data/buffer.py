"""Replay buffers for offline-to-online training (spec §5).

The paper's protocol: online transitions go into the same buffer as the offline dataset, sampled
uniformly; capacity max(1.5M, |D| + 1); a full buffer overwrites its oldest rows (the offline
data first, as the reference's ring does). `balanced=True` is the RLPD-style alternative: half
of each batch from the offline data, half from the online transitions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from fino.algo.agent import Batch

ACTION_CLIP = 1.0 - 1e-5  # dataset actions are clipped to ±(1 − 1e−5) when loaded (spec §3)
DEFAULT_CAPACITY = 1_500_000
FIELDS = ("observations", "actions", "rewards", "next_observations", "terminated")


class TransitionRing:
    """A fixed-capacity ring of transitions stored as CPU tensors."""

    def __init__(self, capacity: int, obs_dim: int, action_dim: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity={capacity}: must be >= 1")
        self.capacity = capacity
        self.data = {
            "observations": torch.empty(capacity, obs_dim),
            "actions": torch.empty(capacity, action_dim),
            "rewards": torch.empty(capacity),
            "next_observations": torch.empty(capacity, obs_dim),
            "terminated": torch.empty(capacity),
        }
        self.size = 0
        self.pointer = 0  # next row to write

    def extend(self, rows: Mapping[str, Tensor]) -> None:
        """Append rows (the oldest are overwritten once full)."""
        n = len(rows["rewards"])
        if n > self.capacity:
            rows = {k: v[n - self.capacity:] for k, v in rows.items()}
            n = self.capacity
        first = min(n, self.capacity - self.pointer)
        for key in FIELDS:
            src = torch.as_tensor(rows[key], dtype=torch.float32)
            self.data[key][self.pointer:self.pointer + first] = src[:first]
            self.data[key][: n - first] = src[first:]
        self.pointer = (self.pointer + n) % self.capacity
        self.size = min(self.capacity, self.size + n)

    def gather(self, index: Tensor) -> dict[str, Tensor]:
        return {key: value.index_select(0, index) for key, value in self.data.items()}

    def sample(self, n: int, generator: torch.Generator) -> dict[str, Tensor]:
        """n rows drawn uniformly with replacement from the stored ones."""
        return self.gather(torch.randint(self.size, (n,), generator=generator))


def dataset_rows(dataset: Mapping[str, Any]) -> dict[str, Tensor]:
    """Offline arrays as float tensors, actions clipped; `terminated` from `terminals` of a true
    termination or from OGBench-style `masks` (terminated = 1 − mask)."""
    missing = [k for k in ("observations", "actions", "rewards", "next_observations")
               if k not in dataset]
    if missing:
        raise KeyError(f"offline dataset lacks {missing}; it has {sorted(dataset)}")
    if "terminated" in dataset:
        terminated = np.asarray(dataset["terminated"], dtype=np.float32)
    elif "masks" in dataset:
        terminated = 1.0 - np.asarray(dataset["masks"], dtype=np.float32)
    else:
        raise KeyError("offline dataset needs 'masks' (1 − terminated) or 'terminated'")
    rows = {
        "observations": np.asarray(dataset["observations"], dtype=np.float32),
        "actions": np.clip(np.asarray(dataset["actions"], dtype=np.float32),
                           -ACTION_CLIP, ACTION_CLIP),
        "rewards": np.asarray(dataset["rewards"], dtype=np.float32).reshape(-1),
        "next_observations": np.asarray(dataset["next_observations"], dtype=np.float32),
        "terminated": terminated.reshape(-1),
    }
    lengths = {k: len(v) for k, v in rows.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"offline dataset arrays differ in length: {lengths}")
    return {k: torch.from_numpy(v) for k, v in rows.items()}


class ReplayBuffer:
    """Offline dataset plus online transitions, sampled uniformly (paper) or 50/50 (balanced)."""

    def __init__(
        self,
        dataset: Mapping[str, Any],
        *,
        capacity: int | None = None,
        balanced: bool = False,
        seed: int = 0,
    ) -> None:
        offline = dataset_rows(dataset)
        n = len(offline["rewards"])
        if n == 0:
            raise ValueError("offline dataset is empty")
        obs_dim, action_dim = offline["observations"].shape[1], offline["actions"].shape[1]
        self.balanced = balanced
        self.num_offline = n
        self.generator = torch.Generator().manual_seed(seed)
        if balanced:
            self.offline = TransitionRing(n, obs_dim, action_dim)
            self.offline.extend(offline)
            online_capacity = capacity if capacity is not None else DEFAULT_CAPACITY
            self.online = TransitionRing(online_capacity, obs_dim, action_dim)
        else:
            ring_capacity = capacity if capacity is not None else max(DEFAULT_CAPACITY, n + 1)
            self.online = TransitionRing(ring_capacity, obs_dim, action_dim)
            self.online.extend(offline)
        self.num_online_added = 0

    def __len__(self) -> int:
        return self.online.size + (self.offline.size if self.balanced else 0)

    def add(self, observation: Any, action: Any, reward: float, next_observation: Any,
            terminated: bool) -> None:
        """Append one online transition (`terminated`: a true end, not a time limit)."""
        self.online.extend(_row(observation, action, reward, next_observation, terminated))
        self.num_online_added += 1

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> Batch:
        """A batch: uniform over everything stored, or half offline / half online (balanced,
        uniform until the first online transition arrives). Draws come from `generator` when
        given (measurements pass their own, leaving the training stream alone)."""
        g = generator or self.generator
        if not self.balanced:
            return _to_batch(self.online.sample(batch_size, g))
        if self.online.size == 0:
            return _to_batch(self.offline.sample(batch_size, g))
        half = batch_size // 2
        off, on = self.offline.sample(batch_size - half, g), self.online.sample(half, g)
        return _to_batch({k: torch.cat([off[k], on[k]]) for k in FIELDS})


    def state_dict(self) -> dict[str, Any]:
        """The online part (rows at their ring positions), counters and RNG: with the same
        offline dataset, `load_state_dict` restores this buffer exactly."""
        ring = self.online
        k = min(self.num_online_added, ring.capacity)
        index = torch.arange(ring.pointer - k, ring.pointer) % ring.capacity
        return {"balanced": self.balanced, "num_offline": self.num_offline,
                "capacity": ring.capacity, "index": index, "rows": ring.gather(index),
                "pointer": ring.pointer, "size": ring.size,
                "num_online_added": self.num_online_added,
                "generator": self.generator.get_state()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        mine = (self.balanced, self.num_offline, self.online.capacity)
        theirs = (state["balanced"], state["num_offline"], state["capacity"])
        if mine != theirs:
            raise ValueError(f"buffer state is for (balanced, offline rows, capacity)={theirs}, "
                             f"this buffer has {mine}")
        ring = self.online
        for key in FIELDS:
            ring.data[key][state["index"]] = state["rows"][key]
        ring.pointer, ring.size = int(state["pointer"]), int(state["size"])
        self.num_online_added = int(state["num_online_added"])
        self.generator.set_state(state["generator"])


def _row(observation: Any, action: Any, reward: float, next_observation: Any,
         terminated: bool) -> dict[str, Tensor]:
    """One transition as a ring row."""
    return {
        "observations": torch.as_tensor(np.asarray(observation, np.float32))[None],
        "actions": torch.as_tensor(np.asarray(action, np.float32))[None],
        "rewards": torch.tensor([float(reward)]),
        "next_observations": torch.as_tensor(np.asarray(next_observation, np.float32))[None],
        "terminated": torch.tensor([float(terminated)]),
    }


def _to_batch(rows: Mapping[str, Tensor]) -> Batch:
    return Batch(**{k: rows[k] for k in FIELDS})


class SharedOfflineReplay:
    """One pack member's replay buffer over offline rows it shares with the other members.

    Samples exactly as `ReplayBuffer(dataset, seed=…)` with the same capacity and generator:
    the same positions drawn, the same rows returned. Online transitions go to the member's
    own ring; only when they would start overwriting the offline rows (a full buffer
    overwrites the oldest data, offline first) does the member take a private copy.
    """

    def __init__(self, offline: Mapping[str, Tensor], *, capacity: int | None = None,
                 balanced: bool = False, seed: int = 0) -> None:
        self.shared = offline
        n = len(offline["rewards"])
        if n == 0:
            raise ValueError("offline dataset is empty")
        obs_dim, action_dim = offline["observations"].shape[1], offline["actions"].shape[1]
        self.num_offline, self.balanced = n, balanced
        self.generator = torch.Generator().manual_seed(seed)
        if balanced:
            self.capacity = capacity if capacity is not None else DEFAULT_CAPACITY
            self.online = TransitionRing(self.capacity, obs_dim, action_dim)
        else:
            self.capacity = capacity if capacity is not None else max(DEFAULT_CAPACITY, n + 1)
            if self.capacity <= n:
                raise ValueError(f"capacity={self.capacity}: a shared offline dataset of {n} "
                                 "rows needs capacity > its size")
            self.online = TransitionRing(self.capacity - n, obs_dim, action_dim)
        self.private: TransitionRing | None = None  # the whole ring, once offline rows go
        self.num_online_added = 0

    def add(self, observation: Any, action: Any, reward: float, next_observation: Any,
            terminated: bool) -> None:
        """Append one online transition (`terminated`: a true end, not a time limit)."""
        row = _row(observation, action, reward, next_observation, terminated)
        if not self.balanced and self.private is None and \
                self.online.size == self.online.capacity:
            self.private = TransitionRing(self.capacity, self.shared["observations"].shape[1],
                                          self.shared["actions"].shape[1])
            self.private.extend(self.shared)
            self.private.extend(self.online.data)
            self.online = self.private
        self.online.extend(row)
        self.num_online_added += 1

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> Batch:
        """As `ReplayBuffer.sample`: uniform over everything stored, or half offline / half
        online (balanced)."""
        g = generator or self.generator
        if self.balanced:
            n_off = batch_size if self.online.size == 0 else batch_size - batch_size // 2
            off = self._offline(torch.randint(self.num_offline, (n_off,), generator=g))
            if self.online.size == 0:
                return _to_batch(off)
            on = self.online.sample(batch_size // 2, g)
            return _to_batch({k: torch.cat([off[k], on[k]]) for k in FIELDS})
        if self.private is not None:
            return _to_batch(self.private.sample(batch_size, g))
        index = torch.randint(self.num_offline + self.online.size, (batch_size,), generator=g)
        online = index >= self.num_offline
        rows = self._offline(index.clamp(max=self.num_offline - 1))
        if online.any():
            fresh = self.online.gather(index[online] - self.num_offline)
            for key in FIELDS:
                rows[key][online] = fresh[key]
        return _to_batch(rows)

    def _offline(self, index: Tensor) -> dict[str, Tensor]:
        return {key: value.index_select(0, index) for key, value in self.shared.items()}

    def state_dict(self) -> dict[str, Any]:
        """The state `ReplayBuffer.state_dict` writes for the same buffer (its online rows at
        their positions in the one ring that buffer holds), so a member's checkpoint resumes
        as a single run's."""
        if self.balanced or self.private is not None:
            ring, offset = self.online, 0
            pointer, size = ring.pointer, ring.size
        else:  # the single ring is the offline rows followed by this member's online ring
            ring, offset = self.online, self.num_offline
            pointer = (self.num_offline + ring.size) % self.capacity
            size = self.num_offline + ring.size
        k = min(self.num_online_added, self.capacity)
        index = torch.arange(pointer - k, pointer) % self.capacity
        return {"balanced": self.balanced, "num_offline": self.num_offline,
                "capacity": self.capacity, "index": index, "rows": ring.gather(index - offset),
                "pointer": pointer, "size": size, "num_online_added": self.num_online_added,
                "generator": self.generator.get_state()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a state written by `state_dict` or by `ReplayBuffer.state_dict` (a single
        run's checkpoint): the member then samples as that buffer would."""
        mine = (self.balanced, self.num_offline, self.capacity)
        theirs = (state["balanced"], state["num_offline"], state["capacity"])
        if mine != theirs:
            raise ValueError(f"buffer state is for (balanced, offline rows, capacity)={theirs}, "
                             f"this buffer has {mine}")
        added = int(state["num_online_added"])
        index, rows = state["index"], state["rows"]
        if self.balanced:
            ring, pointer, size = self.online, int(state["pointer"]), int(state["size"])
        elif added <= self.online.capacity:  # no offline row overwritten: the shared rows hold
            ring, pointer, size = self.online, added % self.online.capacity, added
            index = index - self.num_offline
        else:  # the single ring has overwritten offline rows: this member's own copy
            obs_dim, action_dim = (self.shared["observations"].shape[1],
                                   self.shared["actions"].shape[1])
            ring = TransitionRing(self.capacity, obs_dim, action_dim)
            ring.extend(self.shared)
            pointer, size = int(state["pointer"]), int(state["size"])
            self.private = self.online = ring
        for key in FIELDS:
            ring.data[key][index] = rows[key]
        ring.pointer, ring.size = pointer, size
        self.num_online_added = added
        self.generator.set_state(state["generator"])



def take_sampling_stream(buffer: ReplayBuffer | SharedOfflineReplay,
                         state: Mapping[str, Any]) -> None:
    """Continue the sampling stream of a buffer state that holds the offline rows only (the
    end of an offline phase), whatever its capacity or balance: until online rows arrive, a
    buffer of the same offline rows draws the same rows from the same stream either way."""
    if int(state["num_online_added"]) != 0 or buffer.num_online_added != 0:
        raise ValueError("only a buffer without online rows takes over another's stream")
    if int(state["num_offline"]) != buffer.num_offline:
        raise ValueError(f"buffer state is for {state['num_offline']} offline rows, this "
                         f"buffer has {buffer.num_offline}")
    buffer.generator.set_state(state["generator"])


class PackedReplay:
    """The replay buffers of a pack: one copy of the offline arrays shared by every member,
    each member with its own online transitions and sampling stream (member i samples as
    `ReplayBuffer(dataset, seed=seeds[i])` would). `sample` returns a packed batch (P, B, …)."""

    def __init__(self, dataset: Mapping[str, Any], seeds: Sequence[int], *,
                 capacity: int | None = None, balanced: bool = False) -> None:
        offline = dataset_rows(dataset)
        self.members = [SharedOfflineReplay(offline, capacity=capacity, balanced=balanced,
                                            seed=s) for s in seeds]

    def __len__(self) -> int:
        return len(self.members)

    def sample(self, batch_size: int) -> Batch:
        return Batch.stack([m.sample(batch_size) for m in self.members])
