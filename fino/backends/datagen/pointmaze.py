"""Pointmaze `navigate` episodes: the BFS waypoint oracle plus Gaussian action noise."""

from __future__ import annotations

import gymnasium
import numpy as np
import ogbench.locomaze  # noqa: F401  (registers the envs)

from fino.backends.datagen.episode import EpisodeSeeds, Rows
from fino.backends.datagen.recipes import Recipe

Cell = tuple[int, int]


def maze_cells(maze_map: np.ndarray) -> tuple[list[Cell], list[Cell]]:
    """All free cells (start states) and the free cells that are not straight hallways (goals)."""
    all_cells, vertex_cells = [], []
    for i in range(maze_map.shape[0]):
        for j in range(maze_map.shape[1]):
            if maze_map[i, j] != 0:
                continue
            all_cells.append((i, j))
            vertical = maze_map[i - 1, j] == 0 and maze_map[i + 1, j] == 0 and \
                maze_map[i, j - 1] == 1 and maze_map[i, j + 1] == 1
            horizontal = maze_map[i, j - 1] == 0 and maze_map[i, j + 1] == 0 and \
                maze_map[i - 1, j] == 1 and maze_map[i + 1, j] == 1
            if not (vertical or horizontal):
                vertex_cells.append((i, j))
    return all_cells, vertex_cells


class PointmazeCollector:
    """Collects episodes of one pointmaze dataset; keeps its env between episodes."""

    def __init__(self, recipe: Recipe, episode_length: int) -> None:
        self.recipe = recipe
        self.env = gymnasium.make(recipe.env_id, terminate_at_goal=False,
                                  max_episode_steps=episode_length, disable_env_checker=True)
        self.all_cells, self.vertex_cells = maze_cells(self.env.unwrapped.maze_map)

    def collect(self, seeds: EpisodeSeeds) -> Rows:
        """One episode (np.random must already be seeded with `seeds.global_seed`)."""
        env, maze = self.env, self.env.unwrapped
        env.action_space.seed(seeds.space_seed)
        init_ij = self.all_cells[np.random.randint(len(self.all_cells))]
        goal_ij = self.vertex_cells[np.random.randint(len(self.vertex_cells))]
        ob, _ = env.reset(seed=seeds.env_seed,
                          options=dict(task_info=dict(init_ij=init_ij, goal_ij=goal_ij)))

        rows = Rows()
        done = False
        while not done:
            xy = maze.get_xy()
            subgoal_xy, _ = maze.get_oracle_subgoal(xy, maze.cur_goal_xy)
            direction = subgoal_xy - xy
            action = direction / (np.linalg.norm(direction) + 1e-6)
            action = np.clip(action + np.random.normal(0, self.recipe.action_noise, action.shape),
                             -1, 1)
            next_ob, _, terminated, truncated, info = env.step(action)
            done = terminated or truncated
            if info["success"]:  # arrived: navigate on to a new goal
                maze.set_goal(self.vertex_cells[np.random.randint(len(self.vertex_cells))])

            rows.add(observations=ob, actions=action, terminals=done, qpos=info["prev_qpos"],
                     qvel=info["prev_qvel"])
            ob = next_ob
        return rows
