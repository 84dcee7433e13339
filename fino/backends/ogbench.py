"""OGBench tasks through OGBench's own loader and envs (singletask variants, success rate)."""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

import gymnasium

from fino.backends.base import (
    NPZ_READ_ERRORS,
    DatasetMissingError,
    Task,
    TaskConfig,
    TaskError,
    TaskSpec,
    error_text,
    npz_problem,
    validate_dataset,
)

DEFAULT_DATASET_DIR = "~/.ogbench/data"

# Headless machines: without this, importing OGBench's renderer warns that X11 is missing. We
# never render; EGL is only loaded if something does.
if not os.environ.get("DISPLAY"):
    os.environ.setdefault("MUJOCO_GL", "egl")
# OGBench's envs build float64 Box bounds that gymnasium casts (harmless, but noisy).
warnings.filterwarnings("ignore", message=".*precision lowered by casting to float32.*")

# Short names → the paper's dataset for that environment (spec §6).
ALIASES = {
    "humanoidmaze": "humanoidmaze-medium-navigate",
    "humanoidmaze-medium": "humanoidmaze-medium-navigate",
    "humanoidmaze-large": "humanoidmaze-large-navigate",
    "antmaze-large": "antmaze-large-navigate",
    "antmaze-giant": "antmaze-giant-navigate",
    "antsoccer": "antsoccer-arena-navigate",
    "cube-single": "cube-single-play",
    "cube-double": "cube-double-play",
    "puzzle-4x4": "puzzle-4x4-play",
    "pointmaze": "pointmaze-medium-navigate",
    "scene": "scene-play",
}
# The paper's default task per environment: task1 except these (spec §6).
DEFAULT_TASK_ID = {"antsoccer-arena": 4, "cube-double": 2, "puzzle-4x4": 4}
DATASET_TYPES = ("play", "noisy", "navigate", "stitch", "explore")
# Environments whose datasets need the authors' trained experts (no scripted oracle ships).
NOT_REGENERABLE = ("antmaze", "humanoidmaze", "antsoccer")
# The arrays OGBench's loader reads from every dataset file.
OGBENCH_KEYS = ("observations", "actions", "terminals")

_NAME = re.compile(
    r"^(?P<env>[a-z0-9]+(?:-[a-z0-9]+)*?)-(?P<dtype>" + "|".join(DATASET_TYPES) + r")"
    r"(?:-singletask(?:-task(?P<task_id>[1-5]))?)?(?:-v0)?$"
)


def parse_name(name: str, task_id: int | None = None) -> tuple[str, str, int]:
    """(env, dataset type, task id) for an alias, a dataset name or a singletask name."""
    match = _NAME.match(ALIASES.get(name, name))
    if match is None:
        raise TaskError(
            f"unknown OGBench task {name!r}: use an alias ({', '.join(sorted(ALIASES))}) or a "
            "name like cube-double-play-singletask-task2-v0")
    env = match["env"]
    if task_id is None:
        task_id = int(match["task_id"]) if match["task_id"] else DEFAULT_TASK_ID.get(env, 1)
    return env, match["dtype"], task_id


def dataset_files(dataset_name: str, dataset_dir: str | None) -> tuple[Path, Path]:
    root = Path(dataset_dir or DEFAULT_DATASET_DIR).expanduser()
    return root / f"{dataset_name}.npz", root / f"{dataset_name}-val.npz"


def fetch_hint(dataset_name: str, dataset_dir: str | None = None) -> str:
    """How to get a dataset that is not on disk (into `dataset_dir` when one is given)."""
    env = dataset_name.split("-")[0]
    out = f" --out {dataset_dir}" if dataset_dir else ""
    if env in NOT_REGENERABLE:
        return (f"it needs the authors' trained experts, so it cannot be regenerated here; run "
                f"`fino data download {dataset_name}{out}` on a networked machine and copy both "
                "files into the dataset directory")
    return (f"regenerate it locally with `fino data generate {dataset_name}{out}` (or fetch "
            f"the official one with `fino data download {dataset_name}{out}` on a networked "
            "machine)")


def missing_dataset(dataset_name: str, dataset_dir: str | None) -> str | None:
    """Why the dataset's two files are not on disk, with how to get them; None when both are."""
    missing = [str(p) for p in dataset_files(dataset_name, dataset_dir) if not p.exists()]
    if not missing:
        return None
    return (f"OGBench dataset {dataset_name} not found (looked for {', '.join(missing)}); "
            + fetch_hint(dataset_name, dataset_dir))


