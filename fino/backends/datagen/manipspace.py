"""Cube / scene / puzzle episodes with OGBench's scripted oracles (play: plan, noisy: markov)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import gymnasium
import numpy as np
import ogbench.manipspace  # noqa: F401  (registers the envs)
from ogbench.manipspace.oracles.markov.button_markov import ButtonMarkovOracle
from ogbench.manipspace.oracles.markov.cube_markov import CubeMarkovOracle
from ogbench.manipspace.oracles.markov.drawer_markov import DrawerMarkovOracle
from ogbench.manipspace.oracles.markov.window_markov import WindowMarkovOracle
from ogbench.manipspace.oracles.plan.button_plan import ButtonPlanOracle
from ogbench.manipspace.oracles.plan.cube_plan import CubePlanOracle
from ogbench.manipspace.oracles.plan.drawer_plan import DrawerPlanOracle
from ogbench.manipspace.oracles.plan.window_plan import WindowPlanOracle

from fino.backends.datagen.episode import EpisodeSeeds, Rows
from fino.backends.datagen.recipes import Recipe


def _oracles(recipe: Recipe, env: gymnasium.Env) -> dict[str, Any]:
    """One oracle per target task kind, exactly as the published script builds them."""
    if recipe.oracle == "plan":
        kw = dict(env=env, noise=recipe.action_noise, noise_smoothing=recipe.noise_smoothing)
        if recipe.env_id.startswith("cube"):
            return {"cube": CubePlanOracle(**kw)}
        if recipe.env_id.startswith("scene"):
            return {"cube": CubePlanOracle(**kw), "button": ButtonPlanOracle(**kw),
                    "drawer": DrawerPlanOracle(**kw), "window": WindowPlanOracle(**kw)}
        return {"button": ButtonPlanOracle(**kw, gripper_always_closed=True)}
    kw = dict(env=env, min_norm=recipe.min_norm)
    if recipe.env_id.startswith("cube"):
        return {"cube": CubeMarkovOracle(**kw)}
    if recipe.env_id.startswith("scene"):
        return {"cube": CubeMarkovOracle(**kw, max_step=100), "button": ButtonMarkovOracle(**kw),
                "drawer": DrawerMarkovOracle(**kw), "window": WindowMarkovOracle(**kw)}
    return {"button": ButtonMarkovOracle(**kw, gripper_always_closed=True)}


def _sample_p_stack(env_id: str) -> float:
    """Per-episode chance that a new cube target is on top of another cube."""
    if "single" in env_id:
        return 0.0
    bounds = {"double": (0.0, 0.25), "triple": (0.05, 0.35), "quadruple": (0.1, 0.5)}
    for kind, (low, high) in bounds.items():
        if kind in env_id:
            return float(np.random.uniform(low, high))
    return 0.5  # scene (puzzle ignores it)


def _scene_is_healthy(qpos: np.ndarray) -> bool:
    """The script's check: the cube stays visible unless it is in the drawer (else: retry)."""
    xyz = qpos[:, 14:17]
    too_far_right = (xyz[:, 1] >= 0.29).any()
    left_outside_drawer = ((xyz[:, 1] <= -0.3) & ((xyz[:, 2] < 0.06) | (xyz[:, 2] > 0.08))).any()
    return not (too_far_right or left_outside_drawer)


@dataclass(frozen=True)
class _TargetState:
    """The env state that `set_new_target` writes and `reset` does not clear (the `_target*`
    attributes and the target sites): after a task switch the oracle reads it for one step."""

    attributes: dict[str, Any]
    site_pos: np.ndarray

    @classmethod
    def capture(cls, env: gymnasium.Env) -> _TargetState:
        env.reset(seed=0)  # compiles the model, so the sites exist
        base = env.unwrapped
        attributes = {k: copy.deepcopy(v) for k, v in vars(base).items() if k.startswith("_target")}
        return cls(attributes, base.model.site_pos.copy())

    def restore(self, env: gymnasium.Env) -> None:
        base = env.unwrapped
        for key, value in self.attributes.items():
            setattr(base, key, copy.deepcopy(value))
        base.model.site_pos[:] = self.site_pos


class ManipspaceCollector:
    """Collects episodes of one manipspace dataset; keeps its env between episodes."""

    def __init__(self, recipe: Recipe, episode_length: int) -> None:
        self.recipe = recipe
        self.env = gymnasium.make(recipe.env_id, terminate_at_goal=False, mode="data_collection",
                                  max_episode_steps=episode_length, disable_env_checker=True)
        self.oracles = _oracles(recipe, self.env)
        self.has_button_states = hasattr(self.env.unwrapped, "_cur_button_states")
        # Manipspace builds a fresh, unseeded Box on every `env.action_space` access; keep one
        # and seed it per episode so random actions are reproducible.
        self.action_space = self.env.action_space
        self._canonical = _TargetState.capture(self.env)

    def collect(self, seeds: EpisodeSeeds) -> Rows:
        """One episode (np.random must already be seeded with `seeds.global_seed`)."""
        # Restore the target state a previous episode left, so an episode depends only on its
        # seeds, not on which episodes the same worker ran before it.
        self._canonical.restore(self.env)
        self.action_space.seed(seeds.space_seed)
        reset_seed: int | None = seeds.env_seed
        while True:
            rows = self._attempt(reset_seed)
            reset_seed = None  # a retry continues the episode's env random stream
            if not self.recipe.env_id.startswith("scene") or _scene_is_healthy(rows.array("qpos")):
                return rows

    def _attempt(self, reset_seed: int | None) -> Rows:
        env, recipe = self.env, self.recipe
        markov = recipe.oracle == "markov"
        ob, info = env.reset(seed=reset_seed)
        p_stack = _sample_p_stack(recipe.env_id)
        if markov:
            xi = np.random.uniform(0, recipe.action_noise)
            noise_scale = np.array([xi, xi, xi, 3 * xi, 10 * xi])
        agent = self.oracles[info["privileged/target_task"]]
        agent.reset(ob, info)

        rows = Rows()
        done = False
        while not done:
            if np.random.rand() < recipe.p_random_action:
                action = self.action_space.sample()
            else:
                action = np.array(agent.select_action(ob, info))
                if markov:
                    action = action + np.random.normal(0, noise_scale, action.shape)
            action = np.clip(action, -1, 1)
            next_ob, _, terminated, truncated, info = env.step(action)
            done = terminated or truncated

            if agent.done:  # the oracle finished its task: give it a new one
                agent_ob, agent_info = env.unwrapped.set_new_target(p_stack=p_stack)
                agent = self.oracles[agent_info["privileged/target_task"]]
                agent.reset(agent_ob, agent_info)

            rows.add(observations=ob, actions=action, terminals=done, qpos=info["prev_qpos"],
                     qvel=info["prev_qvel"],
                     **({"button_states": info["prev_button_states"]}
                        if self.has_button_states else {}))
            ob = next_ob
        return rows
