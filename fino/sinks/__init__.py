"""Logger plugins: a run's metrics also where researchers look (TensorBoard, W&B, MLflow).

Sinks register under the entry-point group `fino.sinks` (see pyproject.toml); the built-in
ones are known here too, so they work before the package metadata is refreshed. A sink is
built as `cls(run_dir, config)` and follows `fino.train.sinks.Sink`; it may also take
`artifact(path)` (a file of the finished run, such as curves.png) and `flush()`. Its class
names the library it needs in `requires` (and the pip extra in `extra`, default its name), so
a missing one is an error before the run starts. Each sink imports its library only when
built, so `import fino` never pays for one.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from enum import StrEnum
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from fino.algo.config import ConfigError
from fino.exit_codes import ExitCode
from fino.train.sinks import SinkGroup

if TYPE_CHECKING:
    from fino.train.config import RunConfig
    from fino.train.sinks import Sink

GROUP = "fino.sinks"
BUILTIN = {
    "tensorboard": "fino.sinks.tensorboard:TensorBoardSink",
    "wandb": "fino.sinks.wandb:WandbSink",
    "mlflow": "fino.sinks.mlflow:MlflowSink",
}


class RunEnd(StrEnum):
    """How a run ended, as its logger sinks record it."""

    FINISHED = "finished"
    INTERRUPTED = "interrupted"
    FAILED = "failed"

    @property
    def exit_code(self) -> ExitCode:
        """What `fino run` exits with when the run ends so."""
        return {RunEnd.FINISHED: ExitCode.DONE, RunEnd.INTERRUPTED: ExitCode.INTERRUPTED,
                RunEnd.FAILED: ExitCode.FAILED}[self]


# How a run ended, from the events its sinks saw: a sink starts at FAILED (what an error that
# stops the run says, as it sends no event) and takes the end of each of these.
ENDED = {"started": RunEnd.FAILED, "resumed": RunEnd.FAILED, "finished": RunEnd.FINISHED,
         "interrupted": RunEnd.INTERRUPTED, "diverged": RunEnd.FAILED}


class SinkError(ConfigError):
    """A sink that cannot be used: unknown, its library missing, its folder not writable."""


def _registry() -> dict[str, EntryPoint]:
    found = {name: EntryPoint(name, value, GROUP) for name, value in BUILTIN.items()}
    found.update({ep.name: ep for ep in entry_points(group=GROUP)})
    return found


def sink_names() -> list[str]:
    """Names of the known sinks (nothing is imported)."""
    return sorted(_registry())


def sink_class(name: str) -> type:
    """The sink plugin called `name`, imported (its library is not)."""
    found = _registry().get(name)
    if found is None:
        raise SinkError(f"unknown sink {name!r}; known: {', '.join(sink_names())}")
    try:
        return found.load()
    except Exception as exc:  # a broken plugin is named, not a traceback
        raise SinkError(f"sink {name!r} failed to load: {type(exc).__name__}: {exc}") from exc


def require(module: str, sink: str, extra: str | None = None) -> ModuleType:
    """Import the library `module` a sink needs, or say how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise SinkError(f"the {sink} sink needs the {module!r} package ({exc}): "
                        f"pip install 'fino[{extra or sink}]'") from exc


def check_sinks(names: Iterable[str]) -> tuple[str, ...]:
    """The names without repeats, each a known sink whose library imports; a SinkError
    naming the known sinks, or the extra to install, before anything runs."""
    unique = tuple(dict.fromkeys(names))
    for name in unique:
        cls = sink_class(name)
        library = getattr(cls, "requires", None)
        if library:
            require(library, name, getattr(cls, "extra", None))
    return unique


def make_sinks(names: Iterable[str], run_dir: Path, config: RunConfig) -> list[Sink]:
    """The sinks `names` of the run in `run_dir` (checked first: nothing is built when one is
    unusable). Building one writes nothing: each opens its files or run at its first call."""
    return [sink_class(name)(run_dir, config) for name in check_sinks(names)]


class LoggerGroup(SinkGroup):
    """A run's logger sinks as one sink of its trainer. The trainer's `close` leaves them
    open: the command gives them the run's files (curves.png, drawn once training has ended)
    and then calls `finish`."""

    def close(self) -> None:
        pass

    def finish(self) -> None:
        super().close()
        self.sinks.clear()

    @contextmanager
    def finished_on_error(self) -> Iterator[None]:
        """Finish the loggers when the block raises (the run ended there)."""
        try:
            yield
        except BaseException:
            self.finish()
            raise


def writable_folder(folder: Path, sink: str) -> Path:
    """`folder`, if it is (or can be made, when needed) a folder this process may write in;
    checked without creating anything, so a run that fails first leaves no folder."""
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise SinkError(f"the {sink} sink cannot write to {folder}: {probe} is not a writable "
                        "folder")
    return folder


def flat_config(config: RunConfig) -> dict[str, Any]:
    """The resolved config as {dotted key: value}, each value a bool, int, float or str
    (lists and unset values as text)."""
    flat: dict[str, Any] = {}

    def visit(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping) and value:
            for key, item in value.items():
                visit(f"{prefix}.{key}" if prefix else str(key), item)
        elif isinstance(value, bool | int | float | str):
            flat[prefix] = value
        else:
            flat[prefix] = str(list(value) if isinstance(value, tuple) else value)

    visit("", config.to_dict())
    return flat

