"""Minari datasets (the paper's D4RL antmaze and Adroit tasks, or any Minari id) as Tasks.

Observations are flattened by `spaces.flatten_batch` (Dict: `observation` first, then the other
keys sorted) for the dataset and by the same rule for the env. Training rewards are
`raw * reward_scale + reward_shift` (D4RL antmaze: shift -1, as in the paper); evaluation scores
use raw env returns, normalised x100 by the dataset's reference scores when it has them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np

from fino.backends.base import (
    Dataset,
    DatasetMissingError,
    Task,
    TaskConfig,
    TaskError,
    TaskSpec,
    validate_dataset,
)
from fino.backends.d4rl_names import MINARI_IDS, minari_id, no_minari_copy
from fino.backends.spaces import (
    check_action_space,
    flatten_batch,
    layout,
    to_unit_actions,
    wrap_env,
)

PAPER_DATASETS = (
    *(f"D4RL/antmaze/{maze}-v1" for maze in ("umaze", "umaze-diverse", "medium-play",
                                              "medium-diverse", "large-play", "large-diverse")),
    *(f"D4RL/{hand}/cloned-v2" for hand in ("pen", "door", "hammer", "relocate")),
)
# A Minari id with a namespace and a version: `namespace[/env]/name-vN`.
_ID = re.compile(r"[\w.:-]+(/[\w.:-]+)+-v\d+")
_VERSION = re.compile(r"-v\d+$")
ScoreFn = Callable[[float, Mapping[str, Any]], float]
OPTIONS = ("online_env", "reward_shift", "reward_scale", "ref_min_score", "ref_max_score",
           "max_episode_steps")


def check_options(options: Mapping[str, Any], allowed: tuple[str, ...], backend: str) -> None:
    """Unknown or ill-typed options are an error that lists the known ones."""
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise TaskError(f"{backend} backend: unknown task option(s) {unknown}; known: "
                        f"{sorted(allowed)}")
    for key in ("reward_shift", "reward_scale", "ref_min_score", "ref_max_score"):
        if key in options and not _is_number(options[key]):
            raise TaskError(f"task option {key}={options[key]!r}: must be a number")
    if ("ref_min_score" in options) != ("ref_max_score" in options):
        raise TaskError("task options ref_min_score and ref_max_score go together: give both")
    if "ref_min_score" in options and options["ref_min_score"] == options["ref_max_score"]:
        raise TaskError("task options ref_min_score and ref_max_score must differ")
    steps = options.get("max_episode_steps")
    if steps is not None and (not isinstance(steps, int) or isinstance(steps, bool) or steps < 1):
        raise TaskError(f"task option max_episode_steps={steps!r}: must be an integer >= 1")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value)


def datasets_root() -> Path:
    """Where Minari keeps datasets: $MINARI_DATASETS_PATH, else ~/.minari/datasets (read at
    call time, as minari itself does)."""
    return Path(os.environ.get("MINARI_DATASETS_PATH") or Path.home() / ".minari" / "datasets")


def is_minari_id(name: str) -> bool:
    """A Minari id, the paper's short form of one, or a D4RL name with a Minari copy."""
    return (bool(_ID.fullmatch(name)) or _paper_id(name) is not None
            or minari_id(name) is not None)


def _paper_id(name: str) -> str | None:
    """The paper's dataset id for `name`, also written without its version or in lower case."""
    for dataset_id in PAPER_DATASETS:
        if name.lower() in (dataset_id.lower(), _VERSION.sub("", dataset_id).lower()):
            return dataset_id
    return None


def canonical_id(name: str) -> str:
    """The full Minari id (of a D4RL name too); TaskError for a name that is not one."""
    d4rl = minari_id(name)
    if d4rl is not None:
        return d4rl
    paper = _paper_id(name)
    if paper is not None:
        return paper
    if _ID.fullmatch(name):
        return name
    locomotion = no_minari_copy(name)
    if locomotion:
        raise TaskError(locomotion)
    raise TaskError(f"{name!r} is not a Minari dataset id: expected namespace/name-vN, e.g. "
                    f"{PAPER_DATASETS[0]} (the paper's: {', '.join(PAPER_DATASETS)})")


def default_reward_shift(dataset_id: str) -> float:
    """The paper trains D4RL antmaze on reward - 1 (0 at the goal, -1 elsewhere)."""
    return -1.0 if dataset_id.startswith("D4RL/antmaze/") else 0.0


