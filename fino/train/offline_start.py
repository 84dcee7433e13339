"""Sharing an offline phase: a run starts its online phase from another run's end-of-offline
checkpoint (`offline.pt`) when the two differ only in settings that act online.

Offline training draws only from the training streams (update noise, batch sampling), never
from evaluation or entropy draws, and no setting below touches it: a run started from the
checkpoint continues exactly as it would have from its own offline phase (tested). Its record
holds its own evaluation at the end of the offline phase (its acting rule may differ from the
source's) and its online phase.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fino.algo.config import ConfigError

OFFLINE_NAME = "offline.pt"  # the state at the end of the offline phase, kept beside the last
# Settings that act only online, on measurements, or on bookkeeping: runs that differ only in
# these (and the labels) train the same offline phase.
ONLINE_ONLY = {
    "agent": ("num_candidates", "beta_init", "beta_lr", "entropy_target", "exploration",
              "action_noise_std", "entropy_samples", "entropy_states", "gmm_components",
              "entropy_estimator"),
    "train": ("online_steps", "balanced", "buffer_size", "entropy_interval", "eval_interval",
              "eval_episodes", "eval_envs", "log_interval", "save_interval",
              "keep_checkpoints", "sinks"),
}
LABELS = ("algo", "preset", "from_offline")


def offline_difference(source: Mapping[str, Any], config: Mapping[str, Any]
                       ) -> tuple[str, Any, Any] | None:
    """(dotted setting, source's value, config's value) of the first setting in which two run
    configs (dicts) would train different offline phases; None when they train the same."""
    source, config = json.loads(json.dumps(source)), json.loads(json.dumps(config))  # as stored
    for key in sorted(set(source) | set(config)):
        if key in LABELS:
            continue
        mine, theirs = source.get(key), config.get(key)
        if isinstance(mine, dict) and isinstance(theirs, dict):
            skip = ONLINE_ONLY.get(key, ())
            for sub in sorted(set(mine) | set(theirs)):
                if sub not in skip and mine.get(sub) != theirs.get(sub):
                    return f"{key}.{sub}", mine.get(sub), theirs.get(sub)
        elif mine != theirs:
            return key, mine, theirs
    return None


def check_offline_match(source: Mapping[str, Any], config: Mapping[str, Any],
                        where: str) -> None:
    """Refuse, naming the setting, a config whose offline phase is not `source`'s."""
    found = offline_difference(source, config)
    if found is not None:
        name, mine, theirs = found
        raise ConfigError(
            f"{where} trained another offline phase: {name} is {mine!r} there and {theirs!r} "
            "here; only settings that act online (the candidate count, β, exploration, "
            "balanced sampling, online steps, evaluation and logging) may differ")


def load_offline_start(path: Path, config: Mapping[str, Any]) -> dict[str, Any]:
    """The end-of-offline state at `path`, checked against `config` (a run config dict)."""
    from fino.train.checkpoint import load_checkpoint

    if not Path(path).exists():
        raise ConfigError(f"no end-of-offline checkpoint at {path}: the source run has not "
                          "finished its offline phase (or predates offline checkpoints)")
    state = load_checkpoint(Path(path))
    check_offline_match(state["config"], config, f"the run of {path}")
    if int(state["step"]) != int(config["train"]["offline_steps"]):
        raise ConfigError(f"{path} is at step {state['step']}, not at the end of the offline "
                          f"phase ({config['train']['offline_steps']})")
    return state


def start_after_offline(agent: Any, member: int, buffer: Any, config: Any) -> int:
    """Give member `member` of `agent` (a pack, or a single agent: member 0) and its replay
    `buffer` the weights and sampling stream at the end of `config.from_offline`'s offline
    phase; the step it starts at."""
    from fino.data.buffer import take_sampling_stream

    state = load_offline_start(Path(str(config.from_offline)), config.to_dict())
    agent.load_member_state(member, state["agent"], same_config=False)
    take_sampling_stream(buffer, state["buffer"])
    return int(state["step"])
