"""Search spaces: which settings a study tunes, over which ranges (defaults or a TOML file)."""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from fino.algo.config import PACKABLE, AgentConfig
from fino.train.config import TrainConfig

_KINDS = ("float", "int", "categorical")


class SpaceError(ValueError):
    """A search space that cannot be used; the message names the parameter and the problem."""


@dataclass(frozen=True)
class Param:
    """One tuned setting: `path` is SECTION.KEY in the run config (agent.noise_scale)."""

    name: str
    path: str
    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    @property
    def packable(self) -> bool:
        """Whether runs that differ in this setting can share a pack (a scalar agent setting
        stored per member, fino.algo.config.PACKABLE)."""
        section, _, key = self.path.partition(".")
        return section == "agent" and key in PACKABLE

    def suggest(self, trial: Any) -> Any:
        if self.kind == "float":
            return trial.suggest_float(self.name, self.low, self.high, log=self.log)
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_categorical(self.name, list(self.choices))

    def grid_values(self) -> list[Any]:
        """Values for the grid sampler: the choices, every int, or 5 floats."""
        if self.kind == "categorical":
            return list(self.choices)
        if self.kind == "int":
            return list(range(int(self.low), int(self.high) + 1))
        if self.log:
            lo, hi = math.log(self.low), math.log(self.high)
            return [round(math.exp(lo + (hi - lo) * i / 4), 6) for i in range(5)]
        return [self.low + (self.high - self.low) * i / 4 for i in range(5)]


_SECTIONS = {"agent": {f.name for f in fields(AgentConfig)},
             "train": {f.name for f in fields(TrainConfig)}}


def _path_for(name: str, where: str) -> str:
    section, dot, key = name.partition(".")
    if not dot:  # a bare name is an agent setting: noise_scale, num_candidates, alpha
        section, key = "agent", name
    if section not in _SECTIONS or key not in _SECTIONS[section]:
        known = sorted(_SECTIONS["agent"])
        raise SpaceError(f"{where}: unknown parameter {name!r}; tune agent settings by name "
                         f"({', '.join(known)}) or SECTION.KEY for train settings")
    return f"{section}.{key}"


def make_param(name: str, spec: dict[str, Any], where: str) -> Param:
    """Validate one parameter's table: kind, range or choices."""
    path = _path_for(name, where)
    allowed = {"type", "low", "high", "log", "choices"}
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise SpaceError(f"{where} {name}: unknown key(s) {unknown}; allowed {sorted(allowed)}")
    kind = spec.get("type")
    if kind not in _KINDS:
        raise SpaceError(f"{where} {name}: type must be one of {_KINDS}, got {kind!r}")
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise SpaceError(f"{where} {name}: categorical needs a non-empty 'choices' list")
        return Param(name, path, kind, choices=tuple(choices))
    low, high, log = spec.get("low"), spec.get("high"), bool(spec.get("log", False))
    numbers = (int, float) if kind == "float" else (int,)
    if not all(isinstance(v, numbers) and not isinstance(v, bool) for v in (low, high)):
        raise SpaceError(f"{where} {name}: {kind} needs numeric 'low' and 'high'"
                         + (" (integers)" if kind == "int" else ""))
    if not low < high:
        raise SpaceError(f"{where} {name}: empty range: low={low} must be < high={high}")
    if log and low <= 0:
        raise SpaceError(f"{where} {name}: a log range needs low > 0, got {low}")
    return Param(name, path, kind, float(low), float(high), log)


def default_space(alpha: float | None = None, schedule: bool = False) -> list[Param]:
    """noise_scale log-uniform 0.01-0.5 and num_candidates 1-16; optionally alpha
    log-uniform over [α/3, 3α] around the preset's value, and the noise schedule."""
    space = [Param("noise_scale", "agent.noise_scale", "float", 0.01, 0.5, log=True),
             Param("num_candidates", "agent.num_candidates", "int", 1.0, 16.0)]
    if alpha is not None:
        space.append(Param("alpha", "agent.alpha", "float", alpha / 3, alpha * 3, log=True))
    if schedule:
        space.append(Param("noise_schedule", "agent.noise_schedule", "categorical",
                           choices=("exp", "paper")))
    return space


def load_space(path: Path) -> list[Param]:
    """A space from TOML: `[params.NAME]` tables with type, low, high, log or choices."""
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise SpaceError(f"search space file {path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SpaceError(f"{path}: not valid TOML: {exc}") from exc
    unknown = sorted(set(data) - {"params"})
    if unknown:
        raise SpaceError(f"{path}: unknown top-level key(s) {unknown}; expected [params.NAME]")
    params = data.get("params")
    if not isinstance(params, dict) or not params:
        raise SpaceError(f"{path}: no parameters; add tables like [params.noise_scale]")
    return [make_param(name, spec if isinstance(spec, dict) else {}, str(path))
            for name, spec in params.items()]


def overrides_for(space: list[Param], values: dict[str, Any]) -> list[str]:
    """`--set` items that apply a trial's values to a run config."""
    return [f"{p.path}={_toml(values[p.name])}" for p in space]


def _toml(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)
