"""D4RL's dataset names, as the papers' commands write them (`antmaze-large-play-v2`,
`pen-cloned-v1`), and the Minari ids of the same datasets (Minari's remote `D4RL` namespace).

D4RL itself no longer installs; Minari re-hosts its antmaze, Adroit, kitchen and maze2d sets
under its own versions. D4RL's MuJoCo locomotion sets (halfcheetah-medium-v2, ...) have no
Minari copy: those names get an error saying so, never a different dataset under their name.
"""

from __future__ import annotations

import re

ANTMAZE_MAZES = ("umaze", "umaze-diverse", "medium-play", "medium-diverse", "large-play",
                 "large-diverse")
ADROIT_HANDS = ("pen", "door", "hammer", "relocate")
ADROIT_DATASETS = ("human", "cloned", "expert")
KITCHEN_DATASETS = ("complete", "partial", "mixed")
POINTMAZE_MAZES = ("umaze", "medium", "large")

# D4RL's latest version of each dataset → its Minari id.
MINARI_IDS: dict[str, str] = {
    **{f"antmaze-{maze}-v2": f"D4RL/antmaze/{maze}-v1" for maze in ANTMAZE_MAZES},
    **{f"{hand}-{kind}-v1": f"D4RL/{hand}/{kind}-v2"
       for hand in ADROIT_HANDS for kind in ADROIT_DATASETS},
    **{f"kitchen-{kind}-v0": f"D4RL/kitchen/{kind}-v2" for kind in KITCHEN_DATASETS},
    **{f"maze2d-open{dense}-v0": f"D4RL/pointmaze/open{dense}-v2" for dense in ("", "-dense")},
    **{f"maze2d-{maze}{dense}-v1": f"D4RL/pointmaze/{maze}{dense}-v2"
       for maze in POINTMAZE_MAZES for dense in ("", "-dense")},
}

_LOCOMOTION = re.compile(r"(?P<env>halfcheetah|hopper|walker2d|ant)-(random|medium|"
                         r"medium-replay|medium-expert|expert|full-replay)-v\d+")


def minari_id(name: str) -> str | None:
    """The Minari id of a D4RL dataset name, or None when `name` is not one."""
    return MINARI_IDS.get(name.strip().lower())


def resolution_note(name: str) -> str | None:
    """What a D4RL name resolves to, for the user to read once; None for other names."""
    dataset_id = minari_id(name)
    if dataset_id is None:
        return None
    return f"{name.strip()} is D4RL's name; using Minari's {dataset_id}"


def no_minari_copy(name: str) -> str | None:
    """Why a D4RL name Minari has no copy of (a locomotion set, or another version of a set it
    has, such as antmaze-large-play-v0) cannot be used; None for other names."""
    stem, dash, version = name.strip().lower().rpartition("-v")
    if dash and version.isdigit() and minari_id(name) is None:
        for known, dataset_id in MINARI_IDS.items():
            if known.rpartition("-v")[0] == stem:
                return (f"{name.strip()}: Minari copies D4RL's {known} (as {dataset_id}), not "
                        f"this version; use {known}")
    match = _LOCOMOTION.fullmatch(name.strip().lower())
    if match is None:
        return None
    env = match["env"]
    return (f"{name.strip()} is a D4RL MuJoCo locomotion dataset, and Minari has no copy of "
            f"those. Minari's own mujoco/{env}/{{simple,medium,expert}}-v0 (e.g. --task "
            f"mujoco/{env}/medium-v0) were collected anew in MuJoCo v5 envs: other data, so "
            "their scores are not comparable with the papers' D4RL tables. D4RL names that do "
            "resolve: antmaze-*-v2, {pen,door,hammer,relocate}-{human,cloned,expert}-v1, "
            "kitchen-{complete,partial,mixed}-v0, maze2d-{umaze,medium,large}[-dense]-v1, "
            "maze2d-open[-dense]-v0")
