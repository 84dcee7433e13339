"""What a study will train, stated before it starts: trials x seeds x (offline + online steps)
at the resolved profile and network size, and how long that takes on this machine by the
`fino bench` figures (fino.bench_estimate)."""

from __future__ import annotations

from dataclasses import dataclass

from fino.bench_estimate import UpdateRate, update_rate
from fino.train.config import RunConfig, TrainConfig

CONFIRM_ABOVE_S = 3600.0  # a longer study is started only once the user agrees
PAPER_STEPS = TrainConfig().total_steps  # the paper's steps per run (every preset's base)


@dataclass(frozen=True)
class Budget:
    """The updates still to train (trials not yet complete or pruned, all their seeds)."""

    config: RunConfig  # a trial's run, before the tuned values are applied
    trials: int  # trials the study asks for
    done: int  # trials already complete or pruned (a study being continued)
    seeds: int
    rate: UpdateRate | None

    @property
    def trials_left(self) -> int:
        return max(0, self.trials - self.done)

    @property
    def updates(self) -> int:
        return self.trials_left * self.seeds * self.config.train.total_steps

    @property
    def seconds(self) -> float | None:
        """Training time one run at a time at the measured rate (evaluation not counted)."""
        return None if self.rate is None else self.updates / self.rate.updates_per_second

    @property
    def needs_confirmation(self) -> bool:
        """Over an hour on this machine; or no figure to tell, at the paper's steps per run."""
        if self.trials_left == 0:
            return False
        if self.seconds is not None:
            return self.seconds > CONFIRM_ABOVE_S
        return self.config.train.total_steps >= PAPER_STEPS


def study_budget(config: RunConfig, trials: int, done: int, seeds: int) -> Budget:
    return Budget(config, trials, done, seeds, update_rate(config))


def networks(config: RunConfig) -> str:
    """`4x512`, or `actor 4x512, value 2x256` when they differ."""
    actor, value = (_dims(d) for d in (config.agent.actor_hidden_dims,
                                       config.agent.value_hidden_dims))
    return actor if actor == value else f"actor {actor}, value {value}"


def _dims(dims: tuple[int, ...]) -> str:
    if len(set(dims)) == 1:
        return f"{len(dims)}x{dims[0]}"
    return "-".join(map(str, dims))
