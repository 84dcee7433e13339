"""A real Optuna journal holding studies like `fino tune` writes (trials in every state), built
directly so that readers of studies can be tested without running any."""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import TrialState, create_trial

SPACE = {"noise_scale": FloatDistribution(0.01, 0.5, log=True),
         "num_candidates": IntDistribution(1, 16)}


def make_study(journal: Path, name: str = "cube-tune") -> None:
    """Trials 0, 1 complete (40, 55), 2 pruned, 3 running (reported 20 at step 5000)."""
    storage = JournalStorage(JournalFileBackend(str(journal)))
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    study.set_user_attr("fino", {"task": "cube-double-play-singletask-task2-v0",
                                 "preset": "quick", "seeds": [0, 1], "key": "eval/score"})
    finished = [({"noise_scale": 0.1, "num_candidates": 3}, 40.0, TrialState.COMPLETE, [1, 2]),
                ({"noise_scale": 0.3, "num_candidates": 8}, 55.0, TrialState.COMPLETE, [3, 4]),
                ({"noise_scale": 0.02, "num_candidates": 1}, None, TrialState.PRUNED, [5, 6])]
    for params, value, state, runs in finished:
        study.add_trial(create_trial(params=params, distributions=SPACE, value=value, state=state,
                                     intermediate_values={5000: 10.0},
                                     user_attrs={"run_ids": runs}))
    study.enqueue_trial({"noise_scale": 0.05, "num_candidates": 5})  # fixed, not sampled
    running = study.ask(SPACE)
    running.set_user_attr("run_ids", [7, 8])
    running.report(20.0, 5000)
