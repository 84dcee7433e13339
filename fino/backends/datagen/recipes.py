"""Which OGBench datasets can be regenerated here, and with which published recipe.

The settings follow OGBench's own generation scripts (`data_gen_scripts/generate_manipspace.py`,
`generate_locomaze.py` and `commands.sh` in github.com/seohongpark/ogbench).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from fino.backends.base import TaskError

DEFAULT_DATASET_DIR = "~/.ogbench/data"  # OGBench's own default (ogbench.utils.DEFAULT_DATASET_DIR)


class DatagenError(TaskError):
    """A dataset that cannot be generated (or written) here; the message says what to do."""


@dataclass(frozen=True)
class Recipe:
    """How one OGBench dataset is collected."""

    dataset: str  # e.g. cube-double-play-v0
    env_id: str  # the goal-conditioned gym id, e.g. cube-double-v0
    family: Literal["manipspace", "pointmaze"]
    oracle: Literal["plan", "markov", "bfs"]
    official_episodes: int  # train episodes in the published files (val adds a tenth)
    episode_length: int = 1001  # raw steps per episode (the env's time limit while collecting)
    p_random_action: float = 0.0  # noisy: chance of a uniform random action
    action_noise: float = 0.1  # plan: plan noise; markov: max per-episode xi; maze: N(0, sigma)
    noise_smoothing: float = 0.5  # plan oracle only
    min_norm: float = 0.4  # markov oracle only


_CUBES = {"single": 1000, "double": 1000, "triple": 3000, "quadruple": 5000}
_PUZZLES = {"3x3": 1000, "4x4": 1000, "4x5": 3000, "4x6": 5000}
_MAZES = {"medium": (1000, 1001), "large": (1000, 1001), "giant": (500, 2001),
          "teleport": (1000, 1001)}


def _build_recipes() -> dict[str, Recipe]:
    manip: list[tuple[str, str, int, float]] = [
        *((f"cube-{k}", f"cube-{k}-v0", n, 0.1) for k, n in _CUBES.items()),
        ("scene", "scene-v0", 1000, 0.1),
        *((f"puzzle-{k}", f"puzzle-{k}-v0", n, 0.2) for k, n in _PUZZLES.items()),
    ]
    recipes = {}
    for prefix, env_id, episodes, p_random in manip:
        recipes[f"{prefix}-play-v0"] = Recipe(f"{prefix}-play-v0", env_id, "manipspace", "plan",
                                              episodes)
        recipes[f"{prefix}-noisy-v0"] = Recipe(f"{prefix}-noisy-v0", env_id, "manipspace",
                                               "markov", episodes, p_random_action=p_random)
    for maze, (episodes, length) in _MAZES.items():
        name = f"pointmaze-{maze}-navigate-v0"
        recipes[name] = Recipe(name, f"pointmaze-{maze}-v0", "pointmaze", "bfs", episodes,
                               episode_length=length, action_noise=0.5)
    return recipes


RECIPES: dict[str, Recipe] = _build_recipes()

# Datasets whose behaviour policies are the authors' trained SAC experts (not shipped with ogbench).
_NEEDS_EXPERTS = ("antmaze-", "humanoidmaze-", "antsoccer-")


def dataset_name(name: str) -> str:
    """The dataset file stem of an OGBench name: singletask / oraclerep task names map to their
    dataset (`cube-single-play-singletask-task2-v0` → `cube-single-play-v0`)."""
    parts = name.strip().split("-")
    if "singletask" in parts:
        pos = parts.index("singletask")
        return "-".join(parts[:pos] + parts[-1:])
    if "oraclerep" in parts:
        return "-".join(p for p in parts if p != "oraclerep")
    return name.strip()


def recipe_for(name: str) -> Recipe:
    """The recipe for a dataset or task name; DatagenError says why one cannot be generated."""
    stem = dataset_name(name)
    if stem in RECIPES:
        return RECIPES[stem]
    base = stem.removeprefix("visual-")
    if base.startswith(_NEEDS_EXPERTS):
        raise DatagenError(
            f"{stem} cannot be regenerated here: its behaviour policy is the OGBench authors' "
            f"trained expert, which the ogbench package does not ship. On a machine with network "
            f"access run `fino data download {stem}` and copy the two .npz files to "
            f"{DEFAULT_DATASET_DIR}.")
    if stem.startswith("visual-") and base in RECIPES:
        raise DatagenError(
            f"{stem}: pixel datasets need offscreen rendering and are not generated here; "
            f"generate the state-based {base} or run `fino data download {stem}`.")
    raise DatagenError(f"unknown dataset {stem!r}; can generate: {', '.join(RECIPES)}")


def default_episodes(recipe: Recipe) -> int:
    """A size that finishes in minutes on 2 cores (the published sets use `official_episodes`)."""
    return min(100, recipe.official_episodes)
