"""The names of the metrics that more than one module writes or reads, spelled once.

Keys group as FQL's do (`critic/…`, `actor/…`, `eval/…`). The agent names its loss metrics where
it makes them (the info dicts of `critic_loss` and `actor_loss` in fino/algo/agent.py); the loss
keys below are the ones read elsewhere (plots, the demo), and a test pins that the agent makes
them. Imports nothing: the store, the CLI and the TUI use it without loading torch.
"""

# Evaluation (fino/train/evaluate.py and the trainers), one row per evaluation.
EVAL_SCORE = "eval/score"  # success rate or normalised score ×100: the paper's metric
EVAL_RETURN = "eval/return"
EVAL_LENGTH = "eval/length"
EVAL_SECONDS = "eval/seconds"

# Entropy-guided sampling (spec §4): the entropy estimate, its target H̄ and the temperature β.
POLICY_ENTROPY = "policy/entropy"
POLICY_ENTROPY_TARGET = "policy/entropy_target"
POLICY_BETA = "policy/beta"

# The agent's losses and its noise scale η (logged with each evaluation too).
CRITIC_LOSS = "critic/loss"
ACTOR_LOSS = "actor/loss"
ACTOR_BC_FLOW_LOSS = "actor/bc_flow_loss"
ACTOR_DISTILL_LOSS = "actor/distill_loss"
ACTOR_Q_LOSS = "actor/q_loss"
ACTOR_NOISE_SCALE = "actor/noise_scale"

# Online data collection, one row per finished episode.
ONLINE_EPISODE_RETURN = "online/episode_return"

# Progress and throughput, written with every metrics row of a run.
PROGRESS_ONLINE = "progress/online"  # 1.0 once the run is in its online phase
PROGRESS_ENV_STEPS = "progress/env_steps"
UPDATES_PER_SEC = "time/updates_per_sec"  # over each log interval
ENV_STEPS_PER_SEC = "time/env_steps_per_sec"
