"""Flat float32 observations from Box / Discrete / Dict / Tuple spaces, actions on [-1, 1].

The agent sees one flat vector per state and acts on [-1, 1]; datasets and envs are mapped the
same way here so that what the buffer holds and what the env emits agree column by column.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

from fino.backends.base import TaskError

Leaf = spaces.Box | spaces.Discrete


def key_order(keys: Any) -> list[str]:
    """`observation` first (the robot's own state), then the other keys sorted; for antmaze:
    observation (27) + achieved_goal (2) + desired_goal (2). Independent of the Dict's own
    order, which gymnasium sorts and a stored space may not."""
    keys = list(keys)
    rest = sorted(k for k in keys if k != "observation")
    return ["observation", *rest] if "observation" in keys else rest


def _leaves(space: spaces.Space, data: Any, path: str = "") -> Iterator[tuple[str, Leaf, Any]]:
    """(key path, leaf space, leaf data) in the flattening order."""
    if isinstance(space, spaces.Dict):
        for key in key_order(space.spaces):
            yield from _leaves(space[key], None if data is None else data[key], f"{path}/{key}")
    elif isinstance(space, spaces.Tuple):
        for i, sub in enumerate(space.spaces):
            yield from _leaves(sub, None if data is None else data[i], f"{path}/{i}")
    elif isinstance(space, spaces.Box | spaces.Discrete):
        yield path or "/", space, data
    else:
        raise TaskError(f"observation space {space} is not supported: only Box, Discrete and "
                        "Dict/Tuple of them can be flattened")


def _leaf_dim(space: Leaf) -> int:
    return int(space.n) if isinstance(space, spaces.Discrete) else int(np.prod(space.shape))


def layout(space: spaces.Space) -> list[tuple[str, int]]:
    """The flat vector's segments: (key path, width) in order."""
    return [(path, _leaf_dim(leaf)) for path, leaf, _ in _leaves(space, None)]


def flat_dim(space: spaces.Space) -> int:
    return sum(width for _, width in layout(space))


def flatten_batch(space: spaces.Space, data: Any) -> np.ndarray:
    """A batch of observations (each leaf with a leading batch axis) → (N, flat_dim) float32."""
    columns = []
    for _, leaf, values in _leaves(space, data):
        values = np.asarray(values)
        if isinstance(leaf, spaces.Discrete):
            index = values.reshape(-1).astype(np.int64) - int(leaf.start)
            columns.append(np.eye(int(leaf.n), dtype=np.float32)[index])
        else:
            columns.append(values.reshape(len(values), -1).astype(np.float32, copy=False))
    return np.concatenate(columns, axis=1)


def flatten_one(space: spaces.Space, obs: Any) -> np.ndarray:
    """One observation → (flat_dim,) float32."""
    return flatten_batch(space, _add_batch_axis(space, obs))[0]


def _add_batch_axis(space: spaces.Space, obs: Any) -> Any:
    if isinstance(space, spaces.Dict):
        return {k: _add_batch_axis(space[k], obs[k]) for k in space.spaces}
    if isinstance(space, spaces.Tuple):
        return tuple(_add_batch_axis(s, o) for s, o in zip(space.spaces, obs, strict=True))
    return np.asarray(obs)[None]


class FlatObservation(gymnasium.ObservationWrapper):
    """Emits `flatten_one(original space, obs)`: the dataset's flat float32 layout."""

    def __init__(self, env: gymnasium.Env) -> None:
        super().__init__(env)
        self.source_space = env.observation_space
        dim = flat_dim(self.source_space)
        self.observation_space = spaces.Box(-np.inf, np.inf, (dim,), np.float32)

    def observation(self, observation: Any) -> np.ndarray:
        return flatten_one(self.source_space, observation)


def check_action_space(space: spaces.Space, source: str) -> spaces.Box:
    """The continuous, bounded, 1-d action space FINO needs."""
    if not isinstance(space, spaces.Box) or len(space.shape) != 1:
        raise TaskError(f"{source}: action space {space} is not a 1-d Box; FINO needs "
                        "continuous actions")
    if not (np.isfinite(space.low).all() and np.isfinite(space.high).all()):
        raise TaskError(f"{source}: action space {space} is unbounded; FINO acts on [-1, 1] "
                        "and needs finite bounds to rescale to them")
    return space


def _is_unit(space: spaces.Box) -> bool:
    return bool(np.all(space.low == -1.0) and np.all(space.high == 1.0))


def to_unit_actions(actions: np.ndarray, space: spaces.Box) -> np.ndarray:
    """Dataset actions in env units → [-1, 1] (unchanged when the env already uses [-1, 1])."""
    actions = np.asarray(actions, dtype=np.float32)
    if _is_unit(space):
        return actions
    low, high = space.low.astype(np.float32), space.high.astype(np.float32)
    return 2.0 * (actions - low) / (high - low) - 1.0


def wrap_env(env: gymnasium.Env) -> gymnasium.Env:
    """Flat float32 observations and, where the env's bounds are not ±1, actions on [-1, 1]."""
    space = check_action_space(env.action_space, env.spec.id if env.spec else str(env))
    if not _is_unit(space):
        unit = np.ones(space.shape, space.dtype)  # in the env's dtype: no precision warning
        env = gymnasium.wrappers.RescaleAction(env, -unit, unit)
    return FlatObservation(env)