class OGBenchBackend:
    """OGBench singletask envs; the score is the success rate in %."""

    name = "ogbench"
    aliases = tuple(ALIASES)

    def short_name(self, task_name: str) -> str:
        """The shortest alias of the task's dataset and its task id: cube-single-t1."""
        env, dtype, task_id = parse_name(task_name)
        dataset = f"{env}-{dtype}"
        names = [a for a, full in ALIASES.items() if full == dataset] or [dataset]
        return f"{min(names, key=len)}-t{task_id}"

    def owns(self, task_name: str) -> bool:
        try:
            parse_name(task_name)
        except TaskError:
            return False
        return True

    def canonical_name(self, config: TaskConfig) -> str:
        env, dtype, task_id = parse_name(config.name, config.task_id)
        env_id = f"{env}-singletask-task{task_id}-v0"
        if env_id not in gymnasium.registry:
            import ogbench  # noqa: F401  (registers OGBench's envs with gymnasium)
        if env_id not in gymnasium.registry:
            raise TaskError(f"unknown OGBench task {config.name!r}: no env {env_id}")
        return f"{env}-{dtype}-singletask-task{task_id}-v0"

    def missing_dataset(self, config: TaskConfig) -> str | None:
        """Why the task's dataset is not on disk, or None; looks at the files, reads nothing."""
        env, dtype, _ = parse_name(self.canonical_name(config))
        return missing_dataset(f"{env}-{dtype}-v0", config.dataset_dir)

    def load(self, config: TaskConfig) -> Task:
        import ogbench

        name = self.canonical_name(config)
        env, dtype, _ = parse_name(name)
        dataset_name = f"{env}-{dtype}-v0"
        train_path, val_path = dataset_files(dataset_name, config.dataset_dir)
        missing = missing_dataset(dataset_name, config.dataset_dir)
        if missing:
            raise DatasetMissingError(missing)
        env_kwargs: dict[str, Any] = {"success_timing": config.success_timing,
                                      **dict(config.options)}
        try:
            train_env, train, val = ogbench.make_env_and_datasets(
                name, dataset_path=str(train_path), **env_kwargs)
        except (KeyError, IndexError, *NPZ_READ_ERRORS) as exc:
            raise _load_error(exc, dataset_name, (train_path, val_path)) from exc
        train_data = validate_dataset(train, str(train_path))
        val_data = validate_dataset(val, str(val_path))
        obs_dim = train_data["observations"].shape[1]
        if train_env.observation_space.shape != (obs_dim,):
            raise TaskError(
                f"{train_path}: observations have {obs_dim} dims but {name}'s env emits "
                f"{train_env.observation_space.shape}; the file belongs to another env")
        spec = TaskSpec(
            name=name,
            backend=self.name,
            obs_dim=obs_dim,
            action_dim=train_data["actions"].shape[1],
            episode_length=int(train_env.spec.max_episode_steps),
            score_name="success",
        )
        train_env.close()

        make_env = partial(_make_env, name, env_kwargs)  # picklable: env pools build it
        return Task(spec=spec, train_dataset=train_data, val_dataset=val_data,
                    make_env=make_env, make_eval_env=make_env, score_episode=_success_score)


def _make_env(name: str, env_kwargs: dict[str, Any]) -> gymnasium.Env:
    import ogbench

    return ogbench.make_env_and_datasets(name, env_only=True, **env_kwargs)


def _load_error(exc: BaseException, dataset_name: str, paths: tuple[Path, Path]) -> TaskError:
    """Name the file that cannot be read (OGBench's loader does not say which of the two)."""
    for path in paths:
        problem = npz_problem(path, OGBENCH_KEYS)
        if problem is not None:
            return TaskError(f"{path}: {problem}; the file is corrupt or incomplete: delete it; "
                             + fetch_hint(dataset_name))
    return TaskError(f"could not load OGBench dataset {dataset_name} from {paths[0]} "
                     f"({error_text(exc)})")


def _success_score(_return: float, final_info: Mapping[str, Any]) -> float:
    return 100.0 * float(final_info.get("success", 0.0))
