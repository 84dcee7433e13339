"""Slow: the quick preset learns something measurable on regenerated cube-single data."""

from __future__ import annotations

import pytest

from fino.backends.base import TaskConfig
from fino.backends.datagen.generate import generate_dataset
from fino.cli.demo import DEFAULT_TASK
from fino.train.presets import build_run_config
from fino.train.trainer import Trainer


@pytest.mark.slow
def test_quick_preset_reaches_a_nonzero_success_rate_on_cube_single(tmp_path):
    generate_dataset("cube-single-play-v0", episodes=100, out_dir=tmp_path / "data", seed=0)
    config = build_run_config(TaskConfig(DEFAULT_TASK, dataset_dir=str(tmp_path / "data")),
                              preset="quick", algo="fino", seed=0)
    summary = Trainer(config, tmp_path / "run").run()
    assert summary.status == "done"
    online = [e["eval/score"] for e in summary.evaluations
              if e["step"] > config.train.offline_steps]
    assert max(online) > 0.0, summary.evaluations