def missing_dataset(dataset_id: str) -> str | None:
    """Why the dataset is not on this machine, with how to get it; None when its folder is
    there (nothing is read)."""
    path = datasets_root() / dataset_id
    if (path / "data").is_dir():
        return None
    return (f"Minari dataset {dataset_id} is not on this machine: looked in {path} "
            f"(MINARI_DATASETS_PATH={os.environ.get('MINARI_DATASETS_PATH', '<unset>')}). "
            f"On a machine with network run `fino data download {dataset_id}`, then copy "
            f"{path} here or point MINARI_DATASETS_PATH at its datasets directory.")


def open_dataset(dataset_id: str) -> Any:
    """The local `MinariDataset`; DatasetMissingError naming the directory and the fetch."""
    import minari

    path = datasets_root() / dataset_id
    missing = missing_dataset(dataset_id)
    if missing:
        raise DatasetMissingError(missing)
    try:
        return minari.load_dataset(dataset_id)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise TaskError(f"{path}: cannot read Minari dataset {dataset_id} ({e}); the copy may be "
                        f"incomplete: delete it and run `fino data download {dataset_id}`") from e


def minari_transitions(dataset: Any) -> Dataset:
    """Transitions from every episode (observations T+1 rows → obs / next_obs): raw rewards,
    actions on [-1, 1], masks = 1 - terminations, terminals = 1 on each episode's last step."""
    obs_space = dataset.observation_space
    action_space = check_action_space(dataset.action_space, dataset.id)
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("observations", "next_observations",
                                                          "actions", "rewards", "terminations")}
    for episode in dataset.iterate_episodes():
        steps = len(episode.rewards)
        if steps == 0:
            continue
        flat = flatten_batch(obs_space, episode.observations)
        if len(flat) != steps + 1:
            raise TaskError(f"{dataset.id}: episode {episode.id} has {len(flat)} observations "
                            f"for {steps} steps (expected {steps + 1})")
        parts["observations"].append(flat[:-1])
        parts["next_observations"].append(flat[1:])
        parts["actions"].append(np.asarray(episode.actions).reshape(steps, -1))
        parts["rewards"].append(np.asarray(episode.rewards, np.float32).reshape(-1))
        parts["terminations"].append(np.asarray(episode.terminations, np.float32).reshape(-1))
    if not parts["rewards"]:
        raise TaskError(f"{dataset.id}: the dataset has no transitions")
    last_steps = np.cumsum([len(r) for r in parts["rewards"]]) - 1
    data = {k: np.concatenate(v) for k, v in parts.items()}
    terminations = data.pop("terminations")
    data["actions"] = to_unit_actions(data["actions"], action_space)
    data["masks"] = 1.0 - terminations
    data["terminals"] = np.zeros_like(terminations)
    data["terminals"][last_steps] = 1.0
    return data


def reward_mapping(options: Mapping[str, Any], dataset_id: str = "") -> tuple[float, float]:
    """(reward_scale, reward_shift): options first, else the dataset's default."""
    scale = float(options.get("reward_scale", 1.0))
    shift = float(options.get("reward_shift", default_reward_shift(dataset_id)))
    return scale, shift


def scoring(ref_min: float | None, ref_max: float | None) -> tuple[str, ScoreFn]:
    """(score_name, score_episode): normalised return x100 with references, else the return."""
    if ref_min is None or ref_max is None:
        return "return", _raw_return
    if float(ref_min) == float(ref_max):
        raise TaskError(f"reference scores are equal ({ref_min}): cannot normalise returns")
    return "normalized_score", partial(_normalized_score, float(ref_min), float(ref_max))


def _raw_return(raw_return: float, final_info: Mapping[str, Any]) -> float:
    return float(raw_return)


def _normalized_score(ref_min: float, ref_max: float, raw_return: float,
                      final_info: Mapping[str, Any]) -> float:
    return 100.0 * (float(raw_return) - ref_min) / (ref_max - ref_min)


def check_env_matches(env: gymnasium.Env, obs_space: gymnasium.spaces.Space, action_dim: int,
                      source: str) -> None:
    """The env's flattened observation and its actions have the dataset's layout."""
    env_layout, data_layout = layout(env.observation_space), layout(obs_space)
    if env_layout != data_layout:
        raise TaskError(f"{source}: the env's observations {env_layout} do not match the "
                        f"dataset's {data_layout}")
    env_actions = int(np.prod(env.action_space.shape))
    if env_actions != action_dim:
        raise TaskError(f"{source}: the env has {env_actions} action dims, the dataset "
                        f"{action_dim}")


