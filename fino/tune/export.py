"""A study's best trial as a preset file that states where it came from."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import optuna

from fino.store.db import Store
from fino.store.queue import get_run
from fino.train.presets import load_preset


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)


def write_preset(store: Store, study: optuna.Study, best: optuna.trial.FrozenTrial,
                 out: Path) -> Path:
    """The best trial's full agent and train settings (from its first run's resolved config),
    so that the preset reproduces the trial exactly; validated by loading it back."""
    run_ids = best.user_attrs.get("run_ids", [])
    if not run_ids:
        raise ValueError(f"trial {best.number} has no runs recorded")
    config = get_run(store, run_ids[0]).config
    task = config["task"]["name"]
    family = task.split("-singletask")[0]
    params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                       for k, v in best.params.items())
    lines = [
        f"# Tuned by `fino tune` on {datetime.now(UTC):%Y-%m-%d}: study {study.study_name}.",
        f'source = "fino tune study {study.study_name}: best of '
        f'{len(study.get_trials(deepcopy=False))} trials, trial {best.number} ({params}), '
        f'mean final score {best.value:.2f} over runs {run_ids}; base preset {config["preset"]}"',
        f'description = "Tuned settings for {task}"',
        f'tasks = ["{family}"]',
        "",
        "[task]",
        f'success_timing = "{config["task"]["success_timing"]}"',
    ]
    for section in ("agent", "train"):
        lines += ["", f"[{section}]"]
        lines += [f"{k} = {_toml_value(v)}" for k, v in config[section].items()
                  if v is not None]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    load_preset(out)  # what we wrote must be a valid preset
    return out
