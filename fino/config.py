"""Run configuration: task + agent + training schedule, validated once, saved with the run.

A leaf of the package: it imports no torch, no environment library and no UI, so the store, the
dashboard and the CLI read configs without loading them (fino.train.config and
fino.backends.base re-export these names)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

from fino.algo.config import MAX_INT, AgentConfig, ConfigError

CONFIG_NAME = "config.json"  # the resolved config, saved in each run folder
Algo = Literal["fino", "fql"]
ALGOS = ("fino", "fql")
RANGE = f"an integer in [{{low}}, {MAX_INT}]"  # integer settings: at most 32 bits (the store's)
SINK_NAME = re.compile(r"[A-Za-z0-9][\w.-]*")


class TaskError(ValueError):
    """A task name, option or dataset that cannot be used; the message says what to do."""


@dataclass(frozen=True)
class TaskConfig:
    """Which task to load and how (the `[task]` table of a run config)."""

    name: str
    backend: str = "auto"  # ogbench | minari | gymnasium | auto (infer from the name)
    task_id: int | None = None  # OGBench singletask 1..5 (overrides the alias's default task)
    dataset_dir: str | None = None  # OGBench: default ~/.ogbench/data
    dataset: str | None = None  # gymnasium backend: an OGBench-format .npz path or a Minari id
    success_timing: Literal["pre", "post"] = "pre"  # OGBench >= 1.2: "pre"; the paper's 1.1: "post"
    options: Mapping[str, Any] = field(default_factory=dict)  # backend-specific extras

    def __post_init__(self) -> None:
        if not self.name:
            raise TaskError("task name is empty")
        if not isinstance(self.name, str):
            raise TaskError(f"task name {self.name!r}: expected a task name or alias, e.g. "
                            "cube-single")
        for key in ("backend", "dataset_dir", "dataset"):
            value = getattr(self, key)
            if not (isinstance(value, str) or (value is None and key != "backend")):
                raise TaskError(f"{key}={value!r}: expected a string")
        task_id = self.task_id
        if task_id is not None and (isinstance(task_id, bool) or not isinstance(task_id, int)
                                    or not 1 <= task_id <= 5):
            raise TaskError(f"task_id={task_id!r}: expected an integer 1..5 (the OGBench "
                            "singletask id)")
        if self.success_timing not in ("pre", "post"):
            raise TaskError(f"success_timing={self.success_timing!r}: allowed 'pre' or 'post'")
        _check_options(self.options)


def _check_options(options: Any) -> None:
    """Options are a table of named plain values, stored with the run's config as JSON (the
    backend checks which names it takes)."""
    if not isinstance(options, Mapping):
        raise TaskError(f"options={options!r}: expected a table of backend options, e.g. "
                        "{reward_scale = 1.0}")
    for key, value in options.items():
        if not isinstance(key, str) or not _plain(value):
            raise TaskError(f"options.{key}={value!r}: expected a number, string, boolean, or a "
                            "list or table of them")


def _plain(value: Any) -> bool:
    """A value JSON stores as it is (TOML's dates and times are not)."""
    if isinstance(value, str | int | float | bool):
        return True
    if isinstance(value, list | tuple):
        return all(_plain(v) for v in value)
    if isinstance(value, Mapping):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False


@dataclass(frozen=True)
class TrainConfig:
    """The offline-to-online schedule (spec §5) and how the run is executed."""

    offline_steps: int = 1_000_000
    online_steps: int = 500_000
    eval_interval: int = 50_000
    eval_episodes: int = 50
    entropy_interval: int | None = None  # online steps between β updates; None = eval_interval
    log_interval: int = 5_000
    save_interval: int = 100_000
    keep_checkpoints: int = 2  # the last checkpoints kept in checkpoints/ (and offline.pt)
    balanced: bool = False  # RLPD-style 50/50 offline/online batches instead of uniform
    buffer_size: int | None = None  # None: max(1.5M, |D| + 1)
    # Evaluation episodes stepped in lockstep (one batched greedy act per step). Not more: an
    # OGBench cube env instance holds ~180 MB (measured), so 25 of them would take 4.5 GB.
    eval_envs: int = 5
    compile: bool = True
    precision: Literal["fp32", "bf16"] = "fp32"
    matmul: Literal["auto", "ieee", "onednn"] = "auto"
    # CUDA fp32 matmuls: exact IEEE fp32, or TF32 tensor cores (~1.8x a pack's throughput on an
    # H200, 10-bit mantissa products). No effect on a CPU, so a CPU run refuses "tf32".
    matmul_precision: Literal["fp32", "tf32"] = "fp32"
    cuda_graphs: bool = True  # on CUDA, each update replays one captured graph
    threads: int | None = None  # torch intra-op threads; None = torch's default
    device: str = "cpu"
    # Loggers that also receive the run's metrics (`fino.sinks`: tensorboard, wandb, mlflow or
    # a plugin, checked where the run is made). Bookkeeping, like log_interval.
    sinks: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("offline_steps", "online_steps"):
            _check(name, getattr(self, name), lambda v: _int_in(v, 0), RANGE.format(low=0))
        for name in ("eval_interval", "eval_episodes", "log_interval", "save_interval",
                     "eval_envs", "keep_checkpoints"):
            _check(name, getattr(self, name), lambda v: _int_in(v, 1), RANGE.format(low=1))
        for name in ("entropy_interval", "buffer_size", "threads"):
            value = getattr(self, name)
            _check(name, value, lambda v: v is None or _int_in(v, 1),
                   RANGE.format(low=1) + " or unset")
        if self.total_steps > MAX_INT:
            raise ConfigError(f"train.offline_steps + train.online_steps = {self.total_steps}: "
                              f"must be <= {MAX_INT} (steps are stored as 32-bit integers)")
        _check("precision", self.precision, lambda v: v in ("fp32", "bf16"), "'fp32' or 'bf16'")
        _check("matmul", self.matmul, lambda v: v in ("auto", "ieee", "onednn"),
               "'auto', 'ieee' or 'onednn'")
        _check("matmul_precision", self.matmul_precision, lambda v: v in ("fp32", "tf32"),
               "'fp32' or 'tf32'")
        for name in ("cuda_graphs", "compile", "balanced"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"train.{name}={getattr(self, name)!r}: must be true or false")
        if not isinstance(self.device, str) or not self.device:
            raise ConfigError(f"train.device={self.device!r}: must be a device name such as "
                              "'cpu' or 'cuda'")
        if self.matmul_precision == "tf32" and self.device.startswith("cpu"):
            raise ConfigError("train.matmul_precision='tf32' has no effect on a CPU (TF32 is a "
                              "CUDA tensor-core format): use 'fp32', or train.device='cuda'")
        if isinstance(self.sinks, str) or not isinstance(self.sinks, list | tuple) or \
                not all(isinstance(n, str) and SINK_NAME.fullmatch(n) for n in self.sinks):
            raise ConfigError(f"train.sinks={self.sinks!r}: must be a list of sink names such "
                              "as ['tensorboard', 'wandb', 'mlflow']")
        object.__setattr__(self, "sinks", tuple(dict.fromkeys(self.sinks)))

    @property
    def total_steps(self) -> int:
        return self.offline_steps + self.online_steps

    @property
    def resolved_entropy_interval(self) -> int:
        return self.entropy_interval or self.eval_interval


def _int_in(value: Any, low: int) -> bool:
    return isinstance(value, int) and low <= value <= MAX_INT


def _check(name: str, value: Any, ok: Any, allowed: str) -> None:
    if isinstance(value, bool) or not ok(value):
        raise ConfigError(f"train.{name}={value!r}: must be {allowed}")


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a run; `algo='fql'` forces noise 0 and one candidate."""

    task: TaskConfig
    agent: AgentConfig = field(default_factory=AgentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    algo: Algo = "fino"
    seed: int = 0
    preset: str | None = None  # where the hyperparameters came from (file:profile)
    # Start the online phase from this end-of-offline checkpoint of another run with the same
    # offline phase (fino.train.offline_start) instead of training the offline phase again.
    from_offline: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.algo, str):  # FQL, Fino: names are case-insensitive
            object.__setattr__(self, "algo", self.algo.lower())
        if self.algo not in ALGOS:
            raise ConfigError(f"algo={self.algo!r}: must be one of {ALGOS}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or \
                not 0 <= self.seed <= MAX_INT:
            raise ConfigError(f"seed={self.seed!r}: must be an integer in [0, {MAX_INT}]")
        if self.algo == "fql" and not self.agent.is_fql:
            object.__setattr__(self, "agent", replace(self.agent, noise_scale=0.0,
                                                      num_candidates=1))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        """Inverse of `to_dict`; unknown keys are errors naming the section."""
        data = dict(data)
        sections = {"task": TaskConfig, "train": TrainConfig}
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key == "agent":
                kwargs[key] = AgentConfig.from_dict(value)
            elif key in sections:
                kwargs[key] = build_section(sections[key], value, key)
            elif key in {f.name for f in fields(cls)}:
                kwargs[key] = value
            else:
                raise ConfigError(f"unknown run config key {key!r}; known: "
                                  f"{sorted(f.name for f in fields(cls))}")
        return cls(**kwargs)


def build_section(cls: type, values: dict[str, Any], section: str) -> Any:
    """A dataclass from a dict, naming the section in every error."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in [{section}]; allowed: {sorted(known)}")
    try:
        return cls(**values)
    except (ConfigError, TaskError) as exc:
        raise ConfigError(f"[{section}] {exc}") from exc
    except TypeError as exc:
        raise ConfigError(f"[{section}] {exc}") from exc


def same_config(saved: dict[str, Any], config: RunConfig) -> bool:
    """Whether a checkpoint's stored config is `config` (keys added since it was written take
    their defaults)."""
    try:
        return _without_sinks(RunConfig.from_dict(saved)) == _without_sinks(config)
    except ConfigError:
        return False


def _without_sinks(config: RunConfig) -> dict[str, Any]:
    """The config as a dict less its loggers (a resume may add or drop one)."""
    data = config.to_dict()
    data["train"].pop("sinks")
    return data