def episode_length(env: gymnasium.Env, source: str) -> int:
    steps = env.spec.max_episode_steps if env.spec is not None else None
    if steps is None:
        raise TaskError(f"{source}: the env has no time limit; set the task option "
                        "max_episode_steps")
    return int(steps)


def recover_env(dataset: Any, eval_env: bool, env_kwargs: Mapping[str, Any]) -> gymnasium.Env:
    """The dataset's env; TaskError naming the extra when its env package (the D4RL tasks':
    gymnasium-robotics) is not installed."""
    try:
        return dataset.recover_environment(eval_env=eval_env, **env_kwargs)
    except ModuleNotFoundError as e:
        if (e.name or "").partition(".")[0] != "gymnasium_robotics":
            raise
        raise TaskError(f"{dataset.id}: its env comes from gymnasium-robotics, which is not "
                        "installed: pip install 'fino[d4rl]'") from e


def _recover_env(data_path: str, eval_env: bool, env_kwargs: Mapping[str, Any]
                 ) -> gymnasium.Env:
    from minari import MinariDataset

    return wrap_env(recover_env(MinariDataset(data_path), eval_env, env_kwargs))


class MinariBackend:
    """Minari ids such as D4RL/pen/cloned-v2 (or D4RL's pen-cloned-v1), read from
    $MINARI_DATASETS_PATH."""

    name = "minari"
    aliases = tuple(MINARI_IDS)  # D4RL's names, offered by completion and "did you mean"

    def owns(self, task_name: str) -> bool:
        return is_minari_id(task_name)

    def canonical_name(self, config: TaskConfig) -> str:
        check_options(config.options, OPTIONS, self.name)
        online_env = config.options.get("online_env", "eval")
        if online_env not in ("eval", "collection"):
            raise TaskError(f"task option online_env={online_env!r}: must be 'eval' (the "
                            "dataset's evaluation env) or 'collection' (its data-collection env)")
        return canonical_id(config.name)

    def missing_dataset(self, config: TaskConfig) -> str | None:
        """Why the task's dataset is not on this machine, or None (nothing is read)."""
        return missing_dataset(self.canonical_name(config))

    def load(self, config: TaskConfig) -> Task:
        dataset_id = self.canonical_name(config)
        options = config.options
        dataset = open_dataset(dataset_id)
        source = str(datasets_root() / dataset_id)
        raw = minari_transitions(dataset)
        scale, shift = reward_mapping(options, dataset_id)
        raw["rewards"] = raw["rewards"] * np.float32(scale) + np.float32(shift)
        train = validate_dataset(raw, source)

        data_path = str(datasets_root() / dataset_id / "data")
        env_kwargs = ({"max_episode_steps": options["max_episode_steps"]}
                      if "max_episode_steps" in options else {})
        # Online steps go to the task being scored (the evaluation env) by default: Minari's
        # antmaze sets were collected in maze maps whose goals differ from the evaluation one.
        online_is_eval = options.get("online_env", "eval") == "eval"
        make_eval_env = partial(_recover_env, data_path, True, env_kwargs)
        make_env = make_eval_env if online_is_eval else partial(_recover_env, data_path, False,
                                                                env_kwargs)
        env = recover_env(dataset, True, env_kwargs)
        try:
            check_env_matches(env, dataset.observation_space, train["actions"].shape[1], source)
            length = episode_length(env, source)
        finally:
            env.close()

        metadata = dataset.storage.metadata
        ref_min = options.get("ref_min_score", metadata.get("ref_min_score"))
        ref_max = options.get("ref_max_score", metadata.get("ref_max_score"))
        score_name, score_episode = scoring(ref_min, ref_max)
        spec = TaskSpec(name=dataset_id, backend=self.name,
                        obs_dim=train["observations"].shape[1],
                        action_dim=train["actions"].shape[1], episode_length=length,
                        score_name=score_name)
        return Task(spec=spec, train_dataset=train, val_dataset=None, make_env=make_env,
                    make_eval_env=make_eval_env, score_episode=score_episode,
                    reward_scale=scale, reward_shift=shift)
